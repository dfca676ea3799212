"""torchvision's deterministic preprocessing transforms in NumPy, bit-exact with torchvision's PIL path.

Laid out like ``torchvision.transforms``:

* :mod:`~edgeinfer.transforms.functional`: the math. Stateless functions named like torchvision's
  (``resize``, ``center_crop``, ``pad``, ``rgb_to_grayscale``, ``to_tensor``, ``normalize``, ...) that
  check their arguments and compute; Pillow's resampling itself is ``edgeinfer._resample``.
* :mod:`~edgeinfer.transforms.transforms`: the classes (Resize, CenterCrop, ..., Compose), which keep
  their arguments as public attributes and call the functional layer.
* :mod:`~edgeinfer.transforms.planner`: how a Compose runs: Resize followed by CenterCrop resizes only
  the cropped window, Grayscale(3) keeps one plane until it must become three, ToTensor followed by
  Normalize is one float32 array. The results equal running the transforms one by one, bit for bit.
* :mod:`~edgeinfer.transforms.spec`: transforms as JSON-able specs (a model's metadata) and back.
* :mod:`~edgeinfer.transforms.interop`: from torchvision objects and timm's evaluation transforms (read
  by attribute, torch and timm never imported) and back to torchvision (the oracle; the caller passes
  torchvision's module, and timm's for ResizeKeepRatio and CenterCropOrPad).

Images are PIL images or NumPy arrays whose dtype and shape imply the PIL mode (uint8 ``H×W`` = L,
``H×W×2`` = LA, ``H×W×3`` = RGB, ``H×W×4`` = RGBA; int32 ``H×W`` = I, float32 ``H×W`` = F, uint16
``H×W`` = I;16). Tensors are ``C×H×W`` arrays.
"""

from edgeinfer._resample import parallel
from edgeinfer.transforms import functional, planner
from edgeinfer.transforms._checks import MAX_OUTPUT_PIXELS
from edgeinfer.transforms.interop import from_torchvision, to_torchvision
from edgeinfer.transforms.spec import MAX_SPEC_DEPTH, from_spec, to_spec
from edgeinfer.transforms.transforms import (
    CenterCrop,
    CenterCropOrPad,
    Compose,
    ConvertImageDtype,
    Grayscale,
    Normalize,
    Pad,
    PILToTensor,
    Resize,
    ResizeKeepRatio,
    ToDtype,
    ToPILImage,
    ToTensor,
    Transform,
)

# Compose plans its pipeline with the planner, which imports the classes to recognise them: handed over here
# so that the classes need not import it.
Compose.planner = planner.plan

__all__ = [
    "CenterCrop",
    "CenterCropOrPad",
    "Compose",
    "ConvertImageDtype",
    "Grayscale",
    "Normalize",
    "PILToTensor",
    "Pad",
    "Resize",
    "ResizeKeepRatio",
    "ToDtype",
    "ToPILImage",
    "ToTensor",
    "Transform",
    "MAX_OUTPUT_PIXELS",
    "MAX_SPEC_DEPTH",
    "from_spec",
    "from_torchvision",
    "functional",
    "parallel",
    "to_spec",
    "to_torchvision",
]
