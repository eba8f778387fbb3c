"""CIFAR-10 from the user's own binary files, and a generated CIFAR-shaped set.

* ``cifar10``: the "binary version" of CIFAR-10 (Krizhevsky 2009,
  https://www.cs.toronto.edu/~kriz/cifar.html), the folder
  ``cifar-10-batches-bin`` holding ``data_batch_1.bin`` .. ``data_batch_5.bin``
  (training, 50000 images) and ``test_batch.bin`` (10000). Each file is a run
  of 3073-byte records: one label byte (0..9), then the 32x32 red, green and
  blue planes (1024 bytes each, row-major). Read with NumPy, never pickle (the
  "python version" of the set is pickled, so it is not read). Images come
  back channels-last ``(32, 32, 3)`` float32 in [0, 1], each channel
  standardised with the training images' mean and standard deviation when
  ``normalize`` (the usual preprocessing; He et al. 2016 subtract the
  per-pixel mean).
* ``cifar-like``: a generated stand-in of the same shape (32x32x3, 10
  classes) so a CIFAR workload runs offline: each class is a smooth random
  colour pattern (8x8x3 Gaussian noise blown up to 32x32), each image its
  class's pattern shifted by up to ``max_shift`` pixels (cyclically), plus
  Gaussian pixel noise of standard deviation ``noise``. A convolutional
  network learns it (the shift asks for translation invariance); it is not
  CIFAR-10 and its accuracies say nothing about CIFAR-10's.

A missing, short or corrupt file, or a label outside 0..9, is an InputError
naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlbench.data.base import Dataset, DatasetMeta, split, split_sizes
from dlbench.data.regular import file_size, open_regular
from dlbench.errors import InputError
from dlbench.network.init import STREAM_DATA, rng_for

CIFAR_SHAPE = (32, 32, 3)
CIFAR_CLASSES = 10
RECORD_BYTES = 1 + 32 * 32 * 3
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)


def _cifar_folder(path: str) -> Path:
    if not path:
        raise InputError("give the path of the cifar-10-batches-bin folder", field="data.path")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError("no such folder; expected the cifar-10-batches-bin folder", field="data.path",
                         source=str(folder))
    return folder


def _record_count(folder: Path, name: str) -> int:
    """The number of records in ``folder / name``, checked from its size."""
    file = folder / name
    if not file.exists():
        raise InputError(f"missing {name}; expected {', '.join(TRAIN_FILES + TEST_FILES)}", source=str(folder))
    with open_regular(file, "CIFAR-10 batch file") as f:
        size = file_size(f)
    if size == 0 or size % RECORD_BYTES:
        raise InputError(f"holds {size} bytes, not a whole number of {RECORD_BYTES}-byte CIFAR-10 records "
                         "(a label byte and 3072 pixel bytes)", source=str(file))
    return size // RECORD_BYTES


def read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 32, 32, 3) uint8, labels (n,) int64) of one binary batch file."""
    n = _record_count(file.parent, file.name)
    with open_regular(file, "CIFAR-10 batch file") as f:
        raw = f.read(n * RECORD_BYTES + 1)
    if len(raw) != n * RECORD_BYTES:
        raise InputError(f"changed size while being read ({len(raw)} bytes)", source=str(file))
    records = np.frombuffer(raw, np.uint8).reshape(n, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CIFAR_CLASSES:
        bad = int(np.argmax(labels >= CIFAR_CLASSES))
        raise InputError(f"record {bad} has label {labels[bad]}; CIFAR-10 labels are 0..9", source=str(file))
    images = records[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _read_files(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_batch(folder / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def describe_cifar10(seed: int, path: str, normalize: bool) -> DatasetMeta:
    """The shapes and sizes of the batch files, from their sizes alone."""
    folder = _cifar_folder(path)
    n_train = sum(_record_count(folder, name) for name in TRAIN_FILES)
    n_test = sum(_record_count(folder, name) for name in TEST_FILES)
    return DatasetMeta(CIFAR_SHAPE, CIFAR_CLASSES, n_train, n_test)


def cifar10(seed: int, path: str, normalize: bool) -> Dataset:
    """CIFAR-10's binary batch files in folder ``path`` (see the module notes)."""
    folder = _cifar_folder(path)
    describe_cifar10(seed, path, normalize)
    x_train, y_train = _read_files(folder, TRAIN_FILES)
    x_test, y_test = _read_files(folder, TEST_FILES)
    x_train, x_test = x_train.astype(np.float32) / 255.0, x_test.astype(np.float32) / 255.0
    if normalize:
        mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(np.ascontiguousarray(x_train, np.float32), y_train, np.ascontiguousarray(x_test, np.float32),
                   y_test, CIFAR_CLASSES)


def _check_cifar_like(n_samples: int, noise: float, max_shift: int, test_fraction: float) -> None:
    if isinstance(n_samples, bool) or n_samples < 20:
        raise InputError(f"must be at least 20, got {n_samples}", field="data.n_samples")
    if noise < 0:
        raise InputError(f"must be non-negative, got {noise}", field="data.noise")
    if not 0 <= max_shift <= 16:
        raise InputError(f"must be in 0..16, got {max_shift}", field="data.max_shift")
    split_sizes(n_samples, test_fraction)


def describe_cifar_like(seed: int, n_samples: int, noise: float, max_shift: int, test_fraction: float) -> DatasetMeta:
    _check_cifar_like(n_samples, noise, max_shift, test_fraction)
    return DatasetMeta(CIFAR_SHAPE, CIFAR_CLASSES, *split_sizes(n_samples, test_fraction))


def cifar_like(seed: int, n_samples: int, noise: float, max_shift: int, test_fraction: float) -> Dataset:
    """Generated CIFAR-shaped images (see the module notes), vectorised over samples."""
    _check_cifar_like(n_samples, noise, max_shift, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    coarse = rng.standard_normal((CIFAR_CLASSES, 8, 8, 3), dtype=np.float32)
    patterns = coarse.repeat(4, axis=1).repeat(4, axis=2)  # (10, 32, 32, 3)
    labels = rng.integers(0, CIFAR_CLASSES, size=n_samples)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n_samples, 2))
    rows = (np.arange(32)[None, :] - shifts[:, :1]) % 32  # (n, 32): the pattern row each image row shows
    cols = (np.arange(32)[None, :] - shifts[:, 1:]) % 32
    images = patterns[labels[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, 32, 32, 3)
    images += noise * rng.standard_normal(images.shape, dtype=np.float32)
    return split(images, labels, test_fraction, seed, CIFAR_CLASSES)
