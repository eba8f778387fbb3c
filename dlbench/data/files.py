"""Datasets read from files the user has, and MNIST-1D generated locally.

Nothing is downloaded: ``mnist1d`` comes from the ``mnist1d`` package's
``make_dataset()`` (its ``get_dataset()`` downloads, so it is never called);
``idx`` reads MNIST-style IDX files (gzip or raw); ``npz`` reads
``x_train, y_train, x_test, y_test`` from a NumPy archive without pickle:
integer labels are classes, float targets (n,) or (n, k) a regression's;
with ``tokens = true`` the features are token ids (n, length) for an
embedding, labelled one class per sequence (n,) or one per token (n, length).
A missing or corrupt file is an InputError naming the path.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dlbench.data.base import Dataset, DatasetMeta
from dlbench.data.regular import check_npy_size, file_size, open_regular
from dlbench.errors import InputError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _required_path(path: str, what: str) -> Path:
    if not path:
        raise InputError(f"give the path of the {what}", field="data.path")
    return Path(path).expanduser()


def _idx_layout(f: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) from an IDX stream's header (0, 0, dtype
    code, ndim, big-endian int32 sizes), ``f`` left at the data."""
    head = f.read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES:
        raise InputError("not an IDX file (bad magic number)", source=str(path))
    sizes = f.read(4 * head[3])
    if len(sizes) < 4 * head[3]:
        raise InputError("truncated IDX header", source=str(path))
    shape = struct.unpack(f">{head[3]}i", sizes)
    if any(n < 0 for n in shape):
        raise InputError(f"IDX header gives the negative size {min(shape)}", source=str(path))
    dtype = np.dtype(IDX_DTYPES[head[2]])
    return shape, dtype, int(np.prod(shape, dtype=object)) * dtype.itemsize


def _idx_data(path: Path, keep: bool) -> tuple[tuple[int, ...], np.dtype, bytes | None]:
    """An IDX file's (shape, dtype, data; None unless ``keep``), its data's
    length checked against its header before it is read: a raw file's from
    its size, a gzip file's by reading at most one byte more than the header says."""
    with open_regular(path, "IDX file") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw) if compressed else contextlib.nullcontext(raw) as f:
            shape, dtype, expected = _idx_layout(f, path)
            data, found = None, expected if compressed else file_size(raw) - f.tell()
            if found == expected:
                data, found = _read_at_most(f, expected + 1, keep)
    if found != expected:
        held = f"{found}" if found <= expected else f"more than {expected}"
        raise InputError(f"IDX data holds {held} bytes, its header says {expected}", source=str(path))
    return shape, dtype, data


def _read_at_most(f: BinaryIO, limit: int, keep: bool) -> tuple[bytes | None, int]:
    """(the bytes, their count) of ``f``'s next ``limit`` bytes at most (only counted unless ``keep``)."""
    if keep:
        data = f.read(limit)
        return data, len(data)
    count = 0
    while count < limit and (chunk := f.read(min(1 << 20, limit - count))):
        count += len(chunk)
    return None, count


def read_idx(path: Path) -> np.ndarray:
    """One IDX file's array."""
    try:
        shape, dtype, data = _idx_data(path, keep=True)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read IDX file: {getattr(exc, 'strerror', None) or exc}", source=str(path)) from None
    return np.frombuffer(data, dtype).reshape(shape)


def idx_shape(path: Path) -> tuple[int, ...]:
    """One IDX file's array shape, checked like :func:`read_idx` but without
    holding the data (a gzip file is decompressed in chunks, only to count)."""
    try:
        return _idx_data(path, keep=False)[0]
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read IDX file: {getattr(exc, 'strerror', None) or exc}", source=str(path)) from None


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
    a model can train on; the number of classes, 0 for float targets (a
    regression's values: (n,) or (n, k), finite, float in both parts)."""
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise InputError(f"x_{name} holds {x.dtype} values; expected numbers (a float or integer array)",
                             source=source)
        if x.shape[0] == 0:
            raise InputError(f"x_{name} has no samples; expected at least one", source=source)
        if x.shape[0] != len(y):
            raise InputError(f"{x.shape[0]} {name} samples but {len(y)} labels", source=source)
        if y.dtype.kind == "f":
            _check_float_targets(name, y, source)
        elif y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise InputError(f"{name} labels must be a 1-D array of non-negative integers (class labels), "
                             "or float targets of a regression", source=source)
    if (y_train.dtype.kind == "f") != (y_test.dtype.kind == "f"):
        raise InputError(f"y_train holds {y_train.dtype} and y_test {y_test.dtype} values; both class labels "
                         "(integers) or both float targets", source=source)
    if y_train.dtype.kind == "f":
        if y_train.shape[1:] != y_test.shape[1:]:
            raise InputError(f"y_train has {y_train.shape[1:] or 1} values per sample, y_test "
                             f"{y_test.shape[1:] or 1}", source=source)
        return 0
    return max(int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1, 2)


def _check_float_targets(name: str, y: np.ndarray, source: str) -> None:
    if y.ndim not in (1, 2):
        raise InputError(f"y_{name} has shape {y.shape}; float targets are (samples,) or (samples, values)",
                         source=source)
    if not np.isfinite(y).all():
        raise InputError(f"y_{name} holds NaN or infinite values", source=source)


def _classification(x_train, y_train, x_test, y_test, source: str) -> Dataset:
    """The checked arrays as a Dataset: int64 class labels, or float32 regression targets."""
    n_classes = check_classification(x_train, y_train, x_test, y_test, source)
    target = np.float32 if n_classes == 0 else np.int64
    return Dataset(np.ascontiguousarray(x_train, np.float32), y_train.astype(target),
                   np.ascontiguousarray(x_test, np.float32), y_test.astype(target), n_classes)


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


NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def checked_npz_members(f: BinaryIO, keys, source: str) -> dict[str, ArrayHeader]:
    """The headers of the ``.npz`` (a zip) open as ``f``'s members ``keys``,
    each member's size checked against its header (its data not read)."""
    with zipfile.ZipFile(f) as archive:
        names = archive.namelist()
        missing = [k for k in keys if k + ".npy" not in names]
        if missing:
            raise InputError(f"missing arrays {', '.join(missing)}; expected {', '.join(keys)}", source=source)
        headers = {}
        for key in keys:
            with archive.open(key + ".npy") as member:
                shape, dtype = check_npy_size(member, archive.getinfo(key + ".npy").file_size, key, source)
            headers[key] = ArrayHeader(shape, dtype)
    f.seek(0)
    return headers


def npz(seed: int, path: str, tokens: bool = False) -> Dataset:
    """``x_train, y_train, x_test, y_test`` from a .npz file (no pickled objects)."""
    arrays, source = _npz_arrays(path)
    if tokens:
        return _token_dataset(arrays, source)[0]
    return _classification(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source)


def _npz_arrays(path: str) -> tuple[dict[str, np.ndarray], str]:
    """The four arrays of the .npz file at ``path``, and the file's name for messages."""
    file = _required_path(path, ".npz file")
    try:
        with open_regular(file, ".npz file") as f:
            checked_npz_members(f, tuple(IDX_FILES), str(file))
            with np.load(f, allow_pickle=False) as archive:
                return {k: archive[k] for k in IDX_FILES}, str(file)
    except NPZ_ERRORS as exc:
        raise InputError(f"cannot read .npz file: {exc}", source=str(file)) from None


def check_tokens(arrays: dict, source: str) -> tuple[int, int]:
    """Token ids (n, length) of integers from 0, and their class labels, one per sequence (n,)
    or one per token (n, length): (the number of token ids, the number of classes)."""
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        for name, a in ((f"x_{part}", x), (f"y_{part}", y)):
            if not np.issubdtype(a.dtype, np.integer) or (a.size and a.min() < 0):
                raise InputError(f"{name} must hold non-negative integers (token ids, class labels), got "
                                 f"{a.dtype}{f' down to {a.min()}' if a.size and a.dtype.kind in 'iu' else ''}",
                                 source=source)
        if x.ndim != 2 or x.shape[0] == 0:
            raise InputError(f"x_{part} has shape {x.shape}; token ids are (samples, length)", source=source)
        if y.shape not in ((x.shape[0],), x.shape):
            raise InputError(f"y_{part} has shape {y.shape}; labels of token ids are one per sequence "
                             f"({x.shape[0]},) or one per token {x.shape}", source=source)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:] or \
            arrays["y_train"].shape[1:] != arrays["y_test"].shape[1:]:
        raise InputError(f"train and test differ in length: x {arrays['x_train'].shape[1:]} and "
                         f"{arrays['x_test'].shape[1:]}, y {arrays['y_train'].shape[1:]} and "
                         f"{arrays['y_test'].shape[1:]}", source=source)
    top = lambda *names: max(int(arrays[k].max(initial=0)) for k in names) + 1  # noqa: E731
    return max(top("x_train", "x_test"), 2), max(top("y_train", "y_test"), 2)


def _token_dataset(arrays: dict, source: str) -> tuple[Dataset, int]:
    """The checked token ids and labels as int64, and the number of token ids."""
    vocab, n_classes = check_tokens(arrays, source)
    return Dataset(*(arrays[k].astype(np.int64) for k in IDX_FILES), n_classes), vocab


def describe_npz(seed: int, path: str, tokens: bool = False) -> DatasetMeta:
    """The .npz file's shapes and classes from the feature arrays' headers and the labels."""
    if tokens:  # the vocabulary is the largest id: the ids themselves are read
        data, vocab = _token_dataset(*_npz_arrays(path))
        return DatasetMeta(tuple(data.x_train.shape[1:]), data.n_classes, len(data.x_train), len(data.x_test),
                           "int64", tuple(data.y_train.shape[1:]), vocab)
    file = _required_path(path, ".npz file")
    try:
        with open_regular(file, ".npz file") as f:
            headers = checked_npz_members(f, tuple(IDX_FILES), str(file))
            with np.load(f, allow_pickle=False) as loaded:
                labels = {k: loaded[k] for k in ("y_train", "y_test")}
    except NPZ_ERRORS as exc:
        raise InputError(f"cannot read .npz file: {exc}", source=str(file)) from None
    n_classes = check_classification(headers["x_train"], labels["y_train"], headers["x_test"], labels["y_test"],
                                     str(file))
    return DatasetMeta(tuple(headers["x_train"].shape[1:]), n_classes, headers["x_train"].shape[0],
                       headers["x_test"].shape[0], target_shape=tuple(labels["y_train"].shape[1:]),
                       regression=n_classes == 0)


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
