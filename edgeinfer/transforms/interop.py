"""torchvision objects ⇄ edgeinfer transforms.

:func:`from_torchvision` reads a torchvision v1 or v2 transform by its attributes, without importing
torch. :func:`to_torchvision` rebuilds torchvision's classic transform from an edgeinfer spec: the
oracle that export's verification and the tests compare edgeinfer with. It is given the
``torchvision.transforms`` module by its caller, so that no code under ``edgeinfer/`` imports torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from edgeinfer._resample.filters import installed_pass_order
from edgeinfer.transforms import transforms as classes
from edgeinfer.transforms.spec import CLASSES

__all__ = ["from_torchvision", "to_torchvision"]

_SUPPORTED = ", ".join(sorted(CLASSES))


def from_torchvision(obj: Any) -> classes.Transform:
    """The edgeinfer equivalent of a torchvision v1 or v2 transform or Compose, read from its attributes.

    Resize records the installed Pillow's pass order ("pillow13" for Pillow >= 13, else "pillow12"),
    since that is what the torchvision pipeline computes on this machine.

    Raises:
        ValueError: for a transform edgeinfer does not support (named in the message).
        TypeError: for an object that is not a torchvision transform.
    """
    cls = type(obj)
    name = cls.__name__
    if not cls.__module__.startswith("torchvision.transforms"):
        raise TypeError(f"expected a torchvision transform, got {name} from module {cls.__module__!r}")
    if name == "Compose":
        return classes.Compose([from_torchvision(t) for t in obj.transforms])
    if name == "Resize":
        return classes.Resize(
            obj.size, obj.interpolation, obj.max_size, obj.antialias, pass_order=installed_pass_order()
        )
    if name == "CenterCrop":
        return classes.CenterCrop(obj.size)
    if name == "Pad":
        if isinstance(obj.fill, Mapping):
            raise ValueError(
                f"Pad with a per-type fill dict ({obj.fill!r}) is not supported; use one fill value"
            )
        return classes.Pad(obj.padding, obj.fill, obj.padding_mode)
    if name == "Grayscale":
        return classes.Grayscale(obj.num_output_channels)
    if name == "ToTensor":
        return classes.ToTensor()
    if name in ("PILToTensor", "ToImage"):
        # v2's ToImage on a PIL image is pil_to_tensor: the same values.
        return classes.PILToTensor()
    if name == "ConvertImageDtype":
        if cls.__module__.startswith("torchvision.transforms.v2") and obj.dtype.is_floating_point:
            # v2's to_dtype scales integers by x * (1 / max), v1 by x / max: 1 ulp apart for about half
            # of the uint8 values.
            raise ValueError(
                f"torchvision.transforms.v2.ConvertImageDtype({obj.dtype}) is not supported: v2 multiplies "
                "by 1/max where v1 divides by max, the floats differ; use v1's ConvertImageDtype or ToTensor"
            )
        return classes.ConvertImageDtype(str(obj.dtype))
    if name == "Normalize":
        return classes.Normalize(list(obj.mean), list(obj.std), obj.inplace)
    if name == "ToPILImage":
        return classes.ToPILImage(obj.mode)
    raise ValueError(
        f"{name} is not supported (edgeinfer supports only deterministic transforms: {_SUPPORTED})"
    )


def to_torchvision(
    spec: classes.Transform | Mapping[str, Any], transforms: ModuleType
) -> Callable[[Any], Any]:
    """torchvision's classic (v1) transform for an edgeinfer transform or spec: the same names and
    arguments. ``transforms`` is the ``torchvision.transforms`` module, imported by the caller (train/,
    export/, tests): edgeinfer itself never imports torchvision.

    Raises:
        ValueError: a spec type torchvision has no transform for.
    """
    if isinstance(spec, classes.Transform):
        spec = spec.to_spec()
    kind = spec["type"]
    if kind == "Compose":
        return transforms.Compose([to_torchvision(step, transforms) for step in spec["transforms"]])
    # pass_order records which Pillow the spec reproduces; torchvision always uses the installed one.
    kwargs = {k: v for k, v in spec.items() if k not in ("type", "pass_order")}
    if "interpolation" in kwargs:
        kwargs["interpolation"] = transforms.InterpolationMode(kwargs["interpolation"])
    if not hasattr(transforms, kind):
        raise ValueError(f"no torchvision transform named {kind!r} for the spec {dict(spec)}")
    return getattr(transforms, kind)(**kwargs)
