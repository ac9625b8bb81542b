"""INT8 deployment: quantized tables, a search that sees int8 latency and accuracy, exports that
measure fp32 and int8 side by side. Everything runs for real on this CPU with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.device.spec import DeviceSpecError, parse_device
from hwnas.latency.measurement import Job, export_job
from hwnas.spaces import get_space
from hwnas.models.quantize import Calibration, check_quantized, onnx_predictions

from conftest import QUICK_DEVICE

INT8_DEVICE = {**QUICK_DEVICE, "name": "test-cpu-int8",
               "runtime": {**QUICK_DEVICE["runtime"], "precision": "int8"}}


def _write_spec(path: Path, data: dict) -> Path:
    lines = [f'name = "{data["name"]}"', "[runtime]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in data["runtime"].items()]
    lines += ["[protocol]"] + [f"{k} = {json.dumps(v)}" for k, v in data["protocol"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def int8_table(tmp_path_factory: pytest.TempPathFactory):
    from hwnas.latency.profiler import ProfileSettings, profile

    spec = parse_device(INT8_DEVICE, "int8.toml")
    space = get_space("nb201", input_shape="3x8x8", N=1)
    path = tmp_path_factory.mktemp("int8") / "nb201-3x8x8-int8.json"
    return profile(spec, space, out=path, progress=False, log=lambda _m: None,
                   settings=ProfileSettings(context_models=8))


def test_precision_in_the_spec_is_checked_in_one_line() -> None:
    with pytest.raises(DeviceSpecError, match="'fp64' is not one of fp32, int8, fp16"):
        parse_device({"name": "x", "runtime": {"precision": "fp64"}})
    with pytest.raises(DeviceSpecError, match="fp16 needs a GPU provider"):
        parse_device({"name": "x", "runtime": {"precision": "fp16"}})
    with pytest.raises(DeviceSpecError, match="calibration_data.*only used with precision"):
        parse_device({"name": "x", "runtime": {"calibration_data": "digits"}})
    assert parse_device({"name": "x"}).runtime.precision == "fp32"


def test_quantized_files_hold_qdq_operators_and_run(tmp_path: Path) -> None:
    space = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    spec = parse_device(INT8_DEVICE, "int8.toml")
    arch = space.sample(np.random.default_rng(0), 1)[0]
    block = space.catalog()[3]
    for job in (Job("model", arch.string, arch=arch), Job("block", block.key, block=block)):
        path, shapes = export_job(job, space, spec, tmp_path, seed=0)
        ops = check_quantized(path)
        assert ops.get("QuantizeLinear", 0) >= 1 and ops.get("DequantizeLinear", 0) >= 1
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    model_path = export_job(Job("model", arch.string, arch=arch), space, spec, tmp_path, seed=0)[0]
    assert onnx_predictions(model_path, x[:1]).shape == (1,)  # the static batch of the device runs


def test_a_tiny_int8_profile_and_validate(int8_table, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = int8_table
    assert table.complete and table.fingerprint["precision"] == "int8"
    q = table.quantization
    assert q["format"] == "QDQ" and q["calibration"]["models"]["real_images"] is False
    assert all(e.latency_ms > 0 for e in table.entries.values())
    assert main(["validate", "--table", str(table.path), "--samples", "4", "--no-progress"]) == 0
    report = json.loads(Path(str(table.path).replace(".json", ".validation.json")).read_text())
    assert len(report["models"]) == 4
    # the default table name carries the precision: an fp32 table is never overwritten
    from hwnas.latency.table import default_table_path

    assert default_table_path("d", get_space("nb201", input_shape="3x8x8"), precision="int8").name.endswith("-int8.json")


def test_a_table_of_the_other_precision_is_refused(int8_table, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fp32 = _write_spec(tmp_path / "fp32.toml", {**QUICK_DEVICE, "runtime": {"intra_op_threads": 1}})
    capsys.readouterr()
    assert main(["validate", "--table", str(int8_table.path), "--device", str(fp32), "--samples", "3",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "precision: table 'int8', now 'fp32'" in err
    # an int8 (quantized) search refuses an fp32 table, before any training
    from hwnas.latency.profiler import ProfileSettings, profile

    fp32_table = profile(parse_device(QUICK_DEVICE, "q.toml"), get_space("nb201", input_shape="3x8x8", N=1), out=tmp_path / "fp32.json", progress=False, log=lambda _m: None,
                         settings=ProfileSettings(context_models=3))
    argv = ["search", "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--objective", "accuracy:max",
            "--objective", "latency_ms:min", "--accuracy", "train", "--accuracy-opt", "quantized=1",
            "--table", str(fp32_table.path), "--evaluations", "2", "--run-dir", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 1
    assert "an int8 search needs an int8 table" in capsys.readouterr().err


def test_calibration_images_come_from_the_train_split_only() -> None:
    from hwnas.data.datasets import load_dataset, make_splits, standardize

    ds = load_dataset("digits")
    splits = make_splits(ds, 0)
    mean, std = standardize(ds, splits.train)
    cal = Calibration.from_train_split("digits", ds.x, splits.train, mean, std, split_seed=0)
    standardized = (ds.x - mean[None, :, None, None]) / std[None, :, None, None]
    flat = standardized.reshape(len(ds), -1)
    rows = [int(np.flatnonzero(np.all(np.isclose(flat, img.reshape(1, -1), atol=1e-5), axis=1))[0])
            for img in cal.images]
    assert len(rows) == len(cal.images) == 32
    assert set(rows) <= set(splits.train.tolist())
    assert not set(rows) & set(splits.test.tolist()) and not set(rows) & set(splits.val.tolist())
    assert "train split" in cal.describe()["source"]


def test_quantized_training_accuracy_is_scored_through_onnxruntime() -> None:
    from hwnas.evaluation.training import TrainAccuracy

    space = get_space("dppnet", input_shape="1x8x8")
    arch = space.sample(np.random.default_rng(1), 1)[0]
    q = TrainAccuracy(space, dataset="digits", epochs=2, quantized=1)
    f = TrainAccuracy(space, dataset="digits", epochs=2)
    acc_q, acc_f = float(q.evaluate([arch])["accuracy"][0]), float(f.evaluate([arch])["accuracy"][0])
    assert 30.0 < acc_q <= 100.0 and abs(acc_q - acc_f) < 10.0
    assert q.describe()["quantized"] and not f.describe()["quantized"]
    assert q._key(arch) != f._key(arch)  # cached apart


def test_export_writes_fp32_and_int8_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = Path(__file__).parents[1] / "data" / "nb201_canonical.csv.gz"
    run, out = tmp_path / "run", tmp_path / "out"
    assert main(["search", "--space", "nb201", "--input", "3x8x8", "--benchmark", str(bench), "--objective",
                 "accuracy:max", "--objective", "pi5_onnx_latency_ms:min", "--evaluations", "6", "--strategy", "random",
                 "--run-dir", str(run), "--no-progress"]) == 0
    spec = _write_spec(tmp_path / "dev.toml", QUICK_DEVICE)
    assert main(["export", str(run), "--out", str(out), "--device", str(spec), "--limit", "2", "--int8",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err  # results on stdout, the per-model log on stderr
    assert "int8" in text and ("faster than fp32" in text)  # faster, or NOT faster, said either way
    index = json.loads((out / "index.json").read_text())
    for m in index["models"]:
        card = json.loads((out / m["card_json"]).read_text())
        q = card["int8"]
        assert (out / q["onnx"]).is_file() and q["file_size_bytes"] < q["fp32_file_size_bytes"]
        assert q["latency"]["measured_ms"] > 0 and q["speedup"] == pytest.approx(
            q["latency"]["fp32_measured_ms"] / q["latency"]["measured_ms"])
        assert q["quantization"]["operators"]["QuantizeLinear"] >= 1
        assert q["accuracy"]["int8_test"] is None and "--retrain" in q["accuracy"]["note"]  # untrained weights
        assert card["precision"] == "fp32" and m["int8_speedup"] == q["speedup"]
        assert "fp32 and int8 side by side" in (out / m["card_md"]).read_text()
