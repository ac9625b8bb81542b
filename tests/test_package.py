"""hwnas as a user installs and meets it: a wheel that works alone from an empty folder, the README's
quickstart run verbatim, the documentation site, presets by name, a CLI that answers without
torch, and a Python API that returns typed results and never prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import hwnas
from hwnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tests" / "data" / "nb201_canonical.csv.gz"
BIN = Path(sys.executable).parent


def test_version_and_help_do_not_load_torch() -> None:
    code = ("import sys; from hwnas.cli import main\n"
            "for argv in (['--version'], ['-V'], ['--help'], ['search', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"hwnas {hwnas.__version__}" in done.stdout


def test_every_option_key_is_listed_in_the_help() -> None:
    from hwnas.cli import option_keys

    # generated from the registries: `python -m hwnas.cli.option_keys --write` after adding an option
    assert option_keys._current() == option_keys.generate()
    assert "surrogate (forest|gp)" in option_keys.STRATEGY_KEYS["bo"]
    assert "quantized" in option_keys.ACCURACY_KEYS["train"] and "C, N" == option_keys.SPACE_KEYS["nb201"]


def test_presets_are_found_by_name_and_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.device.spec import load_device
    from hwnas.optimize.objectives import load_objectives

    monkeypatch.chdir(tmp_path)  # nothing here: the names resolve to the shipped presets
    assert load_device("local-cpu").name == "local-cpu"
    assert load_objectives("accuracy-latency").names == ["accuracy", "latency_ms"]
    assert main(["devices", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"local-cpu", "cuda-gpu", "remote-pi"} <= names
    (tmp_path / "devices").mkdir()  # a user's own preset beside their work comes first
    (tmp_path / "devices" / "local-cpu.toml").write_text('name = "my-cpu"\n')
    assert load_device("local-cpu").name == "my-cpu"
    assert main(["profile", "--device", "no-such-device", "--space", "nb201", "--input", "3x8x8"]) == 2  # a usage error: a name that names nothing
    assert "'no-such-device': no such device and no such file" in capsys.readouterr().err


def test_the_python_api_returns_typed_results_and_never_prints(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    problem = hwnas.Problem.build("nb201", ["accuracy:max", "pi5_onnx_latency_ms:min"],
                                  budgets=["pi5_onnx_latency_ms<=3"], sources=hwnas.Sources(benchmark=BENCH))
    result = hwnas.search(problem, tmp_path / "r", evaluations=8, strategy="random")
    assert isinstance(result, hwnas.SearchResult) and result.front
    member = result.front[0]
    assert isinstance(member, hwnas.FrontMember) and member.feasible and member["pi5_onnx_latency_ms"] <= 3
    frame = result.to_pandas()
    assert list(frame["arch"]) == [m.arch for m in result.front]
    assert list(frame.columns[:2]) == ["accuracy", "pi5_onnx_latency_ms"]  # what a cut print still shows
    assert list(frame.columns[-2:]) == ["arch", "arch_id"]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # the library logs; nothing is shown unless configured
    again = hwnas.resume(tmp_path / "r")
    assert [m.arch_id for m in again.front] == [m.arch_id for m in result.front]


def test_logging_configured_the_standard_way_shows_a_search_as_it_goes(tmp_path: Path) -> None:
    script = (f"import logging, hwnas\n"
              f"logging.basicConfig(level='INFO')\n"
              f"p = hwnas.Problem.build('nb201', ['accuracy:max', 'pi5_onnx_latency_ms:min'], "
              f"sources=hwnas.Sources(benchmark={str(BENCH)!r}))\n"
              f"hwnas.search(p, {str(tmp_path / 'r')!r}, evaluations=4, strategy='random')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "INFO:hwnas.progress:evaluation 1/4 (" in done.stderr and "evaluation 4/4" in done.stderr
    assert "since start, about 0 s left): " in done.stderr  # its own estimate once 3 evaluations ran


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README.md has no quickstart block"
    return [cmd.strip() for cmd in block.group(1).replace("\\\n", " ").splitlines() if cmd.strip()]


def test_the_readme_quickstart_runs_verbatim(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in _quickstart():
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index["exported"] == 2 and all(m["int8_onnx"] for m in index["models"])
    assert (tmp_path / "runs" / "quick" / "report" / "index.html").is_file()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_wheel_works_alone_from_an_empty_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("hwnas-*.whl"))
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    # dependencies (torch and the rest) come from this environment's site-packages; hwnas itself
    # only from the wheel: a path line in a .pth file does not run the editable install's hook
    site = Path(subprocess.run([str(fresh / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install",
                              "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    work = tmp_path / "empty"
    work.mkdir()
    hw = str(fresh / "bin" / "hwnas")

    def run(*argv: str) -> str:
        done = subprocess.run([hw, *argv], cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, f"{argv}\n{done.stderr[-2000:]}"
        return done.stdout

    where = subprocess.run([str(fresh / "bin" / "python"), "-c", "import hwnas; print(hwnas.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout
    assert str(fresh) in where, where  # the wheel's copy, not the source tree
    assert "local-cpu" in run("devices")  # the presets travel in the wheel
    # a user's own spec with a short protocol: the wheel is under test here, not the protocol's duration
    (work / "quick.toml").write_text('name = "quick"\n[runtime]\nintra_op_threads = 1\n[protocol]\nwarmup_runs = 3\n'
                                     'warmup_s = 0.2\nmin_runs = 20\nmax_runs = 80\nmin_span_s = 0.2\n')
    run("profile", "--device", "quick.toml", "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1",
        "--context-models", "3", "--no-progress")
    table = work / "latency_tables" / "quick" / "nb201-N1-3x8x8.json"
    assert table.is_file()
    run("search", "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--objectives", "accuracy-latency",
        "--table", str(table), "--benchmark", str(BENCH), "--evaluations", "4", "--strategy", "random",
        "--run-dir", "run", "--no-progress")
    run("export", "run", "--out", "models", "--limit", "1", "--no-progress")
    assert json.loads((work / "models" / "index.json").read_text())["exported"] == 1


@pytest.mark.skipif(shutil.which("mkdocs", path=str(BIN)) is None, reason="needs the docs extra: pip install '.[docs]'")
def test_the_documentation_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "hwnas profile" in cli and "--calibration-data" in cli  # generated from the parser
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "FrontMember" in api and "to_pandas" in api
