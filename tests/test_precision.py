"""train/precision.py: the training precision chosen by timing real steps of the real network."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="train/ needs the [train] extra (torch)")

from torch import nn  # noqa: E402

from train import engine, precision, recipe  # noqa: E402
from train.data import DEFAULT_DATA_DIR, load_fashion_mnist  # noqa: E402
from train.models import build_model  # noqa: E402
from train.train_cnn import parse_args, resolve_config  # noqa: E402

CPU = engine.Dist(rank=0, world_size=1, device=torch.device("cpu"))


def _fashion_batch(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not (DEFAULT_DATA_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {DEFAULT_DATA_DIR}")
    images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "train")
    x = torch.from_numpy(images[:count]).unsqueeze(1).float().div(255).sub(0.2860).div(0.3530)
    return x, torch.from_numpy(labels[:count]).long()


def test_auto_times_real_steps_and_keeps_the_faster_without_touching_the_run() -> None:
    """The improved CNN on 32 real Fashion-MNIST images: both precisions timed, the choice follows the
    timings, and the network and torch's random state are as before."""
    model = build_model(resolve_config(parse_args(["--preset", "improved"]))).to(
        memory_format=torch.channels_last
    )
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    batch = _fashion_batch(32)

    # AdamW's defaults hold a key its constructor refuses (decoupled_weight_decay): the timing must copy the
    # optimizer, not rebuild it from them.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def measure() -> dict[str, float]:
        return precision.time_training_steps(model, optimizer, batch, nn.CrossEntropyLoss(), CPU.device)

    choice = precision.choose_precision("auto", measure)
    times = choice.seconds_per_step
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())
    faster = times["fp32"] / times["bf16"] >= precision.BF16_MIN_SPEEDUP
    assert choice.precision == ("bf16" if faster else "fp32")
    assert choice.requested == "auto" and f"{times['fp32'] * 1e3:.0f} ms in fp32" in choice.reason
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}  # the run's optimizer never stepped
    assert torch.equal(rng, torch.get_rng_state())


@pytest.mark.parametrize("requested", ["fp32", "bf16"])
def test_a_given_precision_is_kept_without_timing(requested: str) -> None:
    def measure() -> dict[str, float]:
        raise AssertionError("a given precision must not be measured")

    assert precision.choose_precision(requested, measure) == precision.PrecisionChoice(
        requested, requested, "given"
    )


def test_an_unknown_precision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'fp32', 'bf16'\), got 'fp16'"):
        precision.choose_precision("fp16", dict)


def test_looking_at_the_first_batch_leaves_the_batches_as_they_were() -> None:
    """Timing "auto" on epoch 0's first batch must not draw another batch from the augmentation's generator:
    the run trains on exactly the batches it would with the precision given."""
    images = torch.randint(0, 256, (40, 8, 8), dtype=torch.uint8).numpy()
    labels = torch.arange(40).numpy()

    def prepare(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x.float() + torch.rand(len(x), 1, 1, 1, generator=generator)

    def epochs(batches) -> list[torch.Tensor]:
        return [x for epoch in range(2) for x, _ in batches(epoch)]

    plain, _ = recipe.array_batches((images, labels), 16, 0, CPU, prepare)
    peeked, _ = recipe.array_batches((images, labels), 16, 0, CPU, prepare)
    first, peeked = engine.peek_first_batch(peeked)
    want = epochs(plain)
    got = epochs(peeked)
    assert torch.equal(first[0], want[0]) and len(got) == len(want)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
