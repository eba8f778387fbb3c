"""What a model learns from: the Dataset arrays, the DatasetInfo a plugin
registers (loader + option defaults), and the seeded train/test split.

Below every dataset module, so none of them imports another to get the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dlbench.errors import InputError, one_of
from dlbench.network.init import STREAM_SPLIT, rng_for


@dataclass(frozen=True)
class Dataset:
    """Features and targets: int64 class labels (``n_classes`` of them), or
    float32 values of a regression, (n,) or (n, k), with ``n_classes`` 0."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dtype(self) -> str:
        """"int64" for token ids (sequence models' input), else "float32"."""
        return "int64" if self.x_train.dtype.kind in "iu" else "float32"

    @property
    def target_shape(self) -> tuple[int, ...]:
        """One sample's labels: () for a class, (time,) for a label per timestep;
        a regression's values: () for one, (k,) for k."""
        return tuple(self.y_train.shape[1:])

    @property
    def regression(self) -> bool:
        """Whether the targets are float values rather than class labels."""
        return self.y_train.dtype.kind == "f"


@dataclass(frozen=True)
class DatasetMeta:
    """What a dataset declares about its arrays, known without loading them:
    enough to check a model against it before anything runs."""

    input_shape: tuple[int, ...]
    n_classes: int
    n_train: int | None = None
    n_test: int | None = None
    #: "int64" for token ids (the input of an embedding), "float32" otherwise
    input_dtype: str = "float32"
    #: one sample's labels: () for a class, (time,) for a label per timestep (next-token targets)
    target_shape: tuple[int, ...] = ()
    #: for token inputs: the number of token ids (the largest id + 1)
    vocab_size: int | None = None
    #: float targets (a regression's; ``n_classes`` 0, ``target_shape`` () or (k,)) rather than class labels
    regression: bool = False

    @classmethod
    def of(cls, data: Dataset) -> "DatasetMeta":
        vocab = None
        if data.input_dtype == "int64":
            vocab = int(max(data.x_train.max(initial=0), data.x_test.max(initial=0))) + 1
            if data.target_shape:  # next-token targets: the vocabulary is the classes
                vocab = max(vocab, data.n_classes)
        return cls(data.input_shape, data.n_classes, len(data.x_train), len(data.x_test), data.input_dtype,
                   data.target_shape, vocab, data.regression)

    @property
    def target_units(self) -> int:
        """A regression's values per sample: the output units a model needs."""
        return self.target_shape[0] if self.target_shape else 1


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: ``loader(seed, **options) -> Dataset``, its option
    defaults, and optionally ``describer(seed, **options) -> DatasetMeta``,
    which checks the options (and files) as the loader would and says what the
    arrays will be without making them. Without one, :meth:`describe` loads."""

    name: str
    loader: Callable[..., Dataset]
    description: str
    defaults: dict = field(default_factory=dict)
    describer: Callable[..., DatasetMeta] | None = None

    def load(self, seed: int, options: dict) -> Dataset:
        return self.loader(seed, **self.resolve(options))

    def describe(self, seed: int, options: dict) -> DatasetMeta:
        if self.describer is None:
            return DatasetMeta.of(self.load(seed, options))
        return self.describer(seed, **self.resolve(options))

    def resolve(self, options: dict) -> dict:
        """Defaults overridden by ``options``, type-checked against the defaults."""
        resolved = dict(self.defaults)
        for key, value in options.items():
            if key not in self.defaults:
                raise InputError(f"unknown option {key!r} for dataset {self.name!r}; "
                                 f"{one_of(self.defaults) if self.defaults else 'it takes no options'}",
                                 field=f"data.{key}")
            expected = type(self.defaults[key])
            ok = isinstance(value, expected) and not isinstance(value, bool) or \
                (expected is float and isinstance(value, int) and not isinstance(value, bool)) or \
                (expected is bool and isinstance(value, bool))
            if not ok:
                raise InputError(f"must be of type {expected.__name__}, got {value!r}", field=f"data.{key}")
            resolved[key] = value
        return resolved


def split_sizes(n_samples: int, test_fraction: float) -> tuple[int, int]:
    """(train, test) sample counts of :func:`split`."""
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {test_fraction}", field="data.test_fraction")
    n_test = max(1, int(round(n_samples * test_fraction)))
    return n_samples - n_test, n_test


def split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, n_classes: int) -> Dataset:
    """A seeded shuffle split into train and test parts; ``n_classes`` 0: float targets (a regression)."""
    _, n_test = split_sizes(len(x), test_fraction)
    order = rng_for(seed, STREAM_SPLIT).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if n_classes == 0 else np.int64)
    return Dataset(x[train], y[train], x[test], y[test], n_classes)
