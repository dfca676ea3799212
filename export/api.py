"""Export a network trained anywhere (any ``nn.Module`` with its torchvision eval ``Compose`` — a timm
network's own by default —, labels and image mode) to a verified, self-describing ONNX model:
:func:`export_model`.

It only gathers the inputs (images, metadata) into an :class:`export.steps.ExportJob`; the export itself is
:func:`export.steps.export_network`, the same steps as ``to_onnx.py`` runs for train/ checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinfer.metadata import ModelMetadata
from export.conversion import DEFAULT_OPSET
from export.quantization import StaticOptions
from export.steps import LATENCY_BUDGET, LATENCY_REPEATS, LATENCY_THREADS, SEED, VERIFY_IMAGES

if TYPE_CHECKING:
    import torch


def export_model(
    module: torch.nn.Module,
    path: str | Path,
    *,
    transform: Any = None,
    labels: Sequence[str],
    image_mode: str = "RGB",
    calibration: str | Path | Sequence[Any] | None = None,
    verify: str | Path | Sequence[Any],
    quantize: str = "auto",
    architecture: str | None = None,
    calibration_size: int = StaticOptions.calibration_size,
    opset: int = DEFAULT_OPSET,
    report: str | Path | None = None,
    repeats: int = LATENCY_REPEATS,
    latency_budget: float = LATENCY_BUDGET,
    threads: int = LATENCY_THREADS,
    seed: int = SEED,
    image_model: bool | str | Path = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export a network trained anywhere: verified against torch, quantized where it pays, self-describing.

    Args:
        module: the classifier (put in eval mode here); its output is one logit per label.
        transform: its torchvision evaluation pipeline (a ``Compose``), converted with ``from_torchvision``;
            verification checks that edgeinfer reproduces it bit for bit on ``verify``. Optional for a timm
            network (one with a ``pretrained_cfg``): then timm's own for it, as timm documents it,
            ``create_transform(**resolve_data_config({}, model=module))``.
        labels: class names in output order.
        image_mode: "RGB" or "L": what decoded images are converted to before ``transform``.
        calibration: images for static INT8 (a folder or a sequence of paths/arrays/PIL images).
        verify: images for verification, for ``auto``'s measurements and the report; a folder with one
            sub-folder per label (as torchvision's ``ImageFolder``) also gives the accuracy.
        quantize: "auto" (measure, keep what qualifies, see export/selection.py), "int8", "dynamic", "none".
        report: where to write the report as JSON (default: ``path`` with ``.json``).
        repeats, latency_budget: latency is the median of at most ``repeats`` runs per model and batch size,
            fewer once at least 3 have run for ``latency_budget`` seconds.
        image_model: also write the image model (export/image_model.py: decoded image in, preprocessing
            in the graph): True for ``<path>.image.onnx``, or its path.

    Returns:
        The report: per model accuracy, agreement, size, latency; verification; the quantization kept and,
        for ``auto``, the measured table and the reason.

    Raises:
        ExportError, ValueError, FileNotFoundError: with one-line messages.
    """
    from edgeinfer.metadata import InputSpec, check_labels
    from edgeinfer.pipeline import preprocess
    from edgeinfer.transforms import from_torchvision
    from export import checkpoint, inputs
    from export.steps import ExportJob, export_network
    from train.config import DataConfig
    from train.pipelines import timm_pipeline

    labels = list(check_labels(labels, "labels"))  # before any work: a str is not a list of labels
    if transform is None:
        if getattr(module, "pretrained_cfg", None) is None:
            raise ValueError(
                f"export_model needs transform= for {type(module).__name__}: only a timm network (one with a "
                "pretrained_cfg) brings its own evaluation transform"
            )
        transform = timm_pipeline(module)
    spec = from_torchvision(transform).to_spec()
    verify_set = inputs.from_source(verify, labels, "verify")
    calibration_set = None
    if calibration is not None:
        calibration_set = inputs.from_source(calibration, labels, "calibration").sample(
            calibration_size, seed
        )
    # The input size is what the runtime's own image path makes of a real image.
    probe = ModelMetadata(labels=tuple(labels), preprocessing=spec, image_mode=image_mode,
                          input=InputSpec("input", (None,) * 4))  # fmt: skip
    input_size = preprocess(verify_set.images[0], probe).shape
    module = module.eval()
    config = DataConfig.create(
        architecture=architecture or type(module).__name__, labels=tuple(labels), image_mode=image_mode,
        input_size=input_size, preprocessing=spec, dataset={"kind": "images", "root": verify_set.source},
    )  # fmt: skip
    job = ExportJob(
        module, Path(path), config.to_metadata(checkpoint.provenance(config, module, opset)),
        title=f"{len(labels)} labels, image mode {image_mode}, {len(verify_set)} verify images, "
              f"{len(calibration_set or ())} calibration images",
        verify=verify_set.sample(VERIFY_IMAGES, seed), select_on=verify_set, report_on=verify_set,
        calibration=calibration_set, reference=inputs.pil_callable(transform), quantize=quantize,
        opset=opset, repeats=repeats, latency_budget=latency_budget, threads=threads,
        report_path=Path(report) if report else None,
    )  # fmt: skip
    summary = export_network(job, progress)
    if image_model is not False:
        from export.image_model import build_image_model

        out = build_image_model(path, None if image_model is True else image_model)
        progress(f"wrote {out} (image model)")
    return summary
