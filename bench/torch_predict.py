"""The torch + torchvision twin of ``edgeinfer predict IMAGE``: the reference side of bench/cold_start.py.

What a PyTorch user would run: load the train/ checkpoint (``weights_only=True``), rebuild the network,
build the torchvision eval pipeline from the checkpoint's spec, open and convert the image with Pillow,
and print ``file<TAB>label<TAB>score`` like edgeinfer does.

    python bench/torch_predict.py CHECKPOINT IMAGE...
"""

from __future__ import annotations

import sys

import torch
from PIL import Image

from export.checkpoint import build_network, data_config, load_checkpoint
from export.inputs import reference_transform


def main(checkpoint_path: str, images: list[str]) -> None:
    ckpt = load_checkpoint(checkpoint_path)
    network = build_network(ckpt)
    config = data_config(ckpt)
    transform = reference_transform(config.preprocessing)
    with torch.inference_mode():
        for path in images:
            with open(path, "rb") as f:
                img = Image.open(f).convert(config.image_mode)
            x = transform(img)
            score, index = torch.softmax(network(x[None]), dim=1)[0].max(dim=0)
            print(f"{path}\t{config.labels[int(index)]}\t{float(score):.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
