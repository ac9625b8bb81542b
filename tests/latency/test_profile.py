"""A small real profile + validate, resumption after a crash and a kill, and table safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.latency import profiler as profiler_module
from hwnas.latency.predictor import Predictor
from hwnas.latency.profiler import ProfileSettings, profile
from hwnas.latency.table import LatencyTable, TableError, TableMismatchError, open_table
from hwnas.latency.validate import validate
from hwnas.spaces import get_space


def test_tiny_profile_is_complete_and_records_its_provenance(tiny_table: LatencyTable) -> None:
    space = get_space("nb201", input_shape="3x8x8", N=1)
    assert tiny_table.complete
    assert set(tiny_table.entries) == {b.key for b in space.catalog()}
    entry = tiny_table.entries["nor_conv_3x3-in:16x8x8-out:16"]
    assert entry.latency_ms == entry.stats["p10_ms"] > 0
    for stat in ("min_ms", "p10_ms", "p50_ms", "p90_ms", "mean_ms", "std_ms", "cv", "n_runs", "stable"):
        assert stat in entry.stats
    assert entry.stats["min_ms"] <= entry.stats["p10_ms"] <= entry.stats["p50_ms"] <= entry.stats["p90_ms"]
    assert tiny_table.energy.available is False and entry.energy_mj is None  # no meter: no energy invented
    assert tiny_table.fingerprint["provider_used"] == "CPUExecutionProvider"
    assert tiny_table.space.to_dict() == json.loads(json.dumps({"name": "nb201", "version": space.version,
                                                                "config": space.config()}))
    assert tiny_table.protocol.statistic == tiny_table.statistic == "p10"
    fit = tiny_table.context.fit
    assert fit is not None and fit.n_models == 16
    # the boundary correction must beat summing isolated blocks on these small models
    assert fit.leave_one_out["mape"] < fit.raw_sum["mape"]
    loaded = LatencyTable.load(tiny_table.path)
    assert loaded.to_dict() == json.loads(json.dumps(tiny_table.to_dict()))


def test_validate_measures_fresh_models_and_writes_its_report(tiny_table: LatencyTable, tmp_path: Path) -> None:
    table_path = tmp_path / "t.json"
    LatencyTable.load(tiny_table.path).save(table_path)
    report = validate(table_path, samples=12, seed=3, progress=False)
    assert len(report["models"]) == 12
    for key in ("mape", "within_10", "spearman_rho"):
        assert np.isfinite(report["predictor"][key])
    # the fit beats the plain sum of blocks; both compared at the device's state now (drift applied
    # to both), since a device that drifted since the profile flatters whichever errs its way
    factor = report["drift"]["factor"] or 1.0
    measured = np.array([m["measured_ms"] for m in report["models"]])
    fitted = np.array([m["predicted_ms"] for m in report["models"]]) * factor
    summed = np.array([m["raw_sum_ms"] for m in report["models"]]) * factor
    assert np.median(np.abs(fitted / measured - 1)) < np.median(np.abs(summed / measured - 1))
    assert Path(report["report_path"]).is_file()
    assert Path(report["plot_path"]).read_bytes()[:4] == b"\x89PNG"
    report = validate(table_path, samples=12, seed=4, calibrate=True, progress=False)
    stored = LatencyTable.load(table_path).calibration
    assert stored is not None and stored.seed == 4 and report["calibration"]["scale"] == stored.scale


def _drifting_first_runner(monkeypatch_target, step_s: float = 2e-6, cap_s: float = 2e-3):
    """Wrap make_runner so the first job's runner drifts (it never settles, so the others finish
    and are saved first)."""
    real = monkeypatch_target.make_runner
    state = {"first": True}

    def wrapped(*args, **kwargs):
        run = real(*args, **kwargs)
        if not state["first"]:
            return run
        state["first"] = False
        calls = {"n": 0}

        def drifting():
            calls["n"] += 1
            time.sleep(min(step_s * calls["n"], cap_s))
            return run()

        return drifting

    return wrapped


def test_profile_resumes_after_a_crash_without_remeasuring(quick_spec, tmp_path: Path, monkeypatch) -> None:
    space = get_space("nb201", input_shape="3x8x8", N=1)
    out = tmp_path / "t.json"
    # The process dies right after its fourth save (one per finished job, with save_every_s=0).
    # Tied to the saves, not to timing, so a noisy machine cannot let every job finish before the
    # crash (the drifting-runner version of this test did, once in a while).
    real_save, saves = LatencyTable.save, []

    def crashing_save(self: LatencyTable, path: str | Path | None = None) -> Path:
        written = real_save(self, path)
        saves.append(written)
        if len(saves) == 4:
            raise KeyboardInterrupt("simulated crash")
        return written

    monkeypatch.setattr(LatencyTable, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        profile(quick_spec, space, out=out, progress=False, log=lambda _m: None,
                settings=ProfileSettings(context_models=6, save_every_s=0))
    partial = LatencyTable.load(out)
    assert not partial.complete
    measured = {k: v.stats for k, v in partial.entries.items() if v.stats}
    total = len(space.catalog()) + 6
    finished = len(measured) + sum(1 for m in partial.context.models if m.stats)
    assert finished == len(saves) < total  # every finished job was saved, and the rest was not yet done
    monkeypatch.undo()
    exported: list[str] = []
    real_export = profiler_module.export_job

    def counting(job, *args, **kwargs):
        exported.append(job.key)
        return real_export(job, *args, **kwargs)

    monkeypatch.setattr(profiler_module, "export_job", counting)
    full = profile(quick_spec, space, out=out, progress=False, log=lambda _m: None,
                   settings=ProfileSettings(context_models=6))
    assert full.complete and len(full.entries) == len(space.catalog())
    assert not set(exported) & set(measured)  # nothing measured before the crash was measured again
    for key, stats in measured.items():
        assert full.entries[key].stats == stats


def test_profile_killed_with_sigkill_resumes(quick_spec, quick_device: dict, tmp_path: Path) -> None:
    out = tmp_path / "killed.json"
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_profile as t; "
        "import hwnas.latency.profiler as p; import hwnas.measure.job as j; from hwnas.device.spec import parse_device; "
        "from hwnas.spaces import get_space\n"
        "j.make_runner = t._drifting_first_runner(j, step_s=2e-5, cap_s=0.02)\n"
        f"p.profile(parse_device({quick_device!r}), get_space('nb201', input_shape='3x8x8', N=1), out={str(out)!r}, "
        "settings=p.ProfileSettings(context_models=6, save_every_s=0), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if out.exists() and len(json.loads(out.read_text())["entries"]) >= 4:
                    break
            except (json.JSONDecodeError, OSError):
                pass  # never happens with atomic saves; tolerated so the test reports the real failure
            time.sleep(0.05)
        assert proc.poll() is None, "the profile finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = LatencyTable.load(out)  # the atomic save leaves a valid file
    assert not partial.complete and len(partial.entries) >= 4
    full = profile(quick_spec, get_space("nb201", input_shape="3x8x8", N=1), out=out, progress=False, log=lambda _m: None,
                   settings=ProfileSettings(context_models=6))
    assert full.complete
    for key, entry in partial.entries.items():
        assert full.entries[key].stats == entry.stats


def _edited(tiny_table: LatencyTable, tmp_path: Path, edit) -> Path:
    data = json.loads(Path(tiny_table.path).read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_tables_made_elsewhere_are_refused_naming_the_fields(tiny_table: LatencyTable, tmp_path: Path) -> None:
    def other_runtime(d):
        d["fingerprint"]["onnxruntime_version"] = "0.0.1"
        d["fingerprint"]["cpu_model"] = "Some Other CPU"

    path = _edited(tiny_table, tmp_path, other_runtime)
    with pytest.raises(TableMismatchError) as exc:
        open_table(path)
    assert "onnxruntime_version: table '0.0.1'" in str(exc.value) and "cpu_model" in str(exc.value)
    _, _, accepted = open_table(path, allow_mismatch=True)
    assert len(accepted) == 2

    path = _edited(tiny_table, tmp_path, lambda d: d["space"].update(version="0"))
    with pytest.raises(TableMismatchError, match="space.version: table '0'"):
        open_table(path)
    path = _edited(tiny_table, tmp_path, lambda d: d.update(complete=False))
    with pytest.raises(TableError, match="incomplete"):
        open_table(path)
    path = _edited(tiny_table, tmp_path, lambda d: d.update(format_version=99))
    with pytest.raises(TableError, match="format_version"):
        open_table(path)


def test_predict_cli(tiny_table: LatencyTable, capsys: pytest.CaptureFixture[str]) -> None:
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["predict", "--table", str(tiny_table.path), "--arch", arch]) == 0
    line = capsys.readouterr().out.strip()
    value, unit = line.split()[:2]
    assert float(value) > 0 and unit == "ms" and "energy unavailable" in line
    assert main(["predict", "--table", str(tiny_table.path), "--arch", arch, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statistic"] == "p10" and out["energy_mj"] is None
    space = get_space("nb201", input_shape="3x8x8", N=1)
    assert out["latency_ms"] == pytest.approx(Predictor(tiny_table, space).predict([space.parse(arch)]).latency_ms[0])
    assert main(["predict", "--table", str(tiny_table.path), "--arch", "|bogus|"]) == 2


def test_profile_cli_with_energy_estimate_and_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_path = tmp_path / "dev.toml"
    spec_path.write_text('name = "cli-cpu"\n[protocol]\nwarmup_runs = 2\nwarmup_s = 0.1\nmin_runs = 10\nmax_runs = 30\nmin_span_s = 0.2\n')
    out = tmp_path / "t.json"
    argv = ["profile", "--device", str(spec_path), "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1",
            "--out", str(out), "--context-models", "8", "--energy-model", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "leave-one-out" in text and str(out) in text
    table = LatencyTable.load(out)
    assert table.energy.estimated and str(table.energy.source).startswith("estimated:")
    assert all(e.energy_mj is not None and e.energy_mj > 0 for e in table.entries.values())
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().err  # a complete, matching table is reused
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert main(["predict", "--table", str(out), "--arch", arch]) == 0
    assert "mJ (estimated)" in capsys.readouterr().out


def test_profile_errors_are_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[runtime]\nintra_op_threads = -1\n')
    assert main(["profile", "--device", str(bad), "--space", "nb201", "--input", "3x8x8"]) == 1
    assert "field 'runtime.intra_op_threads'" in capsys.readouterr().err
    cuda = Path(__file__).resolve().parents[2] / "devices" / "cuda-gpu.toml"
    assert main(["profile", "--device", str(cuda), "--space", "nb201", "--input", "3x8x8", "--out", str(tmp_path / "c.json")]) == 1
    assert "not available" in capsys.readouterr().err
    assert main(["predict", "--table", str(tmp_path / "missing.json"), "--arch", "x"]) == 1
    assert "no such latency table" in capsys.readouterr().err
