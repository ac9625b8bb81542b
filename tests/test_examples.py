"""The examples run as written (the fast ones; profile_device.sh is exercised by `make bench`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "bench")}


def test_api_tour(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "api_tour.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "predicted" in out and "front: accuracy" in out and "wrote" in out
    assert (tmp_path / "best.onnx").is_file() and (tmp_path / "search" / "archive.sqlite").is_file()


def test_search_budget_script(tmp_path: Path) -> None:
    out = subprocess.run(["bash", str(ROOT / "examples" / "search_budget.sh")], capture_output=True, text=True,
                         check=True, env=_env(tmp_path)).stdout
    assert "nsga2: 80 evaluations" in out and "front.json" in out


def test_compare_strategies_script(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "examples" / "compare_strategies.sh")], capture_output=True, text=True,
                   check=True, env=_env(tmp_path))
    assert (tmp_path / "bench" / "summary.json").is_file() and (tmp_path / "bench" / "hv.png").is_file()
