"""A folder of real JPEG photos through ``edgeinfer predict DIR`` against the equivalent torch script.

    python bench/folder.py                       # 256 photos, 2 runs per side
    python bench/folder.py --count 128 --runs 1 --dir /tmp/photos

The folder is built once (and reused): the photos that scikit-image and matplotlib ship (astronaut, coffee,
chelsea, rocket, retina, Hubble deep field, motorcycle, Grace Hopper, ... some grayscale), cropped to
varied aspect ratios and resized to sizes from 640×480 up to 4032×3024 phone photos, saved as JPEG
(quality 90) in class subfolders like an ImageFolder.

Both sides run the same network: torchvision's mobilenet_v3_small with seeded random weights, saved as a
train/ checkpoint and exported with export/'s own code; eval transform Resize(256), CenterCrop(224),
ToTensor, Normalize(ImageNet) on RGB. The torch side (bench/torch_folder.py) is what a PyTorch user runs:
``ImageFolder`` (Pillow loader), a ``DataLoader`` with 2 workers, batches of 64, ``inference_mode``. The
edgeinfer side is ``python -m edgeinfer predict DIR --batch-size 64``. Runs alternate between the sides;
wall time is for the whole process (start-up included) and peak memory is the largest sum of the resident
memory of the process and its children (sampled every 10 ms), so DataLoader workers count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
SIZES = [(640, 480), (480, 640), (800, 600), (1024, 768), (1280, 720), (1920, 1080), (1080, 1920),
         (2048, 1536), (3024, 4032), (4032, 3024)]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def shipped_photos() -> list:
    """Real photographs shipped by installed packages, as PIL images."""
    import matplotlib
    import skimage
    from PIL import Image

    data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "retina.jpg", "ihc.png",
             "hubble_deep_field.jpg", "motorcycle_left.png", "motorcycle_right.png", "camera.png", "moon.png",
             "brick.png"]  # fmt: skip
    paths = [data / name for name in names if (data / name).exists()]
    paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    return [Image.open(path).convert("RGB" if i % 5 else "L") for i, path in enumerate(paths)]


def build_folder(folder: Path, count: int) -> None:
    """``count`` JPEGs in ``folder``/class_k/, reused when already there."""
    import numpy as np
    from PIL import Image

    if len(list(folder.glob("*/*.jpg"))) == count:
        return
    photos = shipped_photos()
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = SIZES[i % len(SIZES)]
        # The largest window of the target's aspect ratio at a random place, then resized to the target.
        scale = min(photo.width / w, photo.height / h)
        cw, ch = int(w * scale), int(h * scale)
        left, top = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
        image = photo.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"class_{i % 4}" / f"photo_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)


def build_model(workdir: Path) -> tuple[Path, Path]:
    """mobilenet_v3_small with seeded random weights: (train/ checkpoint, ONNX exported by export/)."""
    import torch
    import torchvision.transforms as T

    from bench.common import export_fp32
    from edgeinfer.transforms import from_torchvision
    from train.checkpoint import save_checkpoint
    from train.config import DataConfig
    from train.models import build_model as build_network

    torch.manual_seed(0)
    config = {"arch": "mobilenet_v3_small", "num_classes": 1000}
    network = build_network(config).eval()
    spec = from_torchvision(
        T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)])
    ).to_spec()
    labels = tuple(f"class_{i:03d}" for i in range(1000))
    checkpoint = workdir / "mobilenet.pt"
    dataset = {"kind": "bench photos"}
    data_config = DataConfig.create("mobilenet_v3_small", labels, "RGB", (3, 224, 224), spec, dataset)
    save_checkpoint(checkpoint, network, config, data_config, {})
    return checkpoint, export_fp32(checkpoint, workdir / "mobilenet.onnx")


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` (stdout discarded): wall seconds and the peak summed RSS (MiB) of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr.read()}")
    return wall, peak / 2**20


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the name
            except (OSError, IndexError, ValueError):
                continue
    tree, total = [pid], 0
    while tree:
        current = tree.pop()
        tree.extend(child for child, parent in parents.items() if parent == current)
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def main(args: argparse.Namespace) -> None:
    folder = Path(args.dir)
    print(f"1. folder: {args.count} JPEG photos in {folder}", flush=True)
    build_folder(folder, args.count)
    sizes = [p.stat().st_size for p in folder.glob("*/*.jpg")]
    print(f"   {len(sizes)} files, {sum(sizes) / 2**20:.1f} MiB, sizes from 640x480 to 4032x3024")
    with tempfile.TemporaryDirectory() as tmp:
        print("2. network: mobilenet_v3_small, random weights, exported by export/", flush=True)
        checkpoint, onnx_path = build_model(Path(tmp))
        sides = {
            "edgeinfer": [sys.executable, "-m", "edgeinfer", "predict", str(folder),
                          "--model", str(onnx_path), "--batch-size", "64"],
            "torch": [sys.executable, str(ROOT / "bench" / "torch_folder.py"), str(checkpoint), str(folder)],
        }  # fmt: skip
        load = os.getloadavg()[0]
        print(f"3. {args.runs} run(s) per side, alternating; load average {load:.1f}", flush=True)
        results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for run in range(args.runs):
            for side, cmd in sides.items():
                results[side].append(measure(cmd))
                wall, peak = results[side][-1]
                print(f"   run {run + 1} {side:<9} {wall:7.2f} s  peak {peak:7.0f} MiB", flush=True)
    wall = {side: statistics.median(w for w, _ in runs) for side, runs in results.items()}
    peak = {side: max(p for _, p in runs) for side, runs in results.items()}
    count = len(sizes)
    for side in sides:
        per_photo = wall[side] / count * 1e3
        print(f"{side:<9} {wall[side]:7.2f} s ({per_photo:6.1f} ms/photo), peak {peak[side]:6.0f} MiB")
    print(
        f"edgeinfer is {wall['torch'] / wall['edgeinfer']:.2f}x faster with "
        f"{peak['edgeinfer'] / peak['torch']:.0%} of the memory (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=256, help="photos in the folder")
    parser.add_argument("--runs", type=int, default=2, help="runs per side")
    parser.add_argument(
        "--dir",
        default=str(Path(tempfile.gettempdir()) / "edgeinfer-bench-photos"),
        help="where the folder is built (reused if it holds --count photos)",
    )
    main(parser.parse_args())
