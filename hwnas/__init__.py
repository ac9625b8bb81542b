"""hwnas: hardware-aware, multi-objective neural architecture search.

Profile a device into a latency table, search a space under its budget, export the Pareto front
as verified ONNX models. The stages, in the order data flows through them (``docs/architecture.md``):

    spaces -> device -> latency -> evaluation -> search -> deploy

The names below are the public API; each loads its stage on first use, so ``import hwnas`` stays
cheap (torch loads only when something needs it).
"""

from __future__ import annotations

from hwnas.core.lazy import lazy_exports
from hwnas.core.versions import __version__

_EXPORTS: dict[str, str] = {
    # spaces
    "get_space": "hwnas.spaces", "SPACES": "hwnas.spaces", "Architecture": "hwnas.spaces", "SearchSpace": "hwnas.spaces",
    "describe": "hwnas.spaces.facts", "export_onnx": "hwnas.spaces.onnx_io",
    # device and latency
    "load_device": "hwnas.device.spec", "DeviceSpec": "hwnas.device.spec",
    "profile": "hwnas.latency.profiler", "open_table": "hwnas.latency.table", "LatencyTable": "hwnas.latency.table",
    "Predictor": "hwnas.latency.predictor", "validate": "hwnas.latency.validate",
    # search
    "load_objectives": "hwnas.search.objectives", "objectives_from_specs": "hwnas.search.objectives",
    "parse_budget": "hwnas.search.objectives", "STRATEGIES": "hwnas.search.strategies",
    "make_config": "hwnas.search.config", "RunConfig": "hwnas.search.config", "RunDir": "hwnas.search.rundir",  # run it with hwnas.search.search (the name hwnas.search is the package)
    # deploy
    "retrain": "hwnas.deploy.retrain", "export_front": "hwnas.deploy.export", "write_report": "hwnas.deploy.report",
    # errors
    "HwnasError": "hwnas.core.errors",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
