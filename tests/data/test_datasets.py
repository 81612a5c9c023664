"""Data loading: digits, class subsets, scaling, pooling, splits, npz and IDX/MNIST files, bad input."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

import qlandscape.data
from qlandscape.core.errors import ConfigError
from qlandscape.data.config import DataConfig
from qlandscape.data.datasets import MNIST_FILES, Dataset, load_dataset, read_idx, to_torch, write_idx


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_and_dtypes(digits):
    assert digits.name == "digits"
    assert digits.image_shape == (8, 8)
    assert digits.classes == tuple(range(10)) and digits.n_classes == 10
    assert digits.x_train.dtype == np.float64 and digits.y_train.dtype == np.int64
    assert digits.x_train.shape[1:] == (8, 8) and digits.x_test.shape[1:] == (8, 8)
    n = len(digits.y_train) + len(digits.y_test)
    assert n == 1797
    assert len(digits.y_test) == math.ceil(0.25 * n)
    assert set(np.unique(digits.y_train)) == set(range(10))


def test_default_scaling_hits_the_range_exactly(digits):
    x = np.concatenate([digits.x_train, digits.x_test])
    assert x.min() == 0.0 and x.max() == math.pi


@pytest.mark.parametrize("angle_range", [(0.0, math.pi / 4), (-1.3, 0.7), (0.1, 0.7)])
def test_scaling_to_custom_range(angle_range):
    ds = load_dataset("digits", classes=[0, 1], angle_range=angle_range)
    x = np.concatenate([ds.x_train, ds.x_test])
    assert x.min() == angle_range[0] and x.max() == angle_range[1]


def test_scaling_is_linear_in_raw_pixels():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = load_dataset("digits", angle_range=(0.0, math.pi / 4), test_fraction=0.5, seed=3)
    # Every scaled value must be k/16 * pi/4 for an integer k in 0..16.
    k = np.concatenate([ds.x_train, ds.x_test]) / (math.pi / 4) * 16
    np.testing.assert_allclose(k, np.round(k), atol=1e-12)
    assert sorted(np.round(k).ravel().astype(int).tolist()) == sorted(raw.images.ravel().astype(int).tolist())


def test_class_subset_is_reindexed_in_given_order():
    ds = load_dataset("digits", classes=[1, 0])
    assert ds.classes == (1, 0) and ds.n_classes == 2
    from sklearn.datasets import load_digits

    raw = load_digits()
    ones = raw.images[raw.target == 1] / 16 * math.pi
    # Label 0 now means the original digit 1: every training image with label 0 is one of the raw ones.
    for img in ds.x_train[ds.y_train == 0][:5]:
        assert np.any(np.all(np.isclose(ones, img), axis=(1, 2)))
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert len(ds.y_train) + len(ds.y_test) == int(np.sum(np.isin(raw.target, [0, 1])))


def test_split_is_stratified_and_seeded():
    a = load_dataset("digits", classes=[0, 1, 2], seed=5)
    b = load_dataset("digits", classes=[0, 1, 2], seed=5)
    c = load_dataset("digits", classes=[0, 1, 2], seed=6)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)
    full = np.bincount(np.concatenate([a.y_train, a.y_test]))
    test_counts = np.bincount(a.y_test)
    np.testing.assert_allclose(test_counts / test_counts.sum(), full / full.sum(), atol=0.02)


def test_max_train_max_test_take_stratified_seeded_subsets():
    ds = load_dataset("digits", max_train=100, max_test=30, seed=2)
    assert len(ds.y_train) == 100 and len(ds.y_test) == 30
    assert np.all(np.bincount(ds.y_train, minlength=10) >= 9)
    assert np.all(np.bincount(ds.y_test, minlength=10) >= 2)
    again = load_dataset("digits", max_train=100, max_test=30, seed=2)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    # Larger than the data: everything is kept.
    big = load_dataset("digits", classes=[0, 1], max_train=10_000)
    assert len(big.y_train) == len(load_dataset("digits", classes=[0, 1]).y_train)


def test_pooling_averages_blocks_before_scaling():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", pool=2, angle_range=(0.0, 1.0))
    assert ds.image_shape == (4, 4) and ds.x_train.shape[1:] == (4, 4)
    raw = load_digits().images
    pooled = raw.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)) / 16
    x = np.concatenate([ds.x_train, ds.x_test])
    assert sorted(np.round(x.ravel() * 64).astype(int)) == sorted(np.round(pooled.ravel() * 64).astype(int))


def test_to_torch(digits):
    x_train, y_train, x_test, y_test = to_torch(digits)
    assert x_train.dtype == torch.float64 and y_train.dtype == torch.long
    assert tuple(x_test.shape) == digits.x_test.shape and y_test.dtype == torch.long
    np.testing.assert_array_equal(x_train.numpy(), digits.x_train)


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3.0, 5.0, size=(60, 6, 4))
    y = np.repeat([7, 3, 5], 20)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    ds = load_dataset(str(path), classes=[3, 7], angle_range=(0.0, 2.0), test_fraction=0.5, pool=2, seed=1)
    assert ds.name == "mine" and ds.classes == (3, 7) and ds.image_shape == (3, 2)
    assert len(ds.y_train) == 20 and len(ds.y_test) == 20
    assert np.bincount(ds.y_test).tolist() == [10, 10]
    # Scaling uses min..max over the whole x array of the file, pooling happens before.
    lo, hi = x.min(), x.max()
    pooled = x.reshape(60, 3, 2, 2, 2).mean(axis=(2, 4))
    expected = np.sort(((pooled[np.isin(y, [3, 7])] - lo) / (hi - lo) * 2.0).ravel())
    got = np.sort(np.concatenate([ds.x_train, ds.x_test]).ravel())
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # All classes by default, sorted.
    assert load_dataset(str(path)).classes == (3, 5, 7)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) % 200).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    if suffix:
        with gzip.open(path, "rb") as fh:
            assert fh.read(4) == bytes([0, 0, {np.uint8: 8, np.int32: 0x0C, np.float64: 0x0E}[dtype], 3])


def test_idx_mnist_magic_numbers(tmp_path):
    write_idx(tmp_path / "img", np.zeros((2, 3, 3), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(2, np.uint8))
    assert (tmp_path / "img").read_bytes()[:4] == (0x00000803).to_bytes(4, "big")
    assert (tmp_path / "lab").read_bytes()[:4] == (0x00000801).to_bytes(4, "big")


def _fake_mnist(directory, gz: bool, n_train: int = 40, n_test: int = 20):
    rng = np.random.default_rng(0)
    parts = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
        x[0, 0, 0], x[0, 0, 1] = 0, 255
        y = (np.arange(n) % 4).astype(np.uint8)
        parts[part] = (x, y)
    files = {
        "x_train": parts["train"][0],
        "y_train": parts["train"][1],
        "x_test": parts["test"][0],
        "y_test": parts["test"][1],
    }
    for key, stem in MNIST_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), files[key])
    return files


@pytest.mark.parametrize("gz", [False, True])
def test_fake_mnist_folder(tmp_path, gz):
    files = _fake_mnist(tmp_path, gz)
    ds = load_dataset(f"mnist:{tmp_path}", angle_range=(0.0, math.pi / 4), pool=2)
    assert ds.name == "mnist" and ds.classes == (0, 1, 2, 3) and ds.image_shape == (2, 2)
    assert len(ds.y_train) == 40 and len(ds.y_test) == 20  # MNIST's own split is kept, in file order
    np.testing.assert_array_equal(ds.y_train, files["y_train"])
    pooled = files["x_train"].astype(float).reshape(40, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(ds.x_train, pooled / 255 * math.pi / 4, atol=1e-15)

    sub = load_dataset(f"mnist:{tmp_path}", classes=[3, 1], max_train=8, max_test=4)
    assert sub.classes == (3, 1) and len(sub.y_train) == 8 and len(sub.y_test) == 4
    assert np.bincount(sub.y_train).tolist() == [4, 4]
    x_sel = files["x_train"][np.isin(files["y_train"], [3, 1])]
    assert all(np.any(np.all(np.isclose(x_sel / 255 * math.pi, img), axis=(1, 2))) for img in sub.x_train)


# ---------------------------------------------------------------------------------------------------- bad input


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_unknown_class_names_it_and_lists_available():
    with pytest.raises(ConfigError) as e:
        load_dataset("digits", classes=[0, 42])
    assert "42" in _message(e) and "available" in _message(e) and "9" in _message(e)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"angle_range": (1.0, 0.5)}, "(1.0, 0.5)"),
        ({"angle_range": (0.0, float("nan"))}, "nan"),
        ({"test_fraction": 1.5}, "1.5"),
        ({"test_fraction": 0.0}, "0.0"),
        ({"pool": 0}, "0"),
        ({"pool": 3}, "3"),
        ({"classes": [1, 1]}, "(1, 1)"),
        ({"classes": [5]}, "(5,)"),
        ({"max_train": 0}, "0"),
        ({"max_test": 5}, "5"),
        ({"seed": -1}, "-1"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, bad):
    with pytest.raises(ConfigError) as e:
        load_dataset("digits", **kwargs)
    assert bad in _message(e)
    assert next(iter(kwargs)) in _message(e) or "pool" in _message(e)


def test_missing_npz_names_the_path(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(ConfigError) as e:
        load_dataset(str(path))
    assert str(path) in _message(e)


def test_missing_mnist_file_names_the_path(tmp_path):
    _fake_mnist(tmp_path, gz=False)
    (tmp_path / MNIST_FILES["y_test"]).unlink()
    with pytest.raises(ConfigError) as e:
        load_dataset(f"mnist:{tmp_path}")
    assert str(tmp_path / MNIST_FILES["y_test"]) in _message(e)
    with pytest.raises(ConfigError) as e:
        load_dataset(f"mnist:{tmp_path / 'absent'}")
    assert "absent" in _message(e)


def test_bad_magic_names_path_and_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes([1, 2, 8, 1]) + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(ConfigError) as e:
        read_idx(path)
    assert str(path) in _message(e) and "0x01020801" in _message(e)


def test_truncated_idx_names_the_path(tmp_path):
    path = write_idx(tmp_path / "t.idx.gz", np.zeros((4, 3, 3), np.uint8))
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-5])
    with pytest.raises(ConfigError) as e:
        read_idx(path)
    assert str(path) in _message(e) and "truncated" in _message(e)
    # A truncated MNIST file fails the loader the same way.
    _fake_mnist(tmp_path, gz=False)
    images = tmp_path / MNIST_FILES["x_train"]
    images.write_bytes(images.read_bytes()[:-1])
    with pytest.raises(ConfigError) as e:
        load_dataset(f"mnist:{tmp_path}")
    assert str(images) in _message(e)


def test_npz_with_channels_or_missing_keys(tmp_path):
    path = tmp_path / "rgb.npz"
    np.savez(path, x=np.zeros((4, 3, 3, 3)), y=np.arange(4))
    with pytest.raises(ConfigError) as e:
        load_dataset(str(path))
    assert "(4, 3, 3, 3)" in _message(e) and "(N, H, W)" in _message(e)
    path = tmp_path / "keys.npz"
    np.savez(path, images=np.zeros((4, 3, 3)), y=np.arange(4))
    with pytest.raises(ConfigError) as e:
        load_dataset(str(path))
    assert str(path) in _message(e) and "images" in _message(e)


def test_empty_npz_is_a_config_error(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4, 4)), y=np.zeros(0, dtype=np.int64))
    with pytest.raises(ConfigError, match="npz x shape"):  # numpy's "zero-size array to reduction" before
        load_dataset(str(path))


def test_write_idx_rejects_int64(tmp_path):
    with pytest.raises(ConfigError) as e:
        write_idx(tmp_path / "x.idx", np.zeros(3, np.int64))
    assert "int64" in _message(e)


def test_mnist_class_missing_from_one_file_is_named(tmp_path):
    """Every selected class must be in both MNIST files: a test file without class 3 is an error naming 3."""
    files = _fake_mnist(tmp_path, gz=False)
    keep = files["y_test"] != 3
    write_idx(tmp_path / MNIST_FILES["x_test"], files["x_test"][keep])
    write_idx(tmp_path / MNIST_FILES["y_test"], files["y_test"][keep])
    assert load_dataset(f"mnist:{tmp_path}", classes=[0, 1]).classes == (0, 1)
    with pytest.raises(ConfigError, match=r"classes = \(3,\).*MNIST test file"):
        load_dataset(f"mnist:{tmp_path}", classes=[1, 3])


def test_the_data_package_keeps_the_01_names():
    # qlandscape.data was a module in 0.1; the package face keeps its public names
    names = ("Dataset", "MNIST_FILES", "load_dataset", "read_idx", "to_torch", "write_idx")
    assert [name for name in names if not hasattr(qlandscape.data, name)] == []
    assert qlandscape.data.load_dataset is load_dataset


@pytest.mark.parametrize(
    "damage,named",
    [
        ("truncated", "truncated"),
        ("empty", "truncated"),
        ("text", "truncated"),
        ("corrupt member", "Bad CRC-32"),
        ("npy", ".npy format"),
    ],
)
def test_a_damaged_npz_is_a_config_error_naming_the_path(tmp_path, damage, named):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x=np.random.default_rng(0).random((30, 4, 4)), y=np.arange(30) % 3)
    data = bytearray(good.read_bytes())
    path = tmp_path / "damaged.npz"
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("x,y\n1,2\n")
    elif damage == "corrupt member":
        data[200:260] = bytes(60)  # inside the first member's compressed bytes: its checksum no longer matches
        path.write_bytes(bytes(data))
    else:
        with open(path, "wb") as handle:
            np.save(handle, np.zeros((3, 4, 4)))
    with pytest.raises(ConfigError) as e:
        load_dataset(str(path))
    assert str(path) in _message(e) and named in _message(e)


def test_data_settings_say_which_classes_a_dataset_holds(tmp_path):
    path = tmp_path / "three.npz"
    np.savez(path, x=np.random.default_rng(0).random((30, 4, 4)), y=np.arange(30) % 3)
    everything = DataConfig(dataset=str(path), classes=None)
    assert everything.describe(everything.load()) == "three, all 3 classes (0, 1, 2): the config lists no classes"
    two = DataConfig(dataset=str(path), classes=(2, 0))
    assert two.describe(two.load()) == "three, classes 2, 0"
    assert DataConfig().classes == (0, 1)  # the default run's binary digits task


def test_the_dataset_records_its_input_range_and_pixel_units():
    data = load_dataset("digits", classes=(0, 1), angle_range=(0.0, 2.0), max_train=20, max_test=10)
    assert data.input_range == (0.0, 2.0) and data.pixel_range == (0.0, 16.0)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 2.0
    assert data.eps_in_pixels(0.25) == 2.0  # 0.25 of 2 input units is 1/8 of the 16 pixel levels
    default = load_dataset("digits", classes=(0, 1), max_train=20, max_test=10)
    assert default.input_range == (0.0, math.pi)
