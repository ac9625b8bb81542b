"""Named errors. Every user-facing failure is one of these, so the CLI can print one line: exit 2
for a :class:`UsageError` (the command asks for something impossible), exit 1 for the rest (the
input files, the device or the run failed)."""

from __future__ import annotations


class HwnasError(Exception):
    """Base class: a problem with the user's input that hwnas can name in one line."""


class UsageError(HwnasError):
    """The command line (or the equivalent API call) is wrong: an unknown name, an option out of
    range, a malformed architecture or shape. The CLI exits 2 for these, as argparse does."""


class UnknownNameError(UsageError, KeyError):
    """A name (space, strategy, estimator, ...) that no registry holds."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidArchitectureError(UsageError, ValueError):
    """An architecture string or gene vector that is not a member of its space."""


class InvalidInputShapeError(UsageError, ValueError):
    """An input shape that is malformed or that a space cannot take."""


class ExportError(HwnasError, RuntimeError):
    """ONNX export or its verification (checker, onnxruntime, parity with torch) failed."""


class OnnxModelError(HwnasError, ValueError):
    """An ONNX file that is missing, corrupt or unsupported."""


class UnwritableOutputError(HwnasError, OSError):
    """An output path whose folder is missing or not writable."""
