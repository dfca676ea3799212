"""The steps every training script shares, around the model and the training that are its own.

A script reads as: :func:`start` (processes, threads, output folder) → load the data (``train.data``) →
build the model and its eval pipeline (``train.pipelines``) → :func:`hold_images` (a folder's images decoded
once and kept in memory) → :func:`array_batches` or ``folders.training_batches`` → ``engine.fit`` →
:func:`evaluate_and_save` (final evaluation through the eval pipeline, metrics, checkpoint, plots).
:func:`add_arguments` and :func:`overrides` are the options they all take; :func:`exit_on_error` turns a
user's mistake into one ``script.py: error: ...`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from train import engine, precision, report
from train.data import SPLITS, ArrayDataset, add_data_arguments
from train.folders import DEFAULT_CACHE_MB, FolderData, held_dataset, hold_decoded, image_folder

if TYPE_CHECKING:
    from torchvision.transforms import Compose

    from train.config import DataConfig

Data = dict[str, tuple[np.ndarray, np.ndarray]] | FolderData
# Hyperparameters any script lets the command line override (None: keep the script's value).
OVERRIDABLE = ("epochs", "batch_size", "lr", "precision")


@dataclass(frozen=True)
class Run:
    """A started run: its output folder, processes, DataLoader workers and start time."""

    out: Path
    dist: engine.Dist
    workers: int
    started: float

    @property
    def progress(self) -> bool:
        """Whether to show progress bars: on rank 0, on a terminal."""
        return self.dist.is_main and sys.stderr.isatty()


@contextlib.contextmanager
def exit_on_error(prog: str, *errors: type[Exception]) -> Iterator[None]:
    """Exit with status 1 and the one line ``prog: error: message`` when the block raises one of
    ``errors`` (default: FileNotFoundError and ValueError, how train/ reports bad input)."""
    caught = errors or (FileNotFoundError, ValueError)
    try:
        yield
    except caught as e:
        raise SystemExit(f"{prog}: error: {e}") from None


def start(args: argparse.Namespace, prog: str) -> Run:
    """Step 1: join the processes (torchrun) on the device, set the threads, create the output folder."""
    started = time.perf_counter()
    with exit_on_error(prog, ValueError):
        dist = engine.setup_distributed(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return Run(out, dist, args.workers, started)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The hyperparameters of :data:`OVERRIDABLE` given on the command line."""
    return {key: getattr(args, key) for key in OVERRIDABLE if getattr(args, key) is not None}


def hold_images(
    run: Run, data: Data, image_mode: str, steps: Mapping[str, Sequence[Any]], cache_mb: float
) -> Data:
    """Once the eval pipeline is built: a folder's splits decoded once more, through ``steps[split]``, and
    held in memory within ``cache_mb`` (``folders.hold_decoded``; rank 0 prints what is held); Fashion-MNIST
    arrays as they are."""
    if not isinstance(data, FolderData):
        return data
    data, summary = hold_decoded(data, image_mode, steps, cache_mb, run.progress)
    if run.dist.is_main:
        print(summary, flush=True)
    return data


def array_batches(
    train: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    seed: int,
    dist: engine.Dist,
    prepare: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
) -> tuple[Callable[[int], Iterator[engine.Batch]], int]:
    """``(batches(epoch), steps per epoch)`` for images held in memory (uint8 N×H×W, or N×H×W×C as a
    folder's colour images are held) with their labels.

    Each batch is this rank's shuffled share of the global ``batch_size``; ``prepare(images, generator)``
    turns its uint8 N×C×H×W images into the network's input (augmentation, normalisation) with this rank's
    generator.
    """
    images, labels = (torch.from_numpy(a) for a in train)
    generator = engine.rank_generator(seed, dist)

    def batches(epoch: int) -> Iterator[engine.Batch]:
        for idx in engine.index_batches(len(images), batch_size, dist, seed, epoch):
            batch = images[idx]
            batch = batch.unsqueeze(1) if batch.ndim == 3 else batch.permute(0, 3, 1, 2)
            yield prepare(batch, generator), labels[idx]

    return batches, engine.steps_per_epoch(len(images), batch_size, dist)


def choose_precision(
    requested: str,
    model: nn.Module,
    batches: Callable[[int], Iterable[engine.Batch]],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    dist: engine.Dist,
) -> tuple[precision.PrecisionChoice, Callable[[int], Iterable[engine.Batch]]]:
    """Step 5a: the precision to train in, and ``batches`` to train on (unchanged, or for "auto" still
    yielding the first batch that rank 0 timed both precisions on; every rank gets rank 0's choice)."""
    plain = model.module if dist.world_size > 1 else model
    if requested == "auto":
        first, batches = engine.peek_first_batch(batches)

    def measure() -> dict[str, float]:
        return precision.time_training_steps(plain, optimizer, first, loss_fn, dist.device)

    choice = precision.choose_precision(requested, measure) if dist.is_main else None
    if dist.world_size > 1:
        shared = [choice]
        torch.distributed.broadcast_object_list(shared, src=0)
        choice = shared[0]
    if dist.is_main:
        print(f"precision: {choice.precision} ({choice.reason})", flush=True)
    return choice, batches


def evaluation_set(data: Data, split: str, image_mode: str, pipeline: Compose) -> torch.utils.data.Dataset:
    """One split as a map-style data set of (eval-pipeline tensor, label) items; a folder's split from its
    images held in memory when they are (``folders.hold_decoded``), else from its files."""
    if isinstance(data, FolderData):
        held = held_dataset(data, split, pipeline)
        if held is not None:
            return held
        return image_folder(data.dataset, split, data.samples[split], image_mode, pipeline)
    return ArrayDataset(*data[split], pipeline)


def evaluate_and_save(
    run: Run,
    model: nn.Module,
    config: dict[str, Any],
    data_config: DataConfig,
    data: Data,
    pipeline: Compose,
    history: list[dict[str, float]],
    train_seconds: float,
    batch_size: int = 500,
    **metrics: Any,
) -> None:
    """Steps 6 and 7: evaluate every split through the eval ``pipeline`` (the test set is used here only);
    rank 0 saves the checkpoint, metrics (``metrics`` first, then the run's) and plots.

    Under torchrun every rank prints its weights' digest: DDP keeps them identical.
    """
    dist = run.dist
    plain = model.module if dist.world_size > 1 else model
    sets = {split: evaluation_set(data, split, data_config.image_mode, pipeline) for split in SPLITS}
    results = {
        split: engine.evaluate(plain, sets[split], dist.device, batch_size, run.workers) for split in sets
    }
    skipped = {"skipped_files": len(data.skipped)} if isinstance(data, FolderData) else {}
    metrics = report.collect_metrics(
        config, plain, results, history, **metrics, train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - run.started, cpu_seconds=time.process_time(),
        world_size=dist.world_size, threads=torch.get_num_threads(), epochs=config["epochs"],
        images={split: len(d) for split, d in sets.items()}, **skipped,
    )  # fmt: skip
    if dist.world_size > 1:
        print(f"rank {dist.rank}: weights sha256 {engine.state_dict_digest(plain)}", flush=True)
    if dist.is_main:
        report.save_run(run.out, plain, config, data_config, metrics, results["test"]["labels"],
                        results["test"]["predictions"])  # fmt: skip
    engine.teardown_distributed(dist)


def add_arguments(parser: argparse.ArgumentParser, out: Path) -> None:
    """The options every script takes after its own: the data options, --cache-mb, --out (default ``out``),
    --seed, --device, --threads, --precision."""
    add_data_arguments(parser)
    parser.add_argument(
        "--cache-mb",
        type=float,
        default=DEFAULT_CACHE_MB,
        metavar="MB",
        help=f"folder images: memory for holding them decoded (default {DEFAULT_CACHE_MB}): each split whose "
        "decoded images fit, train first, is read from memory (train_cnn augments it in whole batches); the "
        "others are decoded from their files every time they are read (with --workers)",
    )
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: default)")
    parser.add_argument(
        "--precision",
        choices=precision.PRECISIONS,
        help="training precision (default: auto): auto times a few steps of fp32 and of bfloat16 autocast on "
        f"the first batch and keeps bf16 only when it is at least {precision.BF16_MIN_SPEEDUP}x faster "
        "(it is ~15x slower on CPUs without native bfloat16); the choice and timings are printed and saved",
    )
