"""Specs (to_spec / from_spec) and conversion of torchvision objects (from_torchvision)."""

from __future__ import annotations

import json

import numpy as np
import PIL
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2

import edgeinfer.transforms as E

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

TRANSFORMS = [
    E.Resize(256),
    E.Resize([224]),
    E.Resize((32, 48), "lanczos", antialias=False, pass_order="pillow12"),
    E.Resize(100, "nearest-exact", max_size=150),
    E.Resize(None, max_size=64),
    E.CenterCrop(224),
    E.CenterCrop((10, 20)),
    E.Pad(3),
    E.Pad((1, 2), fill=5.5, padding_mode="reflect"),
    E.Pad([1, -2, 3, 4], fill=(1, 2, 3), padding_mode="constant"),
    E.Grayscale(),
    E.Grayscale(3),
    E.ToTensor(),
    E.PILToTensor(),
    E.ConvertImageDtype("float32"),
    E.ConvertImageDtype("uint8"),
    E.Normalize(*IMAGENET),
    E.Normalize([0.5], [0.25], inplace=True),
    E.ToPILImage(),
    E.ToPILImage("F"),
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
    E.Compose([E.Compose([E.Resize(8)]), E.ToTensor()]),
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=repr)
def test_spec_round_trips_through_json(transform):
    spec = transform.to_spec()
    rebuilt = E.from_spec(json.loads(json.dumps(spec)))
    assert type(rebuilt) is type(transform)
    assert rebuilt.to_spec() == spec


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

V1_AND_EXPECTED = [
    (T.Resize(256), E.Resize(256)),
    (
        T.Resize((10, 20), T.InterpolationMode.BICUBIC, antialias=False),
        E.Resize((10, 20), "bicubic", antialias=False),
    ),
    (T.Resize(30, PIL.Image.Resampling.LANCZOS, max_size=40), E.Resize(30, "lanczos", max_size=40)),
    (T.Resize(9, T.InterpolationMode.NEAREST_EXACT), E.Resize(9, "nearest-exact")),
    (T.CenterCrop(224), E.CenterCrop(224)),
    (T.CenterCrop([3, 5]), E.CenterCrop((3, 5))),
    (T.Pad((1, 2, 3, 4), fill=(1, 2, 3), padding_mode="constant"), E.Pad((1, 2, 3, 4), (1, 2, 3))),
    (T.Pad(2, padding_mode="symmetric"), E.Pad(2, padding_mode="symmetric")),
    (T.Grayscale(3), E.Grayscale(3)),
    (T.ToTensor(), E.ToTensor()),
    (T.PILToTensor(), E.PILToTensor()),
    (T.ConvertImageDtype(torch.float32), E.ConvertImageDtype("float32")),
    (T.ConvertImageDtype(torch.uint8), E.ConvertImageDtype("uint8")),
    (T.Normalize(*IMAGENET), E.Normalize(*IMAGENET)),
    (T.Normalize((0.5,), (0.5,), inplace=True), E.Normalize([0.5], [0.5], inplace=True)),
    (T.ToPILImage(), E.ToPILImage()),
    (T.ToPILImage("RGB"), E.ToPILImage("RGB")),
]

V2_AND_EXPECTED = [
    (T2.Resize(256), E.Resize([256])),
    (T2.Resize((10, 20), interpolation=T2.InterpolationMode.BOX), E.Resize((10, 20), "box")),
    (T2.Resize(None, max_size=50), E.Resize(None, max_size=50)),
    (T2.CenterCrop(7), E.CenterCrop(7)),
    (T2.Pad([1, 2], fill=4, padding_mode="edge"), E.Pad([1, 2], 4, "edge")),
    (T2.Grayscale(1), E.Grayscale(1)),
    (T2.PILToTensor(), E.PILToTensor()),
    (T2.ToImage(), E.PILToTensor()),
    (T2.ConvertImageDtype(torch.uint8), E.ConvertImageDtype("uint8")),
    (T2.Normalize(*IMAGENET), E.Normalize(*IMAGENET)),
    (T2.ToPILImage(), E.ToPILImage()),
]


@pytest.mark.filterwarnings("ignore:The transform `ToTensor\\(\\)` is deprecated")
@pytest.mark.parametrize(("tv", "expected"), V1_AND_EXPECTED + V2_AND_EXPECTED, ids=lambda x: repr(x)[:40])
def test_from_torchvision_reads_each_transform(tv, expected):
    assert E.from_torchvision(tv).to_spec() == expected.to_spec()


REPR_SAME = [tv for tv, _ in V1_AND_EXPECTED if not isinstance(tv, (T.ConvertImageDtype, T.Normalize))]


@pytest.mark.parametrize("tv", REPR_SAME + [T.Normalize(*IMAGENET), T.Compose(REPR_SAME[:3])], ids=repr)
def test_repr_matches_torchvision(tv):
    assert repr(E.from_torchvision(tv)) == repr(tv)


def test_from_torchvision_converts_compose_v1_and_v2():
    steps = [E.Grayscale(3), E.Resize(256), E.CenterCrop(224), E.ToTensor(), E.Normalize(*IMAGENET)]
    v1 = T.Compose([T.Grayscale(3), T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(*IMAGENET)])
    assert E.from_torchvision(v1).to_spec() == E.Compose(steps).to_spec()
    v2 = T2.Compose([T2.Grayscale(3), T2.Resize(256), T2.CenterCrop(224), T2.ToImage()])
    converted = E.from_torchvision(v2)
    assert [type(t).__name__ for t in converted.transforms] == [
        "Grayscale",
        "Resize",
        "CenterCrop",
        "PILToTensor",
    ]


def test_from_torchvision_records_the_installed_pillow_pass_order(monkeypatch):
    expected = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"
    assert E.from_torchvision(T.Resize(5)).pass_order == expected
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
        (T2.ToDtype(torch.float32, scale=True), "ToDtype"),
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
