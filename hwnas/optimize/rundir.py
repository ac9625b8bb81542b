"""A run folder, and the only code that knows its file names: the search writes it; retrain,
export and report read it through here.

    run = RunDir("runs/a")
    run.config()      # the RunConfig stored in archive.sqlite
    run.front()       # front.json
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.core.files import read_json, read_text, write_json
from hwnas.optimize.archive import Archive
from hwnas.optimize.config import RunConfig


class RunDirError(HwnasError, FileNotFoundError):
    """A run folder that lacks what is asked of it, or holds something unreadable."""


class RunDir:
    ARCHIVE = "archive.sqlite"
    FRONT_JSON = "front.json"
    FRONT_CSV = "front.csv"
    FRONT_PNG = "front.png"
    HISTORY = "history.csv"
    RETRAIN = "retrain.json"
    EXPORT = "export.json"  # where the front was last exported to

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    @property
    def archive_path(self) -> Path:
        return self.path / self.ARCHIVE

    def has_search(self) -> bool:
        """Whether a search has recorded anything here (a new search must not write over it)."""
        if not self.archive_path.exists() or self.archive_path.stat().st_size == 0:
            return False  # absent, or an empty file (a reader's bare sqlite connect creates one)
        with Archive(self.archive_path, readonly=True) as a:
            return a.count(expensive_only=False) > 0

    def archive(self) -> Archive:
        if not self.archive_path.is_file():
            raise RunDirError(f"{self.path}: no {self.ARCHIVE} (run hwnas search first)")
        return Archive(self.archive_path, readonly=True)

    def meta(self) -> dict[str, Any]:
        """Everything the search stored beside its evaluations: config, versions, fingerprint, sources."""
        with self.archive() as a:
            return a.all_meta()

    def config(self) -> RunConfig:
        stored = self.meta().get("config")
        if stored is None:
            raise RunDirError(f"{self.archive_path}: no run config stored")
        return RunConfig.from_dict(stored, source=str(self.archive_path))

    def front(self) -> dict[str, Any]:
        """front.json: the members, the objectives, the run's config and provenance. While a search
        runs, or after it was interrupted, the archive holds more than front.json (or there is no
        front.json yet): then the front of every evaluation finished so far, marked ``partial``."""
        path = self.path / self.FRONT_JSON
        saved = read_json(path, RunDirError, "front") if path.is_file() else None
        if self.archive_path.is_file() and self.archive_path.stat().st_size:
            live = self._partial_front(saved)
            if live is not None:
                return live
        if saved is None:
            raise RunDirError(f"{self.path}: no {self.FRONT_JSON} and no finished evaluation (run hwnas search first)")
        return saved

    def _partial_front(self, saved: dict[str, Any] | None) -> dict[str, Any] | None:
        """The front of the archive's finished evaluations, or None when front.json has them all."""
        from hwnas.optimize.outputs import front_members, front_of, front_record

        with self.archive() as a:
            meta = a.all_meta()
            if "config" not in meta:
                return None
            config = RunConfig.from_dict(meta["config"], source=str(self.archive_path))
            space = config.build_space()
            trace = [*a.evaluations(space), *a.pending(space)]
        used = sum(e.expensive for e in trace)
        if not used or (saved is not None and saved.get("evaluations_used") == used):
            return None
        front, feasible = front_of(trace, config.objectives)
        note = (f"partial: the front of the {used} evaluations finished so far (the search is running or was "
                "interrupted; hwnas search --resume finishes it)")
        return front_record(self.path, config, meta, front_members(front, config.objectives), used=used,
                            feasible=feasible, note=note, partial=True)

    def history(self) -> list[tuple[int, float]]:
        """history.csv: (expensive evaluation, run-relative hypervolume) pairs; empty if absent."""
        path = self.path / self.HISTORY
        if not path.is_file():
            return []
        try:
            return [(int(r["eval"]), float(r["hypervolume"]))
                    for r in csv.DictReader(io.StringIO(read_text(path, RunDirError, "history")))]
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{path}: malformed history ({exc})") from None

    def retrained(self) -> dict[str, Any] | None:
        """retrain.json, or None before ``hwnas retrain``."""
        path = self.path / self.RETRAIN
        return read_json(path, RunDirError, "retrain record") if path.is_file() else None

    def exported_to(self) -> str | None:
        """The folder ``hwnas export`` last wrote this run's models to, or None."""
        path = self.path / self.EXPORT
        if not path.is_file():
            return None
        record = read_json(path, RunDirError, "export record")
        if not isinstance(record, dict) or not isinstance(record.get("out"), str):
            raise RunDirError(f"{path}: field 'out': missing")
        return record["out"]

    def record_export(self, out: Path) -> None:
        write_json(self.path / self.EXPORT, {"out": str(out.resolve())})
