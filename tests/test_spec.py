"""Specs (to_spec / from_spec) and conversion of torchvision objects (from_torchvision)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import PIL
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2

import edgeinfer.transforms as E

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

# Each edgeinfer transform with the torchvision transform it stands for, written out independently.
PAIRS = [
    (E.Resize(256), T.Resize(256)),
    (E.Resize([224]), T.Resize([224])),
    (
        E.Resize((32, 48), "lanczos", antialias=False, pass_order="pillow12"),
        T.Resize((32, 48), T.InterpolationMode.LANCZOS, antialias=False),
    ),
    (
        E.Resize(100, "nearest-exact", max_size=150),
        T.Resize(100, T.InterpolationMode.NEAREST_EXACT, max_size=150),
    ),
    (E.Resize(None, max_size=64), T2.Resize(None, max_size=64)),
    (E.CenterCrop(224), T.CenterCrop(224)),
    (E.CenterCrop((10, 20)), T.CenterCrop((10, 20))),
    (E.Pad(3), T.Pad(3)),
    (E.Pad((1, 2), fill=5.5, padding_mode="reflect"), T.Pad((1, 2), fill=5.5, padding_mode="reflect")),
    (E.Pad([1, -2, 3, 4], fill=(1, 2, 3), padding_mode="constant"), T.Pad([1, -2, 3, 4], fill=(1, 2, 3))),
    (E.Grayscale(), T.Grayscale()),
    (E.Grayscale(3), T.Grayscale(3)),
    (E.ToTensor(), T.ToTensor()),
    (E.PILToTensor(), T.PILToTensor()),
    (E.ConvertImageDtype("float32"), T.ConvertImageDtype(torch.float32)),
    (E.ConvertImageDtype("uint8"), T.ConvertImageDtype(torch.uint8)),
    (E.Normalize(*IMAGENET), T.Normalize(*IMAGENET)),
    (E.Normalize([0.5], [0.25], inplace=True), T.Normalize([0.5], [0.25], inplace=True)),
    (E.ToPILImage(), T.ToPILImage()),
    (E.ToPILImage("F"), T.ToPILImage("F")),
    (
        E.Compose(
            [
                E.ToPILImage(),
                E.Grayscale(3),
                E.Resize(256),
                E.CenterCrop(224),
                E.ToTensor(),
                E.Normalize(*IMAGENET),
            ]
        ),
        T.Compose(
            [
                T.ToPILImage(),
                T.Grayscale(3),
                T.Resize(256),
                T.CenterCrop(224),
                T.ToTensor(),
                T.Normalize(*IMAGENET),
            ]
        ),
    ),
    (
        E.Compose([E.Compose([E.Resize(8)]), E.ToTensor()]),
        T.Compose([T.Compose([T.Resize(8)]), T.ToTensor()]),
    ),
]


def _json_value(value):
    """A torchvision attribute as a spec holds it: enums and dtypes by name, sequences as lists."""
    if isinstance(value, T.InterpolationMode):
        return value.value
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def assert_spec_describes(spec, tv):
    """``spec`` holds torchvision's constructor arguments, each equal to the torchvision transform's own
    attribute of that name (pass_order, which torchvision does not have, aside)."""
    if spec["type"] == "Compose":
        assert type(tv).__name__ == "Compose"
        assert len(spec["transforms"]) == len(tv.transforms)
        for step, tv_step in zip(spec["transforms"], tv.transforms, strict=True):
            assert_spec_describes(step, tv_step)
        return
    assert spec["type"] == {"ToImage": "PILToTensor"}.get(type(tv).__name__, type(tv).__name__)
    assert set(spec) - {"type", "pass_order"} == set(inspect.signature(type(tv)).parameters), spec
    for key, value in spec.items():
        if key not in ("type", "pass_order"):
            assert value == _json_value(getattr(tv, key)), (spec, key)


def run_both(parity, ours, tv, what):
    """``ours`` and ``tv`` on the same input, of the kind torchvision's first transform takes."""
    compose = type(tv).__name__ == "Compose"
    first = tv.transforms[0] if compose else tv
    name = type(first).__name__
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    if compose and name == "ToPILImage":
        ours_in = theirs_in = pixels  # an image array, channels last, as an array loader gives it
    elif name in ("ToPILImage", "ConvertImageDtype", "Normalize"):
        if name == "ToPILImage" and first.mode == "F":
            ours_in = rng.uniform(-2, 2, (1, 9, 7)).astype(np.float32)
        elif name == "ToPILImage" or (name == "ConvertImageDtype" and first.dtype.is_floating_point):
            ours_in = pixels.transpose(2, 0, 1).copy()
        else:
            ours_in = rng.uniform(0, 1, (3, 45, 70)).astype(np.float32)
        theirs_in = torch.from_numpy(ours_in.copy())  # Normalize(inplace=True) writes into its input
    else:
        ours_in = theirs_in = PIL.Image.fromarray(pixels)
    expected = tv(theirs_in)
    expected = expected.numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    parity.check(ours(ours_in), expected, what)


@pytest.mark.filterwarnings("ignore:Anti-alias option is always applied")
@pytest.mark.parametrize(("transform", "tv"), PAIRS, ids=lambda x: repr(x)[:40])
def test_spec_through_json_rebuilds_the_torchvision_transform(parity, transform, tv):
    """A spec, through JSON and back, holds torchvision's arguments and computes what torchvision does."""
    spec = json.loads(json.dumps(transform.to_spec()))
    assert_spec_describes(spec, tv)
    rebuilt = E.from_spec(spec)
    assert type(rebuilt) is type(transform)
    run_both(parity, rebuilt, tv, f"{spec['type']} rebuilt from its spec")


def test_spec_has_the_documented_shape():
    spec = E.Compose([E.Resize(256), E.ToTensor(), E.Normalize(*IMAGENET)]).to_spec()
    assert spec == {
        "type": "Compose",
        "transforms": [
            {
                "type": "Resize",
                "size": 256,
                "interpolation": "bilinear",
                "max_size": None,
                "antialias": True,
                "pass_order": "pillow13",
            },
            {"type": "ToTensor"},
            {"type": "Normalize", "mean": IMAGENET[0], "std": IMAGENET[1], "inplace": False},
        ],
    }


def test_spec_defaults_may_be_left_out():
    resize = E.from_spec({"type": "Resize", "size": 10})
    assert (resize.interpolation, resize.pass_order, resize.max_size) == ("bilinear", "pillow13", None)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ([1, 2], TypeError, "dict"),
        ({"size": 3}, ValueError, "'type'.*None"),
        ({"type": "RandomCrop", "size": 3}, ValueError, "RandomCrop"),
        ({"type": "Resize"}, ValueError, r"lacks.*size"),
        ({"type": "Resize", "size": 3, "colour": 1}, ValueError, "colour"),
        ({"type": "Resize", "size": "big"}, TypeError, r"Resize.*'big'"),
        ({"type": "Resize", "size": -4}, ValueError, r"Resize.*-4"),
        ({"type": "Normalize", "mean": [0.5], "std": "x"}, TypeError, r"Normalize.*'x'"),
        ({"type": "Compose", "transforms": {"type": "ToTensor"}}, TypeError, "list"),
        (
            {
                "type": "Compose",
                "transforms": [{"type": "ToTensor"}, {"type": "Pad", "padding": 1, "fill": None}],
            },
            TypeError,
            r"\['transforms'\]\[1\] \(Pad\).*None",
        ),
        (
            {"type": "Compose", "transforms": [{"type": "ToTensor"}, {"type": "Resize", "size": 2}]},
            ValueError,
            "Resize",
        ),
    ],
)
def test_bad_specs_raise_naming_the_problem(spec, error, match):
    with pytest.raises(error, match=match):
        E.from_spec(spec)


# --------------------------------------------------------------------------------------------------
# from_torchvision

V1 = [
    T.Resize(256),
    T.Resize((10, 20), T.InterpolationMode.BICUBIC, antialias=False),
    T.Resize(30, PIL.Image.Resampling.LANCZOS, max_size=40),
    T.Resize(9, T.InterpolationMode.NEAREST_EXACT),
    T.CenterCrop(224),
    T.CenterCrop([3, 5]),
    T.Pad((1, 2, 3, 4), fill=(1, 2, 3), padding_mode="constant"),
    T.Pad(2, padding_mode="symmetric"),
    T.Grayscale(3),
    T.ToTensor(),
    T.PILToTensor(),
    T.ConvertImageDtype(torch.float32),
    T.ConvertImageDtype(torch.uint8),
    T.Normalize(*IMAGENET),
    T.Normalize((0.5,), (0.5,), inplace=True),
    T.ToPILImage(),
    T.ToPILImage("RGB"),
]

V2 = [
    T2.Resize(256),
    T2.Resize((10, 20), interpolation=T2.InterpolationMode.BOX),
    T2.Resize(None, max_size=50),
    T2.CenterCrop(7),
    T2.Pad([1, 2], fill=4, padding_mode="edge"),
    T2.Grayscale(1),
    T2.PILToTensor(),
    T2.ToImage(),
    T2.ConvertImageDtype(torch.uint8),
    T2.Normalize(*IMAGENET),
    T2.ToPILImage(),
]


@pytest.mark.filterwarnings("ignore:The transform `ToTensor\\(\\)` is deprecated")
@pytest.mark.filterwarnings("ignore:Anti-alias option is always applied")
@pytest.mark.parametrize("tv", V1 + V2, ids=lambda x: f"{type(x).__module__.split('.')[-1]}.{x!r}"[:50])
def test_from_torchvision_reads_each_transform(parity, tv):
    """The conversion holds torchvision's arguments and computes what the torchvision object does."""
    ours = E.from_torchvision(tv)
    assert_spec_describes(ours.to_spec(), tv)
    run_both(parity, ours, tv, f"from_torchvision({tv!r})")


REPR_SAME = [tv for tv in V1 if not isinstance(tv, (T.ConvertImageDtype, T.Normalize))]


@pytest.mark.parametrize("tv", REPR_SAME + [T.Normalize(*IMAGENET), T.Compose(REPR_SAME[:3])], ids=repr)
def test_repr_matches_torchvision(tv):
    assert repr(E.from_torchvision(tv)) == repr(tv)


@pytest.mark.parametrize(
    "tv",
    [
        T.Compose([T.Grayscale(3), T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)]),
        T2.Compose([T2.Grayscale(3), T2.Resize(256), T2.CenterCrop(224), T2.ToImage()]),
    ],
    ids=["v1", "v2"],
)
def test_from_torchvision_converts_compose_v1_and_v2(parity, tv):
    ours = E.from_torchvision(tv)
    assert_spec_describes(ours.to_spec(), tv)
    run_both(parity, ours, tv, f"from_torchvision(Compose) {type(tv).__module__}")


def test_from_torchvision_records_the_installed_pillow_pass_order(parity, monkeypatch):
    """On a tall downscale, where Pillow 12 and 13 order the passes differently, the conversion computes
    what the installed Pillow does."""
    img = PIL.Image.fromarray(np.random.default_rng(3).integers(0, 256, (1000, 100, 3), dtype=np.uint8))
    tv = T.Resize((640, 64))
    ours = E.from_torchvision(tv)
    parity.check(ours(img), np.asarray(tv(img)), "tall downscale")
    other = {"pillow13": "pillow12", "pillow12": "pillow13"}[ours.pass_order]
    assert not np.array_equal(E.Resize((640, 64), pass_order=other)(img), np.asarray(tv(img)))
    monkeypatch.setattr(PIL, "__version__", "12.3.0")
    assert E.from_torchvision(T.Resize(5)).pass_order == "pillow12"
    monkeypatch.setattr(PIL, "__version__", "13.1.0")
    assert E.from_torchvision(T.Resize(5)).pass_order == "pillow13"


@pytest.mark.parametrize(
    ("tv", "name"),
    [
        (T.RandomCrop(5), "RandomCrop"),
        (T.RandomHorizontalFlip(), "RandomHorizontalFlip"),
        (T.Lambda(lambda x: x), "Lambda"),
        (T.Compose([T.Resize(5), T.ColorJitter(0.1)]), "ColorJitter"),
        (T2.RandomResizedCrop(5), "RandomResizedCrop"),
    ],
)
def test_from_torchvision_names_unsupported_transforms(tv, name):
    with pytest.raises(ValueError, match=f"^{name} is not supported.*deterministic.*Resize"):
        E.from_torchvision(tv)


def test_from_torchvision_rejects_other_objects():
    with pytest.raises(TypeError, match="torch.nn.modules"):
        E.from_torchvision(torch.nn.Identity())
    with pytest.raises(TypeError, match="Resize"):
        E.from_torchvision(E.Resize(4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_from_torchvision_rejects_v2_convert_image_dtype_to_float(dtype):
    """v2 scales by a reciprocal, v1 (and edgeinfer) divide: the real outputs differ, so it is refused."""
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    assert not torch.equal(T2.ConvertImageDtype(dtype)(x), T.ConvertImageDtype(dtype)(x))
    with pytest.raises(ValueError, match="v2.ConvertImageDtype.*v1"):
        E.from_torchvision(T2.ConvertImageDtype(dtype))


def test_from_torchvision_v2_convert_image_dtype_to_int_matches(parity):
    x = np.random.default_rng(2).uniform(0, 1, (3, 8, 8)).astype(np.float32)
    want = T2.ConvertImageDtype(torch.uint8)(torch.from_numpy(x)).numpy()
    ours = E.from_torchvision(T2.ConvertImageDtype(torch.uint8))
    parity.check(ours(x), want, "v2 ConvertImageDtype(uint8)")


def test_from_torchvision_rejects_v2_per_type_fill():
    with pytest.raises(ValueError, match="fill"):
        E.from_torchvision(T2.Pad(1, fill={PIL.Image.Image: 1}))
