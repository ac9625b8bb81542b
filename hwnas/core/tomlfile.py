"""Reading the TOML files hwnas takes (device specs, objective presets) with one-line errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.core.files import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | os.PathLike[str], error: type[HwnasError], what: str) -> dict[str, Any]:
    """Parse ``path``; a missing file or bad TOML raises ``error`` naming the file."""
    p = Path(path)
    text = read_text(p, error, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: not valid TOML ({exc})") from None
