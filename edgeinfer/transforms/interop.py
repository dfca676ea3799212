"""torchvision (and timm) objects ⇄ edgeinfer transforms.

:func:`from_torchvision` reads a torchvision v1 or v2 transform, or one of timm's evaluation transforms,
by its attributes, without importing torch or timm. :func:`to_torchvision` rebuilds torchvision's classic
transform (and timm's, for timm's classes) from an edgeinfer spec: the oracle that export's verification
and the tests compare edgeinfer with. It is given the ``torchvision.transforms`` module (and
``timm.data.transforms``) by its caller, so that no code under ``edgeinfer/`` imports torchvision or timm.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from edgeinfer._resample.filters import installed_pass_order
from edgeinfer.transforms import _checks
from edgeinfer.transforms import transforms as classes
from edgeinfer.transforms.spec import CLASSES

__all__ = ["TIMM_CLASSES", "from_torchvision", "needs_timm", "to_torchvision"]

_SUPPORTED = ", ".join(sorted(CLASSES))

# The edgeinfer classes that stand for timm's own (timm.data.transforms): to_torchvision rebuilds them
# from timm, under the same names and arguments.
TIMM_CLASSES = ("CenterCropOrPad", "ResizeKeepRatio")
_TIMM_TRANSFORMS = "timm.data.transforms"
# timm's deterministic transforms that no edgeinfer transform reproduces, and why (timm's random ones get
# the message of every random transform).
_TIMM_REFUSED = {
    "ToTensor": "it casts to float without dividing by 255 (MaybeToTensor divides by 255)",
    "ToNumpy": "it gives the prefetching loader a NumPy array cast with NumPy's unchecked casting, not a "
    "tensor (use MaybePILToTensor)",
    "ResizeToSequence": "NaFlex sizes each image to a patch budget, a variable-size input",
    "ResizeKeepRatioToSequence": "NaFlex sizes each image to a patch budget, a variable-size input",
    "CenterCropToSequence": "NaFlex sizes each image to a patch budget, a variable-size input",
    "Patchify": "NaFlex's patch sequences are not an image tensor",
    "TfPreprocessTransform": "it decodes and resizes with TensorFlow",
}


def from_torchvision(obj: Any, backend: str | None = None) -> classes.Transform:
    """The edgeinfer equivalent of a torchvision v1 or v2 transform or Compose, read from its attributes.
    timm's evaluation transforms (``timm.data.create_transform(**resolve_data_config(...))``, every crop
    mode) are read too: see :func:`_from_timm`.

    Args:
        backend: what the pipeline is given. "pil": a PIL image (ImageFolder's loader). "tensor": a uint8
            C×H×W tensor (``torchvision.io.decode_image``): the result starts with PILToTensor, which the
            runtime's decoded image goes through. None: read it from the Compose, "pil" unless it says
            otherwise. Either way, each Resize runs on what it receives there: a Resize after
            ToImage / PILToTensor / ToTensor gets ``backend="tensor"`` (torch's kernels).

    Resize records the installed Pillow's pass order ("pillow13" for Pillow >= 13, else "pillow12"),
    since that is what the torchvision pipeline computes on this machine.

    Raises:
        ValueError: for a transform edgeinfer does not support (named in the message).
        TypeError: for an object that is not a torchvision or timm transform.
    """
    if backend not in (None, *_checks.BACKENDS):
        raise ValueError(
            f"from_torchvision backend must be one of {_checks.BACKENDS} or None, got {backend!r}"
        )
    state = _Flow("uint8" if backend == "tensor" else None)
    result = _read(obj, state)
    if backend == "tensor" and not _starts_with_tensor(result):
        return classes.Compose([classes.PILToTensor(), result])
    return result


class _Flow:
    """What the torchvision pipeline holds at the transform being read: an image (``dtype`` None) or a
    tensor of ``dtype``."""

    def __init__(self, dtype: str | None) -> None:
        self.dtype = dtype


def _starts_with_tensor(t: classes.Transform) -> bool:
    while isinstance(t, classes.Compose) and t.transforms:
        t = t.transforms[0]
    return isinstance(t, (classes.PILToTensor, classes.ToTensor))


def _read(obj: Any, flow: _Flow) -> classes.Transform:
    cls = type(obj)
    name = cls.__name__
    if cls.__module__.startswith("timm."):
        return _from_timm(obj, flow)
    if not cls.__module__.startswith("torchvision.transforms"):
        raise TypeError(
            f"expected a torchvision or timm transform, got {name} from module {cls.__module__!r}"
        )
    v2 = cls.__module__.startswith("torchvision.transforms.v2")
    if name == "Compose":
        return classes.Compose([_read(t, flow) for t in obj.transforms])
    if name == "Resize":
        return _resize(obj, flow, v2)
    if name == "CenterCrop":
        return classes.CenterCrop(obj.size)
    if flow.dtype is not None and name in ("Pad", "Grayscale"):
        raise ValueError(
            f"{name} on a tensor (torchvision's tensor path) is not supported; put it before ToImage"
        )
    if name == "Pad":
        if isinstance(obj.fill, Mapping):
            raise ValueError(
                f"Pad with a per-type fill dict ({obj.fill!r}) is not supported; use one fill value"
            )
        return classes.Pad(obj.padding, obj.fill, obj.padding_mode)
    if name == "Grayscale":
        return classes.Grayscale(obj.num_output_channels)
    if name == "ToTensor":
        flow.dtype = "float32"
        return classes.ToTensor()
    if name in ("PILToTensor", "ToImage"):
        if name == "ToImage" and flow.dtype is not None:
            return classes.Compose([])  # ToImage of a tensor is the tensor
        # v2's ToImage on a PIL image is pil_to_tensor: the same values.
        flow.dtype = "uint8"
        return classes.PILToTensor()
    if name in ("ConvertImageDtype", "ToDtype"):
        return _to_dtype(obj, flow, v2)
    if name == "Normalize":
        return classes.Normalize(_numbers(obj.mean), _numbers(obj.std), obj.inplace)
    if name == "ToPILImage":
        flow.dtype = None
        return classes.ToPILImage(obj.mode)
    raise ValueError(
        f"{name} is not supported (edgeinfer supports only deterministic transforms: {_SUPPORTED})"
    )


def _resize(obj: Any, flow: _Flow, v2: bool) -> classes.Resize:
    interpolation = _checks.interpolation_name(obj.interpolation)
    if flow.dtype is None:
        return classes.Resize(
            obj.size, interpolation, obj.max_size, obj.antialias, pass_order=installed_pass_order()
        )
    if flow.dtype == "uint8" and not v2 and interpolation in ("bilinear", "bicubic"):
        # v1's F.resize converts any non-float tensor to float32, resizes and rounds half to even.
        raise ValueError(
            f"torchvision.transforms.Resize({interpolation}) of a uint8 tensor (v1: float32 kernel, then "
            "rounded) is not supported; use torchvision.transforms.v2.Resize, or convert to float first"
        )
    return classes.Resize(
        obj.size,
        interpolation,
        obj.max_size,
        obj.antialias,
        pass_order=installed_pass_order(),
        backend="tensor",
    )


def _to_dtype(obj: Any, flow: _Flow, v2: bool) -> classes.Transform:
    dtype = obj.dtype
    if isinstance(dtype, Mapping):
        raise ValueError(f"ToDtype with a per-type dtype dict ({dtype!r}) is not supported; use one dtype")
    if type(obj).__name__ == "ToDtype":
        flow.dtype = _checks.dtype_name(dtype)
        return classes.ToDtype(flow.dtype, obj.scale)
    if v2 and dtype.is_floating_point:
        # v2's to_dtype scales integers by x * (1 / max), v1 by x / max: 1 ulp apart for about half
        # of the uint8 values.
        raise ValueError(
            f"torchvision.transforms.v2.ConvertImageDtype({dtype}) is not supported: v2 multiplies "
            "by 1/max where v1 divides by max, the floats differ; use v1's ConvertImageDtype or ToTensor, "
            "or v2.ToDtype(dtype, scale=True)"
        )
    flow.dtype = _checks.dtype_name(dtype)
    return classes.ConvertImageDtype(flow.dtype)


def _from_timm(obj: Any, flow: _Flow) -> classes.Transform:
    """The edgeinfer equivalent of one of timm's transforms (``timm.data.transforms``), by its attributes.

    What ``transforms_imagenet_eval`` builds: MaybeToTensor is ToTensor on an image (a tensor it passes
    through; the planner refuses image steps after a tensor), MaybePILToTensor is PILToTensor,
    ResizeKeepRatio and CenterCropOrPad have edgeinfer classes of the same names and arguments, and
    TrimBorder (``crop_border_pixels``) crops like a negative Pad wherever it leaves an image.
    """
    cls = type(obj)
    name = cls.__name__
    if cls.__module__ == _TIMM_TRANSFORMS:
        if name == "MaybeToTensor":
            flow.dtype = "float32"
            return classes.ToTensor()
        if name == "MaybePILToTensor":
            flow.dtype = "uint8"
            return classes.PILToTensor()
        if name == "ResizeKeepRatio":
            random = obj.random_scale_prob > 0 or obj.random_aspect_prob > 0
            if random or _checks.is_sequence(obj.interpolation):  # a sequence: "random" interpolation
                raise ValueError(
                    f"ResizeKeepRatio with a random scale, aspect or interpolation is not supported: {obj!r}"
                )
            return classes.ResizeKeepRatio(
                obj.size, obj.longest, obj.interpolation, pass_order=installed_pass_order()
            )
        if name == "CenterCropOrPad":
            return classes.CenterCropOrPad(obj.size, obj.fill, obj.padding_mode)
        if name == "TrimBorder":
            return classes.Pad(-obj.border_size)
    if name in _TIMM_REFUSED:
        raise ValueError(f"timm's {name} is not supported: {_TIMM_REFUSED[name]}")
    raise ValueError(
        f"{name} is not supported (edgeinfer supports only deterministic transforms: {_SUPPORTED})"
    )


def _numbers(values: Any) -> list[Any]:
    """Normalize's mean or std as a list of numbers. A tensor (timm's are torch tensors) or an array is
    read through its ``tolist()``: the values it holds, exactly, without importing torch."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values) if _checks.is_sequence(values) else [values]


def needs_timm(spec: Mapping[str, Any]) -> bool:
    """Whether :func:`to_torchvision` needs timm's module for ``spec``: it holds one of
    :data:`TIMM_CLASSES`."""
    if spec.get("type") == "Compose":
        return any(needs_timm(step) for step in spec.get("transforms", ()))
    return spec.get("type") in TIMM_CLASSES


def to_torchvision(
    spec: classes.Transform | Mapping[str, Any],
    transforms: ModuleType,
    timm_transforms: ModuleType | None = None,
) -> Callable[[Any], Any]:
    """torchvision's classic (v1) transform for an edgeinfer transform or spec: the same names and
    arguments. ``transforms`` is the ``torchvision.transforms`` module, imported by the caller (train/,
    export/, tests): edgeinfer itself never imports torchvision. The specs of timm's classes
    (:data:`TIMM_CLASSES`) are rebuilt from ``timm_transforms``, the ``timm.data.transforms`` module.

    Raises:
        ValueError: a spec type torchvision has no transform for, or one of timm's without its module.
    """
    if isinstance(spec, classes.Transform):
        spec = spec.to_spec()
    kind = spec["type"]
    if kind == "Compose":
        return transforms.Compose(
            [to_torchvision(step, transforms, timm_transforms) for step in spec["transforms"]]
        )
    # pass_order records which Pillow the spec reproduces; torchvision always uses the installed one.
    kwargs = {k: v for k, v in spec.items() if k not in ("type", "pass_order", "backend")}
    if kind in TIMM_CLASSES:
        if timm_transforms is None:
            raise ValueError(f"{kind} is timm's transform: pass timm.data.transforms to rebuild {dict(spec)}")
        return getattr(timm_transforms, kind)(**kwargs)  # timm takes interpolation by name
    if "interpolation" in kwargs:
        kwargs["interpolation"] = transforms.InterpolationMode(kwargs["interpolation"])
    if kind == "ToDtype" or spec.get("backend") == "tensor":
        # v2's: its Resize runs torch's uint8 kernel on a uint8 tensor where v1 converts to float; ToDtype
        # exists only there. torch is loaded: the caller imported torchvision.
        v2 = importlib.import_module(transforms.__name__ + ".v2")
        if kind == "ToDtype":
            kwargs["dtype"] = getattr(sys.modules["torch"], kwargs["dtype"])
        return getattr(v2, kind)(**kwargs)
    if not hasattr(transforms, kind):
        raise ValueError(f"no torchvision transform named {kind!r} for the spec {dict(spec)}")
    return getattr(transforms, kind)(**kwargs)
