"""Data never runs code, and a run folder or table has one writer at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.core.errors import HwnasError
from hwnas.core.locks import LockedError, exclusive
from hwnas.evaluation.supernet import load_weights


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_weights_file_runs_nothing_and_is_refused_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"meta": _Payload(marker), "state": {}}, tmp_path / "evil.pt")
    (tmp_path / "text.pt").write_text("not a torch file")
    for name in ("evil.pt", "text.pt"):
        with pytest.raises(HwnasError, match="not a supernet file saved by hwnas") as err:
            load_weights(tmp_path / name, "supernet")
        assert "\n" not in str(err.value)
    assert not marker.exists()
    torch.save({"meta": {"a": [1, (2, 3)], "b": None}, "state": {"w": torch.ones(2)}}, tmp_path / "ok.pt")
    assert torch.equal(load_weights(tmp_path / "ok.pt", "supernet")["state"]["w"], torch.ones(2))


def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from hwnas.core.locks import exclusive\n"
        f"with exclusive(Path({str(lock)!r}), 'run folder'):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as err, exclusive(lock, "run folder"):
            pass
        text = str(err.value)
        assert f"pid {holder.pid}" in text and "in use" in text and "\n" not in text
    finally:
        holder.kill()
        holder.wait()
    with exclusive(lock, "run folder"):  # released by the holder's death: a crash leaves no stale lock
        pass
    assert not list(lock.iterdir())  # and no lock file: the folder itself is locked


def _hold(lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from hwnas.core.locks import exclusive\n"
        f"with exclusive(Path({str(lock)!r}), 'x'):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_search_or_profile_refuses_a_folder_or_table_another_process_writes(tmp_path: Path, quick_spec) -> None:
    from hwnas.latency.profiler import profile
    from hwnas.optimize import make_config, run_search
    from hwnas.optimize.objectives import objectives_from_specs
    from hwnas.spaces import get_space

    bench = Path(__file__).resolve().parent / "data" / "nb201_canonical.csv.gz"
    cfg = make_config(space="nb201", input_shape="3x32x32", objectives=objectives_from_specs(
        ["accuracy:max", "pi5_onnx_latency_ms:min"]), strategy="random", evaluations=4, benchmark=str(bench))
    holder = _hold(tmp_path / "run")
    try:
        with pytest.raises(LockedError, match=f"run folder .*run is in use by pid {holder.pid}"):
            run_search(cfg, tmp_path / "run", progress=False)
        with pytest.raises(LockedError):
            run_search({}, tmp_path / "run", resume=True, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert run_search(cfg, tmp_path / "run", progress=False).used == 4  # free again
    table = tmp_path / "t.json"
    holder = _hold(tmp_path)
    try:
        with pytest.raises(LockedError, match=r"latency table .*t.json \(its folder\) is in use by pid"):
            profile(quick_spec, get_space("nb201", input_shape="3x8x8", N=1), out=table, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not table.exists()


def test_sigterm_stops_a_search_in_one_line_and_it_resumes(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import time

    bench = Path(__file__).resolve().parent / "data" / "nb201_canonical.csv.gz"
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "hwnas.cli", "search", "--space", "nb201", "--objective", "accuracy:max",
           "--objective", "pi5_onnx_latency_ms:min", "--benchmark", str(bench), "--strategy", "nsga2",
           "--strategy-opt", "pop_size=4", "--evaluations", "3000", "--run-dir", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if sqlite3.connect(run / "archive.sqlite").execute("SELECT COUNT(*) FROM evaluation").fetchone()[0] >= 20:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, f"the search ended before it could be stopped: {proc.communicate()[1][-1000:]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == [err.strip()] and err.startswith("hwnas: terminated")
    rows = sqlite3.connect(run / "archive.sqlite").execute("SELECT COUNT(*) FROM evaluation").fetchone()[0]
    assert rows >= 20
    from hwnas.optimize import RunDir

    assert RunDir(run).config().evaluations == 3000  # what finished is there to resume from


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += list(kids - out)
            out |= kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers")
def test_kill_9_at_random_moments_with_two_workers_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    import json
    import signal
    import sqlite3
    import time

    import numpy as np

    bench = Path(__file__).resolve().parent / "data" / "nb201_canonical.csv.gz"
    args = ["search", "--space", "nb201", "--objective", "accuracy:max", "--objective", "pi5_onnx_latency_ms:min",
            "--benchmark", str(bench), "--strategy", "nsga2", "--strategy-opt", "pop_size=6", "--evaluations", "120",
            "--seed", "3", "--no-progress"]
    python = [sys.executable, "-m", "hwnas.cli"]
    subprocess.run([*python, *args, "--run-dir", str(tmp_path / "whole")], check=True, capture_output=True)
    run = tmp_path / "killed"
    rng = np.random.default_rng(7)  # the kill moments, reproducible
    kills = 0
    semaphores = set(Path("/dev/shm").glob("sem.mp-*"))  # multiprocessing's named semaphores
    trackers: set[int] = set()
    for _ in range(2):
        cmd = [*python, *args, *(["--resume", str(run)] if kills else ["--run-dir", str(run)]),
               "--executor", "processes:2"]
        if kills:
            cmd = [*python, "search", "--resume", str(run), "--no-progress", "--executor", "processes:2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers: set[int] = set()
        wait_rows = int(rng.integers(5, 60)) + 60 * kills
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            trackers |= {w for w in workers if "resource_tracker" in _cmdline(w)}
            try:
                rows = sqlite3.connect(run / "archive.sqlite").execute("SELECT COUNT(*) FROM evaluation").fetchone()[0]
            except sqlite3.Error:
                rows = 0
            if rows >= wait_rows and len(workers) >= 2:
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        deadline = time.monotonic() + 10  # the workers notice their parent is gone
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert workers and not [w for w in workers if _alive(w)], "workers outlived a kill -9 of their parent"
        # the resource tracker (one of the children) is gone too, and it removed the pool's semaphores
        while time.monotonic() < deadline and set(Path("/dev/shm").glob("sem.mp-*")) - semaphores:
            time.sleep(0.1)
        assert not set(Path("/dev/shm").glob("sem.mp-*")) - semaphores, "a killed pool left its semaphores"
    assert kills >= 1
    assert trackers and not [t for t in trackers if _alive(t)]  # multiprocessing's resource tracker included
    done = subprocess.run([*python, "search", "--resume", str(run), "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(run / "archive.sqlite")
    assert db.execute("SELECT COUNT(*) FROM evaluation WHERE expensive = 1").fetchone()[0] == 120
    assert db.execute("SELECT COUNT(*) - COUNT(DISTINCT arch_id) FROM evaluation").fetchone()[0] == 0
    members = [[m["arch_id"] for m in json.loads((folder / "front.json").read_text())["front"]]
               for folder in (tmp_path / "whole", run)]
    assert members[0] == members[1]


def test_scratch_folders_of_killed_runs_are_swept(tmp_path: Path) -> None:
    from hwnas.core.processes import scratch_folder, sweep_scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"hwnas-profile-p{int(dead.stdout)}-abc"
    mine = tmp_path / f"hwnas-profile-p{os.getpid()}-abc"
    for folder in (orphan, mine):
        folder.mkdir()
        (folder / "m.onnx").write_bytes(b"x")
    assert sweep_scratch(tmp_path) == [orphan]
    assert mine.is_dir() and not orphan.exists()
    with scratch_folder("test") as path:
        assert Path(path).name.startswith(f"hwnas-test-p{os.getpid()}-")
    assert not Path(path).exists()


def test_a_kill_in_the_middle_of_a_bo_batch_keeps_every_finished_evaluation(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import time

    from hwnas.optimize import RunDir

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "hwnas.cli", "search", "--space", "nb201", "--input", "1x8x8", "--space-opt", "N=1",
           "--space-opt", "C=4", "--objective", "accuracy:max", "--objective", "params:min", "--accuracy", "train",
           "--accuracy-opt", "dataset=digits", "--accuracy-opt", "epochs=1", "--strategy", "bo", "--strategy-opt",
           "initial=8", "--evaluations", "12", "--run-dir", str(run)]  # progress on, stderr a pipe: one line each
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    early = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and early < 3:
        try:
            early = sqlite3.connect(run / "archive.sqlite").execute("SELECT COUNT(*) FROM finished_early").fetchone()[0]
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    err = proc.communicate()[1]
    db = sqlite3.connect(run / "archive.sqlite")
    assert db.execute("SELECT COUNT(*) FROM evaluation").fetchone()[0] == 0  # the first batch (8) never ended
    kept = dict(db.execute("SELECT arch_id, result FROM finished_early").fetchall())
    assert len(kept) >= 3
    assert sum("evaluation " in line and "/12 (" in line for line in err.splitlines()) >= 3  # a line per finished one
    front = RunDir(run).front()  # what `hwnas export` and `hwnas report` read: the partial front
    assert front["partial"] and front["evaluations_used"] == len(kept) and front["front"]
    assert {m["arch_id"] for m in front["front"]} <= set(kept)
    done = subprocess.run([sys.executable, "-m", "hwnas.cli", "search", "--resume", str(run), "--no-progress"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import json

    rows = {a: (json.loads(m), w) for a, m, w in db.execute("SELECT arch_id, metrics, wall_s FROM evaluation")}
    for arch_id, text in kept.items():  # recorded as they were, not trained again
        stashed = json.loads(text)
        assert rows[arch_id][0]["accuracy"] == stashed["metrics"]["accuracy"]
        assert rows[arch_id][1] == stashed["wall_s"]
    assert db.execute("SELECT COUNT(*) FROM finished_early").fetchone()[0] == 0
    assert not RunDir(run).front().get("partial")


def test_a_sigterm_while_the_interpreter_shuts_down_is_one_line_and_143(tmp_path: Path) -> None:
    import signal

    code = ("import atexit, sys, time\n"
            "atexit.register(time.sleep, 30)  # a slow shutdown, as torch's and pools' exit handlers can be\n"
            "sys.argv = ['hwnas', 'spaces']\n"
            "from hwnas.cli import _entry\n"
            "_entry()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("space")  # main() has printed (flushed at its end): it is returning
    import time

    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == ["hwnas: terminated; finished work is saved (search: --resume; profile: run it again)"]


def test_torch_compile_caches_never_stay_in_the_temporary_folder(tmp_path: Path) -> None:
    # an Adam step (the rl strategy's) makes torch create torchinductor_<user> in TMPDIR and keep it
    code = ("import hwnas, torch\nfrom torch import nn\n"
            "m = nn.Linear(2, 2); opt = torch.optim.Adam(m.parameters())\n"
            "m(torch.ones(1, 2)).sum().backward(); opt.step()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.iterdir())  # neither torchinductor_<user> nor hwnas's scratch folder for it
