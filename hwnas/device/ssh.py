"""The host side of remote profiling: the system ``ssh``/``scp`` (OpenSSH), nothing home-made.

Host keys are checked (``StrictHostKeyChecking=yes``, against ``known_hosts``); a host never
seen before is refused unless the spec says ``accept_new_host_key = true`` (OpenSSH's
``accept-new``: a *changed* key is still refused). ``BatchMode`` forbids password prompts.
Every failure is one line saying which, and what to do.

How it works, and why: ``docs/design.md`` (hwnas.device.ssh).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.core.processes import scratch_folder
from hwnas.core.errors import HwnasError
from hwnas.device.spec import DeviceSpec
from hwnas.device.target import Item, OnBatch, OnDone, Target
from hwnas.measure.timing import Protocol, Stats

_PACKAGE = Path(__file__).resolve().parents[1]
# what a target needs to run `python -m hwnas.measure.agent`: the measurement stack and the error
# base class, under their own names, with package files that import nothing (no torch there)
AGENT_FILES = {"hwnas/core/errors.py": _PACKAGE / "core" / "errors.py",
               **{f"hwnas/measure/{p.name}": p for p in sorted((_PACKAGE / "measure").glob("*.py")) if p.name != "__init__.py"}}
AGENT_PACKAGES = ("hwnas", "hwnas/core", "hwnas/measure")
AGENT_MODULE = "hwnas.measure.agent"
MIN_PYTHON = (3, 8)


class RemoteError(HwnasError, RuntimeError):
    """The target cannot be reached, logged into or used; or the connection dropped."""


def _agent_version() -> str:
    h = hashlib.sha256()
    for name, path in sorted(AGENT_FILES.items()):
        h.update(name.encode() + path.read_bytes())
    return h.hexdigest()[:12]


class RemoteTarget(Target):
    """One remote device: runs the agent there over ssh. It is probed (and given the agent, if
    its work folder lacks this version) once per instance: keep one for a whole command."""

    def __init__(self, spec: DeviceSpec, *, timeout_s: float = 600.0) -> None:
        if spec.remote is None:
            raise RemoteError(f"{spec.source}: not a remote device (no 'connection')")
        super().__init__(spec)
        self.remote = spec.remote
        self._probe: dict[str, Any] | None = None
        self.user, self.host, self.port = self.remote.user_host_port
        self.where = f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self.dir = f"{self.remote.workdir.rstrip('/')}/{_agent_version()}"

    # ----- plumbing -------------------------------------------------------------------------
    def _options(self) -> list[str]:
        r = self.remote
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
                "-o", f"StrictHostKeyChecking={'accept-new' if r.accept_new_host_key else 'yes'}"]
        if r.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={Path(r.known_hosts).expanduser()}"]
        if r.key_file:
            opts += ["-i", str(Path(r.key_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        return opts

    def _dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _fail(self, stderr: str, during: str) -> RemoteError:
        text = stderr.strip()
        last = text.splitlines()[-1] if text else "no message"
        low = text.lower()
        spec = self.spec.source
        if "host key verification failed" in low or "no ed25519 host key is known" in low or "host key for" in low:
            return RemoteError(f"{self.where}: unknown or changed host key; verify it and add it to known_hosts "
                               f"(ssh-keyscan -p {self.port} {self.host} >> ~/.ssh/known_hosts), or set "
                               f"accept_new_host_key = true in {spec} to trust a first-seen host")
        if "permission denied" in low or "too many authentication failures" in low:
            return RemoteError(f"{self.where}: authentication failed; check key_file in {spec} and the target's "
                               "~/.ssh/authorized_keys")
        if any(s in low for s in ("connection refused", "timed out", "no route to host", "could not resolve",
                                  "name or service not known", "network is unreachable")):
            # after the target answered once, work is under way: what finished is saved
            resume = "; finished entries are saved: run the same command again to resume" if self._probe else ""
            return RemoteError(f"{self.where}: host unreachable {during} ({last}); check connection in {spec} and "
                               f"that sshd runs there{resume}")
        if not text or any(s in low for s in ("connection closed", "connection reset", "broken pipe", "timeout, server",
                                              "not responding", "lost connection", "killed by signal")):
            return RemoteError(f"{self.where}: the connection dropped {during} ({last}); finished entries are saved: "
                               "run the same command again to resume")
        return RemoteError(f"{self.where}: ssh failed {during}: {last}; finished entries are saved: run the same "
                           "command again to resume")

    def _ssh(self, command: str, *, stdin: str | None = None, during: str = "") -> str:
        try:
            proc = subprocess.run(["ssh", *self._options(), "-p", str(self.port), self._dest(), command],
                                  input=stdin, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise RemoteError("the ssh client is not installed on this host (Debian: apt install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.where}: no answer within {self.timeout_s:.0f} s {during}; finished entries are saved: "
                              "run the same command again to resume") from None
        if proc.returncode == 255:
            raise self._fail(proc.stderr, during)
        if proc.returncode != 0:
            raise RemoteError(f"{self.where}: remote command failed {during} (exit {proc.returncode}): "
                              f"{(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
        return proc.stdout

    def _scp(self, sources: Sequence[Path], target: str, during: str) -> None:
        try:
            proc = subprocess.run(["scp", "-q", "-r", *self._options(), "-P", str(self.port), *map(str, sources),
                                   f"{self._dest()}:{target}"], capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.where}: copying timed out {during}; run the same command again to resume") from None
        if proc.returncode != 0:
            raise self._fail(proc.stderr, during)

    # ----- commands ---------------------------------------------------------------------------
    def probe(self) -> dict[str, Any]:
        """Check Python, numpy and onnxruntime on the target and install the agent there unless
        its work folder already holds this version (the folder is named by the agent's hash)."""
        if self._probe is not None:
            return self._probe
        self._check_python()
        marker = shlex.quote(f"{self.dir}/.installed")
        if self._ssh(f"test -f {marker} && echo yes || echo no", during="while checking the agent").strip() != "yes":
            self._install()
            self._ssh(f"touch {marker}", during="while installing the agent")
        self._probe = json.loads(self._agent("probe", during="while probing"))
        return self._probe

    def _check_python(self) -> None:
        py = shlex.quote(self.remote.python)
        check = ("import sys; v = sys.version_info[:2]; print('%d.%d' % v)\n"
                 f"if v < {MIN_PYTHON!r}: sys.exit(3)\n"
                 "try:\n    import numpy, onnxruntime\nexcept ImportError as e:\n    print(e); sys.exit(4)")
        cmd = f"if command -v {py} >/dev/null 2>&1; then {py} -c {shlex.quote(check)}; echo rc=$?; else echo rc=127; fi"
        lines = self._ssh(cmd, during="while checking the target").strip().splitlines()
        rc = lines[-1] if lines else ""
        if not lines or rc == "rc=127" or not rc.startswith("rc="):
            raise RemoteError(f"{self.where}: Python not found at {self.remote.python!r}; set python = \"/path/to/python3\" "
                              f"in {self.spec.source}")
        if rc == "rc=3":
            raise RemoteError(f"{self.where}: Python {lines[0]} at {self.remote.python} is too old (hwnas's agent needs "
                              f">= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}); point python in {self.spec.source} at a newer one")
        if rc == "rc=4":
            raise RemoteError(f"{self.where}: {lines[1] if len(lines) > 2 else 'numpy or onnxruntime is missing'} for "
                              f"{self.remote.python}; install them there: {self.remote.python} -m pip install numpy onnxruntime")
        if rc != "rc=0":
            raise RemoteError(f"{self.where}: checking {self.remote.python} failed ({' '.join(lines)})")

    def _install(self) -> None:
        self._ssh(f"mkdir -p {shlex.quote(self.dir)}", during="while creating the work folder")
        with scratch_folder("agent") as tmp:
            root = Path(tmp)
            for package in AGENT_PACKAGES:  # empty: the host's hwnas/__init__ would load more than a target has
                (root / package).mkdir(parents=True, exist_ok=True)
                (root / package / "__init__.py").write_text('"""hwnas\'s measurement agent, as shipped to a target."""\n')
            for name, src in AGENT_FILES.items():
                (root / name).write_bytes(src.read_bytes())
            self._scp([root / "hwnas"], self.dir + "/", during="while sending the agent")

    def _agent(self, command: str, *, stdin: str | None = None, during: str) -> str:
        """Run the agent in its work folder (its copy of hwnas comes first on sys.path there)."""
        return self._ssh(f"cd {shlex.quote(self.dir)} && {shlex.quote(self.remote.python)} -m {AGENT_MODULE} {command}",
                         stdin=stdin, during=during)

    def providers(self) -> list[str]:
        return list(self.probe()["providers"])

    def provider_home(self) -> str:
        return f"on {self.remote.connection}"

    def conditions(self) -> dict[str, Any]:
        self.probe()
        request = json.dumps({"affinity": self.spec.runtime.to_dict()["affinity"]})
        return json.loads(self._agent("conditions", stdin=request, during="while reading the device's conditions"))

    def fingerprint(self) -> dict[str, Any]:
        self.probe()
        request = json.dumps({"runtime": self.spec.runtime.to_dict(), "batch_size": self.spec.batch_size})
        fp = json.loads(self._agent("fingerprint", stdin=request, during="while reading the fingerprint"))
        return {"device": self.spec.name, **fp, "remote": self.remote.connection}

    def measure(self, items: Sequence[Item], protocol: Protocol, *, seed: int = 0, on_done: OnDone | None = None,
                on_batch: OnBatch | None = None) -> tuple[list[Stats], list[float | None]]:
        """Time ONNX files on the target in batches of ``remote_batch``; ``on_batch`` sees each
        finished batch (``on_done`` is not called: progress arrives a batch at a time)."""
        self.probe()
        stats: list[Stats | None] = [None] * len(items)
        energy: list[float | None] = [None] * len(items)
        size = self.remote.batch
        for start in range(0, len(items), size):
            idx = list(range(start, min(len(items), start + size)))
            batch_name = f"batch-{start}"  # relative to the work folder, where the agent runs
            with scratch_folder("remote") as tmp:
                folder = Path(tmp) / batch_name
                folder.mkdir()
                renamed: list[Item] = []
                for i in idx:
                    path, shapes = items[i]
                    (folder / f"m{i}.onnx").write_bytes(Path(path).read_bytes())
                    renamed.append((Path(f"m{i}.onnx"), shapes))
                (folder / "job.json").write_text(json.dumps(self.job(renamed, protocol, seed, folder=batch_name)))
                self._ssh(f"rm -rf {shlex.quote(self.dir + '/' + batch_name)}", during="before sending a batch")
                self._scp([folder], self.dir + "/", during=f"while sending files {idx[0]}-{idx[-1]}")
            out = self._agent(f"measure {shlex.quote(batch_name + '/job.json')}; rc=$?; rm -rf {shlex.quote(batch_name)}; "
                              "exit $rc", during=f"while measuring files {idx[0]}-{idx[-1]}")
            result = json.loads(out)
            if result.get("torch_loaded"):
                raise RemoteError(f"{self.where}: the agent imported torch; it must run on numpy and onnxruntime alone")
            got = [Stats(**d) for d in result["stats"]]
            joules = result["energy_mj"] or [None] * len(idx)
            for i, s, e in zip(idx, got, joules):
                stats[i], energy[i] = s, e
            if on_batch:
                on_batch(idx, got, list(joules))
        return stats, energy  # type: ignore[return-value]
