"""``hwnas measure``: any ONNX file timed with the device's protocol; hand-built files that it
must take (another opset, a dynamic batch) and refuse in one line (dynamic spatial dimensions, an
op the runtime lacks, a truncated file, not ONNX at all)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwnas.cli import main
from hwnas.latency.onnx_models import ModelFileError, count_macs, inspect_model, measure_models


def _conv_model(path: Path, *, batch: int | str = 1, side: int | str = 8, opset: int = 17, channels: int = 4,
                op: str = "Conv", domain: str = "") -> Path:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, channels, side, side])
    node = helper.make_node(op, ["x", "w"], ["y"], pads=[1, 1, 1, 1], domain=domain)
    graph = helper.make_graph([node], "g", [x], [y], initializer=[w])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=8), str(path))
    return path


def test_counts_and_shapes_are_read_from_the_file(tmp_path: Path) -> None:
    f = inspect_model(_conv_model(tmp_path / "a.onnx", channels=4), batch_size=1)
    assert f.inputs == ((3, 8, 8),) and f.params == 4 * 3 * 3 * 3
    assert f.macs == 4 * 8 * 8 * 3 * 3 * 3 == count_macs(onnx.load(str(tmp_path / "a.onnx")))
    dynamic = inspect_model(_conv_model(tmp_path / "b.onnx", batch="N"), batch_size=2)  # the batch is bound
    assert dynamic.inputs == ((3, 8, 8),)
    older = inspect_model(_conv_model(tmp_path / "c.onnx", opset=11), batch_size=1)  # another opset is fine
    assert older.params == f.params
    # memory: onnxruntime's own plan (input and output at least); the weights; a dynamic batch bound
    from hwnas.models.memory import onnxruntime_peak

    assert f.peak_memory_kb * 1024 == onnxruntime_peak(str(tmp_path / "a.onnx")).requested_peak_bytes
    assert f.peak_memory_kb >= (3 + 4) * 8 * 8 * 4 / 1024 and f.model_kb == f.params * 4 / 1024
    assert dynamic.peak_memory_kb == 2 * f.peak_memory_kb


@pytest.mark.parametrize("make, message", [
    (lambda p: _conv_model(p, side="H"), "dynamic dimension 2 (H); export it with static shapes"),
    (lambda p: _conv_model(p, batch=4), "fixed batch of 4, and the device measures batches of 1"),
    (lambda p: (p.write_bytes(_conv_model(p).read_bytes()[:40]), p)[1], "not a valid ONNX model"),
    (lambda p: (p.write_text("hello"), p)[1], "not a valid ONNX model"),
])
def test_files_it_cannot_measure_are_one_line(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path / "bad.onnx")
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        inspect_model(path, batch_size=1)


def test_an_op_the_runtime_lacks_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], quick_spec) -> None:
    path = _conv_model(tmp_path / "custom.onnx", op="NoSuchConv", domain="com.example")
    with pytest.raises(ModelFileError, match="onnxruntime .CPUExecutionProvider. cannot run it"):
        measure_models(quick_spec, [path])
    assert main(["measure", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "custom.onnx" in err
    assert main(["measure", str(tmp_path / "missing.onnx")]) == 1


def test_several_models_are_timed_interleaved_one_row_each(tmp_path: Path, quick_spec,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    small = _conv_model(tmp_path / "small.onnx", channels=2, side=8)
    large = _conv_model(tmp_path / "large.onnx", channels=64, side=64)
    rows = measure_models(quick_spec, [small, large])
    assert [r.name for r in rows] == ["small", "large"] and rows[0].statistic == quick_spec.protocol.statistic
    assert 0 < rows[0].latency_ms < rows[1].latency_ms and rows[1].macs > rows[0].macs
    spec = tmp_path / "dev.toml"
    spec.write_text('name = "test-cpu"\n[runtime]\nintra_op_threads = 1\n'
                    '[protocol]\nwarmup_runs = 3\nwarmup_s = 0.1\nmin_runs = 20\nmax_runs = 40\nmin_span_s = 0.2\n')
    assert main(["measure", str(small), str(large), "--device", str(spec), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in lines] == ["small", "large"] and all(r["latency_ms"] > 0 for r in lines)
    assert lines[0]["sha256"] == inspect_model(small).sha256 and lines[0]["device"] == "test-cpu"


def _reference_file(path: Path, input_shape: str = "3x8x8") -> tuple[Path, str]:
    import torch

    from hwnas.models.onnx_io import export_onnx
    from hwnas.spaces import get_space

    space = get_space("nb201", input_shape=input_shape, N=1)
    arch = space.sample(np.random.default_rng(7), 1)[0]
    export_onnx(space.build(arch, seed=0), torch.zeros((1, *space.input_shape)), path, dynamic_batch=False)
    return path, arch.string


def test_a_reference_makes_the_budget_in_the_tables_terms_and_the_run_records_it(tiny_table, tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.latency.onnx_models import measure_reference
    from hwnas.latency.predictor import Predictor
    from hwnas.optimize.archive import Archive
    from hwnas.spaces import get_space

    ref_path, arch = _reference_file(tmp_path / "ref.onnx")
    space = get_space("nb201", input_shape="3x8x8", N=1)
    ref = measure_reference(ref_path, tiny_table, space)
    predicted = float(Predictor(tiny_table, space).predict([space.parse(arch)]).latency_ms[0])
    assert ref.latency_ms == pytest.approx(ref.measured_ms / ref.drift)
    assert ref.values()["peak_memory_kb"] == ref.peak_memory_kb > 0 and ref.values()["model_kb"] > 0
    # with the memory objectives, the reference's peak is a budget too (unless one is given)
    from hwnas.optimize.problem import Problem

    problem = Problem.build("nb201", ["accuracy:max", "latency_ms:min", "peak_memory_kb:min"], input_shape="3x8x8",
                            space_options={"N": 1}, reference=ref.to_dict())
    assert {c.name: c.bound for c in problem.objectives.constraints} == {
        "latency_ms": pytest.approx(ref.latency_ms), "peak_memory_kb": pytest.approx(ref.peak_memory_kb)}
    assert 0.5 < ref.latency_ms / predicted < 2.0  # the same model, in the table's terms, near its prediction
    bench = str(Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz")
    run = tmp_path / "run"
    argv = ["search", "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--objective", "accuracy:max",
            "--objective", "latency_ms:min", "--table", str(tiny_table.path), "--benchmark", bench,
            "--strategy", "random", "--evaluations", "6", "--no-progress"]
    assert main([*argv, "--reference", str(ref_path), "--budget", "latency_ms<=0.9x", "--run-dir", str(run)]) == 0
    assert "in the table's terms" in capsys.readouterr().out
    with Archive(run / "archive.sqlite", readonly=True) as a:
        config = a.meta("config")
    assert config["reference"]["sha256"] == inspect_model(ref_path).sha256
    (budget,) = [c["budget"] for c in config["objectives"]["constraints"]]
    assert budget.startswith("latency_ms<=")
    assert float(budget.removeprefix("latency_ms<=")) == pytest.approx(0.9 * config["reference"]["latency_ms"], rel=1e-5)
    assert main(["search", "--resume", str(run), "--evaluations", "8", "--no-progress"]) == 0  # kept on resume
    with Archive(run / "archive.sqlite", readonly=True) as a:
        assert a.meta("config")["reference"] == config["reference"] and a.meta("config")["objectives"] == config["objectives"]
    capsys.readouterr()
    assert main([*argv, "--budget", "latency_ms<=0.9x", "--run-dir", str(tmp_path / "no-ref")]) == 2
    assert "give --reference MODEL.onnx" in capsys.readouterr().err
    other, _ = _reference_file(tmp_path / "other.onnx", "3x16x16")
    assert main([*argv, "--reference", str(other), "--run-dir", str(tmp_path / "other")]) == 1
    assert "the reference takes input 3x16x16, and the search's space 3x8x8" in capsys.readouterr().err


def test_a_search_without_a_table_reuses_the_devices_cached_one_and_another_machines_is_left_alone(
        tiny_table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses
    import shutil

    from hwnas.device.spec import spec_from_record
    from hwnas.latency.profiler import cached_table
    from hwnas.latency.table import default_table_path
    from hwnas.spaces import get_space

    monkeypatch.chdir(tmp_path)
    space = get_space("nb201", input_shape="3x8x8", N=1)
    spec = spec_from_record(tiny_table.device)
    home = default_table_path(spec.name, space)
    home.parent.mkdir(parents=True)
    shutil.copy(tiny_table.path, home)
    said: list[str] = []
    again = cached_table(spec, space, progress=False, log=said.append)
    assert again.path == home and any("nothing to do" in line for line in said)  # reused, not re-profiled
    # the same device name with other runtime settings: another machine's table is left alone
    other = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, intra_op_threads=2))
    said.clear()
    mine = cached_table(other, space, progress=False, log=said.append)
    assert mine.path.parent.name.startswith(f"{spec.name}@") and mine.path.name == home.name and mine.complete
    assert any("made on another machine" in line for line in said)
    assert home.read_bytes() == tiny_table.path.read_bytes()
    # the command line: --device instead of --table finds the table and says so
    from tests.conftest import QUICK_DEVICE

    rt, pr = QUICK_DEVICE["runtime"], QUICK_DEVICE["protocol"]
    (tmp_path / "dev.toml").write_text(
        f'name = "{spec.name}"\n[runtime]\nintra_op_threads = {rt["intra_op_threads"]}\naffinity = {rt["affinity"]}\n'
        "[protocol]\n" + "".join(f"{k} = {v}\n" for k, v in pr.items()))
    bench = str(Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz")
    capsys.readouterr()
    assert main(["search", "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--objective", "accuracy:max",
                 "--objective", "latency_ms:min", "--device", str(tmp_path / "dev.toml"), "--benchmark", bench,
                 "--strategy", "random", "--evaluations", "4", "--run-dir", "r", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().err
