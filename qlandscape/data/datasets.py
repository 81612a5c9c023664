"""Datasets: built-in digits, MNIST from IDX files, or a user's ``.npz``; class subsets, pooling, angle scaling.

Sources (``load_dataset(source)``):

* ``"digits"`` -- scikit-learn's bundled 8x8 digits (values 0..16, 10 classes, no download).
* ``"mnist:DIR"`` -- the four standard MNIST IDX files in ``DIR`` (each optionally gzipped); MNIST's own
  train/test split is kept, so ``test_fraction`` is ignored there.
* any other string -- a path to an ``.npz`` with ``x`` of shape (N, H, W) and integer labels ``y`` of shape (N,).

Pipeline, in this order: class subset -> ``pool x pool`` average pooling -> linear map of the pixel values from the
data's intrinsic range (digits [0, 16], MNIST [0, 255], npz min..max over the whole ``x`` array of the file) onto
``angle_range`` -> seeded stratified train/test split (digits, npz) -> optional seeded stratified subsets of at most
``max_train`` / ``max_test`` samples. Labels are re-indexed to 0..C-1 in the order of ``classes``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from qlandscape.core.errors import ConfigError, check_positive_int, require

__all__ = ["Dataset", "load_dataset", "read_idx", "write_idx", "to_torch", "MNIST_FILES", "dataset_content_hash"]

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODE_OF = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_CODES.items()}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset of float64 images ``(N, H, W)`` (angles) and int64 labels 0..C-1.

    ``classes[k]`` is the original label value of class index ``k``. ``input_range`` is the valid range of the
    model's inputs (the ``angle_range`` the pixels were scaled onto: every input lies in it, and adversarial
    attacks clip to it); ``pixel_range`` is the data's intrinsic pixel range that was mapped onto it, so that an
    input-space distance ``eps`` is ``eps * pixels_per_input_unit`` pixel units (:meth:`eps_in_pixels`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[int, ...]
    name: str
    image_shape: tuple[int, int]
    input_range: tuple[float, float] = (0.0, math.pi)
    pixel_range: tuple[float, float] = (0.0, 16.0)

    @property
    def pixels_per_input_unit(self) -> float:
        """Pixel units per model input unit: (pixel high - low) / (input high - low)."""
        return (self.pixel_range[1] - self.pixel_range[0]) / (self.input_range[1] - self.input_range[0])

    def eps_in_pixels(self, eps: float) -> float:
        """An input-space perturbation size ``eps`` (model input units, e.g. radians) in the data's pixel units."""
        return float(eps) * self.pixels_per_input_unit

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, classes={self.classes}, image_shape={self.image_shape}, "
            f"n_train={len(self.y_train)}, n_test={len(self.y_test)})"
        )


# ---------------------------------------------------------------------------------------------------- IDX files


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed) into a native-endian numpy array.

    Raises :class:`ConfigError` naming the path when the file is missing, has a bad magic number or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("IDX file", str(path), "no such file")
    try:
        with _open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ConfigError("IDX file", str(path), f"could not be read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_CODES or raw[3] == 0:
        magic = "0x" + raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise ConfigError(
            "IDX file",
            str(path),
            f"bad magic number {magic}; expected 0x0000TTDD (TT a type code such as 08 for uint8, "
            f"DD the number of dimensions, e.g. 0x00000803 for images, 0x00000801 for labels)",
        )
    ndim = raw[3]
    dtype = np.dtype(_IDX_CODES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError("IDX file", str(path), f"truncated: the header needs {header} bytes, file has {len(raw)}")
    dims = struct.unpack(">" + "i" * ndim, raw[4:header])
    if any(d < 0 for d in dims):
        raise ConfigError("IDX file", str(path), f"negative dimension in header {dims}")
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ConfigError(
            "IDX file", str(path), f"{kind}: dimensions {dims} need {expected} bytes, file has {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); returns the path.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (IDX has no 64-bit integers).
    """
    array = np.asarray(array)
    code = _IDX_CODE_OF.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ConfigError("array dtype", str(array.dtype), "expected uint8, int8, int16, int32, float32 or float64")
    require(1 <= array.ndim <= 255, "array ndim", array.ndim, "expected 1..255 dimensions")
    path = Path(path)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_CODES[code]).tobytes()
    with _open(path, "wb") as fh:
        fh.write(header + payload)
    return path


def _find_mnist_file(directory: Path, stem: str) -> Path:
    # Some mirrors spell the names with a dot ("train-images.idx3-ubyte").
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise ConfigError("MNIST file", str(directory / stem), "not found (also looked for the .gz version)")


# ---------------------------------------------------------------------------------------------------- loading


def _check_classes(classes: Sequence[int] | None) -> tuple[int, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) and not hasattr(classes, "__iter__"):
        raise ConfigError("classes", classes, "expected a sequence of integer labels or None for all")
    out = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise ConfigError("classes", classes, f"expected integer labels, got {c!r}")
        out.append(int(c))
    require(len(set(out)) == len(out), "classes", tuple(out), "expected distinct labels")
    require(len(out) >= 2, "classes", tuple(out), "expected at least two classes (or None for all)")
    return tuple(out)


def _check_optional_count(field: str, value: int | None) -> int | None:
    return None if value is None else check_positive_int(field, value)


def _resolve_classes(y: np.ndarray, classes: tuple[int, ...] | None, where: str) -> tuple[int, ...]:
    available = tuple(int(c) for c in np.unique(y))
    if classes is None:
        require(len(available) >= 2, "classes", available, f"{where} holds fewer than two classes")
        return available
    missing = tuple(c for c in classes if c not in available)
    if missing:
        raise ConfigError("classes", missing, f"not present in {where}; available classes: {available}")
    return classes


def _select_classes(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isin(y, classes)
    y_kept = y[keep]
    y_new = np.empty(len(y_kept), dtype=np.int64)
    for k, c in enumerate(classes):
        y_new[y_kept == c] = k
    return x[keep], y_new


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return x
    n, h, w = x.shape
    return x.reshape(n, h // k, k, w // k, k).mean(axis=(2, 4))


def _scale(x: np.ndarray, lo: float, hi: float, angle_range: tuple[float, float]) -> np.ndarray:
    low, high = angle_range
    t = (x - lo) / (hi - lo)
    # This form hits low and high exactly at t = 0 and t = 1.
    return low * (1.0 - t) + high * t


def _stratified_subset(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of a stratified random subset of size ``min(k, len(y))``; each class keeps >= 1 sample."""
    n = len(y)
    if k >= n:
        return np.arange(n)
    labels, counts = np.unique(y, return_counts=True)
    share = k * counts / n
    take = np.maximum(np.floor(share).astype(int), 1)
    # Largest-remainder apportionment of what is left, then trim if the minimum of one per class overshot.
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while take.sum() < k:
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > k:
        c = int(np.argmax(np.where(take > 1, take - share, -np.inf)))
        take[c] -= 1
    chosen = [rng.permutation(np.flatnonzero(y == lab))[:t] for lab, t in zip(labels, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    try:
        return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    except ValueError as exc:
        raise ConfigError(
            "test_fraction",
            test_fraction,
            f"a stratified split of {len(y)} samples over {len(np.unique(y))} classes is impossible ({exc})",
        ) from exc


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy array saved under an .npz name
            raise ConfigError("npz file", str(path), "holds one array (.npy format); expected an .npz with x and y")
        with loaded as data:
            keys = tuple(data.files)
            if "x" not in keys or "y" not in keys:
                raise ConfigError("npz file", str(path), f"expected arrays 'x' and 'y', found {keys}")
            x, y = np.asarray(data["x"]), np.asarray(data["y"])
    except ConfigError:
        raise
    # a damaged file fails in zipfile (truncated archive), zlib (corrupt member) or numpy (bad header)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ConfigError(
            "npz file", str(path), f"could not be read as an .npz without pickles; is it damaged or truncated? ({exc})"
        ) from None
    if x.ndim != 3:
        raise ConfigError(
            "npz x shape",
            x.shape,
            f"{path}: expected (N, H, W) grey-scale images; (N, H, W, C) channels are not supported",
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ConfigError("npz y shape", y.shape, f"{path}: expected (N,) labels with N = {len(x)}")
    if len(x) == 0 or 0 in x.shape[1:]:
        raise ConfigError("npz x shape", x.shape, f"{path}: expected at least one non-empty image")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ConfigError("npz x dtype", str(x.dtype), f"{path}: expected real numbers")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ConfigError("npz x", "non-finite values", f"{path}: expected finite pixel values")
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    else:
        raise ConfigError("npz y dtype", str(y.dtype), f"{path}: expected integer class labels")
    return x, y


def load_dataset(
    source: str = "digits",
    *,
    classes: Sequence[int] | None = None,
    angle_range: tuple[float, float] = (0.0, math.pi),
    test_fraction: float = 0.25,
    seed: int = 0,
    pool: int = 1,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Dataset:
    """Load, subset, pool, scale and split a dataset (see the module docstring for sources and order).

    Args:
        source: ``"digits"``, ``"mnist:DIR"`` or a path to an ``.npz`` with ``x`` (N, H, W) and ``y`` (N,).
        classes: original labels to keep, in the order that defines indices 0..C-1; None keeps all.
        angle_range: (low, high) that the data's intrinsic pixel range is mapped onto.
        test_fraction: test share of a stratified split (digits and npz; MNIST keeps its own split).
        seed: seeds the split and the ``max_train`` / ``max_test`` subsets.
        pool: ``pool x pool`` average pooling before scaling; image sides must be divisible by it.
        max_train, max_test: keep a seeded stratified subset of at most this many samples.
    """
    # --- validate the cheap arguments before touching any file
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise ConfigError("source", source, "expected 'digits', 'mnist:DIR' or a path to an .npz file")
    classes = _check_classes(classes)
    try:
        low, high = (float(v) for v in angle_range)
    except (TypeError, ValueError) as exc:
        raise ConfigError("angle_range", angle_range, "expected (low, high) with low < high") from exc
    require(
        math.isfinite(low) and math.isfinite(high) and low < high,
        "angle_range",
        tuple(angle_range),
        "expected finite (low, high) with low < high",
    )
    require(
        isinstance(test_fraction, (int, float))
        and not isinstance(test_fraction, bool)
        and 0.0 < float(test_fraction) < 1.0,
        "test_fraction",
        test_fraction,
        "expected a number in (0, 1)",
    )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", seed, "expected a non-negative integer")
    pool = check_positive_int("pool", pool)
    max_train = _check_optional_count("max_train", max_train)
    max_test = _check_optional_count("max_test", max_test)

    # --- read the raw data (intrinsic range lo..hi)
    if source == "digits":
        digits = load_digits()
        x_all, y_all = digits.images.astype(np.float64), digits.target.astype(np.int64)
        lo, hi, name, presplit, where = 0.0, 16.0, "digits", None, "the digits dataset"
    elif source.startswith("mnist:"):
        directory = Path(source[len("mnist:") :] or ".")
        if not directory.is_dir():
            raise ConfigError("source", source, f"MNIST directory {str(directory)!r} does not exist")
        paths = {key: _find_mnist_file(directory, stem) for key, stem in MNIST_FILES.items()}
        arrays = {key: read_idx(p) for key, p in paths.items()}
        for part in ("train", "test"):
            xs, ys = arrays[f"x_{part}"], arrays[f"y_{part}"]
            if xs.ndim != 3:
                raise ConfigError("MNIST images shape", xs.shape, f"{paths['x_' + part]}: expected (N, H, W)")
            if ys.ndim != 1 or len(ys) != len(xs):
                raise ConfigError(
                    "MNIST labels shape", ys.shape, f"{paths['y_' + part]}: expected (N,) with N = {len(xs)} images"
                )
        require(
            arrays["x_train"].shape[1:] == arrays["x_test"].shape[1:],
            "MNIST image shapes",
            (arrays["x_train"].shape[1:], arrays["x_test"].shape[1:]),
            "train and test images must match",
        )
        presplit = {k: (v.astype(np.float64) if k.startswith("x") else v.astype(np.int64)) for k, v in arrays.items()}
        x_all = np.concatenate([presplit["x_train"], presplit["x_test"]])
        y_all = np.concatenate([presplit["y_train"], presplit["y_test"]])
        lo, hi, name, where = 0.0, 255.0, "mnist", f"the MNIST files in {str(directory)!r}"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                "source", source, "no such file; expected 'digits', 'mnist:DIR' or a path to an .npz file"
            )
        x_all, y_all = _load_npz(path)
        lo, hi, name, presplit, where = float(x_all.min()), float(x_all.max()), path.stem, None, str(path)
        require(hi > lo, "npz x", f"constant value {lo}", f"{path}: images must not all have one value")

    h, w = x_all.shape[1:]
    if h % pool or w % pool:
        raise ConfigError("pool", pool, f"image sides {(h, w)} must be divisible by the pooling size")

    # --- classes first (it validates against the data), then pool, scale, split, subsets
    classes = _resolve_classes(y_all, classes, where)
    min_count = len(classes)
    for field, value in (("max_train", max_train), ("max_test", max_test)):
        require(
            value is None or value >= min_count,
            field,
            value,
            f"expected at least one sample per class, i.e. >= {min_count}",
        )

    def prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = _select_classes(x, y, classes)
        return _scale(_pool(x, pool), lo, hi, (low, high)), y

    if presplit is not None:
        x_train, y_train = prepare(presplit["x_train"], presplit["y_train"])
        x_test, y_test = prepare(presplit["x_test"], presplit["y_test"])
        for part, labels in (("train", y_train), ("test", y_test)):
            missing = sorted(set(range(len(classes))) - set(np.unique(labels).tolist()))
            # a class absent from one file would quietly skew that split's accuracy and every metric on it
            require(
                not missing,
                "classes",
                tuple(classes[k] for k in missing),
                f"not present in the MNIST {part} file; both files must contain every selected class",
            )
    else:
        x_sel, y_sel = prepare(x_all, y_all)
        x_train, x_test, y_train, y_test = _split(x_sel, y_sel, float(test_fraction), int(seed))

    if max_train is not None:
        keep = _stratified_subset(y_train, max_train, np.random.default_rng([int(seed), 1]))
        x_train, y_train = x_train[keep], y_train[keep]
    if max_test is not None:
        keep = _stratified_subset(y_test, max_test, np.random.default_rng([int(seed), 2]))
        x_test, y_test = x_test[keep], y_test[keep]

    return Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float64),
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float64),
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        classes=tuple(int(c) for c in classes),
        name=name,
        image_shape=(int(x_train.shape[1]), int(x_train.shape[2])),
        input_range=(float(low), float(high)),
        pixel_range=(float(lo), float(hi)),
    )


def to_torch(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` as float64 / int64 (long) torch tensors (copies)."""
    return (
        torch.tensor(dataset.x_train, dtype=torch.float64),
        torch.tensor(dataset.y_train, dtype=torch.long),
        torch.tensor(dataset.x_test, dtype=torch.float64),
        torch.tensor(dataset.y_test, dtype=torch.long),
    )


# ---------------------------------------------------------------------------------------------------- content hash

_CONTENT_HASHES: dict[tuple, str] = {}  # (source, identity of its files) -> hash: a sweep asks once per run


def _file_identity(path: Path) -> tuple:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def dataset_content_hash(source: str) -> str:
    """SHA-256 (hex) of the raw data ``source`` names: an ``.npz`` file's bytes, the four MNIST files' bytes (in
    the order of ``MNIST_FILES``), or the bundled digits arrays. Replacing a file in place changes it, where the
    source string (and so a run id) stays the same. Remembered per file identity (path, size, modification time,
    inode) within the process. A missing file raises :class:`ConfigError`."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise ConfigError("source", source, "expected 'digits', 'mnist:DIR' or a path to an .npz file")
    if source == "digits":
        files: list[Path] = []
    elif source.startswith("mnist:"):
        directory = Path(source[len("mnist:") :] or ".")
        if not directory.is_dir():
            raise ConfigError("source", source, f"MNIST directory {str(directory)!r} does not exist")
        files = [_find_mnist_file(directory, stem) for stem in MNIST_FILES.values()]
    else:
        files = [Path(source)]
        if not files[0].is_file():
            raise ConfigError("source", source, "no such file; expected 'digits', 'mnist:DIR' or a path to an .npz")
    key = (source, tuple(_file_identity(p) for p in files))
    if key not in _CONTENT_HASHES:
        digest = hashlib.sha256()
        if not files:
            digits = load_digits()
            for array in (digits.images.astype(np.float64), digits.target.astype(np.int64)):
                digest.update(np.ascontiguousarray(array).tobytes())
        for path in files:
            with open(path, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        _CONTENT_HASHES[key] = digest.hexdigest()
    return _CONTENT_HASHES[key]
