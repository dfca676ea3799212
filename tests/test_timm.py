"""timm's evaluation transforms, read by ``from_torchvision``: every distinct evaluation configuration of the
installed timm's pretrained models, checked against timm's own transform on real photos, bit for bit.

The oracle is ``timm.data.create_transform(**resolve_data_config(...))`` itself on the image torchvision's
loader gives it; edgeinfer's side is the runtime's image path (``edgeinfer.pipeline.preprocess``: decode,
convert to RGB, the spec read back from JSON). Nothing is downloaded: the configurations are timm's
registry (``get_pretrained_cfg``), no model is built.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

timm = pytest.importorskip("timm", reason="timm comes with the [train] extra")
torch = pytest.importorskip("torch")
matplotlib = pytest.importorskip("matplotlib", reason="matplotlib's sample photos are the test images")

import torchvision.transforms as T  # noqa: E402
from timm.data import create_transform, resolve_data_config  # noqa: E402
from timm.data import transforms as timm_transforms  # noqa: E402
from timm.data.naflex_transforms import Patchify, ResizeToSequence  # noqa: E402
from timm.models import get_pretrained_cfg  # noqa: E402

import edgeinfer.transforms as E  # noqa: E402
from edgeinfer._resample.filters import installed_pass_order  # noqa: E402
from edgeinfer.metadata import InputSpec, ModelMetadata  # noqa: E402
from edgeinfer.pipeline import preprocess  # noqa: E402
from edgeinfer.transforms.interop import needs_timm  # noqa: E402

CROP_MODES = ("center", "squash", "border")
# Every interpolation timm names (timm.data.transforms.str_to_interp_mode).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"


def _key(config: dict[str, Any]) -> tuple:
    return tuple(
        tuple(config[k]) if isinstance(config[k], (list, tuple)) else config[k]
        for k in ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")
    )


def pretrained_configurations() -> dict[tuple, dict[str, Any]]:
    """Every distinct evaluation data config of timm's pretrained models, at their train and test sizes:
    ``resolve_data_config`` of each registered ``pretrained_cfg`` (no model built, nothing downloaded),
    keyed by (input_size, crop_pct, crop_mode, interpolation, mean, std)."""
    configs: dict[tuple, dict[str, Any]] = {}
    for name in timm.list_pretrained():
        cfg = get_pretrained_cfg(name).to_dict()
        for use_test_size in (False, True):
            config = resolve_data_config(pretrained_cfg=cfg, use_test_size=use_test_size)
            configs.setdefault(_key(config), config)
    return configs


def extra_configurations() -> list[dict[str, Any]]:
    """What no pretrained config uses: every crop mode with every interpolation at a non-square size (the
    center mode then resizes with ResizeKeepRatio), a border to trim, and the prefetcher's uint8 output."""
    rng = random.Random(20)
    configs = [
        {
            "input_size": (3, rng.randrange(96, 320), rng.randrange(96, 320)),
            "crop_pct": rng.choice((0.8, 0.875, 0.95, 1.0, 1.1)),
            "crop_mode": mode,
            "interpolation": interpolation,
            "mean": CLIP[0] if rng.random() < 0.5 else IMAGENET[0],
            "std": CLIP[1] if rng.random() < 0.5 else IMAGENET[1],
        }
        for mode in CROP_MODES
        for interpolation in INTERPOLATIONS
    ]
    configs += [{**configs[i], "crop_border_pixels": 9} for i in (2, 8, 14)]
    configs += [{**configs[0], "use_prefetcher": True}, {**configs[7], "normalize": False}]
    return configs


PRETRAINED = pretrained_configurations()
CONFIGS = list(PRETRAINED.values()) + extra_configurations()


def _id(config: dict[str, Any]) -> str:
    extra = "".join(
        f"-{k}={config[k]}" for k in ("crop_border_pixels", "use_prefetcher", "normalize") if k in config
    )
    size = "x".join(map(str, config["input_size"][1:]))
    mode, interpolation, crop_pct, mean = (
        config[k] for k in ("crop_mode", "interpolation", "crop_pct", "mean")
    )
    return f"{mode}-{interpolation}-{size}-{crop_pct}-mean{mean[0]}{extra}"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch's to_tensor and normalize on one thread: on a shared 2-core machine, 20x faster here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images() -> dict[str, Any]:
    """Real photos as the runtime gets them: Grace Hopper's portrait (JPEG, decoded from its file) and the
    same turned to landscape, the portrait in grayscale, and an RGBA PNG (128×128, so upscaled)."""
    photo, rgba = SAMPLE_DATA / "grace_hopper.jpg", SAMPLE_DATA / "Minduka_Present_Blue_Pack.png"
    if not (photo.is_file() and rgba.is_file()):
        pytest.skip(f"matplotlib's sample photos are not installed in {SAMPLE_DATA}")
    with Image.open(photo) as img:
        portrait = img.convert("RGB")
    assert Image.open(rgba).mode == "RGBA"
    return {
        "portrait JPEG": photo,
        "landscape": portrait.transpose(Image.Transpose.ROTATE_90),
        "grayscale": portrait.convert("L"),
        "RGBA PNG": rgba,
    }


def _timm_input(image: Any) -> Image.Image:
    """What torchvision's ``pil_loader`` gives timm's transform: the image converted to RGB."""
    if isinstance(image, Path):
        with Image.open(image) as img:
            return img.convert("RGB")
    return image.convert("RGB")


def test_the_walk_covers_every_crop_mode_and_interpolation():
    """The installed timm's pretrained configurations (well over 60 distinct) with the extra ones use every
    crop mode and every interpolation timm names, and the border trim and the prefetcher's output."""
    assert len(PRETRAINED) >= 60
    assert {c["crop_mode"] for c in CONFIGS} == set(CROP_MODES)
    assert {c["interpolation"] for c in CONFIGS} == set(INTERPOLATIONS)
    kinds = {type(t).__name__ for c in CONFIGS for t in create_transform(**c).transforms}
    assert kinds == {
        "Resize", "CenterCrop", "ResizeKeepRatio", "CenterCropOrPad", "TrimBorder", "MaybeToTensor",
        "Normalize", "MaybePILToTensor",
    }  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_timm_eval_transform_is_bit_exact_on_real_photos(parity, images, config):
    """from_torchvision accepts timm's transform; its spec, through JSON and the runtime's image path, gives
    timm's tensor to the bit on every photo."""
    theirs = create_transform(**config)
    spec = json.loads(json.dumps(E.from_torchvision(theirs).to_spec()))
    _, height, width = config["input_size"]
    metadata = ModelMetadata(
        labels=("a", "b"),
        preprocessing=spec,
        image_mode="RGB",
        input=InputSpec("input", (None, 3, height, width)),
    )
    transform = E.from_spec(spec)
    for name, image in images.items():
        expected = np.asarray(theirs(_timm_input(image)))
        parity.check(preprocess(image, metadata, transform=transform), expected, f"{_id(config)} on {name}")


def test_from_torchvision_maps_each_timm_class():
    """The border mode's ResizeKeepRatio(longest=1) + CenterCropOrPad(mean colour), the center mode's
    ResizeKeepRatio(longest=0) for a non-square input, TrimBorder as a negative Pad, MaybeToTensor as
    ToTensor, the Normalize tensors as the float32 values they hold, MaybePILToTensor as PILToTensor."""
    mean, std = (torch.tensor(v).tolist() for v in CLIP)
    border = create_transform((3, 200, 300), crop_pct=0.9, crop_mode="border", interpolation="bicubic",
                              mean=CLIP[0], std=CLIP[1], crop_border_pixels=5)  # fmt: skip
    assert E.from_torchvision(border).to_spec()["transforms"] == [
        {"type": "Pad", "padding": -5, "fill": 0, "padding_mode": "constant"},
        {"type": "ResizeKeepRatio", "size": [222, 333], "longest": 1.0, "interpolation": "bicubic",
         "pass_order": installed_pass_order()},
        {"type": "CenterCropOrPad", "size": [200, 300], "fill": [123, 117, 104], "padding_mode": "constant"},
        {"type": "ToTensor"},
        {"type": "Normalize", "mean": mean, "std": std, "inplace": False},
    ]  # fmt: skip
    center = create_transform((3, 160, 224), crop_pct=1.0, interpolation="bilinear", use_prefetcher=True)
    assert E.from_torchvision(center).to_spec()["transforms"] == [
        {"type": "ResizeKeepRatio", "size": [160, 224], "longest": 0.0, "interpolation": "bilinear",
         "pass_order": installed_pass_order()},
        {"type": "CenterCrop", "size": [160, 224]},
        {"type": "PILToTensor"},
    ]  # fmt: skip


def test_normalize_tensors_are_read_exactly(parity):
    """timm's Normalize holds float32 tensors: read through tolist(), without torch, as the float32 values
    themselves, which is what torchvision subtracts also from a float64 tensor (0.485 would not be)."""
    means, stds = torch.tensor(IMAGENET[0]), torch.tensor(IMAGENET[1])
    tv = T.Compose([T.PILToTensor(), T.ConvertImageDtype(torch.float64), T.Normalize(means, stds)])
    ours = E.from_torchvision(tv)
    assert ours.transforms[-1].mean == means.tolist() != list(IMAGENET[0])
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    parity.check(ours(pixels), tv(Image.fromarray(pixels)).numpy(), "float64 tensor, float32 mean tensor")
    scalar = T.Normalize(torch.tensor(0.5), torch.tensor(0.25))  # 0-d: one value for every channel
    x = np.random.default_rng(1).uniform(0, 1, (3, 8, 8)).astype(np.float32)
    parity.check(E.from_torchvision(scalar)(x), scalar(torch.from_numpy(x)).numpy(), "0-d mean and std")


def test_keep_ratio_size_is_timms_arithmetic():
    """keep_ratio_size against timm's own get_params: 3000 seeded image and target sizes and blends, and
    sides that round half way."""
    rng = random.Random(3)
    cases = [
        (rng.randrange(1, 3000), rng.randrange(1, 3000), (rng.randrange(8, 1200), rng.randrange(8, 1200)),
         rng.choice((0.0, 1.0, 0.5, rng.random())))
        for _ in range(3000)
    ] + [  # a ratio of 2 and an odd side: x.5, rounded half to even (150.5 → 150, 201.5 → 202)
        (200, 301, (100, 100), 0.0), (403, 200, (100, 100), 0.0), (200, 301, (100, 200), 1.0),
        (200, 303, (100, 200), 1.0),
    ]  # fmt: skip
    ours, theirs = [], []
    for h, w, size, longest in cases:
        theirs_size = timm_transforms.ResizeKeepRatio.get_params(Image.new("L", (w, h)), size, longest)
        if min(theirs_size) <= 0:  # torchvision then fails on the empty size
            with pytest.raises(ValueError, match="empty"):
                E.functional.keep_ratio_size((h, w), size, longest)
            continue
        ours.append(E.functional.keep_ratio_size((h, w), size, longest))
        theirs.append(tuple(theirs_size))
    assert ours == theirs and len(ours) > 2900


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("padding_mode", ["constant", "edge", "reflect", "symmetric"])
def test_center_crop_or_pad_matches_timm(parity, image_factory, mode, padding_mode):
    """Crops larger and smaller than the image on either side, odd differences, each padding mode, one
    fill for every channel and (constant) one per channel."""
    fills = [7, (300, -4, 9, 200)[: len(mode)]] if padding_mode == "constant" and mode != "L" else [7]
    for shape, crop in [((30, 41), (36, 17)), ((30, 41), (29, 50)), ((9, 8), (40, 31)), ((30, 41), (30, 41))]:
        image = Image.fromarray(image_factory(*shape, mode, seed=sum(crop)))
        for fill in fills:
            theirs = timm_transforms.CenterCropOrPad(crop, fill=fill, padding_mode=padding_mode)
            ours = E.from_torchvision(theirs)
            parity.check(
                ours(image), np.asarray(theirs(image)), f"{mode} {shape} → {crop} {padding_mode} {fill}"
            )


@pytest.mark.parametrize("longest", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_resize_keep_ratio_matches_timm(parity, image_factory, longest, interpolation):
    for shape, size in [((61, 40), (32, 32)), ((40, 61), (50, 20)), ((17, 23), (64, 80))]:
        image = Image.fromarray(image_factory(*shape, "RGB", seed=shape[0]))
        theirs = timm_transforms.ResizeKeepRatio(size, longest=longest, interpolation=interpolation)
        parity.check(
            E.from_torchvision(theirs)(image), np.asarray(theirs(image)), f"{shape} → {size} {theirs!r}"
        )


def test_to_torchvision_rebuilds_timms_classes_from_timm(parity, images):
    """The oracle side: a spec holding timm's classes is rebuilt with timm's own, which compute the same
    tensor as the transform the spec was read from; without timm's module it is refused by name."""
    theirs = create_transform((3, 180, 240), crop_pct=0.95, crop_mode="border", interpolation="bicubic")
    spec = E.from_torchvision(theirs).to_spec()
    assert needs_timm(spec) and not needs_timm(E.from_torchvision(T.Resize(4)).to_spec())
    rebuilt = E.to_torchvision(spec, T, timm_transforms)
    assert [type(t) for t in rebuilt.transforms[:2]] == [
        timm_transforms.ResizeKeepRatio,
        timm_transforms.CenterCropOrPad,
    ]
    image = _timm_input(images["landscape"])
    parity.check(rebuilt(image).numpy(), theirs(image).numpy(), "timm's classes rebuilt from the spec")
    with pytest.raises(ValueError, match=r"^ResizeKeepRatio is timm's transform: pass timm.data.transforms"):
        E.to_torchvision(spec, T)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            timm_transforms.ToTensor(),
            "timm's ToTensor is not supported: it casts to float without dividing by 255",
        ),
        (
            timm_transforms.ToNumpy(),
            "timm's ToNumpy is not supported: it gives the prefetching loader a NumPy",
        ),
        (ResizeToSequence(16, 256), "timm's ResizeToSequence is not supported: NaFlex"),
        (Patchify(16), "timm's Patchify is not supported: NaFlex"),
        (timm_transforms.ResizeKeepRatio(224, random_scale_prob=0.5), "ResizeKeepRatio with a random scale"),
        (timm_transforms.ResizeKeepRatio(224, interpolation="random"), "ResizeKeepRatio with a random scale"),
        (
            timm_transforms.RandomResizedCropAndInterpolation(224),
            "RandomResizedCropAndInterpolation is not supported",
        ),
        (timm_transforms.RandomCropOrPad(224), "RandomCropOrPad is not supported .*deterministic"),
        (create_transform(224, is_training=True), "RandomResizedCropAndInterpolation is not supported"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, str) else "",
)
def test_timms_other_transforms_are_refused_by_name(obj, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        E.from_torchvision(obj)


def test_maybe_to_tensor_after_a_tensor_is_refused():
    """timm's MaybeToTensor passes a tensor through; edgeinfer reads it as ToTensor, which the planner
    refuses after a tensor rather than compute something else."""
    with pytest.raises(
        ValueError, match=r"^Compose: ToTensor \(step 1\) comes after the image became a tensor"
    ):
        E.from_torchvision(T.Compose([T.PILToTensor(), timm_transforms.MaybeToTensor()]))


@pytest.mark.parametrize("crop_mode", CROP_MODES)
def test_training_declares_timms_own_pipeline(crop_mode):
    """transfer.py's eval pipeline for a timm network is timm's create_transform for its pretrained_cfg, in
    every crop mode (at --image-size too); the data config's input size and the training crop follow it."""
    from types import SimpleNamespace

    from train import pipelines

    cfg = {**get_pretrained_cfg("mobilenetv3_small_050").to_dict(), "input_size": (3, 96, 128)}
    network = SimpleNamespace(pretrained_cfg={**cfg, "crop_mode": crop_mode})
    arch = "timm.models.mobilenetv3:mobilenetv3_small_050"
    for image_size, args in ((0, {}), (80, {"img_size": 80})):
        pipeline = pipelines.backbone_pipeline(arch, network, image_size)
        theirs = create_transform(**resolve_data_config(args, model=network))
        assert E.from_torchvision(pipeline).to_spec() == E.from_torchvision(theirs).to_spec()
    config = pipelines.data_config(arch, ("a", "b"), "RGB", pipeline, {})
    assert config.metadata.input.shape == (None, 3, 80, 80)
    first = pipelines.backbone_train_pipeline(pipeline).transforms[0]
    assert isinstance(first, T.RandomResizedCrop) and first.size == (80, 80)
    assert first.interpolation == T.InterpolationMode(cfg["interpolation"])
