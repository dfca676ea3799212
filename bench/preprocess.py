"""Preprocessing speed: edgeinfer.transforms against torchvision (PIL path, v1) over a grid of geometries.

Usage::

    python bench/preprocess.py                  # the whole grid, 1 thread
    python bench/preprocess.py --threads 2      # edgeinfer allowed 2 threads (torch: --torch-threads)
    python bench/preprocess.py --quick          # a few cases, for a smoke test

Both sides start from the decoded PIL image (what ``Model.predict(path)`` holds after Pillow decodes), so
the PIL→array handoff counts. The grid: squash ``Resize((224, 224))``; shorter-side ``Resize(256)`` with
no crop; ``Resize(256) + CenterCrop(224)`` (ImageNet) and ``Resize(342) + CenterCrop(299)`` (Inception);
inputs from 28×28 to 12-megapixel phone photos, landscape and portrait, very wide and very tall; modes L,
RGB and RGBA; every interpolation. Every pipeline ends with ToTensor (+ Normalize for 1 or 3 channels).

Outputs are checked equal before timing. Single calls of the two sides alternate, so that drifts in the
machine's load hit both; each time is the median of at least ``--repeats`` calls and ``--budget``
seconds. Prints each ratio torchvision_time / edgeinfer_time (> 1: edgeinfer faster), the worst and the
geometric mean.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
PIPELINES = ("squash 224", "short 256", "imagenet 256/224", "inception 342/299")
SIZES = [(28, 28), (640, 480), (480, 640), (1000, 300), (300, 1000), (1920, 1080), (4032, 3024), (3024, 4032)]
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


def photo_like(h: int, w: int, seed: int, channels: int = 3):
    """A smooth-gradient image with edges and noise, like a decoded photo (alpha: a gradient with holes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:h, 0:w]
    y, x = (y / h).astype(np.float32), (x / w).astype(np.float32)
    planes = [
        128
        + rng.uniform(-100, 100) * x
        + rng.uniform(-100, 100) * y
        + 40 * np.sin(7 * x + c)
        + 50 * ((x + y) > 1)
        for c in range(channels)
    ]
    img = np.stack(np.broadcast_arrays(*planes), axis=-1) + rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    if channels == 4:
        img[..., 3] = 255 * x * (y > 0.2)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def pipeline(name: str, interpolation: str, channels: int):
    import torchvision.transforms as T

    mode = T.InterpolationMode(interpolation)
    steps = {
        "squash 224": [T.Resize((224, 224), mode)],
        "short 256": [T.Resize(256, mode)],
        "imagenet 256/224": [T.Resize(256, mode), T.CenterCrop(224)],
        "inception 342/299": [T.Resize(342, mode), T.CenterCrop(299)],
    }[name] + [T.ToTensor()]
    if channels in (1, 3):
        steps.append(T.Normalize(*IMAGENET) if channels == 3 else T.Normalize([0.5], [0.25]))
    return T.Compose(steps)


def build_cases(quick: bool) -> list[tuple[str, tuple[int, int], int, str, str]]:
    """(label, (w, h), channels, pipeline, interpolation) for every case of the grid."""
    cases = [(size, 3, name, "bilinear") for size in SIZES for name in PIPELINES]
    for size in ((640, 480), (4032, 3024)):
        cases += [(size, channels, "imagenet 256/224", "bilinear") for channels in (1, 4)]
        cases += [(size, 3, "imagenet 256/224", i) for i in INTERPOLATIONS if i != "bilinear"]
    cases += [((1000, 300), 3, "short 256", "nearest"), ((300, 1000), 3, "squash 224", "bicubic")]
    if quick:
        cases = [c for c in cases if c[0] in ((28, 28), (640, 480))][:6]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}
    return [(f"{w}x{h} {mode[c]} {p} {i}", (w, h), c, p, i) for (w, h), c, p, i in cases]


def time_pair(fns, arg, budget: float, least: int) -> tuple[float, ...]:
    """Median seconds per call of each function: single calls, alternated (a b b a a b ...) so that a change
    in the machine's load hits both sides alike, until each side has run ``budget`` seconds in total and
    at least ``least`` times."""
    times: list[list[float]] = [[] for _ in fns]
    spent = [0.0 for _ in fns]
    order = list(range(len(fns)))
    while min(spent) < budget or min(len(t) for t in times) < least:
        for side in order:
            start = time.perf_counter()
            fns[side](arg)
            times[side].append(time.perf_counter() - start)
            spent[side] += times[side][-1]
        order.reverse()
    return tuple(statistics.median(t) for t in times)


def run(threads: int, repeats: int, budget: float, quick: bool) -> None:
    import numpy as np
    import torch
    from PIL import Image

    import edgeinfer.transforms as E

    print(
        f"threads: torch {torch.get_num_threads()}, edgeinfer {threads}; at least {repeats} calls and "
        f"{budget:.2f} s per side and case; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    ratios = []
    for label, (w, h), channels, name, interpolation in build_cases(quick):
        pil = Image.fromarray(photo_like(h, w, seed=w * h, channels=channels))
        tv = pipeline(name, interpolation, channels)
        ours = E.from_torchvision(tv)

        def edgeinfer(img, ours=ours):
            with E.parallel(threads):
                return ours(img)

        if not np.array_equal(edgeinfer(pil), tv(pil).numpy()):
            raise SystemExit(f"{label}: edgeinfer's output differs from torchvision's")
        tv_time, ei_time = time_pair((tv, edgeinfer), pil, budget, repeats)
        ratios.append(tv_time / ei_time)
        print(
            f"  {label:<44} torchvision {tv_time * 1e3:8.3f} ms  edgeinfer {ei_time * 1e3:8.3f} ms  "
            f"ratio {ratios[-1]:5.2f}x",
            flush=True,
        )
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(
        f"{len(ratios)} cases, outputs equal; ratio torchvision/edgeinfer at {threads} thread(s): "
        f"worst {min(ratios):.2f}x, geometric mean {geomean:.2f}x; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="threads edgeinfer may use")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch's intra-op threads; torchvision's PIL path is single-threaded, and on a shared machine "
        "a 2-thread pool only slows its ToTensor/Normalize (tens of ms per call when the cores are busy)",
    )
    parser.add_argument("--repeats", type=int, default=15, help="least calls per side and case (median kept)")
    parser.add_argument("--budget", type=float, default=1.0, help="least seconds of calls per side and case")
    parser.add_argument("--quick", action="store_true", help="a few small cases only")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # BLAS stays on the calling thread; edgeinfer splits its own work
    import torch

    torch.set_num_threads(args.torch_threads)
    run(args.threads, args.repeats, args.budget, args.quick)


if __name__ == "__main__":
    main()
