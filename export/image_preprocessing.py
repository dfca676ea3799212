"""A model's preprocessing spec as ONNX nodes: decoded image (uint8 [H, W, C]) → its float32 tensor.

Each step computes what ``edgeinfer.transforms`` computes (and so torchvision's PIL path), bit for bit:
the input converted to the model's image mode as Pillow's ``convert`` does, then Resize (Pillow's
resampling: export/image_resample.py), CenterCrop (a Resize followed by a CenterCrop resamples only the
window, as edgeinfer's planner does), Pad, Grayscale, ToTensor and Normalize. Sizes are int64 scalars
computed in the graph from the input's shape, as torchvision computes them from the image's size. A step
that cannot be written here raises :class:`UnsupportedStep` naming it, before any node is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeinfer.transforms._checks import INTERPOLATIONS, crop_size, padding_ltrb
from edgeinfer.transforms._checks import resize_size as checked_resize_size
from export import ExportError
from export.image_resample import resize_nearest, resize_window, slice_axis
from export.onnx_graph import DOUBLE, FLOAT, INT64, UINT8, Graph

CHANNELS = {"L": 1, "RGB": 3}
SUPPORTED = ("ToPILImage (first, no mode change)", "Resize", "CenterCrop", "Pad", "Grayscale", "ToTensor",
             "Normalize")  # fmt: skip
# Pillow's L24 luma weights (Convert.c rgb2l): (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
LUMA = (19595, 38470, 7471)


class UnsupportedStep(ExportError):
    """A preprocessing step the image model cannot embed."""


@dataclass
class Image:
    """The image between steps: uint8 planes [C, H, W] (each gather then copies whole rows, and ToTensor
    needs no transpose), its height and width (int64 scalars), its channel count (known when the graph is
    built)."""

    value: str
    height: str
    width: str
    channels: int


def flatten(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The spec's transforms in order, nested Composes flattened."""
    if spec.get("type") != "Compose":
        return [spec]
    return [step for inner in spec["transforms"] for step in flatten(inner)]


def check_spec(spec: Mapping[str, Any], image_mode: str) -> list[Mapping[str, Any]]:
    """The spec's steps, if every one can be embedded; else :class:`UnsupportedStep` naming the first that
    cannot (one line)."""
    steps = flatten(spec)
    if image_mode not in CHANNELS:
        raise UnsupportedStep(f"image model: image mode {image_mode!r} is not supported (L or RGB)")
    tensor = False
    for i, step in enumerate(steps):
        kind = step["type"]
        where = f"image model: step {i} ({kind})"
        if kind == "ToPILImage":
            if i != 0 or step.get("mode") not in (None, image_mode):
                raise UnsupportedStep(
                    f"{where}: only a first ToPILImage that keeps the image mode is supported"
                )
        elif kind == "Normalize":
            if not tensor:
                raise UnsupportedStep(f"{where}: needs ToTensor before it")
        elif kind in ("Resize", "CenterCrop", "Pad", "Grayscale", "ToTensor"):
            if tensor:
                raise UnsupportedStep(f"{where}: comes after ToTensor (torchvision's tensor path)")
            tensor = kind == "ToTensor"
        else:
            raise UnsupportedStep(f"{where}: not supported in a graph (supported: {', '.join(SUPPORTED)})")
    if not tensor:
        raise UnsupportedStep("image model: the spec does not end in a float32 tensor (add ToTensor)")
    return steps


def preprocessing(g: Graph, image: str, spec: Mapping[str, Any], image_mode: str) -> str:
    """Nodes that turn ``image`` (uint8 [H, W, C], C = 1, 2, 3 or 4) into the spec's float32 tensor
    [1, C, H, W]; returns its name."""
    steps = check_spec(spec, image_mode)
    shape = g.op("Shape", image)
    img = Image(image, _dim(g, shape, 0), _dim(g, shape, 1), CHANNELS[image_mode])
    planes = g.op("Transpose", image, perm=[2, 0, 1])
    img.value = convert(g, planes, g.op("Gather", shape, g.i64(2)), image_mode)
    tensor = None
    i = 0
    while i < len(steps):
        step = steps[i]
        kind = step["type"]
        following = steps[i + 1] if i + 1 < len(steps) else None
        if kind == "Resize":
            crop = following if following is not None and following["type"] == "CenterCrop" else None
            img = resize(g, img, step, crop)
            i += 1 if crop else 0
        elif kind == "CenterCrop":
            img = center_crop(g, img, step["size"])
        elif kind == "Pad":
            img = pad(g, img, step)
        elif kind == "Grayscale":
            img = grayscale(g, img, step.get("num_output_channels", 1))
        elif kind == "ToTensor":
            tensor = g.op("Div", g.op("Cast", img.value, to=FLOAT), g.const(255.0, FLOAT))
        elif kind == "Normalize":
            tensor = normalize(g, tensor, step["mean"], step["std"])
        i += 1
    return g.op("Unsqueeze", tensor, g.i64([0]))


def _dim(g: Graph, shape: str, axis: int) -> str:
    return g.op("Gather", shape, g.i64(axis))


def convert(g: Graph, planes: str, channels: str, mode: str) -> str:
    """Pillow's ``convert`` of an L, LA, RGB or RGBA image (its planes; by their count) to ``mode``: L → RGB
    repeats L, alpha is dropped, RGB(A) → L is the L24 luma; the same plane picks serve every count."""
    # Channel k of the RGB view: k for RGB(A), 0 (the L) for L(A).
    colour = g.op("Cast", g.op("GreaterOrEqual", channels, g.i64(3)), to=INT64)
    picks = g.op("Mul", g.i64([0, 1, 2]), colour)
    if mode == "RGB":
        return g.op("Gather", planes, picks, axis=0)
    return luma(g, planes, picks)


def luma(g: Graph, planes: str, picks: str) -> str:
    """Convert.c rgb2l of the planes ``picks`` (int64 [3]) of ``planes``: uint8 [1, H, W]. Computed in
    float32, exact: every partial sum is an integer below 2**24."""
    total = None
    for k, weight in enumerate(LUMA):
        plane = g.op("Gather", planes, g.op("Gather", picks, g.i64([k])), axis=0)
        term = g.op("Mul", g.op("Cast", plane, to=FLOAT), g.const(float(weight), FLOAT))
        total = term if total is None else g.op("Add", total, term)
    total = g.op("Add", total, g.const(32768.0, FLOAT))
    return g.op("Cast", g.op("Floor", g.op("Mul", total, g.const(2.0**-16, FLOAT))), to=UINT8)


def grayscale(g: Graph, img: Image, channels: int) -> Image:
    """torchvision's Grayscale on a PIL image: ``convert("L")``, repeated into 3 channels if asked."""
    gray = img.value if img.channels == 1 else luma(g, img.value, g.i64([0, 1, 2]))
    if channels == 3:
        gray = g.op("Tile", gray, g.i64([3, 1, 1]))
    return Image(gray, img.height, img.width, channels)


def output_size(g: Graph, img: Image, size: Any, max_size: int | None) -> tuple[str, str]:
    """torchvision's ``_compute_resized_output_size`` in float64 (exact: true division, then truncation)."""
    if isinstance(size, Sequence) and len(size) == 2:
        return g.i64(int(size[0])), g.i64(int(size[1]))
    h, w = (g.op("Cast", v, to=DOUBLE) for v in (img.height, img.width))
    short, long = g.op("Min", h, w), g.op("Max", h, w)
    if size is None:
        new_short = g.op("Floor", g.op("Div", g.op("Mul", g.f64(float(max_size)), short), long))
        new_long = g.f64(float(max_size))
    else:
        requested = g.f64(float(size if isinstance(size, int) else size[0]))
        new_short = requested
        new_long = g.op("Floor", g.op("Div", g.op("Mul", requested, long), short))
        if max_size is not None:
            limit = g.f64(float(max_size))
            over = g.op("Greater", new_long, limit)
            shrunk = g.op("Floor", g.op("Div", g.op("Mul", limit, new_short), new_long))
            new_short = g.op("Where", over, shrunk, new_short)
            new_long = g.op("Where", over, limit, new_long)
    portrait = g.op("LessOrEqual", w, h)  # w counts as the short side when w == h
    out_h = g.op("Where", portrait, new_long, new_short)
    out_w = g.op("Where", portrait, new_short, new_long)
    return g.op("Cast", out_h, to=INT64), g.op("Cast", out_w, to=INT64)


def crop_box(g: Graph, height: str, width: str, size: Any) -> tuple[str, str, int, int]:
    """``functional.center_crop_box`` in the graph: (top, left) int64 scalars and the static crop size."""
    ch, cw = (int(v) for v in crop_size(size))
    return _anchor(g, height, ch), _anchor(g, width, cw), ch, cw


def _anchor(g: Graph, side: str, crop: int) -> str:
    """torchvision's anchor: ``-((crop - side) // 2)`` when padding, else ``round((side - crop) / 2)``
    with Python's half-to-even round (ONNX Round's too)."""
    side_f = g.op("Cast", side, to=DOUBLE)
    difference = g.op("Sub", side_f, g.f64(float(crop)))
    padded = g.op("Neg", g.op("Floor", g.op("Mul", g.op("Neg", difference), g.f64(0.5))))
    inside = g.op("Round", g.op("Mul", difference, g.f64(0.5)))
    anchor = g.op("Where", g.op("Less", difference, g.f64(0.0)), padded, inside)
    return g.op("Cast", anchor, to=INT64)


def _clipped(g: Graph, start: str, length: int, side: str) -> tuple[str, str]:
    """The part [lo, hi) of [start, start + length) inside [0, side)."""
    lo = g.op("Max", start, g.i64(0))
    hi = g.op("Min", g.op("Add", start, g.i64(length)), side)
    return lo, hi


def _zero_border(g: Graph, value: str, top: str, left: str, lo: tuple[str, str], hi: tuple[str, str],
                 size: tuple[int, int]) -> str:  # fmt: skip
    """Pad ``value`` (the window part [lo, hi) of a window at (top, left) of ``size``) with zeros to the
    whole window, as ImageOps.expand (every channel, alpha too)."""
    before_h, before_w = g.op("Sub", lo[0], top), g.op("Sub", lo[1], left)
    after_h = g.op("Sub", g.op("Add", top, g.i64(size[0])), hi[0])
    after_w = g.op("Sub", g.op("Add", left, g.i64(size[1])), hi[1])
    borders = (g.i64(0), before_h, before_w, g.i64(0), after_h, after_w)
    pads = g.op("Concat", *(g.op("Unsqueeze", p, g.i64([0])) for p in borders), axis=0)
    return g.op("Pad", value, pads, g.const(0, UINT8), mode="constant")


def center_crop(g: Graph, img: Image, size: Any) -> Image:
    """torchvision's center_crop: the window, zero-padded where it reaches past the image."""
    top, left, ch, cw = crop_box(g, img.height, img.width, size)
    (r0, r1), (c0, c1) = _clipped(g, top, ch, img.height), _clipped(g, left, cw, img.width)
    part = slice_axis(g, slice_axis(g, img.value, r0, r1, 1), c0, c1, 2)
    value = _zero_border(g, part, top, left, (r0, c0), (r1, c1), (ch, cw))
    return Image(value, g.i64(ch), g.i64(cw), img.channels)


def resize(g: Graph, img: Image, step: Mapping[str, Any], crop: Mapping[str, Any] | None) -> Image:
    """Resize, then the CenterCrop ``crop`` if given: only the part of the window inside the resized image
    is resampled, the rest is the crop's zero padding."""
    size = checked_resize_size(step["size"], step.get("max_size"), step.get("antialias", True),
                               step.get("pass_order", "pillow13"))  # fmt: skip
    filter = INTERPOLATIONS[step.get("interpolation", "bilinear")]
    out_h, out_w = output_size(g, img, size, step.get("max_size"))
    if crop is None:
        top = left = g.i64(0)
        (r0, r1), (c0, c1) = (top, out_h), (left, out_w)
        window_size = None
    else:
        top, left, ch, cw = crop_box(g, out_h, out_w, crop["size"])
        (r0, r1), (c0, c1) = _clipped(g, top, ch, out_h), _clipped(g, left, cw, out_w)
        window_size = (ch, cw)
    window = (r0, c0, g.op("Sub", r1, r0), g.op("Sub", c1, c0))
    size_in = (img.height, img.width)
    if filter == INTERPOLATIONS["nearest"]:
        value = resize_nearest(g, img.value, size_in, (out_h, out_w), window)
    else:
        value = resize_window(g, img.value, size_in, (out_h, out_w), window, filter,
                              step.get("pass_order", "pillow13"))  # fmt: skip
    if window_size is None:
        return Image(value, out_h, out_w, img.channels)
    value = _zero_border(g, value, top, left, (r0, c0), (r1, c1), window_size)
    return Image(value, g.i64(window_size[0]), g.i64(window_size[1]), img.channels)


def pad(g: Graph, img: Image, step: Mapping[str, Any]) -> Image:
    """torchvision's pad on a PIL image: negative borders crop first; then every output row and column
    reads a source index (numpy's edge/reflect/symmetric are periodic index maps) or, for "constant",
    the fill where it falls outside."""
    mode = step.get("padding_mode", "constant")
    fill = step.get("fill", 0)
    left, top, right, bottom = padding_ltrb(step["padding"], fill, mode)
    r0 = g.i64(max(-top, 0))
    c0 = g.i64(max(-left, 0))
    r1 = g.op("Sub", img.height, g.i64(max(-bottom, 0)))
    c1 = g.op("Sub", img.width, g.i64(max(-right, 0)))
    value = slice_axis(g, slice_axis(g, img.value, r0, r1, 1), c0, c1, 2)
    height, width = g.op("Sub", r1, r0), g.op("Sub", c1, c0)
    rows, rows_in = _pad_index(g, height, max(top, 0), max(bottom, 0), mode)
    cols, cols_in = _pad_index(g, width, max(left, 0), max(right, 0), mode)
    value = g.op("Gather", g.op("Gather", value, rows, axis=1), cols, axis=2)
    if mode == "constant":
        values = list(fill) if isinstance(fill, (list, tuple)) else [fill]
        if len(values) == 1:
            values *= img.channels
        elif len(values) != img.channels:
            raise UnsupportedStep(
                f"image model: Pad fill {fill!r} does not match the image's {img.channels} channel(s)"
            )
        colour = np.clip([int(v) for v in values], 0, 255).reshape(-1, 1, 1)  # int() truncation, saturated
        colour = g.const(colour, UINT8)
        inside = g.op(
            "And", g.op("Unsqueeze", rows_in, g.i64([0, 2])), g.op("Unsqueeze", cols_in, g.i64([0, 1]))
        )
        value = g.op("Where", inside, value, colour)
    new_h = g.op("Add", height, g.i64(max(top, 0) + max(bottom, 0)))
    new_w = g.op("Add", width, g.i64(max(left, 0) + max(right, 0)))
    return Image(value, new_h, new_w, img.channels)


def _pad_index(g: Graph, n: str, before: int, after: int, mode: str) -> tuple[str, str]:
    """Source index (int64, valid) of each of the ``before + n + after`` outputs, and whether it is inside."""
    k = g.op("Sub", g.op("Range", g.i64(0), g.op("Add", n, g.i64(before + after)), g.i64(1)), g.i64(before))
    last = g.op("Sub", n, g.i64(1))
    inside = g.op("And", g.op("GreaterOrEqual", k, g.i64(0)), g.op("LessOrEqual", k, last))
    if mode in ("constant", "edge"):
        return g.op("Min", g.op("Max", k, g.i64(0)), last), inside
    if mode == "reflect":  # period 2 (n - 1); an image of 1 repeats its pixel
        period = g.op("Max", g.op("Mul", last, g.i64(2)), g.i64(1))
        m = g.op("Mod", k, period)
        mirrored = g.op("Sub", period, m)
    else:  # symmetric: period 2 n
        period = g.op("Mul", n, g.i64(2))
        m = g.op("Mod", k, period)
        mirrored = g.op("Sub", g.op("Sub", period, g.i64(1)), m)
    return g.op("Where", g.op("LessOrEqual", m, last), m, mirrored), inside


def normalize(g: Graph, tensor: str, mean: Sequence[float], std: Sequence[float]) -> str:
    """``(x - mean) / std`` in float32 (subtract, then true divide), mean and std rounded to float32."""
    shape = (-1, 1, 1)
    mean_f = g.const(np.asarray(mean, np.float32).reshape(shape), FLOAT)
    std_f = g.const(np.asarray(std, np.float32).reshape(shape), FLOAT)
    return g.op("Div", g.op("Sub", tensor, mean_f), std_f)
