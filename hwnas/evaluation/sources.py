"""Where a search's metrics come from: ``TableMetrics`` (latency and energy predicted from a
device's table), ``BenchmarkMetrics`` (columns of a tabular benchmark), ``FactsMetrics`` (params,
MACs and FLOPs of the architecture) and the accuracy estimators. Each is a ``MetricSource``
naming the metrics it ``provides``; ``Evaluation`` is one candidate's outcome.

How it works, and why: ``docs/design.md`` (hwnas.evaluation.sources).
"""

from __future__ import annotations

import abc
import csv
import enum
import functools
import io
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.files import read_bounded
from hwnas.spaces.base import Architecture, SearchSpace


MAX_VALUE = 1e12  # larger benchmark values are corrupt: they overflow hypervolumes and surrogates


class BenchmarkError(HwnasError, KeyError):
    """A benchmark file that is missing or malformed, or lacks an architecture or column."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingArchitectureError(BenchmarkError):
    """The benchmark has no entry for an architecture: the run's setup is wrong (another space or
    table), not the candidate, so the search stops instead of recording a failure."""


class Status(str, enum.Enum):
    """What became of a candidate; compares equal to its text (stored as text in archives)."""

    COMPLETE = "complete"
    FAILED = "failed"  # its evaluation raised, diverged, ran out of memory or time
    INFEASIBLE = "infeasible"  # its cheap metrics broke a hard budget: never evaluated

    def __str__(self) -> str:
        return self.value


@dataclass
class Evaluation:
    """One candidate's outcome, as the search loop records and tells it."""

    arch: Architecture
    metrics: dict[str, float] = field(default_factory=dict)
    status: Status = Status.COMPLETE  # given as text or a Status
    reason: str | None = None
    violation: float = 0.0  # hard budgets: 0 when met
    soft_violation: float = 0.0
    expensive: bool = False  # counted against the evaluation budget
    wall_s: float = 0.0
    fidelity: float | None = None  # training epochs of a multi-fidelity search; None: the source's own

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def ok(self) -> bool:
        return self.status is Status.COMPLETE


class MetricSource(abc.ABC):
    """Computes some metrics for a batch of architectures (NaN where it cannot). A source declares
    whether its metrics are cheap (known before a candidate is trained: a search filters and ranks
    by them) or expensive (the evaluations a search spends its budget on)."""

    provides: tuple[str, ...] = ()
    cheap: ClassVar[bool] = True

    def is_cheap(self, metric: str) -> bool:
        """Whether ``metric`` (one this source provides) is cheap."""
        return self.cheap

    @abc.abstractmethod
    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]: ...

    def fidelities(self) -> tuple[float, ...] | None:
        """The training epochs this source can evaluate at (``()``: any whole number of them), or
        None when it has no fidelity to vary (a multi-fidelity search then refuses it)."""
        return None

    def evaluate_at(self, archs: Sequence[Architecture], epochs: float) -> dict[str, np.ndarray]:
        """``evaluate`` at a fidelity: the metrics after ``epochs`` of training."""
        raise HwnasError(f"{type(self).__name__} has no fidelity to vary")

    def describe(self) -> dict[str, Any]:
        return {"source": type(self).__name__, "provides": list(self.provides)}

    def warnings(self) -> list[str]:
        """What the user should know before a search spends time on this source (one line each)."""
        return []


class TableMetrics(MetricSource):
    def __init__(self, predictor: Any) -> None:  # hwnas.latency.predictor.Predictor
        self.predictor = predictor
        self.provides = ("latency_ms", "energy_mj") if predictor.energy_mj is not None else ("latency_ms",)

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        pred = self.predictor.predict(archs)
        out = {"latency_ms": pred.latency_ms}
        if pred.energy_mj is not None:
            out["energy_mj"] = pred.energy_mj
        return out

    def describe(self) -> dict[str, Any]:
        t = self.predictor.table
        return {"source": "latency table", "path": str(t.path), "statistic": t.statistic,
                "energy": t.energy.to_dict(), "calibrated": t.calibration is not None, "fingerprint": t.fingerprint}


class FactsMetrics(MetricSource):
    provides = ("params", "macs", "flops")

    def __init__(self, space: SearchSpace) -> None:
        from hwnas.spaces.facts import CatalogFacts

        self.space = space
        self._facts = CatalogFacts(space)

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        params, macs = self._facts.evaluate(archs)
        return {"params": params, "macs": macs, "flops": 2.0 * macs}  # one meaning of FLOPs everywhere


class BenchmarkMetrics(MetricSource):
    """Columns of a tabular benchmark, looked up by architecture id. A lookup is cheap, but the
    metrics named ``expensive`` stand for what a search would otherwise train for (the benchmark as
    the accuracy estimator): they count as expensive evaluations."""

    def __init__(self, path: str | Path, space: type[SearchSpace] | SearchSpace, *,
                 columns: dict[str, str] | None = None, expensive: Collection[str] = ()) -> None:
        self.path = Path(path)
        self.expensive = frozenset(expensive)
        self.space = space
        names, rows = _read_table_cached(str(self.path.resolve()), self.path.stat().st_mtime_ns if self.path.exists() else 0)
        if "arch" not in names:
            raise BenchmarkError(f"{self.path}: no 'arch' column (columns: {', '.join(names)})")
        self.columns = [c for c in names if c != "arch"]
        self.mapping = dict(columns or {})
        for metric, col in self.mapping.items():
            if col not in self.columns:
                raise BenchmarkError(f"{self.path}: no column {col!r} for metric {metric!r} (columns: {', '.join(self.columns)})")
        self.provides = tuple(self.columns) + tuple(m for m in self.mapping if m not in self.columns)
        data = np.full((len(rows), len(self.columns)), np.nan)
        members: dict[str, list[int]] = {}  # architecture id -> its rows, in file order
        first_row: dict[str, int] = {}  # architecture string -> its first row: a repeat must agree
        for i, row in enumerate(rows):
            if None in row or None in row.values():  # csv.DictReader's marks of a ragged row
                raise BenchmarkError(f"{self.path}: row {i + 2} has {'more' if None in row else 'fewer'} fields "
                                     f"than the header's {len(names)}")
            try:
                arch = space.parse(row["arch"])
            except HwnasError as exc:
                raise BenchmarkError(f"{self.path}: row {i + 2}: {exc}") from None
            for j, c in enumerate(self.columns):
                v = row.get(c)
                try:
                    data[i, j] = float(v) if v not in (None, "") else np.nan
                except (TypeError, ValueError):
                    raise BenchmarkError(f"{self.path}: row {i + 2}, column {c!r}: {v!r} is not a number") from None
            k = first_row.setdefault(row["arch"].strip(), i)
            if k != i and not np.array_equal(data[k], data[i], equal_nan=True):
                j = int(np.flatnonzero(~((data[k] == data[i]) | (np.isnan(data[k]) & np.isnan(data[i]))))[0])
                raise BenchmarkError(f"{self.path}: row {i + 2} repeats the architecture of row {k + 2} with another "
                                     f"{self.columns[j]!r} ({data[i, j]:g} vs {data[k, j]:g})")
            members.setdefault(arch.id, []).append(i)
        self._raw = data  # kept to name the row of a bad value (check_values)
        # one entry per class, in order of first appearance: the mean of its rows' values
        self._index = {arch_id: k for k, arch_id in enumerate(members)}
        self._data = np.full((len(members), len(self.columns)), np.nan)
        for k, idx in enumerate(members.values()):
            block = data[idx]
            have = ~np.isnan(block)
            counts = have.sum(0)
            self._data[k] = np.where(counts > 0, np.where(have, block, 0.0).sum(0) / np.maximum(counts, 1), np.nan)
        self.n_rows = len(rows)

    def check_values(self, metrics: Iterable[str], costs: Iterable[str] = ()) -> None:
        """Refuse the table if a column the run uses holds a non-finite or absurdly large value, a
        cost column (a cheap objective or a budget) a value <= 0, or an accuracy column a value
        outside [0, 100]; one line naming the file, row and column."""
        costs = set(costs)
        for metric in metrics:
            col = self.mapping.get(metric, metric)
            if col not in self.columns:
                continue
            values = self._raw[:, self.columns.index(col)]
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(values) | (np.abs(values) > MAX_VALUE)
                if metric in costs:
                    need, bad = f"a finite number > 0 (a cost, at most {MAX_VALUE:g})", bad | (values <= 0)
                elif "accuracy" in metric:
                    need, bad = "an accuracy in [0, 100] (percent)", bad | (values < 0) | (values > 100)
                else:
                    need = f"a finite number of magnitude <= {MAX_VALUE:g}"
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise BenchmarkError(f"{self.path}: row {i + 2}, column {col!r}: {values[i]:g} is not {need}")

    def column(self, metric: str) -> np.ndarray:
        """Every distinct architecture's value of a metric (its class mean), in ``ids()`` order."""
        return self._data[:, self.columns.index(self.mapping.get(metric, metric))]

    def ids(self) -> list[str]:
        """The distinct architectures' ids, in the order of ``column``."""
        return list(self._index)

    def is_cheap(self, metric: str) -> bool:
        return metric not in self.expensive

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        rows = []
        for a in archs:
            i = self._index.get(a.id)
            if i is None:
                raise MissingArchitectureError(f"{self.path}: no row for {a.string} (id {a.id}) nor any isomorphic architecture")
            rows.append(i)
        sel = self._data[rows]
        out = {c: sel[:, j] for j, c in enumerate(self.columns)}
        for metric, col in self.mapping.items():
            out[metric] = out[col]
        return out

    def fidelities(self) -> tuple[float, ...] | None:
        """The epochs of the learning-curve columns (``accuracy@3``: accuracy after 3 epochs) that
        every expensive metric has; None without such columns."""
        per_metric = [{float(e) for c in self.columns for name, _, e in [c.partition("@")]
                       if name == self.mapping.get(m, m) and _is_number(e)} for m in sorted(self.expensive)]
        common = set.intersection(*per_metric) if per_metric else set()
        return tuple(sorted(common)) or None

    def evaluate_at(self, archs: Sequence[Architecture], epochs: float) -> dict[str, np.ndarray]:
        out = self.evaluate(archs)
        for metric in self.expensive:
            col = f"{self.mapping.get(metric, metric)}@{epochs:g}"
            if col not in out:
                raise BenchmarkError(f"{self.path}: no column {col!r} ({metric} after {epochs:g} epochs); "
                                     f"learning-curve epochs: {', '.join(f'{e:g}' for e in self.fidelities() or ()) or 'none'}")
            out[metric] = out[col]
        return out

    def describe(self) -> dict[str, Any]:
        return {"source": "tabular benchmark", "path": str(self.path), "rows": self.n_rows,
                "distinct": len(self._index), "columns": self.columns, "mapping": self.mapping}


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


@functools.lru_cache(maxsize=4)
def _read_table_cached(path: str, _mtime_ns: int) -> tuple[list[str], list[dict[str, str]]]:
    return _read_table(Path(path))  # keyed by modification time: an edited file is read again


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such benchmark table")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BenchmarkError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
        table = pq.read_table(path)
        names = table.column_names
        cols = {n: table.column(n).to_pylist() for n in names}
        return names, [{n: ("" if cols[n][i] is None else str(cols[n][i])) for n in names} for i in range(table.num_rows)]
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        reader = csv.DictReader(io.StringIO(read_bounded(path, BenchmarkError, "benchmark table").decode("utf-8-sig"),
                                            newline=""))
        rows = list(reader)
        return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BenchmarkError(f"{path}: not a readable CSV ({exc or type(exc).__name__})") from None
