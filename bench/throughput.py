"""End-to-end throughput of ``Model.predict_batch`` on the 10,000 Fashion-MNIST test images (as arrays).

    python bench/throughput.py                     # bundled model (or the fixture CNN), onnxruntime's threads
    python bench/throughput.py --model m.onnx --threads 2 --batch-size 128 --repeats 5

Decoding is skipped (the images are uint8 arrays already); everything else a user pays is in: the mode
check, the model's preprocessing, batching, onnxruntime, softmax and the Prediction objects. Also
shown, to locate the time: preprocessing alone and inference alone on the same images. Reports the
best and median of ``--repeats`` passes and the accuracy against the test labels (meaningless for the
random-weight fixture). Target (issue 5): ≥ 5,000 images/s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import argument_parser, bundled_model, export_fp32, fixture_checkpoint
from edgeinfer import Model
from train.data import DEFAULT_DATA_DIR, load_fashion_mnist


def images_per_second(fn, count: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return rates


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        path = Path(args.model) if args.model else bundled_model()
        if path is None:
            print("no bundled model yet: using train/'s improved CNN with random weights, FP32")
            path = export_fp32(fixture_checkpoint(tmp / "fixture.pt"), tmp / "fixture.onnx")
        model = Model(path, threads=args.threads)
        images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
        arrays = list(images)
        print(f"model: {args.model or 'bundled/fixture'}, {path.stat().st_size / 1024:.0f} KiB")
        threads = args.threads or "onnxruntime default"
        print(f"threads: {threads}, batch size {args.batch_size}, {len(arrays)} images")

        model.predict_batch(arrays[: args.batch_size * 4], batch_size=args.batch_size)  # warm-up
        results: list = []

        def end_to_end() -> None:
            results[:] = model.predict_batch(arrays, batch_size=args.batch_size)

        tensors = np.stack([model.preprocess(a) for a in arrays])
        batches = [tensors[i : i + args.batch_size] for i in range(0, len(tensors), args.batch_size)]
        rows = {
            "predict_batch (end to end)": images_per_second(end_to_end, len(arrays), args.repeats),
            "preprocessing only": images_per_second(
                lambda: [model.preprocess(a) for a in arrays], len(arrays), args.repeats
            ),
            "inference only (Model.run)": images_per_second(
                lambda: [model.run(b) for b in batches], len(arrays), args.repeats
            ),
        }
    accuracy = np.mean([p.index for p in results] == labels)
    print(f"\n{'':<28}{'best img/s':>12}{'median img/s':>14}")
    for name, rates in rows.items():
        print(f"{name:<28}{max(rates):>12,.0f}{statistics.median(rates):>14,.0f}")
    print(f"\naccuracy on the 10k test images: {accuracy:.2%}")
    median = statistics.median(rows["predict_batch (end to end)"])
    print(f"end-to-end median {median:,.0f} images/s (target >= 5,000)")


if __name__ == "__main__":
    parser = argument_parser(__doc__, model_help="ONNX model [default: the bundled model]")
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads [default: one per core]"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="[default: 64]")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the 10k images [default: 3]")
    main(parser.parse_args())
