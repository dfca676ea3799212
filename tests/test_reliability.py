"""Reliability: one Model shared by threads, memory over many predictions, and cheap imports.

That edgeinfer never loads torch is tests/test_no_torch.py's job.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeinfer import Model
from tests.fixtures import gray_model, rgb_model

ROOT = Path(__file__).resolve().parents[1]


def _inputs(n: int, shape: tuple[int, ...]) -> list[object]:
    """Arrays and encoded PNGs, so both the decode path and the array path are exercised."""
    rng = np.random.default_rng(7)
    out: list[object] = []
    for i in range(n):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        if i % 2:
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "PNG")
            out.append(buf.getvalue())
        else:
            out.append(arr)
    return out


# The RGB model's images are 40×52, so its Resize and CenterCrop do real work in every thread.
@pytest.mark.parametrize(("model_path", "shape"), [(gray_model, (28, 28)), (rgb_model, (40, 52, 3))])
def test_eight_threads_sharing_one_model_match_sequential_results(model_path, shape):
    model = Model(model_path(), threads=2)
    images = _inputs(250, shape)
    expected = [model.predict(img, top_k=3) for img in images]
    results: list[list[object]] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            start.wait()
            # Each thread walks the images from a different offset, so threads run different inputs at once.
            order = [(k * 31 + i) % len(images) for i in range(len(images))]
            predictions = {i: model.predict(images[i], top_k=3) for i in order}
            results[k] = [predictions[i] for i in range(len(images))]
        except BaseException as e:  # reported below; a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(8):
        assert results[k] == expected, f"thread {k} differs from the sequential results"


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, check=True
    )


def test_ten_thousand_predictions_do_not_grow_memory():
    """RSS after 10,000 predictions (arrays and PNG bytes) vs after a warm-up, in a fresh process."""
    proc = _child(
        f"""
        import io, numpy as np
        from PIL import Image
        from edgeinfer import Model

        def rss_kib():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

        model = Model({str(gray_model())!r}, threads=1)
        rng = np.random.default_rng(0)
        arrays = list(rng.integers(0, 256, (100, 28, 28), dtype=np.uint8))
        encoded = []
        for a in arrays:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "PNG")
            encoded.append(buf.getvalue())
        images = [x for pair in zip(arrays, encoded) for x in pair]
        for img in images * 5:
            model.predict(img)
        model.predict_batch(images, batch_size=64)
        before = rss_kib()
        for i in range(10_000):
            model.predict(images[i % len(images)])
        for _ in range(20):
            model.predict_batch(images, batch_size=64)
        print(before, rss_kib())
        """
    )
    before, after = map(int, proc.stdout.split())
    assert after - before < 3 * 1024, (
        f"RSS grew by {(after - before) / 1024:.1f} MiB (from {before / 1024:.1f} MiB)"
    )


@pytest.mark.parametrize(
    ("statement", "not_loaded"),
    [
        ("import edgeinfer", ("onnxruntime", "PIL", "click")),
        ("import edgeinfer.cli", ("onnxruntime", "PIL")),
    ],
)
def test_imports_stay_cheap(statement, not_loaded):
    proc = _child(
        f"""
        import sys
        {statement}
        print(" ".join(sorted(n for n in sys.modules if n.split(".")[0] in {not_loaded!r})) or "none")
        """
    )
    assert proc.stdout.strip() == "none"
