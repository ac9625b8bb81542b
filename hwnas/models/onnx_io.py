"""ONNX export with verification, and safe loading of ONNX files.

The TorchScript exporter is the default (``exporter="dynamo"`` is selectable, opset >= 18).
Every export is checked the same way whichever exporter wrote it: ``onnx.checker`` (full check),
an onnxruntime session, and parity with torch on random inputs; the file appears only if all
pass. Raises ExportError, OnnxModelError or UnwritableOutputError.

How it works, and why: ``docs/design.md`` (hwnas.models.onnx_io).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from hwnas.core.errors import ExportError, OnnxModelError, UnwritableOutputError, UsageError
from hwnas.core.files import atomic_path, check_target
from hwnas.core.log import quiet_logger

DEFAULT_OPSET = 17
PARITY_ATOL = 1e-4
EXPORTERS = ("torchscript", "dynamo")


@dataclass(frozen=True)
class ParityCheck:
    """How an exported file is checked against torch: on ``inputs`` random inputs drawn from
    ``seed``, in an onnxruntime session with ``providers``, to within ``atol``."""

    inputs: int = 3
    seed: int = 0
    atol: float = PARITY_ATOL
    providers: Sequence[str] = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how it was verified."""

    path: str
    exporter: str
    opset: int
    max_abs_diff: float
    n_parity_inputs: int
    export_s: float
    providers: tuple[str, ...]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise UnwritableOutputError unless ``path`` can be created (its folder exists and is writable)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UnwritableOutputError(f"output {p} is a directory, not a file path")
    if not parent.is_dir():
        raise UnwritableOutputError(f"output {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UnwritableOutputError(f"output {p}: folder {parent} is not writable")
    check_target(p)
    return p


@contextlib.contextmanager
def _compile_caches_in_scratch() -> Iterator[None]:
    """torch.export writes compile caches (``torchinductor_<user>``) to the temporary folder and
    keeps them; here they go to a scratch folder of this process, removed afterwards."""
    from hwnas.core.processes import scratch_folder

    keys = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    before = {k: os.environ.get(k) for k in keys}
    with scratch_folder("compile") as folder:
        os.environ.update({k: os.path.join(folder, k.split("_")[0].lower()) for k in keys})
        try:
            yield
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _export_to(
    model: nn.Module, example: tuple[torch.Tensor, ...], target: str, *, opset: int, dynamic_batch: bool, exporter: str
) -> None:
    input_names = ["input"] if len(example) == 1 else [f"input{i}" for i in range(len(example))]
    dynamic_axes = {n: {0: "batch"} for n in [*input_names, "output"]} if dynamic_batch else None
    if exporter == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(
                model, example, target, opset_version=opset, dynamo=False, input_names=input_names,
                output_names=["output"], dynamic_axes=dynamic_axes, do_constant_folding=True,
            )
    elif exporter == "dynamo":
        shapes = None
        if dynamic_batch:
            batch = torch.export.Dim("batch")
            shapes = tuple({0: batch} for _ in example)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _compile_caches_in_scratch(), \
                quiet_logger("torch.onnx"):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, example, target, opset_version=opset, dynamo=True, input_names=input_names,
                output_names=["output"], dynamic_shapes=shapes,
            )
    else:
        raise ExportError(f"unknown exporter {exporter!r} (known: {', '.join(EXPORTERS)})")


def load_onnx(path: str | os.PathLike[str], *, full_check: bool = True) -> onnx.ModelProto:
    """Load and check an ONNX file; raises OnnxModelError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise OnnxModelError(f"{p}: no such ONNX file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf raises several unrelated types on corrupt bytes
        raise OnnxModelError(f"{p}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    try:
        onnx.checker.check_model(model, full_check=full_check)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxModelError(f"{p}: fails onnx.checker ({first})") from None
    return model


def ort_session(
    path: str | os.PathLike[str],
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An onnxruntime session; raises OnnxModelError if onnxruntime cannot load the model."""
    if options is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only (see hwnas.measure.session)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxModelError(f"{path}: onnxruntime cannot load it ({first})") from None


def max_difference(
    model: nn.Module, session: ort.InferenceSession, inputs: Sequence[tuple[torch.Tensor, ...]]
) -> float:
    """Largest absolute difference between torch and onnxruntime outputs over ``inputs``."""
    worst = 0.0
    names = [i.name for i in session.get_inputs()]
    with torch.no_grad():
        for example in inputs:
            expected = model(*example).numpy()
            got = session.run(None, {n: t.numpy() for n, t in zip(names, example)})[0]
            if got.shape != expected.shape:
                raise ExportError(f"onnxruntime output shape {got.shape} differs from torch's {expected.shape}")
            worst = max(worst, float(np.max(np.abs(got - expected))) if expected.size else 0.0)
    return worst


def export_onnx(
    model: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
    parity: ParityCheck = ParityCheck(),
) -> ExportReport:
    """Export ``model`` to ``path`` and verify it; the file appears only if every check passes.

    Checks: ``onnx.checker`` (full), an onnxruntime session with ``parity.providers``, and a max
    absolute difference <= ``parity.atol`` from torch on ``parity.inputs`` random inputs of the
    example's shapes (drawn from ``parity.seed``). Raises ExportError or UnwritableOutputError.
    """
    providers, seed, atol, parity_inputs = parity.providers, parity.seed, parity.atol, parity.inputs
    from torch.onnx import _constants

    top = _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET if exporter == "torchscript" else _constants.ONNX_MAX_OPSET
    if not DEFAULT_OPSET <= opset <= top:
        raise UsageError(f"--opset {opset}: the {exporter} exporter writes opsets {DEFAULT_OPSET} to {top}")
    out = check_writable(path)
    example = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    model = model.eval()
    with atomic_path(out) as tmp_path:
        tmp = str(tmp_path)
        start = time.perf_counter()
        try:
            _export_to(model, example, tmp, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"{exporter} export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        export_s = time.perf_counter() - start
        try:
            proto = load_onnx(tmp)
            session = ort_session(tmp, providers=providers)
        except OnnxModelError as exc:
            raise ExportError(f"exported model is invalid: {exc}") from None
        gen = torch.Generator().manual_seed(seed)
        batch = 2 if dynamic_batch else example[0].shape[0]
        samples = [example] + [
            tuple(torch.randn((batch, *t.shape[1:]), generator=gen) for t in example) for _ in range(max(0, parity_inputs - 1))
        ]
        diff = max_difference(model, session, samples)
        if not diff <= atol:  # also catches NaN
            raise ExportError(f"ONNX output differs from torch by {diff:.3g} (> {atol:g})")
    opset_written = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    return ExportReport(str(out), exporter, int(opset_written), diff, len(samples), export_s, tuple(session.get_providers()))
