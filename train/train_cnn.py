"""Train a small CNN (or, with --mlp, a fully connected network of about the same size) on Fashion-MNIST
or on a folder of your own images.

    python train/train_cnn.py --preset improved --out runs/cnn-improved        # the model export/ ships
    python train/train_cnn.py --preset baseline --out runs/cnn-baseline        # no regularisation: over-fits
    python train/train_cnn.py --preset improved --mlp --out runs/mlp-improved  # ANN with the same recipe
    python train/train_cnn.py --optuna-trials 20 --epochs 8 --out runs/cnn-optuna  # tune; resumes if re-run
    python train/train_cnn.py --limit 2000 --epochs 2 --out /tmp/quick         # smoke run on a subset
    torchrun --nproc_per_node 2 train/train_cnn.py --preset improved --out runs/cnn-ddp
    python train/train_cnn.py --data photos/ --image-size 32 --out runs/photos  # your own images

--data DIR reads a folder in torchvision's ImageFolder layout: DIR/<class>/*.png, split --split 0.8,0.1,0.1
(stratified, seeded), or DIR/train|val|test/<class>/ (see train/folders.py). Unreadable files are skipped
with a warning each and counted in the summary. --image-mode auto trains a grayscale ("L") model when no
image has colour, else RGB; images are resized and centre-cropped to --image-size (default 28).

Every knob of a run is in PRESETS below; the resolved config is saved whole in the checkpoint. The run
writes OUT/model.pt (checkpoint, see train/checkpoint.py), OUT/metrics.json, OUT/learning_curves.png and
OUT/confusion_matrix.png, and prints a summary. Seeded: the same command (and --threads) gives the same model.

Fashion-MNIST validation is the last 5k of the 60k training images; test images are only used at the very
end. The eval preprocessing is declared once (step 3) as a torchvision pipeline; the model's data config
(labels, image mode, input size, that pipeline's edgeinfer spec) goes into the checkpoint, and every accuracy
reported goes through exactly that pipeline. On Fashion-MNIST, training feeds whole uint8 batches through the
same Normalize (bit-identical to ToTensor + Normalize per image) plus augmentation; on a folder, torchvision's
DataLoader applies the same augmentation (flip, padded random crop) image by image.
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
from train import augment, engine, folders, report
from train.data import CLASSES, MEAN, STD, ArrayDataset, add_data_arguments, load_data_set
from train.models import build_model

if TYPE_CHECKING:
    from torchvision.transforms import Compose

Data = dict[str, tuple[np.ndarray, np.ndarray]] | folders.FolderData

# --- defaults: one dict per preset; "improved" is the shipped model (≤ 500k parameters) ---
COMMON = {"num_classes": len(CLASSES), "in_channels": 1, "image_size": 28, "image_mode": "L"}
PRESETS: dict[str, dict[str, Any]] = {
    # The classic layout with nothing against over-fitting: train accuracy runs away from validation.
    "baseline": {
        "arch": "cnn", "channels": [32, 64], "convs_per_block": 1, "hidden": [128],
        "batch_norm": False, "dropout": 0.0,
        "flip": False, "shift": 0,
        "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "label_smoothing": 0.0,
        "epochs": 15, "batch_size": 64, "precision": "fp32",
    },
    # Two convs per block, batch norm, dropout, flip/shift, label smoothing, SGD with a one-cycle LR schedule;
    # bfloat16 autocast in training halves the time on this CPU (evaluation and export stay float32).
    "improved": {
        "arch": "cnn", "channels": [32, 64], "convs_per_block": 2, "hidden": [128],
        "batch_norm": True, "dropout": 0.15,
        "flip": True, "shift": 2,
        "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle", "label_smoothing": 0.1,
        "epochs": 30, "batch_size": 128, "precision": "bf16",
    },
}  # fmt: skip
# --mlp swaps the network for this one (≈ the improved CNN's parameter count) and keeps the recipe.
MLP = {"arch": "mlp", "hidden": [512, 128]}
# Folder data sets have no measured statistics: normalise [0, 1] to [-1, 1] per channel.
FOLDER_MEAN, FOLDER_STD = 0.5, 0.5


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The preset, with --mlp and the command-line overrides applied."""
    config = {**COMMON, **PRESETS[args.preset], "preset": args.preset, "seed": args.seed, "limit": args.limit}
    if args.mlp:
        config = {k: v for k, v in config.items() if k not in ("channels", "convs_per_block")}
        config.update(MLP)
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    return config


def eval_pipeline(
    size: int = 28, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD, arrays: bool = True
) -> Compose:
    """The eval preprocessing, declared once: any image (in the model's mode) → size×size, normalised.

    ``arrays``: the images are uint8 arrays (Fashion-MNIST), so the pipeline starts with ToPILImage; folder
    images arrive as PIL images. Fashion-MNIST images are already 28×28, so Resize/CenterCrop are the
    identity on them; they make the exported model accept other sizes.
    """
    from torchvision import transforms as T

    steps = [T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose([T.ToPILImage(), *steps] if arrays else steps)


def train_pipeline(config: dict[str, Any], eval_compose: Compose) -> Compose:
    """Folder training: the eval pipeline with the preset's flip and shift (a padded random crop) before
    ToTensor, as torchvision transforms applied image by image."""
    from torchvision import transforms as T

    *resize_crop, to_tensor, normalize = eval_compose.transforms
    size = config["image_size"]
    augmentation = [T.RandomHorizontalFlip()] if config["flip"] else []
    if config["shift"]:
        augmentation.append(T.RandomCrop(size, padding=config["shift"]))
    return T.Compose([*resize_crop, *augmentation, to_tensor, normalize])


def training_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: dict[str, Any],
    normalize: nn.Module,
    dist: engine.Dist,
    epoch: int,
    generator: torch.Generator,
) -> Iterator[engine.Batch]:
    """This rank's augmented, normalised batches for one epoch."""
    for idx in engine.index_batches(len(images), config["batch_size"], dist, config["seed"], epoch):
        x = images[idx].unsqueeze(1)
        if config["flip"]:
            x = augment.random_flip(x, generator)
        if config["shift"]:
            x = augment.random_shift(x, config["shift"], generator)
        x = normalize(x.float().div(255))  # == ToTensor then Normalize, image by image
        yield x, labels[idx]


def train(
    config: dict[str, Any],
    data: Data,
    pipeline: Compose,
    dist: engine.Dist,
    trial: Any = None,
    workers: int = 0,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train from scratch as ``config`` says; validate each epoch. Returns the (wrapped) model and history.

    ``data``: Fashion-MNIST ``{split: (images, labels)}`` arrays, or a checked folder data set. With an
    Optuna ``trial``, reports validation accuracy each epoch and raises ``optuna.TrialPruned`` when the
    pruner says so.
    """
    torch.manual_seed(config["seed"])
    model = engine.wrap(build_model(config), dist)
    if isinstance(data, folders.FolderData):
        batches, steps_per_epoch = folders.training_batches(
            data, config["image_mode"], train_pipeline(config, pipeline), config["batch_size"], dist,
            config["seed"], workers,
        )  # fmt: skip
        val = evaluation_set(data, "val", config["image_mode"], pipeline)
    else:
        images, labels = (torch.from_numpy(a) for a in data["train"])
        normalize = next(t for t in pipeline.transforms if type(t).__name__ == "Normalize")
        steps_per_epoch = engine.steps_per_epoch(len(images), config["batch_size"], dist)
        # Each rank augments its shard differently, reproducibly.
        generator = torch.Generator().manual_seed(config["seed"] * 1000 + dist.rank)

        def batches(epoch: int) -> Iterator[engine.Batch]:
            return training_batches(images, labels, config, normalize, dist, epoch, generator)

        val = evaluation_set(data, "val", config["image_mode"], pipeline)
    optimizer, scheduler = _optimizer(model, config, steps_per_epoch)

    def report_to_optuna(epoch: int, record: dict[str, float]) -> None:
        import optuna

        trial.report(record["val_accuracy"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    history = engine.fit(
        model,
        batches,
        steps_per_epoch,
        config["epochs"],
        optimizer,
        scheduler,
        nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"]),
        val,
        dist,
        on_epoch=report_to_optuna if trial is not None else None,
        precision=config["precision"],
        workers=workers,
    )
    return model, history


def evaluation_set(data: Data, split: str, image_mode: str, pipeline: Compose) -> Any:
    """One split as a map-style data set of (eval-pipeline tensor, label) items."""
    if isinstance(data, folders.FolderData):
        return folders.image_folder(data.dataset, split, data.samples[split], image_mode, pipeline)
    return ArrayDataset(*data[split], pipeline)


def _optimizer(
    model: nn.Module, config: dict[str, Any], steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    if config["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config["lr"],
            momentum=0.9,
            nesterov=True,
            weight_decay=config["weight_decay"],
        )
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
        )
    if config["schedule"] == "onecycle":
        total = config["epochs"] * steps_per_epoch
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, config["lr"], total_steps=total)
    return optimizer, None


def tune(
    config: dict[str, Any],
    trials: int,
    data: Data,
    pipeline: Compose,
    dist: engine.Dist,
    out: Path,
    workers: int = 0,
) -> dict[str, Any]:
    """Run an Optuna study (stored in OUT/optuna.db, so a re-run resumes it) and return the best config.

    Searches learning rate, dropout, channels, weight decay and batch size; prunes trials whose validation
    accuracy falls below the median of earlier trials at the same epoch.
    """
    import optuna

    study = optuna.create_study(
        study_name="train_cnn",
        storage=f"sqlite:///{out / 'optuna.db'}",
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config["seed"]),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    lr_range = (1e-2, 0.3) if config["optimizer"] == "sgd" else (1e-4, 1e-2)

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        width = trial.suggest_categorical("channels", [16, 24, 32])
        suggested = {
            "lr": trial.suggest_float("lr", *lr_range, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        }
        if config["arch"] == "cnn":
            suggested["channels"] = [width, 2 * width]
        return {**config, **suggested}

    def objective(trial: optuna.Trial) -> float:
        return train(suggest(trial), data, pipeline, dist, trial, workers)[1][-1]["val_accuracy"]

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = [t for t in study.trials if t.state in finished]
    if len(done) < trials:
        study.optimize(objective, n_trials=trials - len(done))
    best = study.best_trial
    print(f"optuna: best of {len(study.trials)} trials: val accuracy {best.value:.4f} with {best.params}")
    return {
        **suggest(optuna.trial.FixedTrial(best.params)),
        "optuna": {"trials": len(study.trials), "best_value": best.value, "best_params": best.params},
    }


def load_data(
    args: argparse.Namespace, config: dict[str, Any], progress: bool
) -> tuple[Data, Compose, DataConfig]:
    """The data, the eval pipeline and the model's data config; completes ``config`` (classes, channels,
    size, image mode).

    Raises:
        FileNotFoundError: Fashion-MNIST is not installed.
        ValueError: the folder is not a usable data set (``folders.DataSetError``), or options that do not
            apply to the data.
    """
    from edgeinfer.transforms import from_torchvision

    size = args.image_size or config["image_size"]
    if args.data == "fashion-mnist" and size != config["image_size"]:
        raise ValueError(f"--image-size is for folders: Fashion-MNIST trains at {config['image_size']}")
    data, labels, dataset = load_data_set(args, progress)
    if isinstance(data, folders.FolderData):
        mode = "L" if args.image_mode == "L" or (args.image_mode == "auto" and data.grayscale) else "RGB"
        mean, std = (FOLDER_MEAN,) * len(mode), (FOLDER_STD,) * len(mode)
    else:
        mode, mean, std = "L", MEAN, STD
    config.update(num_classes=len(labels), in_channels=len(mode), image_size=size, image_mode=mode)
    # The eval preprocessing, declared once; the checkpoint stores it as an edgeinfer spec in the data config.
    pipeline = eval_pipeline(size, mean, std, arrays=args.data == "fashion-mnist")
    spec = from_torchvision(pipeline).to_spec()
    return data, pipeline, DataConfig(config["arch"], labels, mode, (len(mode), size, size), spec, dataset)


def main(args: argparse.Namespace) -> None:
    wall = time.perf_counter()
    # 1. processes, threads, seed
    try:
        dist = engine.setup_distributed(args.device)
    except ValueError as e:
        raise SystemExit(f"train_cnn.py: error: {e}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.optuna_trials and dist.world_size > 1:
        raise SystemExit("train_cnn.py: error: --optuna-trials runs in a single process, not under torchrun")
    config = resolve_config(args)
    config["world_size"] = dist.world_size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 2. data: Fashion-MNIST (validation: last 5k of the training file) or a checked folder;
    # 3. the eval pipeline and the data config built from it
    try:
        data, pipeline, data_config = load_data(args, config, progress=dist.is_main and sys.stderr.isatty())
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"train_cnn.py: error: {e}") from None

    # 4. optionally tune with Optuna, then 5. train (the best trial's config, retrained from scratch)
    if args.optuna_trials:
        config = tune(config, args.optuna_trials, data, pipeline, dist, out, args.workers)
    train_start = time.perf_counter()
    model, history = train(config, data, pipeline, dist, workers=args.workers)
    train_seconds = time.perf_counter() - train_start

    # 6. final evaluation through the declared pipeline; the test set is used here only
    plain = model.module if dist.world_size > 1 else model
    sets = {split: evaluation_set(data, split, config["image_mode"], pipeline) for split in folders.SPLITS}
    results = {
        split: engine.evaluate(plain, sets[split], dist.device, workers=args.workers) for split in sets
    }
    skipped = {"skipped_files": len(data.skipped)} if isinstance(data, folders.FolderData) else {}
    metrics = report.collect_metrics(
        config,
        plain,
        results,
        history,
        preset=config["preset"],
        train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - wall,
        cpu_seconds=time.process_time(),
        world_size=dist.world_size,
        threads=torch.get_num_threads(),
        epochs=config["epochs"],
        images={split: len(d) for split, d in sets.items()},
        **skipped,
    )

    # 7. rank 0 saves checkpoint, metrics and plots (every rank shows its weights: DDP keeps them identical)
    if dist.world_size > 1:
        print(f"rank {dist.rank}: weights sha256 {engine.state_dict_digest(plain)}", flush=True)
    if dist.is_main:
        report.save_run(
            out,
            plain,
            config,
            data_config,
            metrics,
            results["test"]["labels"],
            results["test"]["predictions"],
        )
    engine.teardown_distributed(dist)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="improved")
    parser.add_argument("--mlp", action="store_true", help="a fully connected network instead of the CNN")
    parser.add_argument(
        "--optuna-trials",
        type=int,
        default=0,
        metavar="N",
        help="tune with N Optuna trials first (study in OUT/optuna.db; a re-run resumes)",
    )
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--batch-size", type=int, help="override the preset's (global) batch size")
    parser.add_argument("--lr", type=float, help="override the preset's (peak) learning rate")
    parser.add_argument(
        "--image-size",
        type=int,
        default=0,
        metavar="PX",
        help="network input size (default 28); images are resized and centre-cropped to it",
    )
    parser.add_argument(
        "--image-mode",
        choices=("auto", "L", "RGB"),
        default="auto",
        help="folder images: L (grayscale), RGB, or auto: L when no image has colour",
    )
    add_data_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/cnn"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: default)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
