from hwnas.cli import _entry

_entry()
