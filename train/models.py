"""Model builders. A checkpoint's ``config`` is all :func:`build_model` needs to rebuild its network.

Architectures: ``"cnn"`` (conv blocks → pool → conv blocks → pool → fully connected, the classic layout),
``"mlp"`` (fully connected, for the CNN-vs-ANN comparison), any torchvision classification model by name
(``"vgg16"``, ``"resnet18"``, ``"mobilenet_v3_small"``, ...) and any network a user brings as
``"package.module:factory"`` (a callable returning an ``nn.Module``, e.g.
``"timm.models.efficientnet:tf_efficientnet_lite0"``); backbones get their last linear layer replaced by an
N-class head.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from edgeinfer.errors import describe


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build the untrained network described by ``config`` (keys as in a checkpoint's ``config``).

    Raises:
        ValueError: ``config["arch"]`` is neither ``"cnn"``, ``"mlp"``, a torchvision model name nor a
            ``module:factory`` that returns an ``nn.Module``.
    """
    arch = config["arch"]
    if arch == "cnn":
        return _cnn(config)
    if arch == "mlp":
        return _mlp(config)
    return replace_head(backbone(arch), config["num_classes"])


def backbone(arch: str) -> nn.Module:
    """A randomly initialised torchvision model by name, or what ``package.module:factory`` returns.

    Raises:
        ValueError: unknown torchvision name, a module or factory that cannot be found, or a factory that
            fails or does not return an ``nn.Module`` (one line, naming ``arch``).
    """
    if ":" not in arch:
        import torchvision

        if arch not in torchvision.models.list_models(torchvision.models):
            raise ValueError(
                f"unknown arch {arch!r}: expected 'cnn', 'mlp', a torchvision classifier's name or "
                "package.module:factory"
            )
        return torchvision.models.get_model(arch, weights=None)
    module_name, _, factory_name = arch.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except ImportError as e:
        raise ValueError(f"arch {arch!r}: cannot import {module_name} ({e})") from None
    except AttributeError:
        raise ValueError(f"arch {arch!r}: module {module_name} has no {factory_name!r}") from None
    if not callable(factory):
        raise ValueError(f"arch {arch!r}: {factory_name} is a {type(factory).__name__}, not a callable")
    try:
        model = factory()
    except Exception as e:  # a user's factory can raise anything; report it on one line
        raise ValueError(f"arch {arch!r}: {factory_name}() failed: {describe(e)}") from None
    if not isinstance(model, nn.Module):
        kind = type(model).__name__
        raise ValueError(f"arch {arch!r}: {factory_name}() must return an nn.Module, got {kind}")
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the model's last ``nn.Linear`` (its classifier) by a fresh ``num_classes``-way one."""
    name, head = _head(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    setattr(parent, attr, nn.Linear(head.in_features, num_classes))
    return model


def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """The trainable units before the head, in forward order.

    A block is a parameterised child of the model or of one of its ``nn.Sequential`` containers: a conv or
    linear layer of VGG, a residual block of ResNet, an inverted-residual block of MobileNet.
    """
    head = _head(model)[1]
    blocks = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if child is head:
                continue
            if type(child) is nn.Sequential:  # subclasses such as Conv2dNormActivation are blocks
                visit(child)
            elif any(True for _ in child.parameters()):
                blocks.append(child)

    visit(model)
    return blocks


def freeze(model: nn.Module, unfreeze: int = 0) -> None:
    """Freeze everything but the head and the last ``unfreeze`` feature blocks."""
    blocks = feature_blocks(model)
    if not 0 <= unfreeze <= len(blocks):
        raise ValueError(f"unfreeze must be between 0 and {len(blocks)} for this model, got {unfreeze}")
    model.requires_grad_(False)
    _head(model)[1].requires_grad_(True)
    for block in blocks[len(blocks) - unfreeze :]:
        block.requires_grad_(True)


def _head(model: nn.Module) -> tuple[str, nn.Linear]:
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier head to replace")
    return linears[-1]


def _cnn(config: dict[str, Any]) -> nn.Sequential:
    """conv block → max-pool → conv block → max-pool → FC → FC; a block is ``convs_per_block`` 3×3 convs."""
    batch_norm = config.get("batch_norm", False)
    dropout = config.get("dropout", 0.0)
    layers: list[nn.Module] = []
    in_channels = config.get("in_channels", 1)
    for channels in config["channels"]:
        for _ in range(config.get("convs_per_block", 1)):
            layers.append(nn.Conv2d(in_channels, channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
        layers.append(nn.MaxPool2d(2))
    side = config["image_size"] // 2 ** len(config["channels"])
    layers += [nn.Flatten(), *_dense(in_channels * side * side, config["hidden"], batch_norm, dropout)]
    layers.append(nn.Linear(config["hidden"][-1], config["num_classes"]))
    return nn.Sequential(*layers)


def _mlp(config: dict[str, Any]) -> nn.Sequential:
    """Flatten → hidden fully connected layers → N-class output."""
    in_features = config.get("in_channels", 1) * config["image_size"] ** 2
    layers = [
        nn.Flatten(),
        *_dense(in_features, config["hidden"], config.get("batch_norm", False), config.get("dropout", 0.0)),
    ]
    layers.append(nn.Linear(config["hidden"][-1], config["num_classes"]))
    return nn.Sequential(*layers)


def _dense(in_features: int, hidden: list[int], batch_norm: bool, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in hidden:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_features, width, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU(inplace=True))
        in_features = width
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers
