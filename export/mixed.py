"""``auto``'s "int8-mixed" candidate: the int8 model with the activations that break agreement kept in float.

Built only when the plain int8 candidate misses an agreement bar. The sensitivity loop
(export/sensitivity.py) runs on calibration images — never on the selection images the candidates are judged
on — with the bars measured on those same images as its target (FP32's own agreement under ±1 pixel level of
noise there, overall and on the images where FP32 is confident: image sets differ in how fragile FP32 is on
them). Its ranking pass runs one model per tensor measured (66 for EfficientNet-Lite0), so it is bounded:
only the first :data:`RANKED` quantized activations in graph order are measured (upstream first: an error
made there passes through every layer after it), and at most :data:`MAX_KEPT` tensors are kept in float.
Measured on EfficientNet-Lite0 (ImageNet head, 32 photo views): of all 66, only the first two (the padded
image and the stem's ReLU6) gain more than 0.1 dB of logit SQNR when kept in float (+6.3 and +7.5 dB); a
tensor's own local Q/DQ SQNR does not predict the gain (Spearman 0.05; those two rank 30th and 65th of 66 by
it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgeinfer.metadata import ModelMetadata

# Calibration images the loop measures on, evenly spaced. On 32, one image is 3 points of agreement: on
# EfficientNet-Lite1 the loop then kept 6 tensors in float (1.23x FP32's speed) where 2 meet the bar on the
# held-out views (1.5x); on 96 it keeps those 2 (export/README.md).
SENSITIVITY_IMAGES = 96
RANKED = 16  # tensors kept in float alone and measured: the first in graph order
MAX_KEPT = 8


def sensitivity_images(calibration: Sequence[Any]) -> Sequence[Any]:
    """At most :data:`SENSITIVITY_IMAGES` of the calibration images, evenly spaced."""
    step = max(1, len(calibration) // SENSITIVITY_IMAGES)
    return calibration[::step][:SENSITIVITY_IMAGES]


def build_mixed(
    fp32_path: Path,
    int8_path: Path,
    int8_metadata: ModelMetadata,
    images: Sequence[Any],
    out_path: Path,
    progress: Callable[[str], None] = print,
) -> tuple[ModelMetadata | None, dict[str, Any]]:
    """Run the bounded sensitivity loop on ``images``, to the agreement bars measured on them, and write the
    int8 model with the chosen tensors in float to ``out_path``. Returns its metadata (None when no tensor is
    kept: nothing to build) and the record of what was measured: each kept tensor with the logit SQNR it
    gives alone in float and its gain over all-INT8; whether the target was met on ``images``."""
    import onnx

    from edgeinfer.pipeline import preprocess_batch
    from export import conversion, report, sensitivity
    from export.selection import agreement_bar

    started = time.perf_counter()
    target = agreement_bar(report.noise_floor(fp32_path, images))
    inputs = preprocess_batch(images, int8_metadata)
    quantized = sensitivity.quantized_activations(onnx.load(str(int8_path), load_external_data=False))
    ranked = list(quantized)[:RANKED]  # the graph's nodes are in topological order
    int8_db = sensitivity.logit_sqnr(fp32_path, int8_path, inputs)
    progress(f"      sensitivity on {len(inputs)} calibration images: all-INT8 logit SQNR {int8_db:.1f} dB; "
             f"measuring the first {len(ranked)} of {len(quantized)} quantized activations in graph order, "
             f"target agreement {target}")  # fmt: skip
    model, loop, alone = sensitivity.choose_float_tensors(
        fp32_path, int8_path, inputs, target, output=int8_metadata.output, max_kept=MAX_KEPT, tensors=ranked,
        progress=progress,
    )  # fmt: skip
    agreement_after = dict(loop.history)
    record = {
        "images": len(inputs),
        "images_from": "calibration",
        "target_agreement": target._asdict(),
        "target_from": "FP32's own agreement under ±1 pixel level of noise on these images (agreement_bar)",
        "met": loop.met,
        "agreement": loop.agreement._asdict(),
        "int8_agreement": agreement_after[()]._asdict(),
        "int8_logit_sqnr_db": round(int8_db, 2),
        "ranked": f"the first {len(ranked)} of {len(quantized)} quantized activations in graph order",
        "max_kept": MAX_KEPT,
        "kept_in_float": [
            {
                "tensor": tensor,
                "logit_sqnr_alone_db": round(alone[tensor], 2),
                "gain_db": round(alone[tensor] - int8_db, 2),
            }
            for tensor in loop.nodes
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not loop.nodes:
        return None, record
    kept = [entry["tensor"] for entry in record["kept_in_float"]]
    quantization = {**int8_metadata.provenance["quantization"], "kept_in_float": kept}
    metadata = dataclasses.replace(
        int8_metadata, provenance={**int8_metadata.provenance, "quantization": quantization}
    )
    conversion.write_metadata(model, metadata)
    conversion.save_model(model, out_path)
    return metadata, record
