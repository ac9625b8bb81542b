"""Input a hostile or careless user gives: every case is one line on stderr with its documented exit
status (2: usage, 1: runtime), never a traceback, nothing written outside its folder and nothing
silently accepted."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas.cli import main

BENCH = Path(__file__).parents[1] / "data" / "nb201_canonical.csv.gz"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SEARCH = ["search", "--space", "nb201", "--benchmark", str(BENCH), "--objective", "accuracy:max",
          "--objective", "pi5_onnx_latency_ms:min", "--evaluations", "6", "--no-progress"]

TRAIN = ["search", "--space", "nb201", "--input", "1x8x8", "--objective", "accuracy:max", "--objective", "params:min",
         "--accuracy", "train", "--accuracy-opt", "dataset=digits", "--no-progress", "--run-dir", "x"]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (log lines of the work done before it may precede it)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert errors[0].startswith("hwnas") and err.endswith(errors[0])  # the last line, and only one
    return errors[0]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("hostile") / "run"
    assert main([*SEARCH, "--strategy", "random", "--run-dir", str(run)]) == 0
    return run


def _table_with(tiny_table, tmp_path: Path, change: Callable[[dict], None]) -> str:
    data = json.loads(Path(tiny_table.path).read_text())
    change(data)
    path = tmp_path / f"edited{len(list(tmp_path.glob('edited*')))}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _first_entry(data: dict) -> dict:
    return data["entries"][next(iter(data["entries"]))]


def _bench_with(tmp_path: Path, change: Callable[[pd.DataFrame], pd.DataFrame | str]) -> list[str]:
    out = change(pd.read_csv(BENCH))
    path = tmp_path / f"bench{len(list(tmp_path.glob('bench*')))}.csv"
    if isinstance(out, str):
        path.write_text(out)
    else:
        out.to_csv(path, index=False)
    return [*SEARCH[:4], str(path), *SEARCH[5:], "--run-dir", str(tmp_path / f"r-{path.stem}")]


def _ragged(df: pd.DataFrame) -> str:
    lines = df.to_csv(index=False).splitlines()
    lines[4] += ",9,9"
    return "\n".join(lines) + "\n"


def _duplicate(df: pd.DataFrame) -> pd.DataFrame:
    twin = df.iloc[[5]].copy()
    twin["accuracy"] = 1.0
    return pd.concat([df, twin])


def _set(df: pd.DataFrame, value: float) -> pd.DataFrame:
    df.loc[3, "pi5_onnx_latency_ms"] = value
    return df


USAGE: list[tuple[list[str], str]] = [
    (["sample", "--space", "nb201", "--seed", "-1"], "--seed: -1 is below the minimum 0"),
    (["sample", "--space", "nb201", "--n", "abc"], "'abc' is not an integer"),
    (["describe", "--space", "nb201", "--input", "3x100000x100000", "--arch", ARCH], "GiB is available"),
    ([*SEARCH, "--strategy", "nsga2", "--strategy-opt", "pop_size=-3", "--run-dir", "x"], "pop_size=-3: must be in [2"),
    ([*SEARCH, "--strategy", "nsga2", "--strategy-opt", "pop_size=abc", "--run-dir", "x"], "pop_size='abc': not a number"),
    ([*SEARCH, "--strategy", "rl", "--strategy-opt", "reward=bogus", "--run-dir", "x"], "reward='bogus': not one of monas"),
    ([*SEARCH, "--strategy", "bo", "--strategy-opt", "nope=1", "--run-dir", "x"], "unknown option 'nope'"),
    ([*SEARCH, "--time-limit", "-1", "--run-dir", "x"], "--time-limit"),
    ([*SEARCH, "--time-limit", "nan", "--run-dir", "x"], "--time-limit"),
    ([*SEARCH, "--accuracy-opt", "foo=1", "--run-dir", "x"], "takes no options"),
    ([*SEARCH, "--budget", "latency_ms=3", "--run-dir", "x"], "budget 'latency_ms=3'"),
    (["validate", "--table", "t.json", "--samples", "0"], "--samples: 0 is below the minimum 3"),
    (["profile", "--device", "d.toml", "--space", "nb201", "--input", "3x8x8", "--context-models", "2"],
     "--context-models: 2 is below the minimum 3"),
    (["export", "run", "--out", "o", "--limit", "0"], "--limit: 0"),
    (["bench", "--space", "nb201", "--table", str(BENCH), "--workers", "0", "--out", "o"], "--workers: 0"),
    (["nonsense"], "invalid choice"),
    (["search", "--space", "nb201", "--objectives", "accuracy-latncy", "--run-dir", "x"],
     "did you mean 'accuracy-latency'? `hwnas objectives` lists them"),
    (["profile", "--device", "local-cpo", "--space", "nb201", "--input", "3x8x8"], "did you mean 'local-cpu'?"),
    ([*SEARCH, "--executor", "processes:0", "--run-dir", "x"], "give the number of workers"),
    ([*SEARCH, "--executor", "processes:100000", "--run-dir", "x"], "100000 workers on"),
    ([*SEARCH, "--strategy", "bo", "--strategy-opt", "surrogate=xyz", "--run-dir", "x"], "surrogate='xyz': not one of forest"),
    ([*SEARCH, "--objective", "foo:min", "--run-dir", "x"], "no source provides metric 'foo'"),
    ([*SEARCH, "--budget", "foo<=1", "--run-dir", "x"], "no source provides metric 'foo'"),
    ([*SEARCH, "--objectives", "accuracy-latency", "--run-dir", "x"], "give either --objectives"),
    ([*TRAIN, "--accuracy-opt", "colour=red"], "train: unknown option 'colour'"),
    ([*TRAIN, "--accuracy-opt", "epochs=-1"], "train: option epochs=-1: must be in [1, 10000]"),
    ([*TRAIN, "--accuracy-opt", "lr=nan"], "train: option lr=nan: not a finite number"),
    ([*TRAIN, "--accuracy-opt", "quantized=maybe"], "give 1 or 0"),
    (["search", "--space", "mobilenet", "--input", "1x8x8", "--objective", "accuracy:max", "--objective", "params:min",
      "--accuracy", "supernet", "--accuracy-opt", "path=.", "--run-dir", "x"],
     "supernet: option path=.: is a folder"),
    (["build", "--space", "nb201", "--input", "3x8x8", "--arch", ARCH, "--opset", "999", "--output", "m.onnx"],
     "999 is above the maximum 23"),
    (["build", "--space", "nb201", "--input", "3x8x8", "--arch", ARCH, "--opset", "22", "--output", "m.onnx"],
     "--opset 22: the torchscript exporter writes opsets 17 to 20"),
    ([*SEARCH, "--evaluations", "99999999999999999999999", "--run-dir", "x"], "above the maximum 10,000,000"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE, ids=[m for _, m in USAGE])
def test_usage_errors_are_one_line_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths of the cases land here
    assert main(argv) == 2
    assert not list(tmp_path.iterdir())  # refused before anything was written
    assert message in one_line(capsys)


def test_bad_input_files_are_one_line_exit_1(tmp_path: Path, tiny_table, bench_run: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    truncated = tmp_path / "t.csv.gz"
    truncated.write_bytes(BENCH.read_bytes()[:5000])
    front_cut = tmp_path / "front-cut"
    shutil.copytree(bench_run, front_cut)
    (front_cut / "front.json").write_text((bench_run / "front.json").read_text()[:300])
    cases: list[tuple[list[str], str]] = [
        (["doctor", "--device", str(latin)], "not UTF-8 text"),
        (["predict", "--table", str(latin), "--arch", ARCH], "not UTF-8 text"),
        ([*SEARCH[:5], "--objectives", str(latin), *SEARCH[9:], "--run-dir", str(tmp_path / "p")], "not UTF-8 text"),
        (["predict", "--table", _table_with(tiny_table, tmp_path, lambda d: _first_entry(d).update(latency_ms=-5.0)),
          "--arch", ARCH], "latency_ms: -5.0 is not a finite positive number"),
        (["predict", "--table", _table_with(tiny_table, tmp_path, lambda d: _first_entry(d).update(latency_ms="x")),
          "--arch", ARCH], "is not a finite positive number"),
        (["predict", "--table", _table_with(tiny_table, tmp_path, lambda d: d.update(statistic="p99")), "--arch", ARCH],
         "'p99' is not one of"),
        (_bench_with(tmp_path, lambda d: _set(d, -2.0)), "column 'pi5_onnx_latency_ms': -2 is not a finite number > 0"),
        (_bench_with(tmp_path, lambda d: _set(d, float("nan"))), "nan is not a finite number > 0"),
        (_bench_with(tmp_path, _duplicate), "repeats the architecture of row 7"),
        (_bench_with(tmp_path, _ragged), "row 5 has more fields than the header"),
        ([*SEARCH[:4], str(truncated), *SEARCH[5:], "--run-dir", str(tmp_path / "tr")], "cannot read the benchmark table"),
        (["report", str(front_cut)], "front.json: the front is not valid JSON"),
        ([*SEARCH, "--run-dir", str(latin)], "names an existing file, not a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        assert message in one_line(capsys), argv


def test_outputs_are_never_written_through_links_or_onto_devices(tmp_path: Path, bench_run: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "m.onnx"
    link.symlink_to(victim)
    build = ["build", "--space", "nb201", "--input", "3x8x8", "--arch", ARCH]
    assert main([*build, "--output", str(link)]) == 1
    assert "symbolic link" in one_line(capsys)
    if Path("/dev/null").exists():
        assert main([*build, "--output", "/dev/null"]) == 1
        assert "not a regular file" in one_line(capsys)
        assert Path("/dev/null").is_char_device()
    run = tmp_path / "run"
    shutil.copytree(bench_run, run)
    (run / "front.json").unlink()
    (run / "front.json").symlink_to(victim)
    assert main(["search", "--resume", str(run), "--no-progress"]) == 1
    assert "front.json: is a symbolic link" in one_line(capsys)
    assert victim.read_text() == "keep me"
    assert main([*build, "--output", str(tmp_path / "ok.onnx")]) == 0
    mode = (tmp_path / "ok.onnx").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the user's umask, not mkstemp's 0600


def test_an_edited_archive_row_is_refused(tmp_path: Path, bench_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(bench_run, run)
    db = sqlite3.connect(run / "archive.sqlite")
    seq, metrics = db.execute("SELECT seq, metrics FROM evaluation ORDER BY seq DESC LIMIT 1").fetchone()
    edited = json.loads(metrics)
    edited["accuracy"] = 99.29
    db.execute("UPDATE evaluation SET metrics = ? WHERE seq = ?", (json.dumps(edited), seq))
    db.commit()
    db.close()
    assert main(["search", "--resume", str(run), "--no-progress"]) == 1
    assert f"evaluation {seq}" in one_line(capsys)
    assert main(["report", str(run)]) == 1
    assert "fails its checksum" in one_line(capsys)


def test_a_lost_write_ahead_log_is_refused(tmp_path: Path) -> None:
    from hwnas.optimize.archive import Archive, ArchiveError
    from hwnas.evaluation.sources import Evaluation, Status
    from hwnas.spaces import get_space

    space = get_space("nb201", input_shape="3x8x8")
    archive = Archive(tmp_path / "a" / "archive.sqlite")
    for arch in space.sample(__import__("numpy").random.default_rng(0), 5):
        archive.add(Evaluation(arch, {"accuracy": 50.0}, Status.COMPLETE), strategy="random", seed=0, started=0.0)
    # a copy taken while the search runs, without the -wal file: the committed rows are not in it
    copy = tmp_path / "b"
    copy.mkdir()
    shutil.copy(tmp_path / "a" / "archive.sqlite", copy / "archive.sqlite")
    shutil.copy(tmp_path / "a" / "archive.sqlite.seal", copy / "archive.sqlite.seal")
    with pytest.raises(ArchiveError, match="write-ahead log"):
        Archive(copy / "archive.sqlite")
    archive.close()
    assert len(list(Archive(tmp_path / "a" / "archive.sqlite").records())) == 5


def test_random_search_stops_when_the_budget_leaves_nothing_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # about 15 architecture classes are this fast: 60 evaluations cannot be spent
    assert main([*SEARCH[:-3], "--evaluations", "60", "--no-progress", "--strategy", "random", "--budget",
                 "pi5_onnx_latency_ms<=1.05", "--run-dir", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert "stopped early" in captured.out + captured.err


OPTIONS = ["--space", "--input", "--classes", "--space-opt", "--n", "--seed", "--arch", "--json", "--output",
           "--opset", "--exporter", "--table", "--now"]
TEXT = st.one_of(st.sampled_from(["-1", "0", "1", "3x8x8", "nb201", "mobilenet", "C=0", "N=-1", "1e309", "nan", "",
                                  ARCH, "w1.0", "\x00", "é", "x" * 300, "--", "-", "3x0x8"]),
                 st.text(max_size=12))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["sample", "describe", "build", "predict", "spaces"]),
       args=st.lists(st.tuples(st.sampled_from(OPTIONS), TEXT), max_size=6))
def test_fuzzed_command_lines_never_raise(command: str, args: list[tuple[str, str]], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command]
    for option, value in args:
        argv += [option] if option in ("--json", "--now") else [option, value]
        if option == "--output":
            argv[-1] = str(tmp_path / "fuzz.onnx")  # nothing written outside the test's folder
    code = main(argv)  # an exception here is a traceback for the user: the test fails
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1, 2)
    if code:
        assert err.strip().splitlines()[-1].startswith("hwnas") and ": error: " in err


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import hwnas.core.files as files

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    out = tmp_path / "spaces"
    assert main(["sample", "--space", "nb201", "--n", "2"]) == 0  # reading needs no space
    capsys.readouterr()
    src = tmp_path / "indexed.csv"
    src.write_text("index,acc\n0,1.0\n1,2.0\n")
    assert main(["bench-import", "--input", str(src), "--output", str(out / "x.csv")]) == 1
    assert "No space left on device" in one_line(capsys)
    assert out.is_dir() and not list(out.iterdir())  # no half-written file, no temporary left
    assert main(["bench-import", "--input", str(BENCH), "--output", str(out / "y.csv")]) == 1
    assert "no index column 'index'" in one_line(capsys)  # a gzipped table is read, not a traceback


def test_files_with_values_out_of_range_are_refused(tmp_path: Path, tiny_table, capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[list[str], str]] = [
        (["predict", "--table", _table_with(tiny_table, tmp_path, lambda d: _first_entry(d).update(latency_ms=1e308)),
          "--arch", ARCH], "latency_ms: 1e+308 is not a finite positive number <= 3.6e+06"),
        (_bench_with(tmp_path, lambda d: _set_accuracy(d, 1e308)), "1e+308 is not an accuracy in [0, 100]"),
        (_bench_with(tmp_path, lambda d: _set_accuracy(d, -1.0)), "-1 is not an accuracy in [0, 100]"),
        (_bench_with(tmp_path, lambda d: _set_accuracy(d, 100.5)), "100.5 is not an accuracy in [0, 100]"),
    ]
    for extra, message in (("[runtime]\naffinity = [999]", "field 'runtime.affinity': core 999 is not one"),
                           ("[runtime]\nintra_op_threads = 1000000000", "must be in [0, 4096]"),
                           (f"[runtime]\nintra_op_threads = {(os.cpu_count() or 1) + 1}", "threads on a machine with"),
                           ("[protocol]\nwarmup_s = inf", "field 'protocol.warmup_s': expected a finite number"),
                           ("[protocol]\nmax_seconds = 1e300", "max_seconds <= 86400")):
        spec = tmp_path / f"spec{len(cases)}.toml"
        spec.write_text(f'name = "x"\n{extra}\n')
        cases.append((["doctor", "--device", str(spec)], message))
    for argv, message in cases:
        assert main(argv) == 1, argv
        assert message in one_line(capsys), argv


def _set_accuracy(df: pd.DataFrame, value: float) -> pd.DataFrame:
    df.loc[3, "accuracy"] = value
    return df


def test_a_header_with_a_byte_order_mark_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + gzip.decompress(BENCH.read_bytes()))
    assert main([*SEARCH[:4], str(bom), *SEARCH[5:], "--strategy", "random", "--run-dir", str(tmp_path / "r")]) == 0


def test_an_archive_behind_a_link_is_refused(tmp_path: Path, bench_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(bench_run, run)
    (run / "archive.sqlite").unlink()
    (run / "archive.sqlite").symlink_to(bench_run / "archive.sqlite")
    before = (bench_run / "archive.sqlite").read_bytes()
    assert main(["search", "--resume", str(run), "--no-progress", "--evaluations", "9"]) == 1
    assert "archive.sqlite: is a symbolic link" in one_line(capsys)
    assert (bench_run / "archive.sqlite").read_bytes() == before


def test_resume_extends_with_evaluations_and_refuses_other_changes(tmp_path: Path, bench_run: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.optimize import RunDir

    run = tmp_path / "run"
    shutil.copytree(bench_run, run)
    for flags, message in ((["--seed", "99"], "seed 99 differs from the run's seed 0"),
                           (["--strategy", "rl"], "strategy 'rl' differs from the run's strategy 'random'"),
                           (["--budget", "accuracy>=3"], "--budget: a resumed run keeps the settings"),
                           (["--evaluations", "2"], "--evaluations 2: the run has already spent 6")):
        assert main(["search", "--resume", str(run), "--no-progress", *flags]) == 2, flags
        assert message in one_line(capsys)
    assert main(["search", "--resume", str(run), "--no-progress", "--seed", "0", "--strategy", "random"]) == 0
    assert main(["search", "--resume", str(run), "--no-progress", "--evaluations", "9"]) == 0
    assert "random: 9 evaluations" in capsys.readouterr().out
    assert RunDir(run).config().evaluations == 9  # stored: a later plain --resume keeps the new count
    from hwnas.optimize.config import ConfigError
    from hwnas.optimize.minimize import resume

    with pytest.raises(ConfigError, match="'sead' is not a setting of a run"):  # a misspelt change is not ignored
        resume(run, changes={"sead": 1})


def test_a_budget_that_excludes_every_model_or_binds_none_is_said_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for budget, message in (("pi5_onnx_latency_ms<=0.001", "excludes all the 200 models sampled, whose "
                                                           "pi5_onnx_latency_ms spans 1.0"),
                            ("pi5_onnx_latency_ms<=60", "binds none of the 200 models sampled")):
        assert main([*SEARCH, "--strategy", "random", "--budget", budget, "--run-dir", str(tmp_path / budget)]) == 0
        assert message in capsys.readouterr().err
