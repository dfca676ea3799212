"""Cold start: ``edgeinfer predict IMAGE`` as a whole process vs its torch + torchvision twin.

    python bench/cold_start.py                       # bundled model (or a fixture), 7 runs each
    python bench/cold_start.py --model m.onnx --checkpoint m.pt --image shoe.png --repeats 11

The edgeinfer side runs the ``edgeinfer`` console script (``python -m edgeinfer`` when it is not
installed) on ``--model`` (default: the bundled model). The torch side runs bench/torch_predict.py on
``--checkpoint`` (default: train/'s "improved" CNN with seeded random weights — the same architecture
as the bundled model; without a bundled model the edgeinfer side gets that fixture's FP32 export too).
The two sides alternate, so background load hits both alike. Reported: median wall seconds, peak RSS
(the child's ru_maxrss) and the ratio. Targets (issue 5): ≥ 10× faster, ≤ 0.3 s, ≤ 80 MiB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import (
    ROOT,
    argument_parser,
    bundled_model,
    export_fp32,
    fixture_checkpoint,
    measure_process,
)


def example_image(tmp: Path) -> Path:
    """The first example PNG shipped in examples/, else the first Fashion-MNIST test image."""
    examples = sorted((ROOT / "examples").glob("*.png"))
    if examples:
        return examples[0]
    from PIL import Image

    from train.data import DEFAULT_DATA_DIR, load_fashion_mnist

    images, _ = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    Image.fromarray(images[0]).save(tmp / "test0.png")
    return tmp / "test0.png"


def edgeinfer_command() -> list[str]:
    script = Path(sys.executable).with_name("edgeinfer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "edgeinfer"]


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        # 1. What to run.
        checkpoint = Path(args.checkpoint) if args.checkpoint else fixture_checkpoint(tmp / "fixture.pt")
        model = Path(args.model) if args.model else bundled_model()
        model = model or export_fp32(checkpoint, tmp / "fixture.onnx")
        image = Path(args.image) if args.image else example_image(tmp)
        model_args = [] if model == bundled_model() else ["--model", str(model)]
        sides = {
            "edgeinfer": [*edgeinfer_command(), "predict", str(image), *model_args],
            "torch": [sys.executable, str(ROOT / "bench" / "torch_predict.py"), str(checkpoint), str(image)],
        }
        for name, cmd in sides.items():
            print(f"{name:>9}: {' '.join(cmd)}")

        # 2. One untimed run each (warms the page cache), then alternate.
        for cmd in sides.values():
            measure_process(cmd)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for i in range(args.repeats):
            for name, cmd in sides.items():
                runs[name].append(measure_process(cmd))
            latest = ", ".join(f"{name} {r[-1][0]:.3f} s" for name, r in runs.items())
            print(f"run {i + 1}/{args.repeats}: {latest}")

    # 3. Summary.
    wall = {name: statistics.median(w for w, _ in r) for name, r in runs.items()}
    rss = {name: max(m for _, m in r) for name, r in runs.items()}
    print(f"\n{'':>10}{'median wall s':>15}{'peak RSS MiB':>15}")
    for name in sides:
        print(f"{name:>10}{wall[name]:>15.3f}{rss[name]:>15.1f}")
    ratio = wall["torch"] / wall["edgeinfer"]
    print(f"\ncold start ratio torch/edgeinfer: {ratio:.1f}x  (target >= 10x)")
    print(f"edgeinfer wall {wall['edgeinfer']:.3f} s (target <= 0.3 s)")
    print(f"edgeinfer peak RSS {rss['edgeinfer']:.1f} MiB (target <= 80 MiB)")


if __name__ == "__main__":
    parser = argument_parser(
        __doc__,
        model_help="ONNX model for edgeinfer [default: the bundled model]",
        checkpoint_help="train/ checkpoint for the torch side [default: fixture CNN]",
    )
    parser.add_argument("--image", help="image to classify [default: examples/*.png or a test image]")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per side [default: 7]")
    main(parser.parse_args())
