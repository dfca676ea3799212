"""How far torchvision's JPEG decoder (``torchvision.io.decode_image``, libjpeg-turbo) is from Pillow's.

    python bench/decoders.py --weights weights/efficientnet_lite0.pt [--photos DIR ...]

The photos: real photographs installed with the test dependencies (matplotlib's Grace Hopper, scikit-learn's
china and flower) and any JPEGs under ``--photos``, each as it is and re-encoded by Pillow at qualities
75 / 90 / 95 with 4:2:0, 4:2:2 and 4:4:4 chroma subsampling, baseline and progressive, cropped to odd sizes
(chroma upsampling at the edges), and as grayscale. For each file: the fraction of pixel values that
differ between the two decoders and the largest difference; then timm's ``tf_efficientnet_lite0`` with
real ImageNet weights (``train/convert_weights.py``) on both decodings through the same preprocessing
(timm's evaluation pipeline on the PIL path: Resize 256 bicubic, CenterCrop 224, ImageNet Normalize):
top-1 agreement, the largest logit and top-1 probability differences.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
import PIL.features
import PIL.Image
import torch
import torchvision
from torchvision import transforms as T
from torchvision.io import ImageReadMode

QUALITIES = (75, 90, 95)
SUBSAMPLINGS = {"4:2:0": 2, "4:2:2": 1, "4:4:4": 0}  # Pillow's subsampling codes


def installed_photos() -> list[Path]:
    """Real photographs that the test dependencies install."""
    import matplotlib
    import sklearn

    found = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    found += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))
    return [p for p in found if p.exists()]


def jpeg_files(photos: list[Path], out: Path) -> list[Path]:
    """Each photo as it is and re-encoded at every quality × subsampling × baseline / progressive (cropped
    by one pixel to odd sizes), plus grayscale."""
    files = []
    for photo in photos:
        files.append(photo)
        image = PIL.Image.open(photo).convert("RGB")
        odd = image.crop((0, 0, image.width - 1 + image.width % 2, image.height - 1 + image.height % 2))
        for quality in QUALITIES:
            for name, code in SUBSAMPLINGS.items():
                for progressive in (False, True):
                    tag = f"q{quality}-{name.replace(':', '')}{'-prog' if progressive else ''}"
                    path = out / f"{photo.stem}-{tag}.jpg"
                    odd.save(path, quality=quality, subsampling=code, progressive=progressive)
                    files.append(path)
        path = out / f"{photo.stem}-gray.jpg"
        image.convert("L").save(path, quality=90)
        files.append(path)
    return files


def decode_both(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """H×W×3 uint8 by Pillow (torchvision's pil_loader) and by torchvision.io.decode_image."""
    data = path.read_bytes()
    pillow = np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))
    tv = torchvision.io.decode_image(
        torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
    )
    return pillow, tv.permute(1, 2, 0).numpy()


def network(weights: Path) -> torch.nn.Module:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="train/convert_weights.py's output")
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more JPEG files or folders")
    args = parser.parse_args()
    photos = installed_photos()
    for p in args.photos:
        photos += sorted(p.rglob("*.jp*g")) if p.is_dir() else [p]
    net = network(args.weights)
    preprocess = T.Compose(
        [
            T.Resize(256, T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in jpeg_files(photos, Path(tmp)):
            pillow, tv = decode_both(path)
            diff = np.abs(pillow.astype(np.int16) - tv.astype(np.int16))
            batch = torch.stack([preprocess(PIL.Image.fromarray(a)) for a in (pillow, tv)])
            with torch.no_grad():
                logits = net(batch)
            probs = logits.softmax(1)
            top = logits.argmax(1)
            rows.append(
                (
                    path.name,
                    f"{pillow.shape[1]}×{pillow.shape[0]}",
                    np.count_nonzero(diff) / diff.size,
                    int(diff.max()),
                    bool(top[0] == top[1]),
                    float((logits[0] - logits[1]).abs().max()),
                    float((probs[0, top[0]] - probs[1, top[0]]).abs()),
                )
            )
    print(f"Pillow {PIL.__version__} (libjpeg-turbo {PIL.features.version('libjpeg_turbo')}), "
          f"torchvision {torchvision.__version__}\n")  # fmt: skip
    print(f"{'file':34} {'size':>9} {'values differ':>13} {'max':>4} {'same top-1':>10} {'max logit Δ':>11} "
          f"{'top-1 prob Δ':>12}")  # fmt: skip
    for name, size, frac, biggest, same, dlogit, dprob in rows:
        print(
            f"{name:34} {size:>9} {frac:>12.2%} {biggest:>4} {str(same):>10} {dlogit:>11.4f} {dprob:>12.4f}"
        )
    agree = sum(r[4] for r in rows)
    fractions = [r[2] for r in rows]
    print(
        f"\n{len(rows)} JPEG files: values differ on {min(fractions):.2%}–{max(fractions):.2%}"
        f" (max {max(r[3] for r in rows)}); top-1 agrees on {agree}/{len(rows)}; largest logit difference "
        f"{max(r[5] for r in rows):.4f}, top-1 probability difference {max(r[6] for r in rows):.4f}"
    )


if __name__ == "__main__":
    main()
