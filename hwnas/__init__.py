"""hwnas: hardware-aware, multi-objective neural architecture search.

Profile a device into a latency table, search a space under its budget, export the Pareto front
as verified ONNX models. The stages, in the order data flows through them (``docs/architecture.md``):

    spaces -> data -> models -> device -> latency -> evaluation -> optimize -> deploy

The names below are the public API; each loads its stage on first use, so ``import hwnas`` stays
cheap (torch loads only when something needs it).
"""

from __future__ import annotations

from hwnas.core.lazy import lazy_exports
from hwnas.core.processes import compile_caches_in_scratch
from hwnas.core.versions import __version__

compile_caches_in_scratch()  # torch's compile caches never outlive the process in the temporary folder

_EXPORTS: dict[str, str] = {
    # the three jobs (hwnas.api): names and paths in, typed results out, logging only
    "profile": "hwnas.api", "search": "hwnas.api", "resume": "hwnas.api", "export": "hwnas.api",
    "ExportResult": "hwnas.api", "ExportSettings": "hwnas.deploy.export",
    "Problem": "hwnas.optimize.problem", "Sources": "hwnas.optimize.problem", "Termination": "hwnas.optimize.config",
    "ASHAOptions": "hwnas.optimize.fidelity",
    "SearchResult": "hwnas.optimize.result", "FrontMember": "hwnas.optimize.result",
    # spaces
    "get_space": "hwnas.spaces", "SPACES": "hwnas.spaces", "Architecture": "hwnas.spaces", "SearchSpace": "hwnas.spaces",
    "describe": "hwnas.spaces.facts", "export_onnx": "hwnas.models.onnx_io",
    # device and latency
    "load_device": "hwnas.device.spec", "DeviceSpec": "hwnas.device.spec",
    "measure_models": "hwnas.latency.onnx_models",
    "open_table": "hwnas.latency.table", "LatencyTable": "hwnas.latency.table",
    "Predictor": "hwnas.latency.predictor", "validate": "hwnas.latency.validate",
    # search
    "load_objectives": "hwnas.optimize.objectives", "objectives_from_specs": "hwnas.optimize.objectives",
    "ObjectiveSet": "hwnas.optimize.objectives", "parse_budget": "hwnas.optimize.objectives",
    "STRATEGIES": "hwnas.optimize.strategies", "make_config": "hwnas.optimize.config", "RunConfig": "hwnas.optimize.config",
    "RunDir": "hwnas.optimize.rundir",
    # deploy
    "retrain": "hwnas.deploy.retrain", "export_front": "hwnas.deploy.export", "write_report": "hwnas.deploy.report",
    # errors
    "HwnasError": "hwnas.core.errors", "UsageError": "hwnas.core.errors",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
