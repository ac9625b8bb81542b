"""Runs written by earlier hwnas versions still load and resume.

``data/run-0.1.0`` is a finished search (nb201 on the bundled benchmark slice, nsga2, 18
evaluations, seed 3) written by hwnas 0.1.0 before the run config was a typed value, when the
config travelled as a plain dict.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from hwnas.optimize import RunConfig, RunDir, run_search
from hwnas.optimize.archive import Archive

DATA = Path(__file__).resolve().parents[1] / "data"
OLD = DATA / "run-0.1.0"
BENCH = DATA / "nb201_canonical.csv.gz"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(OLD, run)
    with sqlite3.connect(run / "archive.sqlite") as db:  # the benchmark lived elsewhere on the machine that wrote it
        config = json.loads(db.execute("SELECT value FROM run WHERE key = 'config'").fetchone()[0])
        config["benchmark"] = str(BENCH)
        db.execute("UPDATE run SET value = ? WHERE key = 'config'", (json.dumps(config),))
    return run


def _trace(run: Path) -> list[tuple[str, str, bool]]:
    with Archive(run / "archive.sqlite") as a:
        return [(r.arch, r.status, r.expensive) for r in a.records()]


def test_an_old_run_config_loads_as_a_typed_value(tmp_path: Path) -> None:
    config = RunDir(_copy(tmp_path)).config()
    assert isinstance(config, RunConfig)
    assert (config.space, config.strategy, config.evaluations, config.seed) == ("nb201", "nsga2", 18, 3)
    assert [c.text for c in config.objectives.constraints] == ["pi5_onnx_latency_ms<=3"]
    assert RunConfig.from_dict(config.to_dict()) == config


def test_an_old_run_cut_short_resumes_to_the_same_trace_and_front(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    full = _trace(run)
    old_front = {m["arch_id"] for m in json.loads((OLD / "front.json").read_text())["front"]}
    with sqlite3.connect(run / "archive.sqlite") as db:  # as if it had been killed after 9 records
        db.execute("DELETE FROM evaluation WHERE seq > 9")
    assert len(_trace(run)) == 9
    result = run_search({}, run, resume=True, progress=False, log=lambda _m: None)
    assert _trace(run) == full
    assert {m["arch_id"] for m in result.front} == old_front


def test_an_old_table_loads_and_predicts() -> None:
    """A table profiled by hwnas 0.1.0 (nb201, 3x8x8, N=1) on another machine: usable once the
    device check is waived, as ``--allow-mismatch`` does."""
    import numpy as np

    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table

    table, space, _ = open_table(DATA / "table-0.1.0-nb201-3x8x8.json", check_device=False)
    assert table.complete and len(table.entries) == len(space.catalog())
    latency = Predictor(table, space).predict(space.sample(np.random.default_rng(0), 20)).latency_ms
    assert np.all(np.isfinite(latency)) and np.all(latency > 0)


def test_an_old_tables_protocol_is_typed_kept_as_recorded_and_never_continued(tmp_path: Path, quick_spec) -> None:
    import pytest

    from hwnas.latency.profiler import ProfileSettings, profile
    from hwnas.latency.table import LatencyTable, TableMismatchError
    from hwnas.measure.timing import Protocol
    from hwnas.spaces import get_space

    table = LatencyTable.load(DATA / "table-0.1.0-nb201-3x8x8.json")
    assert isinstance(table.protocol, Protocol) and table.protocol.sweeps == Protocol().sweeps  # read with defaults
    assert "sweeps" in table.unrecorded_protocol and "min_span_s" in table.unrecorded_protocol
    copy = table.save(tmp_path / "t.json")
    assert sorted(json.loads(copy.read_text())["protocol"]) == sorted(
        json.loads((DATA / "table-0.1.0-nb201-3x8x8.json").read_text())["protocol"])  # nothing invented on save
    space = get_space("nb201", input_shape="3x8x8", N=1)
    with pytest.raises(TableMismatchError, match="protocol.sweeps: table 'not recorded'"):
        profile(quick_spec, space, out=copy, progress=False, settings=ProfileSettings(protocol=table.protocol))


def test_an_old_table_reads_into_typed_records_and_writes_back_unchanged(tmp_path: Path) -> None:
    from hwnas.latency.records import ContextFit, TableEntry
    from hwnas.latency.table import LatencyTable

    path = DATA / "table-0.1.0-nb201-3x8x8.json"
    stored = json.loads(path.read_text())
    table = LatencyTable.load(path)
    assert all(isinstance(e, TableEntry) for e in table.entries.values())
    assert isinstance(table.context.fit, ContextFit) and table.context.fit.per_kind
    assert table.space.name == "nb201" and table.precision == "fp32"
    table.save(tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    # the additions: the precision (tables of that version were fp32), and the fields they lacked, empty
    assert again == {**stored, "fingerprint": {**stored["fingerprint"], "precision": "fp32"},
                     "conditions": None, "quantization": None}
