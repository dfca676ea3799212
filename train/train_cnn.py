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
same Normalize (bit-identical to ToTensor + Normalize per image) plus augmentation. A folder's images are
decoded once more after the check, resized and centre-cropped by the eval pipeline's own steps, and held in
memory (up to --cache-mb): training then flips, shifts and normalises whole uint8 batches as on Fashion-MNIST,
which is torchvision's per-image Resize → CenterCrop → RandomHorizontalFlip → RandomCrop(padding) → ToTensor →
Normalize (the random steps follow the deterministic ones; tests/test_folders.py shows it to the bit).
Beyond --cache-mb, a DataLoader (--workers) decodes the files every epoch through that per-image pipeline.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torchvision import transforms as T

from train import augment, engine, folders, pipelines, recipe
from train.config import DataConfig
from train.data import CLASSES, MEAN, SPLITS, STD, load_data_set
from train.folders import FolderData
from train.models import build_model
from train.precision import PrecisionChoice
from train.recipe import Data

if TYPE_CHECKING:
    import numpy as np
    from torchvision.transforms import Compose

PROG = "train_cnn.py"

# --- defaults: one dict per preset; "improved" is the shipped model (≤ 500k parameters) ---
COMMON = {"num_classes": len(CLASSES), "in_channels": 1, "image_size": 28, "image_mode": "L"}
PRESETS: dict[str, dict[str, Any]] = {
    # The classic layout with nothing against over-fitting: train accuracy runs away from validation.
    "baseline": {
        "arch": "cnn", "channels": [32, 64], "convs_per_block": 1, "hidden": [128],
        "batch_norm": False, "dropout": 0.0,
        "flip": False, "shift": 0,
        "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "label_smoothing": 0.0,
        "epochs": 15, "batch_size": 64, "precision": "auto",
    },
    # Two convs per block, batch norm, dropout, flip/shift, label smoothing, SGD with a one-cycle LR schedule.
    # precision "auto": bfloat16 autocast where it measures faster (train/precision.py); evaluation and
    # export stay float32.
    "improved": {
        "arch": "cnn", "channels": [32, 64], "convs_per_block": 2, "hidden": [128],
        "batch_norm": True, "dropout": 0.15,
        "flip": True, "shift": 2,
        "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle", "label_smoothing": 0.1,
        "epochs": 30, "batch_size": 128, "precision": "auto",
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
    return {**config, **recipe.overrides(args)}


def prepare_batch(
    images: torch.Tensor, config: dict[str, Any], normalize: nn.Module, generator: torch.Generator
) -> torch.Tensor:
    """Training input from images held in memory (Fashion-MNIST, a folder's resized and cropped images): the
    preset's flip and shift on the uint8 batch (N×C×H×W), then the eval pipeline's Normalize on the whole
    batch (bit-identical to ToTensor + Normalize image by image)."""
    if config["flip"]:
        images = augment.random_flip(images, generator)
    if config["shift"]:
        images = augment.random_shift(images, config["shift"], generator)
    return normalize(images.float().div(255))


def train(
    config: dict[str, Any],
    data: Data,
    pipeline: Compose,
    dist: engine.Dist,
    trial: Any = None,
    workers: int = 0,
) -> tuple[nn.Module, list[dict[str, float]], PrecisionChoice]:
    """Train from scratch as ``config`` says; validate each epoch. Returns the (wrapped) model, its history
    and the precision it trained in.

    ``data``: Fashion-MNIST ``{split: (images, labels)}`` arrays, or a checked folder data set (its training
    images held in memory after the pipeline's resize and crop, or else read from their files). With an
    Optuna ``trial``, reports validation accuracy each epoch and raises ``optuna.TrialPruned`` when the
    pruner says so.
    """
    torch.manual_seed(config["seed"])
    model = engine.wrap(build_model(config), dist)
    batches, steps_per_epoch = training_batches(config, data, pipeline, dist, workers)
    val = recipe.evaluation_set(data, "val", config["image_mode"], pipeline)
    optimizer, scheduler = _optimizer(model, config, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    choice, batches = recipe.choose_precision(config["precision"], model, batches, optimizer, loss_fn, dist)

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
        loss_fn,
        val,
        dist,
        on_epoch=report_to_optuna if trial is not None else None,
        precision=choice.precision,
        workers=workers,
    )
    return model, history, choice


def training_batches(
    config: dict[str, Any], data: Data, pipeline: Compose, dist: engine.Dist, workers: int = 0
) -> tuple[Callable[[int], Iterator[engine.Batch]], int]:
    """``(batches(epoch), steps per epoch)``: this rank's augmented training batches, from images in memory
    augmented a whole batch at a time (:func:`prepare_batch`), or else (a folder beyond --cache-mb) from
    the files, through the per-image torchvision pipeline :func:`pipelines.train_pipeline`."""
    arrays = _training_arrays(data, pipeline)
    if arrays is None:
        augmented = pipelines.train_pipeline(pipeline, config["flip"], config["shift"])
        return folders.training_batches(
            data, config["image_mode"], augmented, config["batch_size"], dist, config["seed"], workers
        )
    normalize = pipelines.find(pipeline, T.Normalize)

    def prepare(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return prepare_batch(images, config, normalize, generator)

    return recipe.array_batches(arrays, config["batch_size"], config["seed"], dist, prepare)


def _training_arrays(data: Data, pipeline: Compose) -> tuple[np.ndarray, np.ndarray] | None:
    """The training images in memory, as :func:`prepare_batch` takes them: Fashion-MNIST's, or a folder's
    held through the eval pipeline's steps before ToTensor (its resize and crop); None when not held."""
    if not isinstance(data, FolderData):
        return data["train"]
    held = data.held.get("train")
    if held is None or held.steps != tuple(pipelines.split_at_to_tensor(pipeline)[0]):
        return None
    return held.images, held.labels


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
    size = args.image_size or config["image_size"]
    if args.data == "fashion-mnist" and size != config["image_size"]:
        raise ValueError(f"--image-size is for folders: Fashion-MNIST trains at {config['image_size']}")
    data, labels, dataset = load_data_set(args, progress)
    if isinstance(data, FolderData):
        mode = "L" if args.image_mode == "L" or (args.image_mode == "auto" and data.grayscale) else "RGB"
        mean, std = (FOLDER_MEAN,) * len(mode), (FOLDER_STD,) * len(mode)
    else:
        mode, mean, std = "L", MEAN, STD
    config.update(num_classes=len(labels), in_channels=len(mode), image_size=size, image_mode=mode)
    # The eval preprocessing, declared once; the checkpoint stores it as an edgeinfer spec in the data config.
    pipeline = pipelines.eval_pipeline(size, mean, std, arrays=args.data == "fashion-mnist")
    return data, pipeline, pipelines.data_config(config["arch"], labels, mode, pipeline, dataset)


def main(args: argparse.Namespace) -> None:
    # 1. processes, threads, output folder; the preset with the command line's changes
    run = recipe.start(args, PROG)
    if args.optuna_trials and run.dist.world_size > 1:
        raise SystemExit(f"{PROG}: error: --optuna-trials runs in a single process, not under torchrun")
    config = {**resolve_config(args), "world_size": run.dist.world_size}

    # 2. data: Fashion-MNIST (validation: last 5k of the training file) or a checked folder;
    # 3. the eval pipeline and the data config built from it
    with recipe.exit_on_error(PROG):
        data, pipeline, data_config = load_data(args, config, run.progress)
    # 3a. a folder's images decoded once more through the pipeline's resize and crop, held in memory
    resize_and_crop = pipelines.split_at_to_tensor(pipeline)[0]
    steps = dict.fromkeys(SPLITS, resize_and_crop)
    data = recipe.hold_images(run, data, config["image_mode"], steps, args.cache_mb)

    # 4. optionally tune with Optuna, then 5. train (the best trial's config, retrained from scratch)
    if args.optuna_trials:
        config = tune(config, args.optuna_trials, data, pipeline, run.dist, run.out, run.workers)
    train_start = time.perf_counter()
    model, history, choice = train(config, data, pipeline, run.dist, workers=run.workers)
    train_seconds = time.perf_counter() - train_start
    config = {**config, "precision_choice": choice.to_dict()}

    # 6. final evaluation through the declared pipeline; 7. rank 0 saves checkpoint, metrics and plots
    recipe.evaluate_and_save(
        run, model, config, data_config, data, pipeline, history, train_seconds, preset=config["preset"],
        precision=choice.to_dict(),
    )  # fmt: skip


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
    recipe.add_arguments(parser, out=Path("runs/cnn"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
