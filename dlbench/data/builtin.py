"""Registered datasets: seeded, float32 features, integer class labels (or,
for ``diabetes`` and ``regression``, float targets).

A dataset is a loader ``loader(seed, **options) -> Dataset`` plus its option
defaults; scenario files name it under ``[data]`` and may override options.
Plugins add more through the ``dlbench_register_datasets`` hook. Each built-in
also has a describer: the same option checks and the arrays' shapes, sizes
and classes, computed without generating anything (the runner checks models
against it, so the parent process never holds the data).
"""

from __future__ import annotations

import math
import numpy as np

from dlbench.data.base import Dataset, DatasetInfo, DatasetMeta, split, split_sizes
from dlbench.errors import InputError
from dlbench.network.init import STREAM_DATA, rng_for


def _check_count(value: int, name: str, minimum: int = 1) -> None:
    if value < minimum:
        raise InputError(f"must be at least {minimum}, got {value}", field=f"data.{name}")


def _meta(input_shape: tuple, n_classes: int, n_samples: int, test_fraction: float) -> DatasetMeta:
    return DatasetMeta(input_shape, n_classes, *split_sizes(n_samples, test_fraction))


def describe_xor(seed: int, n_samples: int, noise: float, test_fraction: float) -> DatasetMeta:
    _check_count(n_samples, "n_samples", 4)
    return _meta((2,), 2, n_samples, test_fraction)


def xor(seed: int, n_samples: int, noise: float, test_fraction: float) -> Dataset:
    """Points scattered around the four corners of the unit square; label = x0 XOR x1."""
    describe_xor(seed, n_samples, noise, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    corners = rng.integers(0, 2, size=(n_samples, 2))
    x = corners + noise * rng.standard_normal((n_samples, 2))
    return split(x, corners[:, 0] ^ corners[:, 1], test_fraction, seed, 2)


def moons(seed: int, n_samples: int, noise: float, test_fraction: float) -> Dataset:
    from sklearn.datasets import make_moons

    describe_xor(seed, n_samples, noise, test_fraction)  # the same checks and shapes
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return split(x, y, test_fraction, seed, 2)


def describe_spirals(seed: int, n_samples: int, n_classes: int, noise: float, test_fraction: float) -> DatasetMeta:
    _check_count(n_samples, "n_samples", 4)
    _check_count(n_classes, "n_classes", 2)
    return _meta((2,), n_classes, n_samples, test_fraction)


def spirals(seed: int, n_samples: int, n_classes: int, noise: float, test_fraction: float) -> Dataset:
    """``n_classes`` interleaved spiral arms, 1.5 turns each."""
    describe_spirals(seed, n_samples, n_classes, noise, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    y = rng.integers(0, n_classes, size=n_samples)
    r = rng.uniform(0.05, 1.0, size=n_samples)
    theta = 3 * math.pi * r + 2 * math.pi * y / n_classes
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x += noise * rng.standard_normal(x.shape)
    return split(x, y, test_fraction, seed, n_classes)


def describe_features(seed: int, n_samples: int, n_features: int, n_classes: int, test_fraction: float,
                      min_samples: int = 4) -> DatasetMeta:
    _check_count(n_samples, "n_samples", min_samples)
    _check_count(n_features, "n_features")
    _check_count(n_classes, "n_classes", 2)
    return _meta((n_features,), n_classes, n_samples, test_fraction)


def blobs(seed: int, n_samples: int, n_features: int, n_classes: int, test_fraction: float) -> Dataset:
    from sklearn.datasets import make_blobs

    describe_features(seed, n_samples, n_features, n_classes, test_fraction)
    x, y = make_blobs(n_samples=n_samples, n_features=n_features, centers=n_classes, random_state=seed)
    return split(x, y, test_fraction, seed, n_classes)


DIGITS_SAMPLES = 1797


def describe_digits(seed: int, test_fraction: float, spatial: bool) -> DatasetMeta:
    return _meta((8, 8, 1) if spatial else (64,), 10, DIGITS_SAMPLES, test_fraction)


def digits(seed: int, test_fraction: float, spatial: bool) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images) in [0, 1]: 64 features,
    or 8x8x1 images when ``spatial``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[..., None] if spatial else bunch.data
    return split(x / 16.0, bunch.target, test_fraction, seed, 10)


def describe_synthetic(seed: int, n_samples: int, n_features: int, n_classes: int,
                       test_fraction: float) -> DatasetMeta:
    return describe_features(seed, n_samples, n_features, n_classes, test_fraction, min_samples=2)


def synthetic(seed: int, n_samples: int, n_features: int, n_classes: int, test_fraction: float) -> Dataset:
    """Gaussian features labelled by a random linear teacher: learnable, any size, for throughput."""
    describe_synthetic(seed, n_samples, n_features, n_classes, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    x = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    teacher = rng.standard_normal((n_features, n_classes), dtype=np.float32)
    return split(x, np.argmax(x @ teacher, axis=1), test_fraction, seed, n_classes)


DIABETES_SAMPLES = 442


def describe_diabetes(seed: int, test_fraction: float) -> DatasetMeta:
    return DatasetMeta((10,), 0, *split_sizes(DIABETES_SAMPLES, test_fraction), regression=True)


def diabetes(seed: int, test_fraction: float) -> Dataset:
    """scikit-learn's bundled diabetes set (Efron et al. 2004): 442 patients, 10
    standardised features; the target, disease progression after a year (25..346),
    standardised to mean 0 and variance 1 so that losses and deltas read in units of its spread."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    target = (bunch.target - bunch.target.mean()) / bunch.target.std()
    return split(bunch.data, target, test_fraction, seed, 0)


def describe_regression(seed: int, n_samples: int, n_features: int, n_targets: int, noise: float,
                        test_fraction: float) -> DatasetMeta:
    _check_count(n_samples, "n_samples", 2)
    _check_count(n_features, "n_features")
    _check_count(n_targets, "n_targets")
    if noise < 0:
        raise InputError(f"must be at least 0, got {noise}", field="data.noise")
    shape = () if n_targets == 1 else (n_targets,)
    return DatasetMeta((n_features,), 0, *split_sizes(n_samples, test_fraction), target_shape=shape, regression=True)


def regression(seed: int, n_samples: int, n_features: int, n_targets: int, noise: float,
               test_fraction: float) -> Dataset:
    """Gaussian features, float targets from a random one-hidden-layer tanh teacher
    (learnable, not linear) plus Gaussian noise of standard deviation ``noise``:
    (n,) for one target, (n, n_targets) otherwise."""
    describe_regression(seed, n_samples, n_features, n_targets, noise, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    x = rng.standard_normal((n_samples, n_features))
    hidden = np.tanh(x @ rng.standard_normal((n_features, 16)) / math.sqrt(n_features))
    y = hidden @ rng.standard_normal((16, n_targets)) / 2 + noise * rng.standard_normal((n_samples, n_targets))
    return split(x, y[:, 0] if n_targets == 1 else y, test_fraction, seed, 0)


BUILTIN_DATASETS = [
    DatasetInfo("xor", xor, "noisy points around the XOR corners, 2 features, 2 classes",
                {"n_samples": 400, "noise": 0.1, "test_fraction": 0.2}, describe_xor),
    DatasetInfo("moons", moons, "scikit-learn's two interleaving half circles, 2 features",
                {"n_samples": 1000, "noise": 0.2, "test_fraction": 0.2}, describe_xor),
    DatasetInfo("spirals", spirals, "interleaved spiral arms, 2 features",
                {"n_samples": 1500, "n_classes": 3, "noise": 0.02, "test_fraction": 0.2}, describe_spirals),
    DatasetInfo("blobs", blobs, "isotropic Gaussian clusters",
                {"n_samples": 1000, "n_features": 2, "n_classes": 3, "test_fraction": 0.2}, describe_features),
    DatasetInfo("digits", digits, "scikit-learn's bundled 8x8 digits in [0, 1], 10 classes: 64 features, "
                "or 8x8x1 images with spatial = true", {"test_fraction": 0.2, "spatial": False}, describe_digits),
    DatasetInfo("synthetic", synthetic, "Gaussian features, labels from a random linear teacher",
                {"n_samples": 4096, "n_features": 64, "n_classes": 10, "test_fraction": 0.2},
                describe_synthetic),
    DatasetInfo("diabetes", diabetes, "scikit-learn's bundled diabetes regression: 10 features, one float target "
                "(standardised)", {"test_fraction": 0.2}, describe_diabetes),
    DatasetInfo("regression", regression, "Gaussian features, float targets from a random tanh teacher plus noise",
                {"n_samples": 1000, "n_features": 8, "n_targets": 1, "noise": 0.1, "test_fraction": 0.2},
                describe_regression),
]


def _file_datasets() -> list[DatasetInfo]:
    from dlbench.data import files as datafiles
    return [
        DatasetInfo("mnist1d", datafiles.mnist1d, "MNIST-1D (Greydanus 2020), generated locally: 40-sample "
                    "signals, 10 classes; (40, 1) with spatial = true",
                    {"num_samples": 5000, "dataset_seed": 42, "spatial": False}, datafiles.describe_mnist1d),
        DatasetInfo("idx", datafiles.idx, "MNIST / Fashion-MNIST IDX files (gzip or raw) in the folder `path`",
                    {"path": "", "spatial": True, "scale": 1 / 255}, datafiles.describe_idx),
        DatasetInfo("npz", datafiles.npz, "x_train, y_train, x_test, y_test from the .npz file `path` "
                    "(tokens = true: integer token ids for an embedding)",
                    {"path": "", "tokens": False}, datafiles.describe_npz),
    ]


def _sequence_datasets() -> list[DatasetInfo]:
    from dlbench.data import sequences
    return [
        DatasetInfo("chars", sequences.chars, "next-character windows of CPython's pydoc_data.topics help texts "
                    "(~465k characters, 97-id vocabulary): int64 (length,) inputs, (length,) targets",
                    {"length": 64, "test_fraction": 0.1, "max_chars": 0}, sequences.describe_chars),
        DatasetInfo("tokens", sequences.tokens, "next-token windows of your token ids: a .npy 1-D stream or a "
                    ".npz with 1-D streams train and test, at `path`",
                    {"path": "", "length": 64, "test_fraction": 0.1}, sequences.describe_tokens),
        DatasetInfo("parity", sequences.parity, "random bit sequences (length, 1), labelled by the parity of "
                    "their sum (2 classes)", {"n_samples": 4000, "length": 8, "test_fraction": 0.2},
                    sequences.describe_parity),
        DatasetInfo("adding", sequences.adding, "the adding problem as 2 classes: (length, 2) steps of a value and a "
                    "marker; is the sum of the two marked values above 1", {"n_samples": 4000, "length": 20,
                                                                              "test_fraction": 0.2},
                    sequences.describe_adding),
    ]


def _image_datasets() -> list[DatasetInfo]:
    from dlbench.data import images, text_replaced
    return [
        DatasetInfo("cifar10", images.cifar10, "CIFAR-10's binary batch files (data_batch_1..5.bin, test_batch.bin) "
                    "in the cifar-10-batches-bin folder `path`: (32, 32, 3) images, 10 classes",
                    {"path": "", "normalize": True}, images.describe_cifar10),
        DatasetInfo("cifar-like", images.cifar_like, "generated CIFAR-shaped images (32, 32, 3), 10 classes: "
                    "shifted smooth colour patterns plus noise, so CIFAR workloads run offline (not CIFAR-10)",
                    {"n_samples": 1000, "noise": 1.0, "max_shift": 4, "test_fraction": 0.2},
                    images.describe_cifar_like),
        DatasetInfo("chars-replaced", text_replaced.chars_replaced, "windows of the chars corpus, half with a "
                    "`fraction` of their characters replaced at random: int64 (length,) inputs, label 1 as written",
                    {"n_samples": 2000, "length": 64, "fraction": 0.15, "test_fraction": 0.2},
                    text_replaced.describe_chars_replaced),
    ]


BUILTIN_DATASETS += _file_datasets() + _sequence_datasets() + _image_datasets()
