"""edgeinfer: torch-free inference for small vision models exported to ONNX.

``import edgeinfer`` is cheap: the transforms are plain NumPy, and onnxruntime is only
imported when a :class:`Model` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edgeinfer.model import Model, Prediction

__all__ = ["Model", "Prediction", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import edgeinfer.transforms` never pays for onnxruntime.
    if name in ("Model", "Prediction"):
        from edgeinfer import model

        return getattr(model, name)
    raise AttributeError(f"module 'edgeinfer' has no attribute {name!r}")
