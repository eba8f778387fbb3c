"""A plain Keras-on-TensorFlow training loop of the LSTM language-model
benchmark network (``chars-lstm``): ``keras.layers.Embedding``,
``keras.layers.LSTM(return_sequences=True)`` (Keras's own layout is the
canonical one, ``unit_forget_bias`` already in the core's weights),
``Dense`` over every position, ``SparseCategoricalCrossentropy(from_logits=True)``
over every token, Adam in TF ops (``TextbookAdam``: Keras's own puts epsilon
where, on this network's rare-character embedding rows, it changes the training
by 1% in three steps) and one ``@tf.function`` step per batch
(``handwritten_tensorflow``'s loop), the embedding's gradient made dense (given
as ``tf.IndexedSlices``, Keras's Adam takes its sparse path: a different
update from the harness's and the other frameworks'). ``make_loop(weights, x_train, y_train, scenario)``
returns ``train(indices) -> losses``."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from handwritten_tensorflow import TextbookAdam, _loop  # noqa: E402


def make_loop(weights, x_train, y_train, scenario):
    embedding, lstm, dense = weights
    vocab, width = embedding["embeddings"].shape
    model = keras.Sequential([
        keras.Input(x_train.shape[1:], dtype="int32"),
        keras.layers.Embedding(vocab, width),
        keras.layers.LSTM(lstm["recurrent_kernel"].shape[0], return_sequences=True),
        keras.layers.Dense(dense["kernel"].shape[1]),
    ])
    model.set_weights([embedding["embeddings"], lstm["kernel"], lstm["recurrent_kernel"], lstm["bias"],
                       dense["kernel"], dense["bias"]])
    return _loop(model, TextbookAdam(scenario.model.optimizer.learning_rate),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 tf.constant(x_train, tf.int32), tf.constant(y_train.astype("int64")), dense_gradients=True)
