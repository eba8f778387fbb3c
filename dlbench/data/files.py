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
from pathlib import Path

import numpy as np

from dlbench.data.base import Dataset
from dlbench.errors import InputError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _required_path(path: str, what: str) -> Path:
    if not path:
        raise InputError(f"give the path of the {what}", field="data.path")
    return Path(path).expanduser()


def read_idx(path: Path) -> np.ndarray:
    """One IDX file: 0, 0, dtype code, ndim, big-endian int32 sizes, then the data."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise InputError(f"cannot read IDX file: {exc.strerror or exc}", source=str(path)) from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        raise InputError("not an IDX file (bad magic number)", source=str(path))
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError("truncated IDX header", source=str(path))
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(f"IDX data holds {len(raw) - header} bytes, its header says {expected}", source=str(path))
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise InputError(f"missing {stem} (or {stem}.gz) in the IDX folder", source=str(folder))


def _classification(x_train, y_train, x_test, y_test, source: str) -> Dataset:
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise InputError(f"x_{name} holds {x.dtype} values; expected numbers (a float or integer array)",
                             source=source)
        if len(x) == 0:
            raise InputError(f"x_{name} has no samples; expected at least one", source=source)
        if len(x) != len(y):
            raise InputError(f"{len(x)} {name} samples but {len(y)} labels", source=source)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise InputError(f"{name} labels must be a 1-D array of non-negative integers", source=source)
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(np.ascontiguousarray(x_train, np.float32), y_train.astype(np.int64),
                   np.ascontiguousarray(x_test, np.float32), y_test.astype(np.int64), max(n_classes, 2))


def idx(seed: int, path: str, spatial: bool, scale: float) -> Dataset:
    """MNIST / Fashion-MNIST IDX files in folder ``path``; images scaled by ``scale``."""
    folder = _required_path(path, "folder holding the IDX files")
    if not folder.is_dir():
        raise InputError("no such folder", field="data.path", source=str(folder))
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


def mnist1d(seed: int, num_samples: int, dataset_seed: int, spatial: bool) -> Dataset:
    """MNIST-1D (Greydanus 2020) generated locally with its reference settings
    (40-sample signals, 10 classes, the package's own 80/20 split)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise InputError(f"the mnist1d dataset needs the mnist1d package and matplotlib ({exc}); "
                         'run: pip install mnist1d matplotlib', field="data.name") from None
    if num_samples < 100:
        raise InputError(f"must be at least 100, got {num_samples}", field="data.num_samples")
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, dataset_seed
    data = make_dataset(args)
    x_train, x_test = data["x"].astype(np.float32), data["x_test"].astype(np.float32)
    if spatial:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return Dataset(x_train, data["y"].astype(np.int64), x_test, data["y_test"].astype(np.int64), 10)
