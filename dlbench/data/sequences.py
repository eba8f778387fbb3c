"""Sequence datasets that need no download: integer token windows for
language models, a synthetic recurrent classic, and the user's token files.

* ``chars``: the help texts of CPython's ``pydoc_data.topics`` (about 465k
  characters of English technical prose, shipped with every CPython; the
  text differs a little between Python versions, so a run records its
  Python), joined in the order of their topic names and read as
  characters. The vocabulary is fixed, whatever the text: id 0 for any
  character outside it, 1 for a newline, ``2 + (ord(c) - 32)`` for the
  printable ASCII characters ``' '..'~'`` (97 ids in all).
* ``tokens``: the user's own token ids: a ``.npy`` file holding one 1-D
  integer stream (its last ``test_fraction`` is the test part), or a
  ``.npz`` file with 1-D integer streams ``train`` and ``test``.
* ``parity``: sequences of ``length`` random bits ``(length, 1)`` in {0, 1},
  labelled by the parity of their sum (a two-class sequence classification
  that needs every bit; notoriously hard for gradient descent).
* ``adding``: the adding problem of Hochreiter & Schmidhuber (1997),
  "Long short-term memory", as a two-class task: ``(length, 2)`` steps of a
  value uniform in [0, 1] and a marker, 1 at two random positions (one in
  each half of the sequence) and 0 elsewhere; the label is whether the two
  marked values add up to more than 1. The answer depends on two values far
  apart in time, so the network has to remember the first.

Language-model windows: the stream is cut into its train part (the first
``1 - test_fraction``) and its test part (the rest), so no test text is
seen in training; each part into non-overlapping windows of ``length + 1``
tokens, whose first ``length`` tokens are the input ``x`` and whose last
``length`` tokens are the next-token targets ``y`` (``y[t] = x[t + 1]``).
Inputs are int64 ``(windows, length)``, targets int64 ``(windows, length)``.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from dlbench.data.base import Dataset, DatasetMeta, split, split_sizes
from dlbench.data.files import checked_npz_members
from dlbench.data.regular import check_npy_size, file_size, open_regular
from dlbench.errors import InputError
from dlbench.network.init import STREAM_DATA, rng_for

#: id 0: any character outside the vocabulary; 1: newline; 2..96: ' '..'~'
CHAR_VOCAB = 2 + (127 - 32)


def corpus_text() -> str:
    """The help texts of ``pydoc_data.topics``, joined in topic-name order."""
    from pydoc_data.topics import topics

    return "".join(topics[name] for name in sorted(topics))


def encode_chars(text: str) -> np.ndarray:
    """Characters as the fixed vocabulary's ids (see the module notes)."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
    ids = codes - 30
    ids[(codes < 32) | (codes > 126)] = 0
    ids[codes == 10] = 1
    return ids


def decode_chars(ids: np.ndarray) -> str:
    """The inverse of :func:`encode_chars` (id 0 reads as '?')."""
    return "".join("?" if i == 0 else "\n" if i == 1 else chr(int(i) + 30) for i in ids)


def _check_window(length: int, test_fraction: float) -> None:
    if isinstance(length, bool) or length < 1:
        raise InputError(f"must be a positive integer, got {length!r}", field="data.length")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {test_fraction}", field="data.test_fraction")


def windows(stream: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, next-token targets), each (n, length), from non-overlapping
    windows of ``length + 1`` tokens of ``stream``."""
    n = (len(stream) - 1) // length
    usable = stream[:n * length + 1]
    x = usable[:-1].reshape(n, length)
    y = usable[1:].reshape(n, length)
    return np.ascontiguousarray(x, np.int64), np.ascontiguousarray(y, np.int64)


def _window_counts(n_train_tokens: int, n_test_tokens: int, length: int, where: str) -> tuple[int, int]:
    counts = ((n_train_tokens - 1) // length, (n_test_tokens - 1) // length)
    if min(counts) < 1:
        raise InputError(f"{n_train_tokens} train and {n_test_tokens} test tokens are too few for one window of "
                         f"{length + 1} tokens in each part; give a shorter length or more text", source=where)
    return counts


def _stream_split(n_tokens: int, test_fraction: float) -> int:
    """Tokens in the train part of a stream of ``n_tokens``."""
    return n_tokens - max(1, int(round(n_tokens * test_fraction)))


def _lm_meta(n_train_tokens: int, n_test_tokens: int, length: int, vocab: int, where: str) -> DatasetMeta:
    n_train, n_test = _window_counts(n_train_tokens, n_test_tokens, length, where)
    return DatasetMeta((length,), vocab, n_train, n_test, "int64", (length,), vocab)


def _lm_dataset(train: np.ndarray, test: np.ndarray, length: int, vocab: int, where: str) -> Dataset:
    _window_counts(len(train), len(test), length, where)
    return Dataset(*windows(train, length), *windows(test, length), n_classes=vocab)


def _char_stream(max_chars: int) -> np.ndarray:
    if isinstance(max_chars, bool) or max_chars < 0:
        raise InputError(f"must be 0 (the whole corpus) or a positive number of characters, got {max_chars!r}",
                         field="data.max_chars")
    ids = encode_chars(corpus_text())
    return ids[:max_chars] if max_chars else ids


def describe_chars(seed: int, length: int, test_fraction: float, max_chars: int) -> DatasetMeta:
    _check_window(length, test_fraction)
    n = len(_char_stream(max_chars))
    n_train = _stream_split(n, test_fraction)
    return _lm_meta(n_train, n - n_train, length, CHAR_VOCAB, "pydoc_data.topics")


def chars(seed: int, length: int, test_fraction: float, max_chars: int) -> Dataset:
    """Next-character windows of the ``pydoc_data.topics`` corpus (see the module notes)."""
    _check_window(length, test_fraction)
    ids = _char_stream(max_chars)
    n_train = _stream_split(len(ids), test_fraction)
    return _lm_dataset(ids[:n_train], ids[n_train:], length, CHAR_VOCAB, "pydoc_data.topics")


# ------------------------------------------------------------ token files
def _checked_stream(array: np.ndarray, name: str, where: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} holds {array.dtype} values; expected integer token ids", source=where)
    if array.ndim != 1:
        raise InputError(f"{name} has shape {array.shape}; expected one 1-D stream of token ids", source=where)
    if len(array) and array.min() < 0:
        raise InputError(f"{name} holds the negative token id {int(array.min())}; ids start at 0", source=where)
    return array.astype(np.int64)


def _check_token_members(f, source: str) -> None:
    """The .npz's streams ``train`` and ``test`` are there, their sizes as their headers say."""
    with zipfile.ZipFile(f) as archive:
        found = [name.removesuffix(".npy") for name in archive.namelist()]
    f.seek(0)
    missing = [k for k in ("train", "test") if k not in found]
    if missing:
        raise InputError(f"missing arrays {', '.join(missing)}; expected 1-D token streams train and test "
                         f"(found {', '.join(found) or 'none'})", source=source)
    checked_npz_members(f, ("train", "test"), source)


def read_token_file(path: str, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train stream, test stream) of a ``.npy`` stream or a ``.npz`` with ``train`` and ``test``."""
    if not path:
        raise InputError("give the path of a .npy or .npz file of integer token ids", field="data.path")
    file = Path(path).expanduser()
    if file.suffix not in (".npy", ".npz"):
        raise InputError(f"unknown token file type {file.suffix!r}; expected .npy (one stream) or .npz "
                         "(streams train and test)", source=str(file))
    try:
        with open_regular(file, "token file") as f:
            if file.suffix == ".npy":
                check_npy_size(f, file_size(f), "the token stream", str(file))
                f.seek(0)
                stream = _checked_stream(np.load(f, allow_pickle=False), "the token stream", str(file))
                n_train = _stream_split(len(stream), test_fraction)
                return stream[:n_train], stream[n_train:]
            _check_token_members(f, str(file))
            with np.load(f, allow_pickle=False) as archive:
                return tuple(_checked_stream(archive[k], k, str(file)) for k in ("train", "test"))
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputError(f"cannot read token file: {exc}", source=str(file)) from None


def _vocab(train: np.ndarray, test: np.ndarray) -> int:
    return max(int(max(train.max(initial=0), test.max(initial=0))) + 1, 2)


def describe_tokens(seed: int, path: str, length: int, test_fraction: float) -> DatasetMeta:
    _check_window(length, test_fraction)
    train, test = read_token_file(path, test_fraction)
    return _lm_meta(len(train), len(test), length, _vocab(train, test), path)


def tokens(seed: int, path: str, length: int, test_fraction: float) -> Dataset:
    """Next-token windows of the user's token file (see the module notes)."""
    _check_window(length, test_fraction)
    train, test = read_token_file(path, test_fraction)
    return _lm_dataset(train, test, length, _vocab(train, test), path)


# --------------------------------------------------------------- parity
def describe_parity(seed: int, n_samples: int, length: int, test_fraction: float) -> DatasetMeta:
    if isinstance(n_samples, bool) or n_samples < 4:
        raise InputError(f"must be at least 4, got {n_samples!r}", field="data.n_samples")
    if isinstance(length, bool) or length < 1:
        raise InputError(f"must be a positive integer, got {length!r}", field="data.length")
    return DatasetMeta((length, 1), 2, *split_sizes(n_samples, test_fraction))


def parity(seed: int, n_samples: int, length: int, test_fraction: float) -> Dataset:
    """``length`` random bits per sample, shape (length, 1); label: their sum mod 2."""
    describe_parity(seed, n_samples, length, test_fraction)
    bits = rng_for(seed, STREAM_DATA).integers(0, 2, size=(n_samples, length, 1))
    return split(bits, bits.sum(axis=(1, 2)) % 2, test_fraction, seed, 2)


# --------------------------------------------------------------- adding
def describe_adding(seed: int, n_samples: int, length: int, test_fraction: float) -> DatasetMeta:
    if isinstance(n_samples, bool) or n_samples < 4:
        raise InputError(f"must be at least 4, got {n_samples!r}", field="data.n_samples")
    if isinstance(length, bool) or length < 2:
        raise InputError(f"must be at least 2 (two marked positions), got {length!r}", field="data.length")
    return DatasetMeta((length, 2), 2, *split_sizes(n_samples, test_fraction))


def adding(seed: int, n_samples: int, length: int, test_fraction: float) -> Dataset:
    """The adding problem as classification (see the module notes)."""
    describe_adding(seed, n_samples, length, test_fraction)
    rng = rng_for(seed, STREAM_DATA)
    values = rng.uniform(0.0, 1.0, (n_samples, length))
    half = length // 2
    first = rng.integers(0, half, n_samples)
    second = rng.integers(half, length, n_samples)
    markers = np.zeros_like(values)
    rows = np.arange(n_samples)
    markers[rows, first] = markers[rows, second] = 1.0
    label = (values[rows, first] + values[rows, second] > 1.0).astype(np.int64)
    return split(np.stack([values, markers], axis=-1), label, test_fraction, seed, 2)
