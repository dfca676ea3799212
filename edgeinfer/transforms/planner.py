"""The Compose planner: a list of transforms → the steps that compute the same result with less work.

:func:`plan` flattens nested Composes, checks that images and tensors follow each other as torchvision
would run them, and fuses:

* Resize followed by CenterCrop resizes only the cropped window (``functional.resize(region=...)``);
  as the first step it reads only the pixels that window needs from a PIL image;
* Grayscale(3) keeps one gray plane until a step needs three channels: Resize, CenterCrop and Pad (with
  one fill value) compute the same numbers on every channel of an image whose channels are equal;
* ToTensor followed by Normalize normalizes ToTensor's new float32 array in place.

On torchvision's tensor path (after PILToTensor / ToTensor) Resize must have ``backend="tensor"`` and runs
unfused; a CenterCrop there crops the tensor's last two axes.

The steps call only the public functions of :mod:`edgeinfer.transforms.functional` with the public
attributes of the transforms; the results equal running the transforms one by one, bit for bit.
``Compose`` calls :func:`plan` when it is built (the package's ``__init__`` hands it over: this module
imports the classes, so they cannot import it).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeinfer.transforms import functional as F
from edgeinfer.transforms import transforms as classes

# What each transform consumes; every other transform takes an image (PIL image or H×W[×C] array).
_TAKES_TENSOR = (classes.ConvertImageDtype, classes.ToDtype, classes.Normalize, classes.ToPILImage)
_GIVES_TENSOR = (
    classes.ToTensor,
    classes.PILToTensor,
    classes.ConvertImageDtype,
    classes.ToDtype,
    classes.Normalize,
)
# What a gray image held as one plane may go through before it must become three channels.
_GRAY_PLANE_SAFE = (classes.Resize, classes.CenterCrop, classes.Pad, classes.Grayscale, classes.ToTensor)
# The RGB image whose three channels equal an L image: Grayscale(3) of it.
_three_channels = functools.partial(F.rgb_to_grayscale, num_output_channels=3)


def plan(transforms: Sequence[classes.Transform]) -> list[classes.Step]:
    """Steps equivalent to running ``transforms`` one by one, with the fusions described above.

    Raises:
        ValueError: an image transform after the image became a tensor (torchvision would run its tensor
            path: only Resize(backend="tensor") and CenterCrop reproduce it), or a tensor transform before
            ToTensor.
    """
    flat = _flatten(transforms)
    kinds = _check_kinds(flat)
    steps: list[classes.Step] = []
    gray3 = False  # the image is RGB with equal channels, held as its one L plane
    i = 0
    while i < len(flat):
        t = flat[i]
        nxt = flat[i + 1] if i + 1 < len(flat) else None
        if gray3 and not isinstance(t, _GRAY_PLANE_SAFE):
            steps.append(_three_channels)
            gray3 = False
        if isinstance(t, classes.Grayscale):
            if not gray3:
                steps.append(F.rgb_to_grayscale)
            gray3 = t.num_output_channels == 3
        elif isinstance(t, classes.CenterCrop) and kinds[i] == "tensor":
            steps.append(functools.partial(F.center_crop, output_size=t.size, backend="tensor"))
        elif isinstance(t, classes.Resize) and t.backend == "tensor":
            steps.append(t)
        elif isinstance(t, classes.Resize):
            crop = nxt if isinstance(nxt, classes.CenterCrop) else None
            steps.append(_resize_crop(t, crop))
            i += 1 if crop else 0
        elif isinstance(t, classes.Pad) and gray3:
            fill = _one_fill(t)
            if fill is None:
                steps.extend([_three_channels, t])
                gray3 = False
            else:
                steps.append(lambda a, t=t, fill=fill: F.pad(a, t.padding, fill, t.padding_mode))
        elif isinstance(t, classes.ToPILImage) and i == 0:  # fed the decoded image array, not a tensor
            steps.append(lambda a, mode=t.mode: F.to_pil_image(a, mode, channels_last=True))
        elif isinstance(t, classes.ToTensor):
            norm = nxt if isinstance(nxt, classes.Normalize) else None
            steps.append(_to_tensor_normalize(norm, gray3))
            gray3 = False
            i += 1 if norm else 0
        else:
            steps.append(t)
        i += 1
    if gray3:
        steps.append(_three_channels)
    return steps


def _flatten(transforms: Sequence[classes.Transform]) -> list[classes.Transform]:
    flat: list[classes.Transform] = []
    for t in transforms:
        flat.extend(_flatten(t.transforms) if isinstance(t, classes.Compose) else [t])
    return flat


def _takes(t: classes.Transform, kind: str | None) -> str:
    """What ``t`` consumes: CenterCrop takes what it is given; Resize a tensor on the tensor backend."""
    if isinstance(t, classes.CenterCrop):
        return kind or "image"
    if isinstance(t, _TAKES_TENSOR) or (isinstance(t, classes.Resize) and t.backend == "tensor"):
        return "tensor"
    return "image"


def _check_kinds(flat: Sequence[classes.Transform]) -> list[str]:
    """What each transform receives ("image" or "tensor"), checked as torchvision would run them."""
    kind = None
    kinds = []
    for i, t in enumerate(flat):
        takes = _takes(t, kind)
        kinds.append(takes)
        if kind == "tensor" and takes == "image":
            raise ValueError(
                f"Compose: {type(t).__name__} (step {i}) comes after the image became a tensor; torchvision "
                "would run it on the tensor (its tensor path, not Pillow's): move it before "
                "ToTensor/PILToTensor, or for a Resize give it backend='tensor'"
            )
        if kind == "image" and takes == "tensor":
            raise ValueError(f"Compose: {type(t).__name__} (step {i}) needs a tensor; add ToTensor before it")
        keeps = isinstance(t, (classes.CenterCrop, classes.Resize))  # a tensor stays a tensor
        kind = "tensor" if isinstance(t, _GIVES_TENSOR) or (keeps and takes == "tensor") else "image"
    return kinds


def _one_fill(pad: classes.Pad) -> Any:
    """The fill that pads every channel of a gray RGB image alike, as one number; None if there is none."""
    fill = pad.fill
    if pad.padding_mode != "constant" or isinstance(fill, numbers.Real):
        return fill
    if len(fill) == 1 or (len(fill) == 3 and len({int(f) for f in fill}) == 1):
        return fill[0]
    return None


def _resize_crop(resize: classes.Resize, crop: classes.CenterCrop | None) -> classes.Step:
    """Resize, then CenterCrop if given: only the cropped window is resampled when it lies inside the
    resized image. A PIL image is taken as it is; only the pixels the window needs are read."""
    args = (resize.size, resize.interpolation, resize.max_size, resize.antialias)
    if crop is None:
        return lambda img: F.resize(img, *args, pass_order=resize.pass_order)

    def resize_crop(img: Any) -> np.ndarray:
        _, h, w = F.get_dimensions(img)
        out_h, out_w = resize.output_size(h, w)
        top, left, ch, cw = F.center_crop_box((out_h, out_w), crop.size)
        if ch > out_h or cw > out_w:  # the crop pads the resized image
            return F.center_crop(F.resize(img, *args, pass_order=resize.pass_order), crop.size)
        return F.resize(img, *args, pass_order=resize.pass_order, region=(top, left, ch, cw))

    return resize_crop


def _to_tensor_normalize(normalize: classes.Normalize | None, gray3: bool) -> classes.Step:
    """ToTensor, and the Normalize after it if any, of an image or of a gray plane that stands for three
    equal channels (scaled once, broadcast into the three channels by the subtraction or a copy).

    ToTensor gives 8-bit images a new float32 array (one that owns its data), which Normalize may then
    overwrite: the same float32 operations in the same order as the two transforms, without a second array.
    """
    if normalize is None:
        if not gray3:
            return F.to_tensor
        return lambda gray: np.repeat(F.to_tensor(gray), 3, axis=0)
    # As float32 arrays once, not converted from the lists on every image.
    mean, std = np.asarray(normalize.mean, np.float32), np.asarray(normalize.std, np.float32)

    def to_tensor_normalize(img: Any) -> np.ndarray:
        tensor = F.to_tensor(img)
        if gray3:
            return F.normalize(np.broadcast_to(tensor, (3,) + tensor.shape[1:]), mean, std)
        return F.normalize(tensor, mean, std, inplace=tensor.flags.owndata or normalize.inplace)

    return to_tensor_normalize
