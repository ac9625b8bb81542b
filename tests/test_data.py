"""Dataset loaders (bundled, .npz, image folders, CIFAR pickles), malformed data, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from hwnas.data import DatasetError, load_dataset, make_splits


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
