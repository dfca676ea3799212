"""Transfer learning on Fashion-MNIST from a torchvision classification backbone (VGG16 by default).

    python train/transfer.py --weights imagenet --limit 5000 --out runs/vgg16           # needs the internet
    python train/transfer.py --arch resnet18 --weights resnet18.pt --unfreeze 2 --out runs/resnet18
    python train/transfer.py --arch mobilenet_v3_small --weights none --limit 256 --epochs 1 --out /tmp/t

The backbone's classifier (its last linear layer) is replaced by a new 10-class head; everything else is
frozen except the last K feature blocks with --unfreeze K (a block: a VGG conv/linear layer, a ResNet
residual block, a MobileNet inverted-residual block; see train.models.feature_blocks). Frozen batch norms
keep their statistics.

--weights imagenet uses torchvision's weights API (downloads unless already in the torch hub cache);
--weights PATH loads a state_dict of the torchvision model (its original head included) with
weights_only=True; --weights none starts from random weights (tests).

The 28×28 grayscale images go through the eval pipeline declared once in eval_pipeline() (→ 3×224×224,
ImageNet normalisation); its edgeinfer spec is saved with the checkpoint (same format as train_cnn.py).
VGG16 at 224×224 costs ~15 GFLOPs per image: on a CPU use --limit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from train import augment, engine, report
from train.data import CLASSES, DEFAULT_DATA_DIR, load_splits
from train.models import count_parameters, freeze, replace_head

if TYPE_CHECKING:
    from torchvision.transforms import Compose

# --- defaults ---
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SHAPE = (3, 224, 224)
DEFAULTS = {"arch": "vgg16", "epochs": 3, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "flip": True}


def eval_pipeline() -> Compose:
    """The eval preprocessing, declared once: 28×28 grayscale → 3×224×224, ImageNet-normalised."""
    from torchvision import transforms as T

    return T.Compose([
        T.ToPILImage(), T.Grayscale(3), T.Resize(256), T.CenterCrop(224), T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


def load_backbone(arch: str, weights: str) -> nn.Module:
    """The torchvision model ``arch`` with its original head, initialised from ``weights``.

    Raises:
        ValueError: unknown ``arch``, or weights that cannot be downloaded, read or loaded into ``arch``.
    """
    import torchvision

    if arch not in torchvision.models.list_models(torchvision.models):
        raise ValueError(f"unknown --arch {arch!r}: not a torchvision classification model")
    if weights == "none":
        return torchvision.models.get_model(arch, weights=None)
    if weights == "imagenet":
        default = torchvision.models.get_model_weights(arch).DEFAULT
        try:
            return torchvision.models.get_model(arch, weights=default, progress=False)
        except OSError as e:  # urllib's URLError and socket errors derive from OSError
            reason = getattr(e, "reason", e)
            raise ValueError(
                f"cannot download {default} ({reason}): without internet, pass --weights PATH or none"
            ) from None
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"--weights must be 'imagenet', 'none' or a file; {path} does not exist")
    model = torchvision.models.get_model(arch, weights=None)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict)
    except Exception as e:  # torch raises bare RuntimeError/UnpicklingError for foreign or mismatched files
        message = str(e).strip().splitlines()[0]
        raise ValueError(f"{path} is not a state_dict of torchvision's {arch}: {message}") from None
    return model


def training_batches(
    images: np.ndarray, labels: np.ndarray, config: dict[str, Any], pipeline: Compose, dist: engine.Dist,
    epoch: int, generator: torch.Generator,
) -> Iterator[engine.Batch]:
    """This rank's batches for one epoch: optional random flip, then the eval pipeline image by image."""
    for idx in engine.index_batches(len(images), config["batch_size"], dist, config["seed"], epoch):
        x = torch.from_numpy(images[idx]).unsqueeze(1)
        if config["flip"]:
            x = augment.random_flip(x, generator)
        yield torch.stack([pipeline(image) for image in x[:, 0].numpy()]), torch.from_numpy(labels[idx])


def main(args: argparse.Namespace) -> None:
    wall = time.perf_counter()
    # 1. processes, threads, seed, config
    try:
        dist = engine.setup_distributed(args.device)
    except ValueError as e:
        raise SystemExit(f"transfer.py: error: {e}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {
        **DEFAULTS, "arch": args.arch, "num_classes": len(CLASSES), "weights": args.weights,
        "unfreeze": args.unfreeze, "seed": args.seed, "limit": args.limit, "world_size": dist.world_size,
    }  # fmt: skip
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 2. data
    try:
        data = load_splits(args.data_dir, args.limit)
    except FileNotFoundError as e:
        raise SystemExit(f"transfer.py: error: {e}") from None

    # 3. eval preprocessing, declared once; the checkpoint stores it as an edgeinfer spec
    from edgeinfer.transforms import from_torchvision

    pipeline = eval_pipeline()
    preprocessing = from_torchvision(pipeline).to_spec()

    # 4. backbone with pretrained weights, new head, frozen features
    torch.manual_seed(config["seed"])
    try:
        model = replace_head(load_backbone(config["arch"], config["weights"]), config["num_classes"])
        freeze(model, config["unfreeze"])
    except ValueError as e:
        raise SystemExit(f"transfer.py: error: {e}") from None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if dist.is_main:
        print(f"{config['arch']}: {count_parameters(model):,} parameters, {trainable:,} trainable")
    model = engine.wrap(model, dist)

    # 5. train the head (and the unfrozen blocks)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config["lr"],
                                  weight_decay=config["weight_decay"])
    generator = torch.Generator().manual_seed(config["seed"] * 1000 + dist.rank)
    steps_per_epoch = engine.steps_per_epoch(len(data["train"][0]), config["batch_size"], dist)

    def batches(epoch: int) -> Iterator[engine.Batch]:
        return training_batches(*data["train"], config, pipeline, dist, epoch, generator)

    train_start = time.perf_counter()
    history = engine.fit(model, batches, steps_per_epoch, config["epochs"], optimizer, None,
                         nn.CrossEntropyLoss(), data["val"], pipeline, dist)
    train_seconds = time.perf_counter() - train_start

    # 6. final evaluation through the declared pipeline; the test set is used here only
    plain = model.module if dist.world_size > 1 else model
    results = {split: engine.evaluate(plain, *data[split], pipeline, dist.device, config["batch_size"])
               for split in data}
    metrics = report.collect_metrics(
        config, plain, results, history, trainable_parameters=trainable, train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall, cpu_seconds=time.process_time(),
        world_size=dist.world_size, threads=torch.get_num_threads(),
        epochs=config["epochs"], images={split: len(x) for split, (x, _) in data.items()},
    )

    # 7. rank 0 saves checkpoint, metrics and plots
    if dist.is_main:
        report.save_run(out, plain, config, preprocessing, INPUT_SHAPE, metrics, data["test"][1],
                        results["test"]["predictions"])
    engine.teardown_distributed(dist)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default=DEFAULTS["arch"], help="torchvision model: vgg16, resnet18, ...")
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to a state_dict")
    parser.add_argument("--unfreeze", type=int, default=0, metavar="K", help="also train the last K blocks")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="at most N images per split")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: default)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
