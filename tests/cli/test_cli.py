"""The command line: every subcommand's happy path and its bad-input exits (code 2, one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.spaces import SPACES, get_space
from hwnas.models.onnx_io import load_onnx, ort_session

INPUTS = {"mobilenet": "1x28x28", "nb201": "3x16x16", "dppnet": "3x16x16"}


def test_spaces_lists_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["nb201"]["size"] == 15625 and rows["nb201"]["distinct"] == 6466
    assert set(rows) == set(SPACES.names())
    assert main(["spaces"]) == 0
    assert "15,625" in capsys.readouterr().out


@pytest.mark.parametrize("name", SPACES.names())
def test_sample_then_build_writes_a_checked_onnx_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--space", name, "--input", INPUTS[name], "--n", "3", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    out = tmp_path / f"{name}.onnx"
    assert main(["build", "--space", name, "--input", INPUTS[name], "--arch", lines[0], "--output", str(out)]) == 0
    assert "max |torch - onnxruntime|" in capsys.readouterr().out
    proto = load_onnx(out)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    c, h, w = (int(v) for v in INPUTS[name].split("x"))
    y = ort_session(out).run(None, {"input": np.zeros((2, c, h, w), np.float32)})[0]
    assert y.shape == (2, 10)


def test_describe_json(capsys: pytest.CaptureFixture[str]) -> None:
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["describe", "--space", "nb201", "--input", "3x32x32", "--arch", arch, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["arch"] == arch and facts["params"] > 0 and facts["macs"] > 0
    assert facts["space_config"] == {"input_shape": [3, 32, 32], "num_classes": 10, "C": 16, "N": 5}
    assert facts["blocks"][0]["key"] == "stem-in:3x32x32-out:16"
    assert main(["describe", "--space", "nb201", "--input", "3x32x32", "--arch", arch]) == 0
    text = capsys.readouterr().out
    assert "multiply-accumulates" in text and "resblock-in:16x32x32-out:32-s2" in text


def test_space_options_reach_the_space(capsys: pytest.CaptureFixture[str]) -> None:
    arch = get_space("nb201", input_shape="3x16x16").sample(np.random.default_rng(0), 1)[0].string
    assert main(["describe", "--space", "nb201", "--input", "3x16x16", "--arch", arch,
                 "--space-opt", "C=8", "--space-opt", "N=1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["space_config"]["C"] == 8


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["sample", "--space", "nope"], "unknown space 'nope'", 2),
        (["sample", "--space", "nb201", "--n", "0"], "argument --n: 0 is below the minimum 1", 2),
        (["describe", "--space", "nb201", "--input", "3x32", "--arch", "x"], "not of the form CxHxW", 2),
        (["describe", "--space", "nb201", "--input", "3x32x32", "--arch", "|bogus~0|"], "nb201:", 2),
        (["describe", "--space", "mobilenet", "--input", "3x32x32", "--arch", "w0.5_k3e1"], "6 stages", 2),
        (["build", "--space", "dppnet", "--input", "3x16x16", "--arch", "bn-conv3x3", "--output", "/nonexistent-dir/m.onnx"],
         "does not exist", 1),
        (["describe", "--space", "nb201", "--input", "3x32x32", "--arch", "x", "--space-opt", "Q=1"], "bad space option", 2),
        (["describe", "--space", "nb201"], "the following arguments are required: --input, --arch", 2),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(argv: list[str], message: str, code: int,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("hwnas") and ": error: " in err and message in err
    assert len(err.splitlines()) == 1


def test_console_script_and_determinism_in_a_fresh_process() -> None:
    """`hwnas sample` prints the same architectures in a fresh process as in this one."""
    exe = Path(sys.executable).with_name("hwnas")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hwnas"]
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    runs = [subprocess.run([*cmd, "sample", "--space", name, "--n", "5", "--seed", "11"], capture_output=True,
                           text=True, check=True, env=env).stdout.split() for name in ("nb201", "dppnet")]
    here = [[a.string for a in SPACES.get(n).sample(np.random.default_rng(11), 5)] for n in ("nb201", "dppnet")]
    assert runs == here
    other = subprocess.run([*cmd, "sample", "--space", "nb201", "--n", "5", "--seed", "12"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert other != runs[0]
    bad = subprocess.run([*cmd, "sample", "--space", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "hwnas: error: unknown space 'nope' (known: dppnet, mobilenet, nb201)"
