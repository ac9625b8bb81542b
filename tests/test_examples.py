"""The examples run as written (the fast ones by default; `make test-all` runs the slow ones, and
profile_device.sh is exercised by `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "bench")}


@pytest.mark.slow  # the Python API is tested in test_package; make test-all runs this
def test_api_tour(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "api_tour.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "table:" in out and "front: accuracy" in out and "exported" in out and "report:" in out
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index["models"] and all((tmp_path / "models" / m["onnx"]).is_file() for m in index["models"])
    assert (tmp_path / "search" / "report" / "index.html").is_file()


def test_search_budget_script(tmp_path: Path) -> None:
    out = subprocess.run(["bash", str(ROOT / "examples" / "search_budget.sh")], capture_output=True, text=True,
                         check=True, env=_env(tmp_path)).stdout
    assert "nsga2: 80 evaluations" in out and "front.json" in out


def test_compare_strategies_script(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "examples" / "compare_strategies.sh")], capture_output=True, text=True,
                   check=True, env=_env(tmp_path))
    assert (tmp_path / "bench" / "summary.json").is_file() and (tmp_path / "bench" / "hv.png").is_file()


@pytest.mark.slow  # the README quickstart test covers profile-search-export-report
def test_export_front_script(tmp_path: Path) -> None:
    out = subprocess.run(["bash", str(ROOT / "examples" / "export_front.sh")], capture_output=True, text=True,
                         check=True, env=_env(tmp_path)).stdout
    assert "exported" in out and "report:" in out
    index = json.loads((tmp_path / "run" / "models" / "index.json").read_text())
    for m in index["models"]:
        card = json.loads((tmp_path / "run" / "models" / m["card_json"]).read_text())
        assert card["accuracy"]["weights"] == "retrained" and card["latency"]["measured_ms"] > 0


@pytest.mark.slow  # the executors are tested in test_executors
def test_scale_out_script(tmp_path: Path) -> None:
    import socket

    pytest.importorskip("distributed", reason="the [dask] extra is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run(["bash", str(ROOT / "examples" / "scale_out.sh")], capture_output=True, text=True,
                         check=True, env={**_env(tmp_path), "PORT": str(port)}, timeout=300).stdout
    assert out.count("nsga2: 8 evaluations") == 2
    fronts = [json.loads((tmp_path / "run" / r / "front.json").read_text())["front"] for r in ("local-cluster", "cluster")]
    assert fronts[0] == fronts[1]
