"""Remote profiling over SSH (issue 8), against a real OpenSSH server that the tests start on
loopback with generated keys, and a target Python that has numpy and onnxruntime but neither
torch nor hwnas (a separate virtual environment)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.device.spec import load_device
from hwnas.device.ssh import RemoteTarget

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not Path(SSHD).is_file() or shutil.which("ssh") is None,
                                reason="Debian's openssh-server is not installed (.ci/run installs it)")
ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = "[protocol]\nwarmup_runs = 3\nwarmup_s = 0.2\nmin_runs = 20\nmax_runs = 80\nmax_seconds = 60.0\nmin_span_s = 0.2\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Sshd:
    """A real sshd on 127.0.0.1:port, keys and config in its own folder."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, _free_port()
        root.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        host_pub = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {root / 'sshd.pid'}\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"),
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start: {(self.root / 'sshd.log').read_text()}")

    def stop(self) -> None:
        """Kill the listener and every session it forked (a dropped connection, as seen by hwnas)."""
        if self.proc and self.proc.poll() is None:
            for pid in [*_descendants(self.proc.pid), self.proc.pid]:  # sessions may have left the group
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()


@pytest.fixture(scope="module")
def target_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with numpy and onnxruntime only: no torch, no hwnas."""
    env = tmp_path_factory.mktemp("target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "numpy", "onnxruntime"], check=True,
                   capture_output=True)
    python = str(env / "bin" / "python")
    for absent in ("torch", "hwnas"):
        assert subprocess.run([python, "-c", f"import {absent}"], capture_output=True, cwd=env).returncode != 0
    return python


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


def _spec(tmp: Path, sshd: Sshd, python: str, *, name: str = "remote-cpu", extra: str = "", key: str = "client_key",
          known_hosts: str | None = None, port: int | None = None) -> Path:
    kh = known_hosts if known_hosts is not None else str(sshd.root / "known_hosts")
    text = (f'name = "{name}"\nconnection = "ssh://{getpass.getuser()}@127.0.0.1:{port or sshd.port}"\n'
            f'python = "{python}"\nkey_file = "{sshd.root / key}"\nknown_hosts = "{kh}"\n'
            f'workdir = "{tmp / "agent-work"}"\n{extra}[runtime]\nintra_op_threads = 1\n{PROTOCOL}')
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def test_remote_profile_matches_local_and_fingerprint_is_read_there(sshd: Sshd, target_python: str, tmp_path: Path) -> None:
    from hwnas.cli import main

    spec = _spec(tmp_path, sshd, target_python, extra="remote_batch = 8\n")
    target = RemoteTarget(load_device(spec))
    probe = target.probe()
    assert probe["torch_loaded"] is False and "CPUExecutionProvider" in probe["providers"]
    assert target.conditions()["usable_cores"]  # read there, by the agent
    local_spec = tmp_path / "local.toml"
    local_spec.write_text(f'name = "local"\n[runtime]\nintra_op_threads = 1\n{PROTOCOL}')
    common = ["--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--context-models", "8", "--no-progress"]
    assert main(["profile", "--device", str(spec), "--out", str(tmp_path / "remote.json"), *common]) == 0
    assert main(["profile", "--device", str(local_spec), "--out", str(tmp_path / "local.json"), *common]) == 0
    remote, local = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("remote", "local"))
    assert remote["complete"] and set(remote["entries"]) == set(local["entries"])
    assert remote["fingerprint"]["remote"].startswith("ssh://")
    assert remote["fingerprint"]["cpu_model"] == local["fingerprint"]["cpu_model"]
    assert remote["fingerprint"]["python"] == subprocess.run(
        [target_python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True).stdout.strip()
    ratio = np.array([remote["entries"][k]["latency_ms"] / local["entries"][k]["latency_ms"] for k in local["entries"]])
    # The remote agent timed these very files on the same host (loopback): the same order of magnitude (a unit
    # slip or a wrong file would be off by far more). Equality within noise is a benchmark
    # (test_bench_remote_against_local): on a shared 2-core VM a whole agent process, remote or not,
    # now and then ran 1.5x slower than the next one, so a tight bound here failed for no bug.
    assert np.all(np.isfinite(ratio)) and 0.4 < float(np.median(ratio)) < 2.5, ratio
    # validate works the same with the remote spec (stored in the table)
    assert main(["validate", "--table", str(tmp_path / "remote.json"), "--samples", "4", "--no-progress"]) == 0


@pytest.mark.slow  # the remote profile test and the local crash-resume tests cover its ground; make test-all runs it
def test_a_dropped_connection_resumes_without_re_measuring(sshd: Sshd, target_python: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, sshd, target_python, extra="remote_batch = 4\n")
    table = tmp_path / "t.json"
    cmd = [sys.executable, "-m", "hwnas.cli", "profile", "--device", str(spec), "--space", "nb201", "--input", "3x8x8",
           "--space-opt", "N=1", "--context-models", "8", "--out", str(table), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads(table.read_text())["entries"]) >= 8:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, f"the profile ended before the connection was dropped: {proc.communicate()}"
    sshd.stop()  # the connection drops mid-profile (mid-batch, or refused at the next one)
    try:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and "127.0.0.1" in err and "run the same command again" in err, err
        before = json.loads(table.read_text())
        assert not before["complete"] and len(before["entries"]) >= 8
    finally:
        sshd.start()  # the other tests of this module share the server
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = json.loads(table.read_text())
    assert after["complete"] and len(after["entries"]) > len(before["entries"])
    for key, entry in before["entries"].items():
        assert after["entries"][key]["stats"] == entry["stats"]  # finished entries were not measured again


def test_each_error_path_is_one_line_saying_what_to_do(sshd: Sshd, target_python: str, tmp_path: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from hwnas.cli import main

    def error_of(spec: Path) -> str:
        assert main(["profile", "--device", str(spec), "--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1",
                     "--out", str(tmp_path / "never.json"), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    closed = _free_port()
    assert "host unreachable" in error_of(_spec(tmp_path, sshd, target_python, name="a", port=closed))
    assert "authentication failed" in error_of(_spec(tmp_path, sshd, target_python, name="b", key="other_key"))
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    assert "unknown or changed host key" in error_of(_spec(tmp_path, sshd, target_python, name="c", known_hosts=str(empty)))
    assert "Python not found" in error_of(_spec(tmp_path, sshd, "/nonexistent/python3", name="d"))
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    assert "pip install numpy onnxruntime" in error_of(_spec(tmp_path, sshd, str(bare / "bin" / "python"), name="e"))
    monkeypatch.setattr("hwnas.device.ssh.MIN_PYTHON", (3, 99))  # the real interpreter, judged too old
    assert "is too old" in error_of(_spec(tmp_path, sshd, target_python, name="f"))
    monkeypatch.undo()
    # an unknown host accepted explicitly: trusted on first use, and remembered
    spec = _spec(tmp_path, sshd, target_python, name="g", known_hosts=str(empty), extra="accept_new_host_key = true\n")
    assert RemoteTarget(load_device(spec)).probe()["onnxruntime"]
    assert (sshd.root / "host_key.pub").read_text().split()[1] in empty.read_text()  # remembered (hashed name)


def test_export_measures_on_the_remote_device(sshd: Sshd, target_python: str, tmp_path: Path) -> None:
    from hwnas.deploy.export import export_front
    from hwnas.optimize.objectives import objectives_from_specs
    from hwnas.optimize.loop import make_config, run_search

    cfg = make_config(space="nb201", input_shape="1x8x8", space_options={"N": 1},
                      objectives=objectives_from_specs(["accuracy:max", "params:min"]), strategy="random", evaluations=3,
                      seed=0, accuracy="train", accuracy_options={"dataset": "digits", "epochs": 1, "threads": 1})
    run_search(cfg, tmp_path / "run", progress=False)
    spec = load_device(_spec(tmp_path, sshd, target_python))
    index = export_front(tmp_path / "run", tmp_path / "models", device=spec, progress=False, log=lambda _m: None)
    for m in index["models"]:
        card = json.loads((tmp_path / "models" / m["card_json"]).read_text())
        assert card["latency"]["measured_ms"] > 0 and card["device"]["fingerprint"]["remote"].startswith("ssh://")


@pytest.mark.bench
def test_bench_remote_overhead_per_entry(sshd: Sshd, target_python: str, tmp_path: Path) -> None:
    """`make bench`: wall time per table entry, remote over loopback against local, same protocol."""
    from hwnas.device.spec import parse_device
    from hwnas.latency.profiler import ProfileSettings, profile
    from hwnas.spaces import get_space

    space = get_space("nb201", input_shape="3x16x16", N=1)
    walls = {}
    for kind in ("local", "remote"):
        spec = load_device(_spec(tmp_path, sshd, target_python)) if kind == "remote" else parse_device(
            {"name": "local", "runtime": {"intra_op_threads": 1},
             "protocol": {"warmup_runs": 3, "warmup_s": 0.2, "min_runs": 20, "max_runs": 80, "max_seconds": 60.0, "min_span_s": 0.2}})
        t0 = time.perf_counter()
        table = profile(spec, space, out=tmp_path / f"{kind}.json", progress=False, log=lambda _m: None,
                        settings=ProfileSettings(context_models=40))
        walls[kind] = time.perf_counter() - t0
    n = len(table.entries) + len(table.context.models)
    result = {"command": "make bench (tests/test_remote.py::test_bench_remote_overhead_per_entry)", "entries": n,
              "wall_s": walls, "overhead_ms_per_entry": 1e3 * (walls["remote"] - walls["local"]) / n,
              "remote_batch": 32, "note": "loopback sshd on this machine; includes probing and sending the agent"}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "remote-overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n== remote profiling overhead ==\n" + json.dumps(result, indent=1))


@pytest.mark.bench
def test_bench_remote_against_local(sshd: Sshd, target_python: str, tmp_path: Path) -> None:
    """Remote (loopback SSH) against local profiles of the same space, interleaved and repeated:
    the median remote/local ratio per repeat, for small and large remote batches."""
    from hwnas.cli import main

    local_spec = tmp_path / "local.toml"
    local_spec.write_text(f'name = "local"\n[runtime]\nintra_op_threads = 1\n{PROTOCOL}')
    common = ["--space", "nb201", "--input", "3x8x8", "--space-opt", "N=1", "--context-models", "8", "--no-progress"]
    repeats = int(os.environ.get("HWNAS_BENCH_REMOTE_REPEATS", "3"))
    ratios: dict[str, list[float]] = {"remote_batch=8": [], "remote_batch=64": [], "local_again": []}
    for rep in range(repeats):  # interleaved, so drift of the machine lands on every setting
        tables = {}
        for name, spec in (("local", local_spec), ("local_again", local_spec),
                           ("remote_batch=8", _spec(tmp_path, sshd, target_python, name="r8", extra="remote_batch = 8\n")),
                           ("remote_batch=64", _spec(tmp_path, sshd, target_python, name="r64", extra="remote_batch = 64\n"))):
            out = tmp_path / f"{rep}-{name}.json"
            assert main(["profile", "--device", str(spec), "--out", str(out), *common]) == 0
            tables[name] = json.loads(out.read_text())["entries"]
        base = tables["local"]
        for name in ratios:
            ratios[name].append(float(np.median([tables[name][k]["latency_ms"] / base[k]["latency_ms"] for k in base])))
    result = {"command": "HWNAS_BENCH_REMOTE_REPEATS=3 .venv/bin/python -m pytest -q -m bench -s "
                         "tests/test_remote.py::test_bench_remote_against_local",
              "what": "median over entries of latency / the same repeat's local latency (nb201 N=1 3x8x8, p10)",
              "median_ratio_per_repeat": {k: [round(r, 3) for r in v] for k, v in ratios.items()},
              "median_over_repeats": {k: round(float(np.median(v)), 3) for k, v in ratios.items()}}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "remote-vs-local.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n== remote vs local ==\n" + json.dumps(result, indent=1))
