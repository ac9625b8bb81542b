"""Presets found by name: device specs (``--device local-cpu``) and objective presets
(``--objectives accuracy-latency``), as well as by path.

A name is looked up, first match wins, in
1. ``./devices`` (or ``./objectives``): the user's own, beside their work;
2. the source tree hwnas runs from, when it runs from a clone (``<clone>/devices``);
3. ``<prefix>/share/hwnas/devices``: the presets a wheel installs (``pip install hwnas``).
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from hwnas.core.errors import UnknownNameError

KINDS = ("devices", "objectives")
SOURCE_TREE = Path(__file__).resolve().parents[2]


def preset_dirs(kind: str) -> list[Path]:
    """The folders searched for presets of ``kind``, in order (those that exist)."""
    if kind not in KINDS:
        raise ValueError(f"unknown preset kind {kind!r}")
    candidates = [Path.cwd() / kind, SOURCE_TREE / kind, Path(sys.prefix) / "share" / "hwnas" / kind]
    out: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and folder.resolve() not in [o.resolve() for o in out]:
            out.append(folder)
    return out


def resolve(name_or_path: str | os.PathLike[str], kind: str) -> Path:
    """A path as given when it exists or looks like a path; else the named preset's file. A name
    that matches nothing raises UnknownNameError (a usage error) with the closest names."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.exists() or os.sep in text or text.endswith(".toml"):
        return path
    for folder in preset_dirs(kind):
        candidate = folder / f"{text}.toml"
        if candidate.is_file():
            return candidate
    names = sorted(available(kind))
    close = difflib.get_close_matches(text, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    singular = "device" if kind == "devices" else "objectives preset"
    raise UnknownNameError(f"{text!r}: no such {singular} and no such file ({hint}`hwnas {kind}` lists them: "
                           f"{', '.join(names) or 'none'})")


def available(kind: str) -> dict[str, Path]:
    """Every preset of ``kind`` by name; a name found in an earlier folder hides later ones."""
    out: dict[str, Path] = {}
    for folder in preset_dirs(kind):
        for file in sorted(folder.glob("*.toml")):
            out.setdefault(file.stem, file)
    return out
