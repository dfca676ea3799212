"""Inference: onnxruntime FP32 (through edgeinfer.Model.run) vs torch eager, on the same CNN and inputs.

    python bench/inference.py                          # fixture CNN, 1 thread
    python bench/inference.py --checkpoint m.pt --model default.onnx --threads 2

The torch network comes from ``--checkpoint`` (train/ format; default: train/'s "improved" CNN with
seeded random weights) and is exported to FP32 ONNX with export/'s code, so both sides run the same
weights; their outputs are compared before timing. ``--model`` (default: the bundled model, when built)
adds a row for that ONNX file as shipped (e.g. INT8). Both libraries get the same thread count. Inputs
are Fashion-MNIST test images through the model's preprocessing. Each figure is the median of per-call
times, the sides interleaved in blocks so background load hits both alike. Target (issue 5): ≥ 2× at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.common import argument_parser, bundled_model, export_fp32, fixture_checkpoint
from edgeinfer import Model
from edgeinfer.onnxinfo import summarize
from export.checkpoint import build_network, load_checkpoint
from train.data import DEFAULT_DATA_DIR, load_fashion_mnist

BATCHES = (1, 64)
CALLS = {1: 400, 64: 40}  # timed calls per side and batch size, split over BLOCKS
BLOCKS = 8


def median_ms(fns: dict[str, Callable[[], object]], calls: int) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(max(3, calls // 20)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(BLOCKS):
        for name, fn in fns.items():
            for _ in range(calls // BLOCKS):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        checkpoint = Path(args.checkpoint) if args.checkpoint else fixture_checkpoint(tmp / "fixture.pt")
        network = build_network(load_checkpoint(checkpoint))
        fp32 = Model(export_fp32(checkpoint, tmp / "fp32.onnx"), threads=args.threads)
    shipped_path = Path(args.model) if args.model else bundled_model()
    shipped = Model(shipped_path, threads=args.threads) if shipped_path else None
    print(f"network: {checkpoint if args.checkpoint else 'fixture (improved CNN, random weights)'}")
    params = sum(p.numel() for p in network.parameters())
    print(f"threads: {args.threads} (torch {torch.__version__}, {params:,} parameters)")

    images, _ = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    inputs = np.stack([fp32.preprocess(img) for img in images[: max(BATCHES)]])
    with torch.inference_mode():
        diff = np.abs(network(torch.from_numpy(inputs)).numpy() - fp32.run(inputs)).max()
    print(f"max |logit difference| torch vs onnxruntime FP32: {diff:.2e}\n")

    print(
        f"{'batch':>6}{'torch ms':>11}{'ort FP32 ms':>13}{'speed-up':>10}"
        + (f"{'shipped ms':>12}" if shipped else "")
    )
    for batch in BATCHES:
        x = np.ascontiguousarray(inputs[:batch])
        xt = torch.from_numpy(x)
        fns: dict[str, Callable[[], object]] = {
            "torch": lambda xt=xt: network(xt),
            "ort": lambda x=x: fp32.run(x),
        }
        if shipped:
            fns["shipped"] = lambda x=x: shipped.run(x)
        with torch.inference_mode():
            ms = median_ms(fns, CALLS[batch])
        row = f"{batch:>6}{ms['torch']:>11.3f}{ms['ort']:>13.3f}{ms['torch'] / ms['ort']:>9.1f}x"
        print(row + (f"{ms['shipped']:>12.3f}" if shipped else ""))
    if shipped:
        print(f"\nshipped: {shipped_path} (quantization: {summarize(shipped_path).quantization})")


if __name__ == "__main__":
    parser = argument_parser(
        __doc__,
        model_help="also time this ONNX file as shipped [default: the bundled model]",
        checkpoint_help="train/ checkpoint [default: fixture improved CNN]",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads for both libraries [default: 1]")
    main(parser.parse_args())
