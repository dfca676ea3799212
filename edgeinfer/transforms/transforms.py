"""The transform classes: torchvision's names and constructor arguments (and those of the two timm classes
its evaluation transforms need, ResizeKeepRatio and CenterCropOrPad), over the functional layer.

Each class checks its arguments when built (so that a bad spec fails when it is read, not on the first
image), keeps them as public attributes named like the constructor's arguments (what ``to_spec()``
writes and the Compose planner reads), and calls one function of :mod:`edgeinfer.transforms.functional`.
``__repr__`` is torchvision's.

This module imports neither the planner nor the spec reader: both import these classes to recognise them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from edgeinfer.transforms import _checks
from edgeinfer.transforms import functional as F


@functools.cache
def arguments(cls: type) -> dict[str, Any]:
    """A transform class's constructor arguments → their defaults (``inspect.Parameter.empty`` when
    required), in order: the public attributes its instances keep, what a spec holds."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in parameters if p.kind in kinds and p.name != "self"}


def _jsonable(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if _checks.is_int(x):
        return int(x)
    if _checks.is_number(x):
        return float(x)
    return x


class Transform:
    """Base class: a callable on an image (PIL or array) or a tensor, with a spec and a repr."""

    def __call__(self, img: Any) -> np.ndarray:
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description: ``{"type": class name, argument: value, ...}`` with the constructor's
        arguments read from the attributes of the same names; :func:`edgeinfer.transforms.from_spec` rebuilds
        the transform from it."""
        spec = {"type": type(self).__name__}
        spec.update({name: _jsonable(getattr(self, name)) for name in arguments(type(self))})
        return spec

    def __repr__(self) -> str:
        """torchvision's: ``Name(argument=value, ...)``."""
        values = ", ".join(f"{name}={getattr(self, name)}" for name in arguments(type(self)))
        return f"{type(self).__name__}({values})"


class Resize(Transform):
    """Resize to ``size`` like ``torchvision.transforms.Resize`` on a PIL image (Pillow's resampling), or
    on a tensor with ``backend="tensor"`` (torch's kernels: then it takes and gives a ...×H×W tensor).

    The arguments are :func:`~edgeinfer.transforms.functional.resize`'s; ``interpolation`` is kept as its
    name ("bilinear", ...). The spec records ``backend`` only when it is "tensor", so PIL-path specs are
    unchanged.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None,
        interpolation: Any = "bilinear",
        max_size: int | None = None,
        antialias: bool | None = True,
        pass_order: str = "pillow13",
        backend: str = "pil",
    ) -> None:
        self.size = _checks.resize_size(size, max_size, antialias, pass_order)
        if max_size is not None:
            _checks.check_budget(f"Resize max_size={max_size}", 1, max_size)
        if self.size is not None:  # the output is at least size×size, or exactly (h, w)
            smallest = (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[-1])
            _checks.check_budget(f"Resize(size={self.size})", *smallest)
        self.interpolation = _checks.interpolation_name(interpolation)
        self.max_size = max_size
        self.antialias = antialias
        self.pass_order = pass_order
        self.backend = _checks.backend(backend, self.interpolation, antialias)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to."""
        return _checks.resized_size(height, width, self.size, self.max_size)

    def __call__(self, img: Any) -> np.ndarray:
        return F.resize(
            img,
            self.size,
            self.interpolation,
            self.max_size,
            self.antialias,
            pass_order=self.pass_order,
            backend=self.backend,
        )

    def to_spec(self) -> dict[str, Any]:
        spec = super().to_spec()
        if self.backend == "pil":
            del spec["backend"]
        return spec

    def __repr__(self) -> str:
        extra = f", pass_order={self.pass_order}" if self.pass_order != "pillow13" else ""
        extra += f", backend={self.backend}" if self.backend != "pil" else ""
        return (
            f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation}, "
            f"max_size={self.max_size}, antialias={self.antialias}{extra})"
        )


class ResizeKeepRatio(Transform):
    """timm's ``ResizeKeepRatio`` in its evaluation form (no random scale or aspect): both sides divided by
    one ratio (see :func:`~edgeinfer.transforms.functional.keep_ratio_size`), resampled as :class:`Resize`.

    timm's "center" crop mode uses it with ``longest=0`` for non-square inputs (the shorter side fits), its
    "border" mode with ``longest=1`` (the longer side fits, :class:`CenterCropOrPad` pads the rest).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        longest: float = 0.0,
        interpolation: Any = "bilinear",
        pass_order: str = "pillow13",
    ) -> None:
        self.size, self.longest = _checks.keep_ratio_arguments(size, longest)
        if self.longest == 0:  # the output is at least size
            _checks.check_budget(f"ResizeKeepRatio(size={list(self.size)})", *self.size)
        self.interpolation = _checks.interpolation_name(interpolation)
        if pass_order not in _checks.PASS_ORDERS:
            raise ValueError(
                f"ResizeKeepRatio pass_order must be one of {_checks.PASS_ORDERS}, got {pass_order!r}"
            )
        self.pass_order = pass_order

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to."""
        return F.keep_ratio_size((height, width), self.size, self.longest)

    def __call__(self, img: Any) -> np.ndarray:
        return F.resize_keep_ratio(
            img, self.size, self.longest, self.interpolation, pass_order=self.pass_order
        )


class CenterCrop(Transform):
    """Crop the centre ``size`` (int or (h, w)); a crop larger than the image pads it with zeros first.

    ``size`` is kept as torchvision keeps it: an (h, w) pair (a list stays a list; its repr shows it).
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _checks.crop_size(size)
        _checks.check_budget(f"CenterCrop(size={list(self.size)})", int(self.size[0]), int(self.size[1]))

    def __call__(self, img: Any) -> np.ndarray:
        return F.center_crop(img, self.size)


class CenterCropOrPad(Transform):
    """timm's ``CenterCropOrPad``: a side shorter than ``size`` (int or (h, w)) is padded with ``fill`` by
    ``padding_mode`` as :class:`Pad` pads, then the centre is cropped as :class:`CenterCrop` crops.

    timm's "border" crop mode pads with the mean colour, ``[round(255 * m) for m in mean]``.
    """

    def __init__(
        self, size: int | Sequence[int], fill: float | Sequence[float] = 0, padding_mode: str = "constant"
    ) -> None:
        self.size = _checks.crop_size(size, "CenterCropOrPad")
        _checks.padding_ltrb(0, fill, padding_mode)
        _checks.check_budget(f"CenterCropOrPad(size={list(self.size)})", int(self.size[0]), int(self.size[1]))
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, img: Any) -> np.ndarray:
        return F.center_crop_or_pad(img, self.size, self.fill, self.padding_mode)


class Pad(Transform):
    """Pad the borders: ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom).

    Negative padding crops, as in torchvision. ``fill`` (number or per-channel tuple, int()-truncated
    except for F images) is used by the "constant" mode; "edge", "reflect" and "symmetric" follow np.pad.
    """

    def __init__(
        self, padding: int | Sequence[int], fill: float | Sequence[float] = 0, padding_mode: str = "constant"
    ) -> None:
        ltrb = _checks.padding_ltrb(padding, fill, padding_mode)
        left, top, right, bottom = (max(p, 0) for p in ltrb)  # what a 1×1 image would grow to
        _checks.check_budget(f"Pad(padding={padding!r})", 1 + top + bottom, 1 + left + right)
        if min(ltrb) < -_checks.MAX_OUTPUT_PIXELS:
            raise ValueError(f"Pad padding must be >= {-_checks.MAX_OUTPUT_PIXELS}, got {padding!r}")
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, img: Any) -> np.ndarray:
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class Grayscale(Transform):
    """Pillow's ``convert("L")`` (L24 weights, alpha ignored); 3 output channels repeat it as RGB."""

    def __init__(self, num_output_channels: int = 1) -> None:
        self.num_output_channels = _checks.grayscale_channels(num_output_channels)

    def __call__(self, img: Any) -> np.ndarray:
        return F.rgb_to_grayscale(img, self.num_output_channels)


class ToTensor(Transform):
    """Image → C×H×W tensor: 8-bit images become float32 / 255; I → int32, F → float32, I;16 → int16."""

    def __call__(self, img: Any) -> np.ndarray:
        return F.to_tensor(img)


class PILToTensor(Transform):
    """Image → C×H×W tensor of the same dtype (I;16 stays uint16)."""

    def __call__(self, img: Any) -> np.ndarray:
        return F.pil_to_tensor(img)


class ConvertImageDtype(Transform):
    """Convert a tensor's dtype and rescale like ``torchvision.transforms.ConvertImageDtype``.

    uint8 → float divides by 255; float → uint8 multiplies by 255.999 and truncates. ``dtype`` is kept as
    its name ("float32").
    """

    def __init__(self, dtype: Any) -> None:
        self.dtype = _checks.dtype_name(dtype)

    def __call__(self, img: Any) -> np.ndarray:
        return F.convert_image_dtype(img, self.dtype)


class ToDtype(Transform):
    """Convert a tensor's dtype like ``torchvision.transforms.v2.ToDtype``: ``scale=True`` rescales
    (uint8 → float multiplies by ``float(1 / 255)``, not v1's division by 255). ``dtype`` is kept as its
    name ("float32").
    """

    def __init__(self, dtype: Any, scale: bool = False) -> None:
        self.dtype = _checks.dtype_name(dtype)
        if not isinstance(scale, bool):
            raise TypeError(f"ToDtype scale must be a bool, got {scale!r}")
        self.scale = scale

    def __call__(self, img: Any) -> np.ndarray:
        return F.to_dtype(img, self.dtype, self.scale)


class Normalize(Transform):
    """``(tensor - mean) / std`` per channel, in the tensor's float dtype (subtract, then true divide)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        _checks.normalize_arguments(mean, std, inplace)
        self.mean = list(mean)
        self.std = list(std)
        self.inplace = inplace

    def __call__(self, img: Any) -> np.ndarray:
        return F.normalize(img, self.mean, self.std, self.inplace)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class ToPILImage(Transform):
    """C×H×W (or H×W) tensor → image array, like ``torchvision.transforms.ToPILImage`` on a tensor.

    As the first step of a Compose it receives the decoded image, an H×W[×C] array, and reads it as
    torchvision's ToPILImage reads an ndarray (channels last): e.g. a pipeline declared for
    ImageFolder-style array loaders, ``[ToPILImage(), Resize(...), ...]``. The conversion rules are
    :func:`~edgeinfer.transforms.functional.to_pil_image`'s.
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = _checks.pil_image_mode(mode)

    def __call__(self, img: Any) -> np.ndarray:
        return F.to_pil_image(img, self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'' if self.mode is None else f'mode={self.mode}'})"


Step = Callable[[Any], Any]


class Compose(Transform):
    """Run transforms in order. The pipeline is planned once, at construction, by
    :func:`edgeinfer.transforms.planner.plan`: the result equals running the transforms one by one, bit for
    bit.
    """

    # The planner recognises the classes of this module, so it imports them and this module cannot import
    # it: the package's __init__ sets this to edgeinfer.transforms.planner.plan.
    planner: ClassVar[Callable[[list[Transform]], list[Step]]]

    def __init__(self, transforms: Sequence[Transform]) -> None:
        if not _checks.is_sequence(transforms):
            raise TypeError(f"Compose expects a sequence of transforms, got {type(transforms).__name__}")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(
                    f"Compose transforms[{i}] is {type(t).__name__}, not an edgeinfer transform "
                    "(use edgeinfer.transforms.from_torchvision to convert torchvision objects)"
                )
        self.transforms = list(transforms)
        self._steps = Compose.planner(self.transforms)

    def __call__(self, img: Any) -> np.ndarray:
        for step in self._steps:
            img = step(img)
        return img

    def to_spec(self) -> dict[str, Any]:
        return {"type": "Compose", "transforms": [t.to_spec() for t in self.transforms]}

    def __repr__(self) -> str:
        return "Compose(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"
