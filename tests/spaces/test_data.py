"""Dataset loaders (bundled, .npz, image folders, CIFAR pickles), malformed data, splits."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from hwnas.data.datasets import FASHION_MNIST_DIR, DatasetError, load_dataset, make_splits


def test_bundled_mnist5k_and_digits() -> None:
    mnist = load_dataset("mnist5k")
    assert mnist.x.shape == (5000, 1, 28, 28) and mnist.classes == 10
    assert mnist.x.dtype == np.float32 and 0.0 <= mnist.x.min() and mnist.x.max() <= 1.0
    assert np.bincount(mnist.y).min() > 300  # every digit is there
    digits = load_dataset("digits")
    assert digits.x.shape == (1797, 1, 8, 8) and digits.classes == 10 and digits.x.max() <= 1.0


def test_npz_channels_last_and_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(30, 12, 12, 3), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "hwc.npz", x=x, y=y)
    np.savez(tmp_path / "chw.npz", x=x.transpose(0, 3, 1, 2), y=y)
    a, b = load_dataset(str(tmp_path / "hwc.npz")), load_dataset(str(tmp_path / "chw.npz"))
    assert a.input_shape == b.input_shape == (3, 12, 12)
    np.testing.assert_array_equal(a.x, b.x)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 8, 8, 8, 1)), "y": np.zeros(4, int)}, "shape"),
        ({"x": np.zeros((4, 1, 8, 8)), "y": np.zeros(3, int)}, "labels have shape"),
        ({"x": np.zeros((4, 1, 8, 8)), "y": np.array([0.5, 1, 0, 1])}, "labels must be integers"),
        ({"x": np.zeros((4, 1, 8, 8)), "y": np.array([0, 2, 0, 2])}, "class 1 has no samples"),
        ({"x": np.full((4, 1, 8, 8), np.nan), "y": np.array([0, 1, 0, 1])}, "NaN"),
        ({"x": np.zeros((4, 1, 8, 8))}, "no array 'y'"),
        ({"x": np.zeros((4, 7, 8, 9)), "y": np.array([0, 1, 0, 1])}, "channel axis"),
    ],
)
def test_malformed_npz_says_what_is_wrong(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as exc:
        load_dataset(str(path))
    assert str(path) in str(exc.value)


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = load_dataset(str(tmp_path))
    assert ds.input_shape == (3, 10, 10) and ds.classes == 2 and len(ds) == 8
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty class"):
        load_dataset(str(tmp_path))
    (tmp_path / "empty").rmdir()
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "dog" / "small.png")
    with pytest.raises(DatasetError, match="small.png: size"):
        load_dataset(str(tmp_path))
    (tmp_path / "dog" / "small.png").unlink()
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="broken.png: not a readable image"):
        load_dataset(str(tmp_path))


def test_cifar_pickles_from_a_local_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    ds = load_dataset(f"cifar10:{tmp_path}")
    assert ds.input_shape == (3, 32, 32) and len(ds) == 24 and ds.classes == 4
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3: missing CIFAR batch"):
        load_dataset(f"cifar10:{tmp_path}")


class _RunsCommand:
    """A pickle that, when loaded by plain ``pickle.load``, calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_runs_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    marker = tmp_path / "pwned"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=2))
    assert len(load_dataset(f"cifar10:{tmp_path}")) == 24  # protocol 2, as the real batches are
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": _RunsCommand(marker), b"labels": [0]}))
    with pytest.raises(DatasetError, match=r"data_batch_2: not a CIFAR python-pickle batch .*refused global posix\.system"):
        load_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps([1, 2, 3]))  # a batch of the wrong type
    with pytest.raises(DatasetError, match="data_batch_2: not a CIFAR batch"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": "text", b"labels": [0]}))
    with pytest.raises(DatasetError, match="not an N x 3072 array"):
        load_dataset(f"cifar10:{tmp_path}")


def test_non_regular_and_oversized_inputs_are_refused_not_read(tmp_path: Path) -> None:
    import os

    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / c / "0.png")
    os.mkfifo(tmp_path / "b" / "1.png")  # reading it would block forever
    with pytest.raises(DatasetError, match="1.png: the image is not a regular file"):
        load_dataset(str(tmp_path))
    (tmp_path / "b" / "1.png").unlink()
    # a decompression bomb: a PNG that declares 20000 x 20000 pixels in a few hundred bytes
    Image.new("1", (20000, 20000)).save(tmp_path / "b" / "1.png")
    assert (tmp_path / "b" / "1.png").stat().st_size < 100_000
    with pytest.raises(DatasetError, match="1.png: .*(decompression bomb|more than the)"):
        load_dataset(str(tmp_path))
    npz = tmp_path / "cut.npz"
    buf = __import__("io").BytesIO()
    np.savez(buf, x=np.zeros((10, 1, 4, 4), np.float32), y=np.arange(10) % 2)
    npz.write_bytes(buf.getvalue()[:200])  # truncated
    with pytest.raises(DatasetError, match="cut.npz: not a readable .npz file"):
        load_dataset(str(npz))


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    """MNIST's IDX layout, written by hand: 0, 0, type code, dimensions, big-endian sizes, data."""
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_idx_folder(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> None:
    rng = np.random.default_rng(3)
    folder.mkdir(exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        for stem, arr in ((f"{part}-images-idx3-ubyte", rng.integers(0, 256, (n, 5, 6), dtype=np.uint8)),
                          (f"{part}-labels-idx1-ubyte", (np.arange(n) % 3).astype(np.uint8))):
            data = _idx(arr)
            (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_pools_train_and_test(tmp_path: Path, gz: bool) -> None:
    _write_idx_folder(tmp_path / "m", gz=gz)
    ds = load_dataset(f"idx:{tmp_path / 'm'}")
    assert ds.input_shape == (1, 5, 6) and len(ds) == 18 and ds.classes == 3
    raw = gzip.decompress((tmp_path / "m" / "train-images-idx3-ubyte.gz").read_bytes()) if gz else \
        (tmp_path / "m" / "train-images-idx3-ubyte").read_bytes()
    first = np.frombuffer(raw, np.uint8, offset=16)[:30].reshape(5, 6)
    np.testing.assert_allclose(ds.x[0, 0], first / 255.0, rtol=1e-6)  # the bytes, scaled, in order


def test_idx_non_byte_types_are_read_big_endian(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path, gz=False)
    labels = (np.arange(12) % 3).astype(">i4")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels, 0x0C))
    ds = load_dataset(f"idx:{tmp_path}")
    np.testing.assert_array_equal(ds.y[:12], np.arange(12) % 3)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.replace(b"\x00\x00\x08\x03", b"\x50\x4b\x03\x04", 1), "not an IDX file"),
        (lambda d: d[:-7], "data bytes, but its header"),
        (lambda d: d[:9], "truncated IDX header|data bytes"),
        (lambda d: gzip.compress(d)[:40], "not readable"),
    ],
)
def test_malformed_idx_names_the_file(tmp_path: Path, damage, message: str) -> None:
    _write_idx_folder(tmp_path, gz=False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    data = damage(f.read_bytes())
    if data[:2] == b"\x1f\x8b":  # a broken gzip stream goes under the .gz name
        f.unlink()
        f = f.with_suffix(".gz")
    f.write_bytes(data)
    with pytest.raises(DatasetError, match=message) as exc:
        load_dataset(f"idx:{tmp_path}")
    assert str(f) in str(exc.value)


def test_idx_missing_file_and_mismatched_counts(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(5, np.uint8)))
    with pytest.raises(DatasetError, match="5 labels for the 6 images"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros((6, 2), np.uint8)))
    with pytest.raises(DatasetError, match="2 dimensions, expected 1"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte: missing"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"idx:{tmp_path / 'nope'}")


def test_at_n_is_a_fixed_stratified_sample() -> None:
    full = load_dataset("digits")
    a, b = load_dataset("digits@500"), load_dataset("digits@500")
    assert len(a) == 500 and a.name == "digits@500" and a.classes == 10
    np.testing.assert_array_equal(a.x, b.x)  # the same images every time
    share = np.bincount(a.y, minlength=10) / np.bincount(full.y, minlength=10)
    assert np.allclose(share, 500 / len(full), atol=0.01)  # every class in proportion
    rows = {r.tobytes() for r in full.x.reshape(len(full), -1)}
    assert all(r.tobytes() in rows for r in a.x.reshape(500, -1))  # real images, not new ones
    assert len(load_dataset("digits@501")) == 501
    for spec, message in (("digits@0", "asks for 0 images"), ("digits@99999", "asks for 99999"),
                          ("digits@many", "a number of images"), ("digits@5", "leave class")):
        with pytest.raises(DatasetError, match=message):
            load_dataset(spec)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debians_package() -> None:
    ds = load_dataset("fashion-mnist")
    assert ds.x.shape == (70000, 1, 28, 28) and ds.classes == 10
    assert (np.bincount(ds.y) == 7000).all()  # 6,000 + 1,000 of each class
    assert 0.2 < float(ds.x.mean()) < 0.4  # real clothing images, not blank pages


def test_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(str(tmp_path / "nothing"))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(DatasetError, match="unsupported"):
        load_dataset(str(tmp_path / "x.txt"))


def test_splits_are_disjoint_stratified_and_fixed_by_seed() -> None:
    ds = load_dataset("digits")
    a, b, c = make_splits(ds, 3), make_splits(ds, 3), make_splits(ds, 4)
    assert not set(a.train) & set(a.val) and not set(a.train) & set(a.test) and not set(a.val) & set(a.test)
    assert len(a.train) + len(a.val) + len(a.test) == len(ds)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.array_equal(a.val, c.val)
    share = np.bincount(ds.y[a.val], minlength=10) / np.bincount(ds.y, minlength=10)
    assert np.allclose(share, 0.15, atol=0.03)  # every class in proportion


def test_an_npz_holding_pickled_objects_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    x = np.empty(2, dtype=object)
    x[0], x[1] = _RunsCommand(marker), _RunsCommand(marker)
    np.savez(tmp_path / "evil.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="evil.npz: not a readable .npz file"):
        load_dataset(str(tmp_path / "evil.npz"))
    assert not marker.exists()
