"""Reading inputs and writing outputs safely.

Every file hwnas writes goes through here, so that it
- lands only as a regular file: a symlink or a device node at the target is refused, never
  written through (``--output /dev/full`` must not replace the device, a planted ``front.json``
  link must not redirect a write);
- appears whole or not at all: the data goes to a temporary name in the same folder, then is
  renamed over the target, so a crash or a full disk leaves the previous file intact;
- gets the user's umask (0666 & ~umask), like any file a shell command creates.

Reading is the mirror: a missing, non-regular or non-UTF-8 input is one line naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import secrets
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError, UnwritableOutputError

__all__ = ["atomic_path", "cache_folder", "check_regular", "check_target", "output_folder", "read_bounded", "read_json", "read_limit", "read_text", "write_atomic", "write_csv", "write_json"]


def output_folder(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) as a folder; one line if it is a file, a link or unwritable."""
    p = Path(path)
    if p.is_symlink():
        raise UnwritableOutputError(f"{p}: the {what} is a symbolic link; give a real folder")
    if p.exists() and not p.is_dir():
        raise UnwritableOutputError(f"{p}: names an existing file, not a folder (the {what})")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableOutputError(f"{p}: cannot create the {what} ({exc.strerror or exc})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UnwritableOutputError(f"{p}: the {what} is not writable")
    return p


def cache_folder(kind: str) -> Path | None:
    """The folder for files hwnas can re-create but keeps to save time (``<cache>/<kind>``), or None
    where it cannot be created: callers then work without a cache. ``<cache>`` is
    ``$HWNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hwnas``, else ``~/.cache/hwnas``."""
    root = os.environ.get("HWNAS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "hwnas")
    try:
        return output_folder(Path(root) / kind, "cache folder")
    except (HwnasError, OSError):
        return None


def check_target(target: Path) -> None:
    """Refuse a symlink or a non-regular file at ``target`` (absent is fine)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnwritableOutputError(f"{target}: is a symbolic link; hwnas writes only regular files, not through links")
    if not stat.S_ISREG(st.st_mode):
        raise UnwritableOutputError(f"{target}: exists and is not a regular file (a device, folder or pipe); not written")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write (torch.save, savefig, ONNX
    export); on success it is renamed over ``path``, on any failure it is removed."""
    target = Path(path)
    check_target(target)
    if not target.parent.is_dir():
        output_folder(target.parent)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        # Created empty with mode 0666 & ~umask, so the renamed file has the user's permissions.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        check_target(target)  # the target may have become a link while we wrote
        os.replace(tmp, target)
    except HwnasError:
        raise
    except OSError as exc:
        raise UnwritableOutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, durable: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all, as a regular file.
    ``durable=False`` skips the fsync, for small files rewritten very often."""
    target = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    return target


def read_text(path: str | os.PathLike[str], error: type[HwnasError] = HwnasError, what: str = "file") -> str:
    """The UTF-8 text of a regular file; anything else is one ``error`` line naming the file."""
    p = Path(path)
    if not p.exists():
        raise error(f"{p}: no such {what}")
    if not p.is_file():
        raise error(f"{p}: the {what} is not a regular file")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: the {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None


MAX_READ_BYTES = 8 * 1024**3  # one input file, decompressed: bounds a decompression bomb


def read_limit() -> int:
    """The most hwnas reads from one file: MAX_READ_BYTES, or half the memory free now."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return MAX_READ_BYTES
    return min(MAX_READ_BYTES, free // 2)


def check_regular(path: str | os.PathLike[str], error: type[HwnasError] = HwnasError, what: str = "file") -> None:
    """Refuse anything but an existing regular file (a FIFO would block a read forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path}: the {what} is not a regular file (a pipe, device or folder); not read")


def read_bounded(path: str | os.PathLike[str], error: type[HwnasError] = HwnasError, what: str = "file") -> bytes:
    """The bytes of a regular file, gunzipped if it is gzip, refused past ``read_limit()``: a
    pipe, a device or a decompression bomb is one ``error`` line naming the file."""
    p = Path(path)
    check_regular(p, error, what)
    limit = read_limit()
    try:
        with open(p, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise error(f"{p}: cannot read the {what} ({exc})") from None
    if len(data) > limit:
        raise error(f"{p}: the {what} holds more than the {limit / 2**30:.1f} GiB hwnas reads from one file")
    return data


def read_json(path: str | os.PathLike[str], error: type[HwnasError] = HwnasError, what: str = "file") -> Any:
    """Parse a JSON file; missing, non-UTF-8, truncated or malformed is one ``error`` line."""
    text = read_text(path, error, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: the {what} is not valid JSON ({exc})") from None


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """JSON with one-space indent and a final newline, written atomically."""
    return write_atomic(path, json.dumps(data, indent=1, default=float) + "\n")


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file with a header row, written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return write_atomic(path, buf.getvalue())
