"""Opening input files (images, models, specs, label files): regular files only, never blocking.

``open()`` on a FIFO waits for a writer forever, and a device can stream without end. Files are opened
with ``O_NONBLOCK`` (which changes nothing for a regular file) and refused unless ``fstat`` says they
are regular files, before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_KINDS = (
    (stat.S_ISFIFO, "not a regular file (a FIFO or pipe, e.g. a process substitution)"),
    (stat.S_ISCHR, "not a regular file (a character device)"),
    (stat.S_ISBLK, "not a regular file (a block device)"),
    (stat.S_ISSOCK, "not a regular file (a socket)"),
)


class NotRegularFileError(OSError):
    """The path is a FIFO, a device or a socket: reading it could block or never end."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file.

    Raises:
        OSError: FileNotFoundError, PermissionError, IsADirectoryError, NotRegularFileError (FIFOs,
            devices, sockets), ...; :func:`describe_open_error` says which in a few words.
        ValueError: the path holds a NUL byte.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(mode):
            problem = next((text for test, text in _KINDS if test(mode)), "not a regular file")
            raise NotRegularFileError(errno.EINVAL, problem, os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def describe_open_error(e: OSError | ValueError) -> str:
    """What went wrong opening a file, in a few words ("no such file", "permission denied", ...)."""
    if isinstance(e, ValueError):
        return f"invalid path ({e})"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, NotRegularFileError):
        return e.strerror
    if e.errno == errno.ENXIO:  # what opening a socket gives
        return "not a regular file (a socket or a device without a driver)"
    return f"cannot open ({e.strerror or e})"
