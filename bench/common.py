"""Shared by the runtime benchmarks: the models under test, their torch twin, and child-process measurement.

Speed does not depend on the weights, so until a trained checkpoint and the bundled model exist the
benchmarks use the shipped architecture (train/'s "improved" CNN) with seeded random weights, saved in
train/'s checkpoint format and exported with export/'s own code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def argument_parser(doc: str, model_help: str, checkpoint_help: str | None = None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as help, ``--model`` and (with a help) ``--checkpoint``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=model_help)
    if checkpoint_help:
        parser.add_argument("--checkpoint", help=checkpoint_help)
    return parser


def bundled_model() -> Path | None:
    from edgeinfer.model import DEFAULT_MODEL

    return DEFAULT_MODEL if DEFAULT_MODEL.exists() else None


def fixture_checkpoint(path: Path) -> Path:
    """train/'s "improved" CNN with seeded random weights, as a train/ checkpoint at ``path``."""
    import torch

    from edgeinfer.transforms import from_torchvision
    from train.checkpoint import save_checkpoint
    from train.config import DataConfig
    from train.data import CLASSES
    from train.models import build_model
    from train.pipelines import eval_pipeline
    from train.train_cnn import COMMON, PRESETS

    torch.manual_seed(0)
    config = {**COMMON, **PRESETS["improved"]}
    network = build_model(config).eval()
    spec = from_torchvision(eval_pipeline()).to_spec()
    data_config = DataConfig.create("cnn", CLASSES, "L", (1, 28, 28), spec, {"kind": "fashion-mnist"})
    save_checkpoint(path, network, config, data_config, {"test_accuracy": None})
    return path


def export_fp32(checkpoint_path: Path, out: Path) -> Path:
    """The checkpoint's network as an FP32 ONNX file with full metadata, through export/'s code path."""
    from export.checkpoint import build_metadata, build_network, file_sha256, load_checkpoint
    from export.conversion import DEFAULT_OPSET, export_onnx

    ckpt = load_checkpoint(checkpoint_path)
    network = build_network(ckpt)
    export_onnx(network, out, build_metadata(ckpt, network, file_sha256(checkpoint_path), DEFAULT_OPSET))
    return out


# Spawned from a small helper interpreter: a child inherits its parent's resident pages until it execs and
# ru_maxrss keeps that high-water mark, so spawning from this process (torch loaded) would report torch's RSS.
_TIMER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def measure_process(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` (its first item an absolute path) to completion: (wall seconds, peak RSS in MiB)."""
    proc = subprocess.run([sys.executable, "-c", _TIMER, *cmd], capture_output=True, text=True, cwd=ROOT)
    wall, max_rss_kib, code = proc.stdout.split()
    if proc.returncode or int(code):
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {code}):\n{proc.stderr}")
    return float(wall), int(max_rss_kib) / 1024  # ru_maxrss is in KiB on Linux
