"""Does the ONNX file compute what the torch network computes? Checked on real images, at several batch sizes.

torch gets its inputs from torchvision's PIL path (the user's own Compose, or the twin pipeline rebuilt from
the model's spec) and onnxruntime from edgeinfer's one image path; the two tensors must be identical before
the logits are compared.
Batches of 1, 2 and 7 catch graphs that silently froze the batch size seen at export time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeinfer.errors import first_line
from edgeinfer.metadata import ModelMetadata
from edgeinfer.pipeline import preprocess_batch
from export import ExportError
from export.inputs import reference_preprocess, reference_transform

if TYPE_CHECKING:
    import PIL.Image
    import torch

BATCH_SIZES = (1, 2, 7)


@dataclass(frozen=True)
class Verification:
    """onnxruntime vs torch on ``images`` real inputs: the largest logit difference, the top-1 agreement."""

    images: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    top1_agreement: float

    def check(self, *, atol: float, min_agreement: float, what: str) -> None:
        """Raise :class:`ExportError` when the difference or the disagreement exceeds its threshold."""
        if not self.max_abs_diff <= atol:
            raise ExportError(
                f"{what}: onnxruntime and torch logits differ by up to {self.max_abs_diff:.3g} "
                f"(threshold {atol:g}) on {self.images} images"
            )
        if self.top1_agreement < min_agreement:
            raise ExportError(
                f"{what}: onnxruntime and torch agree on the top-1 class of only {self.top1_agreement:.2%} "
                f"of {self.images} images (threshold {min_agreement:.2%})"
            )


def verify(
    network: torch.nn.Module,
    onnx_path: str | Path,
    metadata: ModelMetadata,
    images: Sequence[Any],
    *,
    reference: Callable[[PIL.Image.Image], torch.Tensor] | None = None,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> Verification:
    """Run ``images`` (paths or arrays) through both, in consecutive batches cycling through ``batch_sizes``.

    ``reference`` is torchvision's transform of a PIL image for the torch side: the caller's own pipeline,
    by default the one rebuilt from ``metadata.preprocessing``.

    Raises:
        ExportError: the two preprocessing paths disagree, or onnxruntime fails on a batch or returns the
            wrong shape.
    """
    import onnxruntime as ort
    import torch

    expected_inputs = reference_preprocess(
        images, metadata.image_mode, reference or reference_transform(metadata.preprocessing)
    )
    inputs = preprocess_batch(images, metadata)
    if expected_inputs.shape != inputs.shape or not np.array_equal(expected_inputs, inputs):
        diff = np.abs(expected_inputs - inputs).max() if expected_inputs.shape == inputs.shape else "shape"
        raise ExportError(
            f"edgeinfer's preprocessing differs from torchvision's for the spec {metadata.preprocessing} "
            f"(max difference {diff}): fix edgeinfer.transforms before exporting"
        )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected, actual = [], []
    start = 0
    for size in itertools.cycle(batch_sizes):
        if start >= len(images):
            break
        batch = slice(start, start + size)
        start += size
        with torch.inference_mode():
            expected.append(network(torch.from_numpy(expected_inputs[batch])).numpy())
        try:
            (logits,) = session.run(None, {metadata.input.name: inputs[batch]})
        except Exception as e:  # onnxruntime's pybind errors, e.g. a batch size frozen into the graph
            raise ExportError(
                f"{onnx_path}: onnxruntime fails on a batch of {size}: {first_line(e)}"
            ) from None
        if logits.shape != expected[-1].shape:
            raise ExportError(
                f"{onnx_path}: onnxruntime returned shape {list(logits.shape)} for a batch of "
                f"{len(inputs[batch])}, torch {list(expected[-1].shape)}"
            )
        actual.append(logits)
    torch_logits, onnx_logits = np.concatenate(expected), np.concatenate(actual)
    return Verification(
        images=len(images),
        batch_sizes=tuple(batch_sizes),
        max_abs_diff=float(np.abs(torch_logits - onnx_logits).max()),
        top1_agreement=float(np.mean(torch_logits.argmax(1) == onnx_logits.argmax(1))),
    )
