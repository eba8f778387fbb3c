"""Arrays a user hands over in Python, checked and made a dataset file.

``dlbench.benchmark(model, data=(x_train, y_train, x_test, y_test))`` trains
on the user's arrays in isolated workers, so they are written to a .npz file
that the ``npz`` dataset reads. Before that they are checked against the
model, with messages that say what Keras and torch users tend to hand over
instead: one-hot labels, float labels, a channels-first image batch.
Labels are class indices; labels stored as floats holding whole numbers
(``y = np.array([0., 1., 1., 0.])``) and a ``(n, 1)`` column are accepted.
For a model whose first layer is an embedding, the features are token ids
(kept integers, within its ``input_dim``) and a model predicting at every
timestep takes a class index per token, (n, length).
A regression loss takes float targets instead, (n,) or (n, k) for k output
units: mae and huber any numeric targets, mse float ones (mse of integer
labels compares their one-hot encoding, :mod:`dlbench.network.loss`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlbench.errors import InputError
from dlbench.network import ModelSpec, format_shape
from dlbench.network.loss import CLASSIFICATION_LOSSES
from dlbench.network.sequence import takes_tokens

NAMES = ("x_train", "y_train", "x_test", "y_test")


def is_arrays(data) -> bool:
    """Whether ``data`` is meant as arrays (a sequence that is not a dataset name or table)."""
    return isinstance(data, (tuple, list))


def unpack(data) -> dict[str, np.ndarray]:
    """The four arrays of ``data``, each a NumPy array of plain values."""
    if not is_arrays(data) or len(data) != 4:
        got = f"{len(data)} items" if is_arrays(data) else type(data).__name__
        raise InputError(f"expected the arrays (x_train, y_train, x_test, y_test), got {got}", field="data")
    arrays = {}
    for name, value in zip(NAMES, data):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{name} is not an array: {exc}", field="data") from None
        if array.dtype == object:
            raise InputError(f"{name} holds Python objects (ragged lists?); expected a numeric array", field="data")
        arrays[name] = array
    return arrays


def check_features(name: str, x: np.ndarray, input_shape: tuple) -> None:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{name} holds {x.dtype} values; expected real numbers", field="data")
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputError(f"{name} has shape {x.shape}; expected (samples, {', '.join(map(str, input_shape))})",
                         field="data")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise InputError(f"{name} has samples of shape {format_shape(x.shape[1:])}, the model takes "
                         f"{format_shape(tuple(input_shape))}", field="data")
    if not np.isfinite(x).all():
        raise InputError(f"{name} holds NaN or infinite values", field="data")


def class_indices(name: str, y: np.ndarray, n_samples: int, what: str = "class indices") -> np.ndarray:
    """``y`` as int64 class indices (or token ids: ``what``); a clear error for anything else."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        raise InputError(f"{name} has shape {y.shape}: one-hot labels? dlbench takes class indices, e.g. "
                         f"{name}.argmax(axis=1)", field="data")
    if y.ndim != 1:
        raise InputError(f"{name} has shape {y.shape}; expected class indices of shape ({n_samples},)", field="data")
    if len(y) != n_samples:
        raise InputError(f"{name} has {len(y)} labels for {n_samples} samples", field="data")
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            raise InputError(f"{name} must hold {what} (whole numbers); got {float(y[~whole][0])!r}" +
                             (" (float targets are a regression's: loss mse, mae or huber)"
                              if what == "class indices" else ""), field="data")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise InputError(f"{name} holds {y.dtype} values; expected integer {what}", field="data")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise InputError(f"{name} holds the negative {'label' if what == 'class indices' else 'token id'} "
                         f"{int(y.min())}; {what} start at 0", field="data")
    return y


def takes_float_targets(spec: ModelSpec, y: np.ndarray) -> bool:
    """Whether ``y`` is read as a regression's float targets: for mae and huber
    always, for mse when they are floats; class labels otherwise."""
    if spec.loss in CLASSIFICATION_LOSSES:
        return False
    return spec.loss != "mse" or np.issubdtype(y.dtype, np.floating)


def float_targets(name: str, y: np.ndarray, n_samples: int, units: int) -> np.ndarray:
    """``y`` as float32 targets of shape (n_samples,) for one output unit or (n_samples, units)."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) or np.issubdtype(y.dtype, np.complexfloating):
        raise InputError(f"{name} holds {y.dtype} values; expected real numbers (regression targets)", field="data")
    if y.ndim == 2 and y.shape[1] == 1 and units == 1:
        y = y[:, 0]
    wanted = (n_samples,) if units == 1 else (n_samples, units)
    if y.shape != wanted:
        raise InputError(f"{name} has shape {y.shape}; the last layer's {units} units take float targets of "
                         f"shape {wanted}", field="data")
    if not np.isfinite(y).all():
        raise InputError(f"{name} holds NaN or infinite values", field="data")
    return y.astype(np.float32)


def check_classes(spec: ModelSpec, labels: np.ndarray) -> None:
    """The labels must fit the model's output and loss."""
    units, top = spec.output_shape[-1], int(labels.max(initial=0))
    if spec.loss == "categorical_crossentropy" and top >= units:
        raise InputError(f"the labels go up to {top} but the last layer has {units} units (classes 0..{units - 1})",
                         field="data")
    if spec.loss == "binary_crossentropy" and top > 1:
        raise InputError(f"binary_crossentropy needs labels 0 and 1; got labels up to {top}", field="data")


def checked_arrays(data, input_shape: tuple, spec: ModelSpec, channels_first: bool = False) -> dict[str, np.ndarray]:
    """The four arrays, checked against ``input_shape`` (the model's own
    layout) and ``spec``; images and signals of a channels-first model
    (torch's NCHW) are moved to the spec's channels-last layout."""
    arrays = unpack(data)
    if takes_tokens(spec):
        return checked_tokens(arrays, input_shape, spec)
    regression = takes_float_targets(spec, arrays["y_train"])
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        check_features(f"x_{part}", x, input_shape)
        arrays[f"y_{part}"] = (float_targets(f"y_{part}", y, x.shape[0], spec.output_shape[-1]) if regression
                               else class_indices(f"y_{part}", y, x.shape[0]))
        if channels_first and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        arrays[f"x_{part}"] = np.ascontiguousarray(x, np.float32)
    if not regression:
        check_classes(spec, np.concatenate([arrays["y_train"], arrays["y_test"]]))
    return arrays


def checked_tokens(arrays: dict[str, np.ndarray], input_shape: tuple, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Token ids for a model whose first layer is an embedding: whole numbers
    within its ``input_dim``, kept as int64; class indices per sequence, or per
    token (n, length) where the model predicts at every timestep."""
    vocab = spec.layers[0].input_dim
    per_token = len(spec.output_shape) == 2
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        check_features(f"x_{part}", x, input_shape)
        x = class_indices(f"x_{part}", x.reshape(-1), x.size, what="token ids").reshape(x.shape)
        if len(x) and x.max() >= vocab:
            raise InputError(f"x_{part} holds the token id {int(x.max())}, but the embedding takes ids 0..{vocab - 1} "
                             f"(input_dim {vocab})", field="data")
        if per_token:
            if y.shape != x.shape:
                raise InputError(f"y_{part} has shape {y.shape}; the model predicts at every timestep: a class index "
                                 f"per token, {x.shape}", field="data")
            y = class_indices(f"y_{part}", y.reshape(-1), y.size).reshape(y.shape)
        else:
            y = class_indices(f"y_{part}", y, x.shape[0])
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
    check_classes(spec, np.concatenate([arrays["y_train"].reshape(-1), arrays["y_test"].reshape(-1)]))
    return arrays


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """The arrays as the .npz file the ``npz`` dataset reads."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


def describe(arrays: dict[str, np.ndarray]) -> str:
    """``x_train (400, 2) float32, ...`` for the document's record of where the data came from."""
    return ", ".join(f"{name} {tuple(a.shape)} {a.dtype}" for name, a in arrays.items())
