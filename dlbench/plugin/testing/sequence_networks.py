"""The sequence networks the backend contract suite trains (embedding,
per-timestep dense, recurrent layers in both modes, convolutions among them),
with the toy data they train on: token ids for an embedding, (time, features)
floats otherwise."""

import numpy as np

from dlbench.data.base import Dataset
from dlbench.network import (GRU, LSTM, SGD, Adam, BatchNormalization, Conv1D, Dense, Embedding, Flatten,
                             GlobalMaxPool1D, MaxPool1D, Sequential, SimpleRNN)

VOCAB, LENGTH = 7, 5


def token_data(n_train=43, n_test=16, vocab=VOCAB, length=LENGTH, per_timestep=True, n_classes=3,
               seed=0) -> Dataset:
    """Random token ids (n, length); labels per timestep (the next id) or one class per sample."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, (n_train + n_test, length))
    y = np.roll(x, -1, axis=1) if per_timestep else rng.integers(0, n_classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], vocab if per_timestep else n_classes)


def sequence_data(n_train=43, n_test=16, length=LENGTH, features=3, n_classes=3, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, length, features)).astype(np.float32)
    y = rng.integers(0, n_classes, n_train + n_test)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes)


def lm(*layers, optimizer=None):
    """A language model: embedding, ``layers``, a softmax over the vocabulary at every timestep."""
    return Sequential([Embedding(VOCAB, 4, input_shape=(LENGTH,)), *layers, Dense(VOCAB, "softmax")]) \
        .compile("categorical_crossentropy", optimizer or Adam(0.01))


#: (network, its data)
SEQUENCE_INFRA_CASES = {
    "embedding-dense-per-timestep-adam": (lm(Dense(6, "tanh")), token_data()),
    "embedding-flatten-classifier-sgd": (
        Sequential([Embedding(VOCAB, 3, input_shape=(LENGTH,)), Flatten(), Dense(3, "softmax")])
        .compile("categorical_crossentropy", SGD(0.5, 0.9)), token_data(per_timestep=False)),
}


def classifier(recurrent, optimizer=None):
    return Sequential([recurrent, Dense(3, "softmax")]).compile("categorical_crossentropy", optimizer or Adam(0.01))


RECURRENT_CASES = {
    "simple-rnn-last": (classifier(SimpleRNN(6, input_shape=(LENGTH, 3))), sequence_data()),
    "lstm-last-momentum": (classifier(LSTM(6, input_shape=(LENGTH, 3)), SGD(0.3, 0.9)), sequence_data()),
    "gru-last": (classifier(GRU(6, input_shape=(LENGTH, 3))), sequence_data()),
    "lstm-sequences-lm": (lm(LSTM(6, return_sequences=True)), token_data()),
    "gru-sequences-lm": (lm(GRU(5, return_sequences=True)), token_data()),
    "simple-rnn-sequences-lm": (lm(SimpleRNN(5, return_sequences=True)), token_data()),
    "stacked-lstm-gru": (classifier(LSTM(5, return_sequences=True, input_shape=(LENGTH, 3))).__class__(
        sequence_data().input_shape, (LSTM(5, return_sequences=True), GRU(4), Dense(3, "softmax")),
        "categorical_crossentropy", Adam(0.01)), sequence_data()),
}

#: convolutions inside sequence models, as published models mix them: a Keras text CNN (embedding, Conv1D,
#: global max pooling over time) and a CNN-LSTM on a signal (Conv1D, pooling and BatchNormalization before
#: the recurrent layer)
CONVOLUTION_IN_SEQUENCE_CASES = {
    "embedding-conv1d-global-max": (
        Sequential([Embedding(VOCAB, 4, input_shape=(LENGTH,)), Conv1D(5, 3, activation="relu"),
                    GlobalMaxPool1D(), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
        token_data(per_timestep=False)),
    "conv1d-pool-batchnorm-lstm": (
        Sequential([Conv1D(4, 2, activation="relu", input_shape=(9, 3)), MaxPool1D(2), BatchNormalization(),
                    LSTM(5), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
        sequence_data(length=9)),
}
