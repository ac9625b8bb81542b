"""The run archive: ``<run_dir>/archive.sqlite`` (SQLite in WAL mode, one writer).

Every evaluation is committed the moment it completes: architecture string and id, metrics, the
status (``complete``, ``failed`` with its reason, or ``infeasible`` when a hard budget kept it
from the expensive evaluation), whether it counted against the evaluation budget, wall time,
strategy, seed and timestamps. An evaluation that finishes before an earlier candidate of its
batch is committed at once to ``finished_early``, whole, and moves to ``evaluation`` when its turn
in the trace comes. The run's config, seeds, package versions and device fingerprint sit beside
them in ``run``. A killed search loses only the evaluations in flight.

How it works, and why: ``docs/design.md`` (hwnas.optimize.archive).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.core.files import write_atomic
from hwnas.evaluation.sources import Evaluation, Status
from hwnas.spaces.base import SearchSpace

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluation (
    seq INTEGER PRIMARY KEY,
    arch TEXT NOT NULL,
    arch_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('complete', 'failed', 'infeasible')),
    reason TEXT,
    metrics TEXT NOT NULL,
    violation REAL NOT NULL,
    soft_violation REAL NOT NULL,
    expensive INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    strategy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    checksum TEXT,
    fidelity REAL
);
CREATE INDEX IF NOT EXISTS evaluation_arch_id ON evaluation (arch_id);
-- expensive results that finished while an earlier candidate of their batch was still running:
-- kept here until they can be recorded in order, so that a driver crash loses none of them
-- (keyed by the architecture's id, and its epochs in a multi-fidelity search: "<id>@<epochs>")
CREATE TABLE IF NOT EXISTS finished_early (arch_id TEXT PRIMARY KEY, result TEXT NOT NULL);
"""


class ArchiveError(HwnasError, RuntimeError):
    """An archive that cannot be opened, or belongs to another run."""


@dataclass(frozen=True)
class Record:
    seq: int
    arch: str
    arch_id: str
    status: str
    reason: str | None
    metrics: dict[str, float]
    violation: float
    soft_violation: float
    expensive: bool
    wall_s: float
    strategy: str
    seed: int
    started: str
    finished: str
    fidelity: float | None = None


def job_key(arch_id: str, epochs: float | None) -> str:
    """An evaluation's key: its architecture's id, with its epochs in a multi-fidelity search."""
    return arch_id if epochs is None else f"{arch_id}@{epochs:g}"


def _checksum(values: tuple[Any, ...]) -> str:
    """sha256 of a row's content (everything but seq and the checksum itself), 16 hex digits."""
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _json_metrics(metrics: dict[str, float]) -> str:
    # NaN is not JSON; store it as null
    return json.dumps({k: (None if v != v else float(v)) for k, v in metrics.items()})


class Archive:
    """One run's evaluations and metadata. Only the search driver writes to it."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open (a writer: create) the archive. ``readonly`` opens it for reading only, which also
        works in a folder the user may not write to (a finished run, shared read-only)."""
        self.path = Path(path)
        self.seal_path = self.path.with_name(self.path.name + ".seal")
        if readonly:
            self.db = self._open_readonly()
            self.checksums = self.meta("checksums", False)
            self._check_seal()
            return
        if self.path.is_symlink():  # as every other output: never written through a link
            raise ArchiveError(f"{self.path}: is a symbolic link; hwnas writes only regular files, not through links")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(evaluation)")}
            if "checksum" not in columns:  # an archive of hwnas 0.1.0: its rows have none
                self.db.execute("ALTER TABLE evaluation ADD COLUMN checksum TEXT")
            if "fidelity" not in columns:  # written before multi-fidelity searches: every row at None
                self.db.execute("ALTER TABLE evaluation ADD COLUMN fidelity REAL")
            if not self.db.execute("SELECT 1 FROM evaluation LIMIT 1").fetchone():
                self.db.execute("INSERT OR IGNORE INTO run (key, value) VALUES ('checksums', 'true')")
            self.checksums = self.meta("checksums", False)
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{self.path}: cannot open the archive ({exc})") from None
        self._check_seal()

    def _open_readonly(self) -> sqlite3.Connection:
        # mode=ro still needs to create the WAL index beside the file; where the folder is not
        # writable, immutable=1 reads the file as it is (no writer can be running there anyway)
        last: Exception | None = None
        for query in ("mode=ro", "immutable=1"):
            try:
                db = sqlite3.connect(f"file:{urllib.parse.quote(str(self.path))}?{query}", uri=True, isolation_level=None, timeout=30)
                db.execute("SELECT COUNT(*) FROM evaluation").fetchone()
                return db
            except sqlite3.DatabaseError as exc:
                last = exc
        raise ArchiveError(f"{self.path}: cannot read the archive ({last})")

    def _columns(self) -> str:
        # an older archive opened read-only lacks the later columns (a writer adds them)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(evaluation)")}
        return ", ".join(c if c in columns else "NULL" for c in ("checksum", "fidelity"))

    def _check_seal(self) -> None:
        if not self.seal_path.is_file():
            return
        try:
            sealed = int(json.loads(self.seal_path.read_text())["rows"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ArchiveError(f"{self.seal_path}: unreadable; it records how many rows the archive holds") from None
        have = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM evaluation").fetchone()[0])
        if have < sealed:
            raise ArchiveError(f"{self.path}: holds {have} evaluations but {sealed} were committed; its write-ahead "
                               f"log ({self.path.name}-wal) is missing: copy the run folder whole")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- run metadata ---------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def all_meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM run")}

    # ----- evaluations ----------------------------------------------------------------------
    def add(self, e: Evaluation, *, strategy: str, seed: int, started: float) -> int:
        """Commit one evaluation (and drop its copy in ``finished_early``, if any); returns its
        sequence number (1-based, in trace order)."""
        values = (e.arch.string, e.arch.id, e.status.value, e.reason, _json_metrics(e.metrics), float(e.violation),
                  float(e.soft_violation), int(e.expensive), float(e.wall_s), strategy, int(seed),
                  datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="milliseconds"), _now())
        fidelity = None if e.fidelity is None else float(e.fidelity)
        checked = values if fidelity is None else (*values, fidelity)  # older rows' checksums stay valid
        with self.db:  # one transaction: the row arrives and its early copy goes, or neither
            self.db.execute("BEGIN")
            cur = self.db.execute(
                "INSERT INTO evaluation (arch, arch_id, status, reason, metrics, violation, soft_violation, expensive, "
                "wall_s, strategy, seed, started, finished, checksum, fidelity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, _checksum(checked), fidelity),
            )
            self.db.execute("DELETE FROM finished_early WHERE arch_id = ?", (job_key(e.arch.id, fidelity),))
        seq = int(cur.lastrowid or 0)
        write_atomic(self.seal_path, json.dumps({"rows": seq}) + "\n", durable=False)
        return seq

    def records(self) -> Iterator[Record]:
        """Every row in order; a row whose content no longer matches its checksum is refused."""
        for row in self.db.execute("SELECT seq, arch, arch_id, status, reason, metrics, violation, soft_violation, "
                                   f"expensive, wall_s, strategy, seed, started, finished, {self._columns()} "
                                   "FROM evaluation ORDER BY seq"):
            checked = tuple(row[1:14]) if row[15] is None else (*row[1:14], row[15])
            if (row[14] is not None or self.checksums) and row[14] != _checksum(checked):
                raise ArchiveError(f"{self.path}: evaluation {row[0]} ({row[1]}) fails its checksum: the row was "
                                   "edited or corrupted; the run cannot be trusted or resumed")
            try:
                metrics = {k: (float("nan") if v is None else v) for k, v in json.loads(row[5]).items()}
            except (TypeError, ValueError, AttributeError):
                raise ArchiveError(f"{self.path}: evaluation {row[0]}: unreadable metrics") from None
            yield Record(row[0], row[1], row[2], row[3], row[4], metrics, row[6], row[7], bool(row[8]), row[9],
                         row[10], row[11], row[12], row[13], row[15])

    def evaluations(self, space: SearchSpace | type[SearchSpace]) -> list[Evaluation]:
        return [Evaluation(space.parse(r.arch), r.metrics, r.status, r.reason, r.violation, r.soft_violation,
                           r.expensive, r.wall_s, r.fidelity) for r in self.records()]

    def stash(self, e: Evaluation) -> None:
        """Commit a finished expensive evaluation that cannot be recorded in trace order yet."""
        row = {"arch": e.arch.string, "metrics": json.loads(_json_metrics(e.metrics)), "status": e.status.value,
               "reason": e.reason, "violation": float(e.violation), "soft_violation": float(e.soft_violation),
               "wall_s": float(e.wall_s), "finished": _now()}
        if e.fidelity is not None:
            row["fidelity"] = float(e.fidelity)
        row["checksum"] = _checksum(tuple(row.values()))
        self.db.execute("INSERT OR REPLACE INTO finished_early (arch_id, result) VALUES (?, ?)",
                        (job_key(e.arch.id, e.fidelity), json.dumps(row)))

    def _pending_row(self, arch_id: str, text: str) -> dict[str, Any]:
        try:
            row = json.loads(text)
        except ValueError:
            raise ArchiveError(f"{self.path}: finished evaluation {arch_id}: unreadable") from None
        if "checksum" in row:  # hwnas 0.1 kept only metrics, reason and wall time, unchecked
            check = row.pop("checksum")
            if check != _checksum(tuple(row.values())):
                raise ArchiveError(f"{self.path}: finished evaluation {arch_id} fails its checksum: the row was "
                                   "edited or corrupted; the run cannot be trusted or resumed")
        row["metrics"] = {k: (float("nan") if v is None else v) for k, v in row["metrics"].items()}
        return row

    def stashed(self, key: str) -> tuple[dict[str, float], str | None, float] | None:
        """A finished evaluation's (metrics, failure reason, seconds), or None; ``key``: ``job_key``."""
        found = self.db.execute("SELECT result FROM finished_early WHERE arch_id = ?", (key,)).fetchone()
        if found is None:
            return None
        row = self._pending_row(key, found[0])
        return row["metrics"], row["reason"], row["wall_s"]

    def pending(self, space: SearchSpace | type[SearchSpace]) -> list[Evaluation]:
        """Finished evaluations not yet in trace order (a running or interrupted batch), oldest first."""
        out = []
        for arch_id, text in self.db.execute("SELECT arch_id, result FROM finished_early"):
            row = self._pending_row(arch_id, text)
            if "arch" in row:
                out.append((row["finished"], Evaluation(space.parse(row["arch"]), row["metrics"], Status(row["status"]),
                                                        row["reason"], row["violation"], row["soft_violation"], True,
                                                        row["wall_s"], row.get("fidelity"))))
        return [e for _, e in sorted(out, key=lambda pair: pair[0])]

    def count(self, *, expensive_only: bool = True) -> int:
        q = "SELECT COUNT(*) FROM evaluation" + (" WHERE expensive = 1" if expensive_only else "")
        return int(self.db.execute(q).fetchone()[0])


def stamp() -> float:
    return time.time()
