"""The image model's cost: in-graph preprocessing against edgeinfer's NumPy preprocessing, and its memory.

Usage::

    python bench/image_model.py              # speed (1 thread) and peak memory
    python bench/image_model.py --repeats 5  # fewer calls per case

Speed: ``Resize(256) + CenterCrop(224) + ToTensor + Normalize`` (ImageNet) of a decoded RGB photo-like
image, 640×480 and 4032×3024, by the preprocessing graph alone (onnxruntime, 1 intra-op thread, the
graph export/image_model.py puts in front of the network) and by edgeinfer's transforms (1 thread), both
from the same uint8 array; the outputs are checked equal first. Calls of the two sides alternate, so
drifts in the machine's load hit both; each time is the median.

Memory: the peak resident memory of a fresh process while it runs the graph once on a 12 MP image, minus
the process before the run (the session loaded, the input array allocated; Linux's VmHWM, reset through
/proc/self/clear_refs before the run): what the graph itself needs,
also per input pixel, for the RGB pipeline above and for the bundled default image model (L, 28×28) fed
an RGBA image as a browser canvas gives it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

IMAGENET = {"type": "Compose", "transforms": [
    {"type": "Resize", "size": 256}, {"type": "CenterCrop", "size": 224}, {"type": "ToTensor"},
    {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
]}  # fmt: skip
SIZES = ((480, 640), (3024, 4032))
MEMORY_SIZE = (3024, 4032)


def session(model, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def speed(repeats: int) -> list[dict]:
    """Median milliseconds of the graph and of NumPy, per input size."""
    import numpy as np

    from bench.preprocess import photo_like
    from edgeinfer._resample import parallel
    from edgeinfer.transforms import from_spec
    from export.image_model import preprocessing_model

    graph, numpy_transform = session(preprocessing_model(IMAGENET, "RGB")), from_spec(IMAGENET)
    rows = []
    for h, w in SIZES:
        image = photo_like(h, w, seed=0)
        with parallel(1):
            expected = numpy_transform(image)
            if not np.array_equal(graph.run(None, {"image": image})[0][0], expected):
                raise SystemExit(f"{w}x{h}: the graph's tensor differs from NumPy's")
            graph_s, numpy_s = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                graph.run(None, {"image": image})
                graph_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                numpy_transform(image)
                numpy_s.append(time.perf_counter() - start)
        g, n = statistics.median(graph_s) * 1e3, statistics.median(numpy_s) * 1e3
        rows.append({"size": f"{w}x{h}", "graph_ms": g, "numpy_ms": n, "ratio": g / n})
    return rows


def peak_memory(which: str) -> dict:
    """Run in a fresh process (``--memory-child``): the graph's peak memory on a 12 MP image."""
    import numpy as np

    from bench.preprocess import photo_like

    h, w = MEMORY_SIZE
    if which == "rgb":
        from export.image_model import preprocessing_model

        graph = session(preprocessing_model(IMAGENET, "RGB"))
        image = photo_like(h, w, seed=0)
    else:
        from edgeinfer.model import DEFAULT_MODEL

        graph = session(str(DEFAULT_MODEL.with_name("default.image.onnx")))
        image = np.dstack([photo_like(h, w, seed=0), np.full((h, w), 255, np.uint8)])
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM, the peak, to the current RSS (Linux)
        f.write("5")
    graph.run(None, {"image": image})
    extra = max(_status_kb("VmHWM") - before, 0) * 1024
    return {"model": which, "input": f"{w}x{h}x{image.shape[2]}", "input_bytes": image.nbytes,
            "graph_peak_bytes": extra, "bytes_per_pixel": extra / (h * w)}  # fmt: skip


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15, help="calls per side and size (median)")
    parser.add_argument("--memory-child", choices=["rgb", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(peak_memory(args.memory_child)))
        return 0
    print("speed, 1 thread: Resize(256) + CenterCrop(224) + ToTensor + Normalize of an RGB image")
    for row in speed(args.repeats):
        print(f"  {row['size']:>10}  graph {row['graph_ms']:8.1f} ms  numpy {row['numpy_ms']:8.1f} ms  "
              f"graph/numpy {row['ratio']:.2f}")  # fmt: skip
    print(f"peak memory of the graph on a {MEMORY_SIZE[1]}x{MEMORY_SIZE[0]} image (beyond the input array)")
    for which in ("rgb", "default"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.image_model", "--memory-child", which],
            capture_output=True, text=True, check=True, env=os.environ,
        )  # fmt: skip
        m = json.loads(out.stdout)
        peak, per_pixel, given = m["graph_peak_bytes"] / 2**20, m["bytes_per_pixel"], m["input_bytes"] / 2**20
        print(f"  {m['model']:>8} {m['input']:>14}: {peak:6.1f} MiB ({per_pixel:.1f} bytes per input pixel; "
              f"input {given:.1f} MiB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
