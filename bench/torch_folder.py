"""The torch + torchvision twin of ``edgeinfer predict DIR``: the reference side of bench/folder.py.

What a PyTorch user would run over a folder: load the train/ checkpoint (``weights_only=True``), rebuild
the network, build the torchvision eval pipeline from the checkpoint's spec, read the folder with
``ImageFolder`` (Pillow loader) through a ``DataLoader`` with 2 workers, and print
``file<TAB>label<TAB>score`` per image like edgeinfer does.

    python bench/torch_folder.py CHECKPOINT DIR
"""

from __future__ import annotations

import sys

import torch
from torchvision.datasets import ImageFolder

from export.checkpoint import build_network, data_config, load_checkpoint
from export.inputs import reference_transform


def main(checkpoint_path: str, folder: str) -> None:
    ckpt = load_checkpoint(checkpoint_path)
    config = data_config(ckpt)
    network = build_network(ckpt).eval()
    dataset = ImageFolder(folder, transform=reference_transform(config.preprocessing))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=2)
    paths = iter(path for path, _ in dataset.samples)
    with torch.inference_mode():
        for images, _ in loader:
            scores, indices = torch.softmax(network(images), dim=1).max(dim=1)
            for score, index in zip(scores.tolist(), indices.tolist(), strict=True):
                print(f"{next(paths)}\t{config.labels[index]}\t{score:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
