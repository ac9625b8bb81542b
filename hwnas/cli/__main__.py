"""``python -m hwnas.cli``."""

from hwnas.cli import _entry

_entry()
