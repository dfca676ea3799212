"""Which image files a list of arguments names: files as given, directories walked, glob patterns expanded.

What ``edgeinfer predict IMAGES`` reads. Walks and ``**`` never enter a symbolic link to a directory, so a
link to ``..`` cannot make them endless and no file is listed twice; directories yield only files whose
extension is one of the formats edgeinfer decodes (:data:`edgeinfer.decoding.IMAGE_EXTENSIONS`). The files
themselves are opened later, as regular files only (:mod:`edgeinfer._files`).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Iterator

from edgeinfer.decoding import IMAGE_EXTENSIONS
from edgeinfer.errors import ImageError


def expand_inputs(args: Iterable[str]) -> Iterator[str | ImageError]:
    """Image paths from the arguments, in order: files as given, directories walked recursively
    (image extensions only, sorted), glob patterns expanded. Unreadable directories, directories
    without images and patterns matching nothing come out as ImageErrors, in their place."""
    for arg in args:
        if not os.path.exists(arg) and glob.has_magic(arg):
            matches = _glob(arg)
            if not matches:
                yield ImageError(f"{arg}: no file matches this pattern")
            seen: set[str] = set()  # `dir/**` matches dir and its sub-directories: walk each file once
            for match in matches:
                for item in _walk(match) if os.path.isdir(match) else [match]:
                    if isinstance(item, str):
                        if os.path.normpath(item) in seen:
                            continue
                        seen.add(os.path.normpath(item))
                    yield item
        elif os.path.isdir(arg):
            yield from _walk(arg)
        else:
            yield arg


def _glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, sorted, except that ``**`` never enters a symbolic link
    to a directory: a link to ``..`` would make the walk endless, and any link would visit files twice.
    Like glob, ``*`` and ``**`` skip names that start with a dot."""
    parts = pattern.split(os.sep)
    bases = [os.sep if parts[0] == "" else ""]
    for i, part in enumerate(parts[1:] if parts[0] == "" else parts):
        if part == "**":
            bases = [d for base in bases for d in _directories_below(base)]
        elif glob.has_magic(part):
            bases = [
                os.path.join(base, name)
                for base in bases
                for name in _listdir(base)
                if (part.startswith(".") or not name.startswith(".")) and fnmatch.fnmatchcase(name, part)
            ]
        elif part or i == len(parts) - 1:
            bases = [os.path.join(base, part) for base in bases]
    return sorted({path for path in bases if path and os.path.lexists(path)})


def _directories_below(base: str) -> list[str]:
    """``base`` and every directory under it, without following symbolic links or entering hidden ones."""
    found = [base]
    for root, dirs, _ in os.walk(base or os.curdir, followlinks=False):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d))
        )
        found += [os.path.join(base, os.path.relpath(os.path.join(root, d), base or os.curdir)) for d in dirs]
    return found


def _listdir(base: str) -> list[str]:
    try:
        return os.listdir(base or os.curdir)
    except OSError:
        return []


def _walk(top: str) -> list[str | ImageError]:
    found: list[str | ImageError] = []

    def unreadable(e: OSError) -> None:
        found.append(ImageError(f"{e.filename}: cannot read directory ({e.strerror})"))

    for root, dirs, files in os.walk(top, onerror=unreadable):  # never into symlinked directories
        dirs.sort()
        found += [
            os.path.join(root, f) for f in sorted(files) if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
        ]
    return found or [ImageError(f"{top}: no image files in this directory")]
