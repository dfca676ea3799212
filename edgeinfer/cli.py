"""The ``edgeinfer`` command line: predict, info, bench. A thin layer over :class:`edgeinfer.Model`.

Library errors become one ``Error: <file>: <problem>`` line on stderr, never a traceback. onnxruntime
and Pillow are imported only by the commands that need them, so ``--help`` is instant.

Text output cannot be forged by what it prints: control characters, line and paragraph separators,
invisible format characters (such as bidi overrides) and backslashes in file names, labels, provenance
and error messages are written as backslash escapes (``\t``, ``\n``, ``\x1b``, ``\u202e``, ``\\``), so
every record is one line and no escape sequence reaches the terminal. ``--json`` output is strict
RFC 8259 JSON (ASCII, no NaN or Infinity).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import unicodedata
import warnings
from collections.abc import Callable
from typing import Any

import click

from edgeinfer import __version__
from edgeinfer._engines import ENGINES, MAX_THREADS, OPTIMIZATIONS
from edgeinfer.errors import EdgeInferError, ImageError

_PROGRESS_MIN_IMAGES = 200  # below this a run is too short for a progress bar to help
_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}
_UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


class _Main(click.Group):
    """The command group: output that cannot be written (a full disk, an I/O error) is one error line.
    A closed pipe (``| head``) is left to click, which exits 1 quietly."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
        except OSError as e:
            if e.filename is not None or e.errno == errno.EPIPE:  # not stdout, or a closed pipe
                raise
            with contextlib.suppress(OSError, ValueError):
                # Python flushes stdout again at exit; point it at /dev/null so that cannot fail too.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.ClickException(f"cannot write the output: {e.strerror or e}") from None
        return result


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgeinfer", message="%(prog)s %(version)s")
def main() -> None:
    """Classify images with small ONNX vision models, without torch.

    \b
    Example:
        edgeinfer predict examples/
        edgeinfer predict shoe.png --top-k 3 --json
        edgeinfer info
        edgeinfer verify
        edgeinfer bench --threads 1
    """


_model_argument = click.argument("model", required=False)


def _engine_options(command: Any) -> Any:
    """--threads, --engine, --spin, --optimization: how the model runs (bench --sweep measures them)."""
    options = [
        click.option(
            "--threads",
            type=click.IntRange(min=1, max=MAX_THREADS),
            default=None,
            help=f"Intra-op threads, at most {MAX_THREADS} [default: one per core].",
        ),
        click.option(
            "--engine",
            type=click.Choice([*ENGINES, "auto"]),
            default="onnxruntime",
            show_default=True,
            help="Inference engine; openvino needs pip install 'edgeinfer[openvino]'; auto measures the "
            "installed ones and takes the fastest whose self-test passes.",
        ),
        click.option(
            "--spin", is_flag=True, help="Let idle onnxruntime threads spin (faster, burns idle CPU)."
        ),
        click.option(
            "--optimization",
            type=click.Choice(OPTIMIZATIONS),
            default="all",
            show_default=True,
            help="onnxruntime graph optimisation level.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--model", "-m", "model_path", type=click.Path(), help="ONNX model [default: the bundled model]."
)
@click.option(
    "--top-k", "-k", type=click.IntRange(min=1), default=1, show_default=True, help="Classes per image."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.option(
    "--batch-size", "-b", type=click.IntRange(min=1), default=64, show_default=True, help="Images per run."
)
@_engine_options
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse larger images before decoding them [default: Pillow's limit, about 89.5 million].",
)
@click.option(
    "--spec", type=click.Path(dir_okay=False), help="Preprocessing spec (JSON), for models without metadata."
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False),
    help="Labels file, one per line, for models without metadata.",
)
def predict(
    images: tuple[str, ...],
    model_path: str | None,
    top_k: int,
    as_json: bool,
    batch_size: int,
    threads: int | None,
    engine: str,
    spin: bool,
    optimization: str,
    max_pixels: int | None,
    spec: str | None,
    labels: str | None,
) -> None:
    """Classify IMAGES: files, directories (searched recursively for image files) or glob patterns.

    Prints one line per image: file, label, score (tab-separated; more label/score pairs with
    --top-k), or a JSON object per line with --json. Unreadable images are reported on stderr as
    "Error: FILE: PROBLEM"; the others are still classified, and the exit code is 1.
    Images are used as stored, like torchvision's loader: EXIF orientation is not applied.
    Control characters, tabs and backslashes in file names and labels are printed as escapes
    (\t, \n, \x1b, \\), so each line is one record. Only regular files are read.

    \b
    Example:
        edgeinfer predict shoe.png
        edgeinfer predict photos/ --top-k 3 --json > predictions.jsonl
        edgeinfer predict 'scans/**/*.png' --model my_model.onnx --threads 1
    """
    from PIL import Image

    from edgeinfer.metadata import read_labels, read_spec
    from edgeinfer.sources import expand_inputs

    # edgeinfer applies its own pixel limit (--max-pixels); Pillow's warning about the same images is noise.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    model = _load_model(
        model_path,
        threads=threads,
        engine=engine,
        spinning=spin,
        optimization=optimization,
        max_pixels=max_pixels,
        preprocessing=_read_option_file(read_spec, spec, "--spec"),
        labels=_read_option_file(read_labels, labels, "--labels"),
    )
    failed = False
    paths = []
    for item in expand_inputs(images):
        if isinstance(item, ImageError):
            _error(item)
            failed = True
        else:
            paths.append(item)
    with progress_bar(len(paths)) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            results = model.predict_batch(chunk, batch_size=batch_size, top_k=top_k, errors="return")
            for path, result in zip(chunk, results, strict=True):
                if isinstance(result, ImageError):
                    _error(result)
                    failed = True
                elif as_json:
                    click.echo(_json({"file": path, **result.to_dict()}))
                else:
                    top = (f"{escape(label)}\t{score:.4f}" for label, score in result.top)
                    click.echo("\t".join([escape(path), *top]))
            if bar is not None:
                bar.update(len(chunk))
    if failed:
        sys.exit(1)


@main.command()
@_model_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model: str | None, as_json: bool) -> None:
    """Describe MODEL [default: the bundled model]: inputs, outputs, opset, size, quantization,
    labels, preprocessing and provenance.

    \b
    Example:
        edgeinfer info
        edgeinfer info my_model.onnx --json
    """
    from edgeinfer.metadata import METADATA_KEY, ModelMetadata
    from edgeinfer.model import model_path
    from edgeinfer.onnxinfo import summarize

    try:
        path = model_path(model)
        summary = summarize(path)
    except EdgeInferError as e:
        raise click.ClickException(escape(str(e))) from None
    metadata, problem = None, None
    if METADATA_KEY in summary.metadata_props:
        try:
            metadata = ModelMetadata.from_props(summary.metadata_props)
        except EdgeInferError as e:
            problem = f"{path}: invalid edgeinfer metadata: {e}"
    described = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "ir_version": summary.ir_version,
        "producer": summary.producer,
        "opsets": summary.opsets,
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in summary.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in summary.outputs],
        "quantization": summary.quantization,
        "operators": dict(summary.operators.most_common()),
        "metadata": metadata.to_dict() if metadata else None,
        "metadata_error": problem,
    }
    click.echo(_json(described) if as_json else _format_info(described))
    if problem:
        raise click.ClickException(escape(problem))


@main.command()
@_model_argument
@_engine_options
def verify(model: str | None, threads: int | None, engine: str, spin: bool, optimization: str) -> None:
    """Check MODEL [default: the bundled model] on this device against the self-test stored in it at
    export: the preprocessing must be bit-exact, the outputs within the recorded tolerance, and the top-1
    class the same wherever the recorded margin is wider than twice the tolerance. Exit status 0 when all
    cases pass, 1 with a one-line reason otherwise. Needs no torch: a check of the runtime on any platform.

    \b
    Example:
        edgeinfer verify
        edgeinfer verify my_model.onnx --threads 1 --engine openvino
    """
    m = _load_model(model, threads=threads, engine=engine, spinning=spin, optimization=optimization)
    try:
        result = m.verify()
    except EdgeInferError as e:
        raise click.ClickException(escape(str(e))) from None
    made = ", ".join(f"{k} {v}" for k, v in result.made_with.items())
    click.echo(f"model: {escape(str(m.path))}\nrecorded on: {made}")
    click.echo(f"tolerance: {result.tolerance:.6g} ({result.tolerance_basis})")
    click.echo(f"{'case':<22}{'tensor':>8}{'max |diff|':>12}{'top-1':>10}  result")
    for c in result.cases:
        top1 = f"{c.top1}/{c.expected_top1}" if c.top1_checked else f"({c.top1})"
        verdict = "ok" if c.passed(result.tolerance) else "FAIL"
        tensor = "exact" if c.preprocessing_exact else "DIFFERS"
        click.echo(f"{c.name:<22}{tensor:>8}{c.max_difference:>12.3g}{top1:>10}  {verdict}")
    if not result.passed:
        raise click.ClickException(escape(f"{m.path}: self-test failed: {result.reason}"))
    click.echo(f"OK: {len(result.cases)} cases pass")


@main.command()
@_model_argument
@click.option(
    "--batch-size", "-b", type=click.IntRange(min=1), default=64, show_default=True, help="The larger batch."
)
@click.option(
    "--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed calls per row."
)
@_engine_options
@click.option("--image", type=click.Path(dir_okay=False), help="Decode this image in the preprocessing row.")
@click.option(
    "--sweep",
    is_flag=True,
    help="Measure every engine setting (threads 1..cores, spinning, optimisation, engines) at batch 1 and "
    "--batch-size, and print the fastest for this device.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
def bench(
    model: str | None,
    batch_size: int,
    runs: int,
    threads: int | None,
    engine: str,
    spin: bool,
    optimization: str,
    image: str | None,
    sweep: bool,
    as_json: bool,
) -> None:
    """Measure MODEL [default: the bundled model]: latency percentiles and throughput of
    preprocessing (one image) and of inference at batch 1 and --batch-size. With --sweep, the
    inference latency of every engine setting instead, and the fastest one for this device.

    \b
    Example:
        edgeinfer bench
        edgeinfer bench my_model.onnx --batch-size 32 --threads 1 --image shoe.png
        edgeinfer bench --sweep
    """
    if sweep:
        _sweep(model, batch_size=batch_size, runs=runs, as_json=as_json)
        return
    from edgeinfer._bench import benchmark

    m = _load_model(model, threads=threads, engine=engine, spinning=spin, optimization=optimization)
    try:
        timings = benchmark(m, batch_size=batch_size, runs=runs, image=image)
    except EdgeInferError as e:
        raise click.ClickException(escape(str(e))) from None
    except MemoryError:
        raise click.ClickException(
            f"--batch-size {batch_size}: not enough memory for a batch of {batch_size} images"
        ) from None
    if as_json:
        for t in timings:
            row = {"stage": t.stage, "batch": t.batch, "images_per_second": t.images_per_second}
            click.echo(_json(row | {f"{k}_ms": getattr(t, k) * 1e3 for k in ("p50", "p90", "p99", "mean")}))
        return
    click.echo(f"model: {escape(str(m.path))}  engine: {m.options.describe()}  runs: {runs}")
    click.echo(f"{'stage':<12}{'batch':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'images/s':>12}")
    for t in timings:
        click.echo(
            f"{t.stage:<12}{t.batch:>6}{t.p50 * 1e3:>10.3f}{t.p90 * 1e3:>10.3f}{t.p99 * 1e3:>10.3f}"
            f"{t.images_per_second:>12.0f}"
        )


def _sweep(model: str | None, *, batch_size: int, runs: int, as_json: bool) -> None:
    from edgeinfer._bench import sweep
    from edgeinfer.model import Model, model_path

    try:
        rows = sweep(Model, model_path(model), batch_size=batch_size, runs=runs)
    except EdgeInferError as e:
        raise click.ClickException(escape(str(e))) from None
    if as_json:
        for row in rows:
            record = dataclasses.asdict(row.options) | {"self_test": row.self_test, "eligible": row.eligible}
            click.echo(
                json.dumps(record | {"batch_1_ms": row.batch_1_ms, f"batch_{batch_size}_ms": row.batch_n_ms})
            )
        return
    click.echo(f"{'engine':<12}{'threads':>8}{'spin':>6}{'optimization':>14}{'batch 1 ms':>12}"
               f"{f'batch {batch_size} ms':>14}  self-test")  # fmt: skip
    for row in rows:
        o = row.options
        b1, bn = (f"{v:.3f}" if v is not None else "-" for v in (row.batch_1_ms, row.batch_n_ms))
        spin = "-" if o.engine == "openvino" else ("on" if o.spinning else "off")
        opt = "-" if o.engine == "openvino" else o.optimization
        verdict = escape(_clip(row.self_test))
        click.echo(f"{o.engine:<12}{o.threads:>8}{spin:>6}{opt:>14}{b1:>12}{bn:>14}  {verdict}")
    usable = [row for row in rows if row.eligible]
    if not usable:
        raise click.ClickException("no setting passes the model's self-test")
    for label, key in (("batch 1", "batch_1_ms"), (f"batch {batch_size}", "batch_n_ms")):
        best = min(usable, key=lambda row: getattr(row, key))
        click.echo(f"fastest at {label}: {_as_flags(best.options)}  ({getattr(best, key):.3f} ms)")


def _as_flags(options: Any) -> str:
    flags = f"--engine {options.engine} --threads {options.threads}"
    if options.engine == "onnxruntime":
        flags += " --spin" if options.spinning else ""
        flags += f" --optimization {options.optimization}" if options.optimization != "all" else ""
    return flags


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _load_model(path: str | None, **options: Any) -> Any:
    from edgeinfer.model import Model

    try:
        return Model(path, **{k: v for k, v in options.items() if v is not None})  # None: Model's default
    except EdgeInferError as e:
        raise click.ClickException(escape(str(e))) from None


def _read_option_file(read: Callable[[str], Any], path: str | None, option: str) -> Any:
    """``read(path)`` for the file given to ``option`` (--spec, --labels); None when it is not given."""
    if path is None:
        return None
    try:
        return read(path)
    except EdgeInferError as e:
        raise click.BadParameter(escape(str(e)), param_hint=f"'{option}'") from None


def progress_bar(total: int) -> Any:
    """A progress bar on stderr for ``total`` images, or a null context giving None: only for runs of at
    least _PROGRESS_MIN_IMAGES, when stderr is a terminal and stdout is not (result lines on the same
    terminal would break the bar)."""
    if total >= _PROGRESS_MIN_IMAGES and sys.stderr.isatty() and not sys.stdout.isatty():
        return click.progressbar(length=total, file=sys.stderr, label="Classifying")
    return contextlib.nullcontext(None)


def escape(text: str) -> str:
    """``text`` with every character that could break or forge a line of output written as an escape:
    control, format and unassigned characters, line/paragraph separators, surrogates (undecodable file
    name bytes), and the backslash itself (so escapes are unambiguous)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c == " " or unicodedata.category(c) not in _UNSAFE_CATEGORIES:
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _error(e: Exception) -> None:
    click.echo(f"Error: {escape(str(e))}", err=True)


def _json(value: Any) -> str:
    """Strict RFC 8259 JSON: ASCII only (no raw control characters), and no NaN or Infinity."""
    return json.dumps(value, allow_nan=False)


def _format_info(d: dict[str, Any]) -> str:
    from edgeinfer.transforms import from_spec

    def tensors(items: list[dict[str, Any]]) -> list[str]:
        return [f"  {t['name']}: {t['dtype']} [{', '.join(map(str, t['shape']))}]" for t in items]

    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in d["opsets"].items())
    lines = [
        f"model: {d['path']}",
        f"size: {d['size_bytes'] / 1024:.1f} KiB ({d['size_bytes']} bytes)",
        f"format: ONNX IR {d['ir_version']}, producer {d['producer'] or 'unknown'}",
        f"opsets: {opsets}",
        f"quantization: {d['quantization']}",
        "inputs:",
        *tensors(d["inputs"]),
        "outputs:",
        *tensors(d["outputs"]),
        "operators: " + ", ".join(f"{op} ×{n}" for op, n in d["operators"].items()),
    ]
    meta = d["metadata"]
    if meta is None:
        lines.append(
            "edgeinfer metadata: invalid (see the error below)"
            if d["metadata_error"]
            else "edgeinfer metadata: none (predict needs --spec and --labels for this model)"
        )
        return "\n".join(escape(line) for line in lines)
    lines += [
        f"image mode: {meta['image_mode']}",
        f"output: {meta['output']}",
        f"labels ({len(meta['labels'])}): " + ", ".join(meta["labels"]),
        "preprocessing:",
        *("  " + line for line in repr(from_spec(meta["preprocessing"])).splitlines()),
        "provenance:",
        *(f"  {k}: {v if isinstance(v, str) else _json(v)}" for k, v in meta["provenance"].items()),
    ]
    return "\n".join(escape(line) for line in lines)
