"""``chars-replaced``: is this window of text as written, or were some of its characters replaced?

A sequence classification on bundled text, for bidirectional encoders
(replaced-token detection, the pre-training task of Clark et al. 2020's
ELECTRA, here judged per window): windows of ``length`` characters of the
``chars`` corpus (CPython's ``pydoc_data.topics`` help texts, in the fixed
97-id vocabulary of :mod:`dlbench.data.sequences`). Half of the windows,
chosen at random (seeded), have each character replaced, with probability
``fraction`` (BERT's masking rate 0.15 by default), by a printable character
drawn uniformly (ids 2..96). Label 1: the text as written; label 0: with
replacements. A replaced character reads oddly against its neighbours on
both sides, which is what an encoder that attends both ways can see.

The first ``1 - test_fraction`` of the windows come from the start of the
corpus, the test windows from its end, so no test text is seen in training.
Inputs are int64 ``(n, length)`` token ids, labels int64 ``(n,)``.
"""

from __future__ import annotations

import numpy as np

from dlbench.data.base import Dataset, DatasetMeta, split_sizes
from dlbench.data.sequences import CHAR_VOCAB, corpus_text, encode_chars
from dlbench.errors import InputError
from dlbench.network.init import STREAM_DATA, rng_for

#: the printable characters ' '..'~' of the vocabulary, which replacements are drawn from
PRINTABLE_IDS = (2, CHAR_VOCAB)


def _check(n_samples: int, length: int, fraction: float, test_fraction: float, n_chars: int) -> tuple[int, int]:
    if isinstance(length, bool) or length < 1:
        raise InputError(f"must be a positive integer, got {length!r}", field="data.length")
    if isinstance(n_samples, bool) or n_samples < 4:
        raise InputError(f"must be at least 4, got {n_samples!r}", field="data.n_samples")
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"must be in (0, 1], got {fraction}", field="data.fraction")
    if n_samples * length > n_chars:
        raise InputError(f"{n_samples} windows of {length} characters need {n_samples * length} characters; the "
                         f"corpus has {n_chars}: give fewer samples or a shorter length", field="data.n_samples")
    return split_sizes(n_samples, test_fraction)


def describe_chars_replaced(seed: int, n_samples: int, length: int, fraction: float,
                            test_fraction: float) -> DatasetMeta:
    n_train, n_test = _check(n_samples, length, fraction, test_fraction, len(corpus_text()))
    return DatasetMeta((length,), 2, n_train, n_test, "int64", (), CHAR_VOCAB)


def replaced_windows(windows: np.ndarray, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(windows, labels): each row kept as written (label 1) or, with probability
    1/2, each of its tokens replaced with probability ``fraction`` (label 0)."""
    labels = rng.integers(0, 2, size=len(windows))
    replace = (rng.random(windows.shape) < fraction) & (labels[:, None] == 0)
    out = windows.copy()
    out[replace] = rng.integers(*PRINTABLE_IDS, size=int(replace.sum()))
    return out, labels.astype(np.int64)


def chars_replaced(seed: int, n_samples: int, length: int, fraction: float, test_fraction: float) -> Dataset:
    """Windows as written vs with replaced characters (see the module notes)."""
    ids = encode_chars(corpus_text())
    n_train, n_test = _check(n_samples, length, fraction, test_fraction, len(ids))
    train = ids[:n_train * length].reshape(n_train, length)
    test = ids[len(ids) - n_test * length:].reshape(n_test, length)
    rng = rng_for(seed, STREAM_DATA)
    x_train, y_train = replaced_windows(train, fraction, rng)
    x_test, y_test = replaced_windows(test, fraction, rng)
    return Dataset(np.ascontiguousarray(x_train, np.int64), y_train, np.ascontiguousarray(x_test, np.int64),
                   y_test, 2)
