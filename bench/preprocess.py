"""Preprocessing speed: edgeinfer.transforms against torchvision (PIL path, v1), measured in one run.

Usage::

    python bench/preprocess.py                 # all three cases, 15 repeats, 1 thread
    python bench/preprocess.py --repeats 31 --threads 2

Cases (each pipeline ends with ToTensor and Normalize(ImageNet)):
  (a) 28×28 grayscale (a Fashion-MNIST image when installed) → Grayscale(3), Resize(256), CenterCrop(224)
  (b) 640×480 RGB → Resize(256), CenterCrop(224)
  (c) 3000×2000 RGB → Resize(256), CenterCrop(224)

Both sides start from an already decoded image: torchvision gets the PIL image, edgeinfer the NumPy array
(and, reported separately, the PIL image). The runs are interleaved and each time is the median of the
repeats. Outputs are checked to be equal before timing. Prints the ratio torchvision_time / edgeinfer_time
(> 1 means edgeinfer is faster) and the share of edgeinfer's time spent in the resampler.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def photo_like(h: int, w: int, seed: int):
    """A smooth-gradient RGB image with edges and noise, like a decoded photo."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h, x / w
    planes = [
        128 + rng.uniform(-100, 100) * x + rng.uniform(-100, 100) * y + 40 * np.sin(7 * x + c)
        for c in range(3)
    ]
    img = (
        np.stack(planes, axis=-1)
        + 50 * ((x + y) > 1)[..., None]
        + rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def grayscale_digit():
    """A Fashion-MNIST test image if the dataset is installed, else a synthetic 28×28 one."""
    import gzip

    import numpy as np

    if FASHION_MNIST.exists():
        with gzip.open(FASHION_MNIST, "rb") as f:
            data = f.read(16 + 28 * 28)
        return np.frombuffer(data[16:], np.uint8).reshape(28, 28).copy(), "Fashion-MNIST test[0]"
    return photo_like(28, 28, seed=0)[:, :, 0].copy(), "synthetic"


def build_cases():
    import torchvision.transforms as T

    digit, source = grayscale_digit()
    gray = [T.Grayscale(3), T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)]
    rgb = [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)]
    return [
        (f"(a) 28x28 L ({source})", digit, T.Compose(gray)),
        ("(b) 640x480 RGB", photo_like(480, 640, seed=1), T.Compose(rgb)),
        ("(c) 3000x2000 RGB", photo_like(2000, 3000, seed=2), T.Compose(rgb)),
    ]


def time_call(fn, arg, budget: float) -> float:
    """Seconds per call, from enough calls to fill ``budget`` seconds."""
    start = time.perf_counter()
    fn(arg)
    once = time.perf_counter() - start
    n = max(1, int(budget / max(once, 1e-7)))
    start = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - start) / n


def resampler_call(pipeline, arr):
    """The single resampler call edgeinfer's plan makes for this input, as a function of the array."""
    from edgeinfer import _resample
    from edgeinfer.transforms import CenterCrop, Resize

    # In these cases the image reaching the resampler is the input array (Grayscale(3) of an L image is
    # planned as one channel).
    resize = next(t for t in pipeline.transforms if isinstance(t, Resize))
    crop = next(t for t in pipeline.transforms if isinstance(t, CenterCrop))
    size = resize.output_size(*arr.shape[:2])
    ch, cw = crop.size
    top, left = int(round((size[0] - ch) / 2.0)), int(round((size[1] - cw) / 2.0))
    return lambda _: _resample.resize(
        arr, size, resize._filter, pass_order=resize.pass_order, region=(top, left, ch, cw)
    )


def run(repeats: int, budget: float) -> None:
    import numpy as np
    import torch
    from PIL import Image

    import edgeinfer.transforms as E

    print(f"threads: torch {torch.get_num_threads()}, repeats {repeats}, ~{budget:.2f} s per timing")
    rows = []
    for name, arr, tv in build_cases():
        ours = E.from_torchvision(tv)
        pil = Image.fromarray(arr)
        expected = tv(pil).numpy()
        for label, out in (("array", ours(arr)), ("PIL", ours(pil))):
            if not np.array_equal(out, expected):
                raise SystemExit(f"{name}: edgeinfer output ({label} input) differs from torchvision's")
        resample = resampler_call(ours, arr)
        times = {"tv": [], "ei": [], "ei_pil": [], "resample": []}
        for _ in range(repeats):  # interleaved, so drifts in machine load hit every side alike
            times["tv"].append(time_call(tv, pil, budget))
            times["ei"].append(time_call(ours, arr, budget))
            times["ei_pil"].append(time_call(ours, pil, budget))
            times["resample"].append(time_call(resample, None, budget))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((name, med))
        print(
            f"{name:<36} torchvision {med['tv'] * 1e3:8.3f} ms | edgeinfer {med['ei'] * 1e3:8.3f} ms "
            f"(from PIL {med['ei_pil'] * 1e3:8.3f} ms) | resampler {med['resample'] * 1e3:8.3f} ms "
            f"= {med['resample'] / med['ei']:.0%} of edgeinfer"
        )
    print("\nratio torchvision_time / edgeinfer_time (>= 1.0: edgeinfer at least as fast), outputs equal:")
    for name, med in rows:
        ratio, ratio_pil = med["tv"] / med["ei"], med["tv"] / med["ei_pil"]
        print(f"  {name:<36} {ratio:6.2f}x   (edgeinfer from the PIL image: {ratio_pil:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=15, help="timings per side and case (median is reported)"
    )
    parser.add_argument("--budget", type=float, default=0.05, help="seconds of calls per timing")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch, BLAS and OpenMP")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy/torch load their thread pools
    import torch

    torch.set_num_threads(args.threads)
    run(args.repeats, args.budget)


if __name__ == "__main__":
    main()
