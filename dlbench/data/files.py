"""Datasets read from files the user has, and MNIST-1D generated locally.

Nothing is downloaded: ``mnist1d`` comes from the ``mnist1d`` package's
``make_dataset()`` (its ``get_dataset()`` downloads, so it is never called);
``idx`` reads MNIST-style IDX files (gzip or raw); ``npz`` reads
``x_train, y_train, x_test, y_test`` from a NumPy archive without pickle.
A missing or corrupt file is an InputError naming the path.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlbench.data.base import Dataset, DatasetMeta
from dlbench.errors import InputError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _required_path(path: str, what: str) -> Path:
    if not path:
        raise InputError(f"give the path of the {what}", field="data.path")
    return Path(path).expanduser()


def _idx_layout(head: bytes, n_bytes: int, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) from an IDX file's first bytes and its
    (decompressed) length: 0, 0, dtype code, ndim, big-endian int32 sizes, data."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES:
        raise InputError("not an IDX file (bad magic number)", source=str(path))
    ndim = head[3]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise InputError("truncated IDX header", source=str(path))
    shape = struct.unpack(f">{ndim}i", head[4:header])
    dtype = np.dtype(IDX_DTYPES[head[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if n_bytes - header != expected:
        raise InputError(f"IDX data holds {n_bytes - header} bytes, its header says {expected}", source=str(path))
    return shape, dtype, header


def _idx_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except OSError as exc:
        raise InputError(f"cannot read IDX file: {exc.strerror or exc}", source=str(path)) from None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file's array."""
    raw = _idx_bytes(path)
    shape, dtype, header = _idx_layout(raw[:260], len(raw), path)
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def idx_shape(path: Path) -> tuple[int, ...]:
    """One IDX file's array shape, checked like :func:`read_idx` but without
    holding the data (a gzip file is decompressed in chunks, only to count)."""
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            head = f.read(260)
            n_bytes = len(head)
            while chunk := f.read(1 << 20):
                n_bytes += len(chunk)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read IDX file: {getattr(exc, 'strerror', None) or exc}", source=str(path)) from None
    return _idx_layout(head, n_bytes, path)[0]


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise InputError(f"missing {stem} (or {stem}.gz) in the IDX folder", source=str(folder))


@dataclass(frozen=True)
class ArrayHeader:
    """An array's shape and dtype, read from a file's header without its data."""

    shape: tuple
    dtype: np.dtype


def check_classification(x_train, y_train, x_test, y_test, source: str) -> int:
    """Check arrays (or anything with ``shape`` and ``dtype`` for the features)
    a model can train on; the number of classes."""
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise InputError(f"x_{name} holds {x.dtype} values; expected numbers (a float or integer array)",
                             source=source)
        if x.shape[0] == 0:
            raise InputError(f"x_{name} has no samples; expected at least one", source=source)
        if x.shape[0] != len(y):
            raise InputError(f"{x.shape[0]} {name} samples but {len(y)} labels", source=source)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise InputError(f"{name} labels must be a 1-D array of non-negative integers", source=source)
    return max(int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1, 2)


def _classification(x_train, y_train, x_test, y_test, source: str) -> Dataset:
    n_classes = check_classification(x_train, y_train, x_test, y_test, source)
    return Dataset(np.ascontiguousarray(x_train, np.float32), y_train.astype(np.int64),
                   np.ascontiguousarray(x_test, np.float32), y_test.astype(np.int64), n_classes)


def _idx_folder(path: str) -> Path:
    folder = _required_path(path, "folder holding the IDX files")
    if not folder.is_dir():
        raise InputError("no such folder", field="data.path", source=str(folder))
    return folder


def _image_shape(shape: tuple, spatial: bool) -> tuple[int, ...]:
    return (*shape[1:], 1) if spatial else (int(np.prod(shape[1:])),)


def describe_idx(seed: int, path: str, spatial: bool, scale: float) -> DatasetMeta:
    """The IDX folder's shapes and classes from the image headers and the labels."""
    folder = _idx_folder(path)
    files = {key: _find(folder, stem) for key, stem in IDX_FILES.items()}
    shapes = {key: idx_shape(files[key]) for key in ("x_train", "x_test")}
    labels = {key: read_idx(files[key]) for key in ("y_train", "y_test")}
    images = {key: ArrayHeader(shape, np.dtype(np.uint8)) for key, shape in shapes.items()}
    n_classes = check_classification(images["x_train"], labels["y_train"], images["x_test"], labels["y_test"],
                                     str(folder))
    return DatasetMeta(_image_shape(shapes["x_train"], spatial), n_classes, shapes["x_train"][0],
                       shapes["x_test"][0])


def idx(seed: int, path: str, spatial: bool, scale: float) -> Dataset:
    """MNIST / Fashion-MNIST IDX files in folder ``path``; images scaled by ``scale``."""
    folder = _idx_folder(path)
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in IDX_FILES.items()}
    x_train, x_test = (arrays[k].astype(np.float32) * scale for k in ("x_train", "x_test"))
    if spatial:
        x_train, x_test = x_train[..., None], x_test[..., None]
    else:
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return _classification(x_train, arrays["y_train"], x_test, arrays["y_test"], str(folder))


def npz(seed: int, path: str) -> Dataset:
    """``x_train, y_train, x_test, y_test`` from a .npz file (no pickled objects)."""
    file = _required_path(path, ".npz file")
    try:
        with np.load(file, allow_pickle=False) as archive:
            missing = [k for k in IDX_FILES if k not in archive.files]
            if missing:
                raise InputError(f"missing arrays {', '.join(missing)}; expected x_train, y_train, x_test, y_test",
                                 source=str(file))
            arrays = {k: archive[k] for k in IDX_FILES}
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read .npz file: {exc}", source=str(file)) from None
    return _classification(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(file))


NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npy_header(archive: zipfile.ZipFile, key: str, file: Path) -> ArrayHeader:
    with archive.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        reader = NPY_HEADER_READERS.get(version)
        if reader is None:  # a newer header format: read the array itself
            with np.load(file, allow_pickle=False) as loaded:
                array = loaded[key]
            return ArrayHeader(array.shape, array.dtype)
        shape, _, dtype = reader(f)
    if dtype.hasobject:
        raise ValueError(f"{key} holds Python objects, which only allow_pickle would load (dlbench never does)")
    return ArrayHeader(shape, dtype)


def describe_npz(seed: int, path: str) -> DatasetMeta:
    """The .npz file's shapes and classes from the feature arrays' headers and the labels."""
    file = _required_path(path, ".npz file")
    try:
        with zipfile.ZipFile(file) as archive:
            missing = [k for k in IDX_FILES if k + ".npy" not in archive.namelist()]
            if missing:
                raise InputError(f"missing arrays {', '.join(missing)}; expected x_train, y_train, x_test, y_test",
                                 source=str(file))
            headers = {k: _npy_header(archive, k, file) for k in ("x_train", "x_test")}
        with np.load(file, allow_pickle=False) as loaded:
            labels = {k: loaded[k] for k in ("y_train", "y_test")}
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read .npz file: {exc}", source=str(file)) from None
    n_classes = check_classification(headers["x_train"], labels["y_train"], headers["x_test"], labels["y_test"],
                                     str(file))
    return DatasetMeta(tuple(headers["x_train"].shape[1:]), n_classes, headers["x_train"].shape[0],
                       headers["x_test"].shape[0])


def _mnist1d_checked(num_samples: int):
    """mnist1d's (get_dataset_args, make_dataset), after the checks."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise InputError(f"the mnist1d dataset needs the mnist1d package and matplotlib ({exc}); "
                         'run: pip install mnist1d matplotlib', field="data.name") from None
    if num_samples < 100:
        raise InputError(f"must be at least 100, got {num_samples}", field="data.num_samples")
    return get_dataset_args, make_dataset


def describe_mnist1d(seed: int, num_samples: int, dataset_seed: int, spatial: bool) -> DatasetMeta:
    """MNIST-1D's shapes, from the package's own settings (40-sample signals,
    its train_split of the samples for training)."""
    get_dataset_args, _ = _mnist1d_checked(num_samples)
    args = get_dataset_args()
    n_train, length = int(num_samples * args.train_split), args.final_seq_length
    return DatasetMeta((length, 1) if spatial else (length,), 10, n_train, num_samples - n_train)


def mnist1d(seed: int, num_samples: int, dataset_seed: int, spatial: bool) -> Dataset:
    """MNIST-1D (Greydanus 2020) generated locally with its reference settings
    (40-sample signals, 10 classes, the package's own 80/20 split)."""
    get_dataset_args, make_dataset = _mnist1d_checked(num_samples)
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, dataset_seed
    data = make_dataset(args)
    x_train, x_test = data["x"].astype(np.float32), data["x_test"].astype(np.float32)
    if spatial:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return Dataset(x_train, data["y"].astype(np.int64), x_test, data["y_test"].astype(np.int64), 10)
