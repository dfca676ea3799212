"""edgeinfer never imports torch or torchvision, not even while running the transforms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import numpy as np
from PIL import Image
import edgeinfer, edgeinfer.transforms as E, edgeinfer.metadata

spec = {"type": "Compose", "transforms": [
    {"type": "ToPILImage"}, {"type": "Grayscale", "num_output_channels": 3}, {"type": "Resize", "size": 64},
    {"type": "CenterCrop", "size": [56, 56]}, {"type": "Pad", "padding": 2, "padding_mode": "reflect"},
    {"type": "ToTensor"}, {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
]}
out = E.from_spec(spec)(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))
assert out.shape == (3, 60, 60) and out.dtype == np.float32, (out.shape, out.dtype)
img = Image.new("RGBA", (40, 30), (10, 20, 30, 128))
out = E.Compose([E.Resize(16, "bicubic"), E.PILToTensor(), E.ConvertImageDtype("float32")])(img)
assert out.shape == (4, 16, 21), out.shape
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
print(",".join(loaded) or "none")
"""


def test_edgeinfer_and_its_transforms_never_load_torch():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none", f"torch modules were imported: {result.stdout.strip()}"


def test_no_torch_import_statement_under_edgeinfer():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "edgeinfer").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip().startswith(("import torch", "from torch"))
    ]
    assert not offenders, offenders
