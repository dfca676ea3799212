"""edgeinfer never imports torch or torchvision: not at import, in the transforms, the Model or the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from tests.fixtures import gray_model

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "torchvision", "onnx", "onnxscript")
# Prints the forbidden modules the child process has loaded, or "none".
REPORT = f'print(" ".join(sorted(n for n in sys.modules if n.split(".")[0] in {FORBIDDEN!r})) or "none")'

TRANSFORMS = """
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
import edgeinfer.transforms.functional as F, edgeinfer.transforms.interop, edgeinfer.transforms.planner
tensor = F.normalize(F.to_tensor(F.center_crop(F.resize(img, 20), 18)), [0.5], [0.2])
assert F.to_pil_image(F.convert_image_dtype(tensor, "uint8")).shape == (18, 18, 4)
assert E.from_spec(E.Compose([E.Pad(2), E.Grayscale(3)]).to_spec())(img).shape == (34, 44, 3)
"""


def _forbidden_loaded_by(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + "\n" + REPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_edgeinfer_and_its_transforms_never_load_torch():
    assert _forbidden_loaded_by(TRANSFORMS) == "none"


def test_the_model_never_loads_torch():
    code = f"""
    import sys
    import numpy as np
    import edgeinfer
    m = edgeinfer.Model({str(gray_model())!r})
    m.predict(np.zeros((28, 28), np.uint8))
    m.predict_batch([np.zeros((28, 28), np.uint8)] * 3)
    """
    assert _forbidden_loaded_by(code) == "none"


def _imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output (lines "import time: self | cumulative | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_edgeinfer_predict_never_imports_torch(tmp_path):
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgeinfer", "predict", image, "--model", gray_model()],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{image}\t")
    modules = _imported_modules(proc.stderr)
    assert {"onnxruntime", "PIL.Image", "edgeinfer.transforms"} <= modules  # the check sees real imports
    assert not {m for m in modules if m.split(".")[0] in FORBIDDEN}


def _is_torch(name: object) -> bool:
    return isinstance(name, str) and name.startswith("torch")


def _torch_imports(tree: ast.AST) -> list[int]:
    """Lines that import torch/torchvision: import statements, importlib.import_module or __import__."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hit = any(_is_torch(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            hit = node.level == 0 and _is_torch(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = ast.unparse(node.func).rsplit(".", 1)[-1]
            hit = name in ("import_module", "__import__") and _is_torch(node.args[0].value)
        else:
            hit = False
        if hit:
            lines.append(node.lineno)
    return lines


def test_no_torch_import_under_edgeinfer():
    offenders = []
    for path in sorted((ROOT / "edgeinfer").rglob("*.py")):
        source = path.read_text()
        lines = _torch_imports(ast.parse(source, filename=str(path)))
        # The promise is also that a grep finds nothing: a line starting so is refused even in a docstring.
        lines += [
            n
            for n, line in enumerate(source.splitlines(), 1)
            if line.strip().startswith(("import torch", "from torch"))
        ]
        offenders += [f"{path.relative_to(ROOT)}:{n}" for n in sorted(set(lines))]
    assert not offenders, offenders


def test_the_static_check_finds_each_kind_of_torch_import():
    sources = [
        "import torch",
        "import os, torchvision.transforms as T",
        "from torch import nn",
        "from torchvision.transforms import functional",
        "def f():\n    import torch.nn",
        "import importlib\nimportlib.import_module('torch')",
        "from importlib import import_module\nimport_module('torchvision.io')",
        "__import__('torch.onnx')",
    ]
    for source in sources:
        assert _torch_imports(ast.parse(source)), source
    for source in (
        "from . import torchlike",
        "importlib.import_module(name)",
        "__import__('numpy')",
        "x = 'torch'",
    ):
        assert not _torch_imports(ast.parse(source)), source
