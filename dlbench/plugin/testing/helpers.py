"""The kit's helpers: a backend or an honest skip, a capability it declares or
a skip saying which, and a small seeded data set. (Comparing a backend with
the NumPy reference is :mod:`dlbench.plugin.testing.like_numpy`.)"""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.data.base import Dataset
from dlbench.plugin.manager import get_plugins

#: shipped scenarios whose NumPy reference takes seconds a step on a 2-core CPU (ResNet-20's convolutions,
#: BERT's encoder: ~4 s each at batch 32), so the shipped-scenario checks run them this many steps (still
#: several checkpoints from step 0) instead of 100
REFERENCE_HEAVY_STEPS = {"resnet20-cifar": 4, "bert-tiny-style": 8}


def require_backend(name: str):
    """The backend, or a skip when its framework or plugin is not installed. A backend
    whose module failed to load is a failure, never a skip: a NameError in a
    plugin must not turn its tests into skips."""
    plugins = get_plugins()
    if name in plugins.load_errors:
        pytest.fail(f"backend {name} failed to load: {plugins.load_errors[name]}")
    backend = plugins.backends.get(name)
    if backend is None:  # a plugin not installed here (a kit run refuses an unknown --dlbench-backend up front)
        pytest.skip(f"backend {name} is not registered (registered: {', '.join(plugins.backends)})")
    availability = backend.availability()
    if not availability.available:
        pytest.skip(f"backend {name} is not available: {availability.reason}")
    return backend


def require_precision(backend, precision: str) -> None:
    """Skip, with the backend's own reason, when it does not compute in ``precision`` on the CPU."""
    reason = backend.precision_unavailable(precision, "cpu")
    if reason:
        pytest.skip(f"precision tier: {reason}")


def require_mode(backend, mode: str) -> None:
    """Skip when the backend does not list ``mode`` ("inference") in its ``modes``."""
    if mode not in backend.modes:
        pytest.skip(f"{mode} tier: backend {backend.name} does not list {mode!r} in its modes "
                    f"({', '.join(backend.modes)})")


def toy_data(input_shape=(5,), n_classes=3, n_train=40, n_test=16, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, *input_shape)).astype(np.float32)
    y = rng.integers(0, n_classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes)


def toy_regression(input_shape=(5,), units=1, n_train=40, n_test=16, seed=0) -> Dataset:
    """Float targets of ``units`` values per sample (a regression's), of unit scale, so
    that residuals fall on both sides of huber's delta and of mae's kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, *input_shape)).astype(np.float32)
    y = rng.standard_normal((n_train + n_test, units)).astype(np.float32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], 0)
