"""The torch + torchvision twin of ``edgeinfer predict IMAGE``: the reference side of bench/cold_start.py.

What a PyTorch user would run: load the train/ checkpoint (``weights_only=True``), rebuild the network,
build the torchvision eval pipeline from the checkpoint's spec, open and convert the image with Pillow,
and print ``file<TAB>label<TAB>score`` like edgeinfer does.

    python bench/torch_predict.py CHECKPOINT IMAGE...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from export.inputs import torchvision_pipeline
from train.models import build_model


def main(checkpoint_path: str, images: list[str]) -> None:
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    network = build_model(ckpt["config"])
    network.load_state_dict(ckpt["state_dict"])
    network.eval()
    spec = ckpt["preprocessing"]
    pipeline = torchvision_pipeline(spec)
    steps = spec["transforms"] if spec["type"] == "Compose" else [spec]
    takes_array = steps[0]["type"] == "ToPILImage"  # torchvision's ToPILImage refuses PIL input
    with torch.inference_mode():
        for path in images:
            with open(path, "rb") as f:
                img = Image.open(f).convert(ckpt["image_mode"])
            x = pipeline(np.asarray(img) if takes_array else img)
            score, index = torch.softmax(network(x[None]), dim=1)[0].max(dim=0)
            print(f"{path}\t{ckpt['labels'][int(index)]}\t{float(score):.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
