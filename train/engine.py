"""The train/eval loop shared by the training scripts, with optional DistributedDataParallel.

Run a script under ``torchrun --nproc_per_node N`` and :func:`setup_distributed` joins the process group
(gloo on CPU, nccl on CUDA); each rank then trains on its shard of every epoch (a ``DistributedSampler``),
gradients are averaged by DDP, and only rank 0 prints and saves.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from train.precision import autocast

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Dist:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    """Pick the device (``"auto"`` prefers CUDA) and join the process group if started by torchrun."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return Dist(rank, world_size, torch.device("cuda", local_rank))
    return Dist(rank, world_size, torch.device("cpu"))


def teardown_distributed(dist: Dist) -> None:
    if dist.world_size > 1:
        torch.distributed.destroy_process_group()


def wrap(model: nn.Module, dist: Dist) -> nn.Module:
    """Move the model to its device (channels-last: 2-4× faster convolutions on CPU) and wrap it in DDP."""
    model = model.to(dist.device, memory_format=torch.channels_last)
    if dist.world_size == 1:
        return model
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def index_batches(n: int, batch_size: int, dist: Dist, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """This rank's shuffled mini-batches of indices into ``range(n)`` for one epoch.

    ``batch_size`` is the global batch: each of the ``world_size`` ranks takes ``batch_size // world_size``.
    """
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    indices = np.fromiter(sampler, dtype=np.int64)
    per_rank = rank_batch_size(batch_size, dist, len(indices))
    # The last, incomplete batch is dropped: a batch of one breaks batch norm.
    for start in range(0, len(indices) - per_rank + 1, per_rank):
        yield indices[start : start + per_rank]


def peek_first_batch(
    batches: Callable[[int], Iterable[Batch]],
) -> tuple[Batch, Callable[[int], Iterable[Batch]]]:
    """The first batch of epoch 0, and ``batches`` that still yields it first: epoch 0 is drawn once, so
    the augmentation's generator is not advanced by looking."""
    first_epoch = iter(batches(0))
    first = next(first_epoch)

    def again(epoch: int) -> Iterable[Batch]:
        return itertools.chain([first], first_epoch) if epoch == 0 else batches(epoch)

    return first, again


def steps_per_epoch(n: int, batch_size: int, dist: Dist) -> int:
    """How many batches :func:`index_batches` yields per epoch on each rank."""
    per_rank_images = -(-n // dist.world_size)  # DistributedSampler pads every rank to the same count
    return max(1, per_rank_images // rank_batch_size(batch_size, dist, per_rank_images))


def rank_batch_size(batch_size: int, dist: Dist, images: int) -> int:
    """This rank's share of the global ``batch_size``: at least 1, at most the rank's ``images``."""
    return min(max(1, batch_size // dist.world_size), images)


def rank_generator(seed: int, dist: Dist) -> torch.Generator:
    """This rank's generator for augmentation: each rank augments its shard differently, reproducibly."""
    return torch.Generator().manual_seed(seed * 1000 + dist.rank)


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: nn.Module,
    dist: Dist,
    description: str,
    total: int | None = None,
    precision: str = "fp32",
) -> tuple[float, float, float]:
    """One pass over ``batches``; returns this rank's mean training loss and accuracy, and the images per
    second of all ranks (batches prepared and trained on: what the data path costs shows here).

    ``precision="bf16"`` runs the forward pass under bfloat16 autocast (faster only on CPUs with native
    bfloat16: ``train.precision`` measures it); weights, optimizer and evaluation stay float32.
    """
    from tqdm import tqdm

    model.train()
    for module in model.modules():
        # A frozen batch norm keeps its (pretrained) statistics.
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    progress = tqdm(
        batches,
        desc=description,
        total=total,
        leave=False,
        disable=not (dist.is_main and sys.stderr.isatty()),
    )
    for x, y in progress:
        x = x.to(dist.device, memory_format=torch.channels_last)
        y = y.to(dist.device)
        with autocast(precision, dist.device):
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        rate = seen * dist.world_size / (time.perf_counter() - start)
        progress.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", img_s=f"{rate:,.0f}")
    return loss_sum / seen, correct / seen, seen * dist.world_size / (time.perf_counter() - start)


def fit(
    model: nn.Module,
    batches: Callable[[int], Iterable[Batch]],
    steps_per_epoch: int,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: nn.Module,
    val: torch.utils.data.Dataset,
    dist: Dist,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    precision: str = "fp32",
    workers: int = 0,
) -> list[dict[str, float]]:
    """Train for ``epochs`` (``batches(epoch)`` yields this rank's batches), validating on ``val`` after each.

    Returns one record per epoch (losses, accuracies, seconds with validation, training images per second);
    ``on_epoch(epoch, record)`` runs after each (e.g. Optuna pruning).
    """
    plain = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        train_loss, train_accuracy, images_per_second = train_epoch(
            model,
            batches(epoch),
            optimizer,
            scheduler,
            loss_fn,
            dist,
            f"epoch {epoch + 1}/{epochs}",
            steps_per_epoch,
            precision,
        )
        _average_buffers(plain, dist)
        result = evaluate(plain, val, dist.device, workers=workers)
        record = {
            "epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_accuracy,
            "val_loss": result["loss"], "val_accuracy": result["accuracy"],
            "seconds": time.perf_counter() - start, "images_per_second": images_per_second,
        }  # fmt: skip
        history.append(record)
        if dist.is_main:
            print(
                f"epoch {epoch + 1:3d}/{epochs}  train loss {train_loss:.4f} acc {train_accuracy:.4f}"
                f"  val loss {result['loss']:.4f} acc {result['accuracy']:.4f}  {record['seconds']:.1f}s"
                f"  ({images_per_second:,.0f} images/s)",
                flush=True,
            )
        if on_epoch is not None:
            on_epoch(epoch, record)
    return history


def _average_buffers(model: nn.Module, dist: Dist) -> None:
    """Average floating-point buffers (batch-norm statistics) over the ranks.

    DDP keeps parameters identical but each rank's last forward pass updates its own running statistics.
    """
    if dist.world_size == 1:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            torch.distributed.all_reduce(buffer)
            buffer /= dist.world_size


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    device: torch.device,
    batch_size: int = 500,
    workers: int = 0,
) -> dict[str, Any]:
    """Loss, accuracy, predictions and labels of ``model`` on ``dataset`` (items: eval tensor, label).

    Batches are collated in order, so the predictions line up with the data set's samples.
    """
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    logits, targets = [], []
    for x, y in loader:
        logits.append(model(x.to(device, memory_format=torch.channels_last)).float().cpu())
        targets.append(y)
    logits, labels = torch.cat(logits), torch.cat(targets)
    predictions = logits.argmax(1)
    return {
        "loss": nn.functional.cross_entropy(logits, labels).item(),
        "accuracy": (predictions == labels).float().mean().item(),
        "predictions": predictions.numpy(),
        "labels": labels.numpy(),
    }


def state_dict_digest(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, to check that replicas hold identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
