"""What a model learns from: the Dataset arrays, the DatasetInfo a plugin
registers (loader + option defaults), and the seeded train/test split.

Below every dataset module, so none of them imports another to get the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dlbench.errors import InputError, one_of
from dlbench.spec.init import STREAM_SPLIT, rng_for


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., Dataset]
    description: str
    defaults: dict = field(default_factory=dict)

    def load(self, seed: int, options: dict) -> Dataset:
        return self.loader(seed, **self.resolve(options))

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


def split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, n_classes: int) -> Dataset:
    """A seeded shuffle split into train and test parts."""
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {test_fraction}", field="data.test_fraction")
    order = rng_for(seed, STREAM_SPLIT).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(x[train], y[train], x[test], y[test], n_classes)
