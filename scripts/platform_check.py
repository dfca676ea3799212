"""What edgeinfer computes on this platform, as JSON, and how two such reports differ. Torch-free.

    python scripts/platform_check.py report > host.json            # on each platform
    python scripts/platform_check.py compare host.json arm64.json  # differences, one line each
    python scripts/platform_check.py report --model m.onnx --images views/ > host.json  # also these PNGs

A report holds, for inputs that every platform generates identically (NumPy's PCG64 integers):
* ``transforms``: the SHA-256 of edgeinfer's resize output for a grid of modes × filters × geometries, and
  whether it equals the local Pillow's ``Image.resize`` (bit-exactness on this platform);
* ``model``: the model's logits (as float32 hex) and top-1 for the example images and seeded images;
* ``predict``: the text ``edgeinfer predict examples`` prints;
* ``images`` (with ``--images DIR``): the model's logits and top-1 for every PNG in DIR, e.g. held-out photos,
  for top-1 agreement between platforms on real images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from edgeinfer import Model, __version__
from edgeinfer._resample import FILTERS, resize

ROOT = Path(__file__).resolve().parents[1]

MODES = {"L": (), "LA": (2,), "RGB": (3,), "RGBA": (4,)}
GEOMETRIES = [  # (in_h, in_w, out_h, out_w): down, up, tall (vertical pass first on Pillow 13), wide, mixed
    (375, 500, 256, 341),
    (500, 375, 341, 256),
    (28, 28, 224, 224),
    (1000, 100, 640, 64),
    (7, 1000, 3, 2),
    (13, 17, 150, 200),
    (480, 640, 224, 224),
]
SEEDED_IMAGES = 20


def _image(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def transforms_report() -> dict[str, dict[str, object]]:
    cases = {}
    seed = 0
    for mode, channels in MODES.items():
        for name, code in FILTERS.items():
            for in_h, in_w, out_h, out_w in GEOMETRIES:
                seed += 1
                image = _image(seed, (in_h, in_w, *channels))
                ours = resize(image, (out_h, out_w), code)
                pillow = np.asarray(Image.fromarray(image, mode).resize((out_w, out_h), code))
                key = f"{mode} {name} {in_w}x{in_h}->{out_w}x{out_h}"
                cases[key] = {
                    "sha256": hashlib.sha256(ours.tobytes()).hexdigest(),
                    "equals_pillow": bool(np.array_equal(ours, pillow)),
                }
    return cases


def model_report(model: Model) -> dict[str, dict[str, object]]:
    c, h, w = model.metadata.input.shape[1:]
    inputs = {p.name: p for p in sorted((ROOT / "examples").glob("*.png"))}
    for i in range(SEEDED_IMAGES):
        size = (h or 64) + 7 * i, (w or 64) + 5 * (i % 3)
        inputs[f"seeded-{i}"] = _image(10_000 + i, size if model.metadata.image_mode == "L" else (*size, 3))
    return _logits_report(model, inputs)


def _logits_report(model: Model, inputs: dict[str, object]) -> dict[str, dict[str, object]]:
    report = {}
    for name, image in inputs.items():
        logits = model.run(model.preprocess(image)[None])[0].astype(np.float32)
        report[name] = {"logits": [float(v).hex() for v in logits], "top1": int(np.argmax(logits))}
    return report


def predict_text(model: Model) -> list[str]:
    paths = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.png"))
    return [
        f"{path}\t{p.label}\t{p.score:.4f}"
        for path, p in zip(paths, model.predict_batch([ROOT / q for q in paths]), strict=True)
    ]


def report(model_path: str | None, images: str | None = None) -> dict[str, object]:
    import onnxruntime
    import PIL

    model = Model(model_path, threads=1)
    return {
        "platform": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "onnxruntime": onnxruntime.__version__,
            "pillow": PIL.__version__,
            "edgeinfer": __version__,
        },
        "transforms": transforms_report(),
        "model": model_report(model),
        "predict": predict_text(model),
        **({"images": _logits_report(model, {p.name: p for p in sorted(Path(images).glob("*.png"))})}
           if images else {}),
    }  # fmt: skip


def compare(a: dict, b: dict) -> int:
    """Print the differences between two reports; the number of transform differences is the exit code."""
    print(f"A: {a['platform']}\nB: {b['platform']}")
    for name, rep in (("A", a), ("B", b)):
        cases = rep["transforms"].values()
        exact = sum(c["equals_pillow"] for c in cases)
        print(f"{name}: edgeinfer resize equals the local Pillow in {exact} of {len(cases)} cases")
    same = sum(a["transforms"][k]["sha256"] == b["transforms"][k]["sha256"] for k in a["transforms"])
    print(f"transforms: {same} of {len(a['transforms'])} outputs byte-identical between A and B")
    _compare_logits("model", a["model"], b["model"])
    if "images" in a and "images" in b:
        _compare_logits("images", a["images"], b["images"])
    changed = [(x, y) for x, y in zip(a["predict"], b["predict"], strict=True) if x != y]
    print(f"predict examples: {len(a['predict']) - len(changed)} of {len(a['predict'])} lines identical")
    for x, y in changed:
        print(f"  A {x!r}\n  B {y!r}")
    return len(a["transforms"]) - same


def _compare_logits(section: str, a: dict, b: dict) -> None:
    """One line: how many logits differ and by how much at most, and on how many inputs top-1 agrees."""
    logits_total = logits_differ = flips = 0
    max_diff = 0.0
    for key, ra in a.items():
        la = np.array([float.fromhex(v) for v in ra["logits"]])
        lb = np.array([float.fromhex(v) for v in b[key]["logits"]])
        logits_total += la.size
        logits_differ += int(np.sum(la != lb))
        max_diff = max(max_diff, float(np.max(np.abs(la - lb))))
        if ra["top1"] != b[key]["top1"]:
            flips += 1
            print(f"  top-1 differs on {key}: {ra['top1']} vs {b[key]['top1']}")
    print(
        f"{section}: {logits_differ} of {logits_total} logits differ (max |diff| {max_diff:.6g}); "
        f"top-1 agrees on {len(a) - flips} of {len(a)} inputs"
    )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="print this platform's report as JSON")
    rep.add_argument("--model", help="ONNX model [default: the bundled model]")
    rep.add_argument("--images", help="a folder of PNGs to report the model's logits on as well")
    cmp = sub.add_parser("compare", help="compare two reports")
    cmp.add_argument("a")
    cmp.add_argument("b")
    args = parser.parse_args()
    if args.command == "report":
        json.dump(report(args.model, args.images), sys.stdout, indent=1)
        print()
    else:
        reports = [json.loads(Path(p).read_text()) for p in (args.a, args.b)]
        sys.exit(min(compare(*reports), 1))


if __name__ == "__main__":
    main()
