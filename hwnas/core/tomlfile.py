"""Reading the TOML files hwnas takes (device specs, objective presets) with one-line errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | os.PathLike[str], error: type[HwnasError], what: str) -> dict[str, Any]:
    """Parse ``path``; a missing file or bad TOML raises ``error`` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such {what}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: not valid TOML ({exc})") from None
