# Source: tensorflow/docs, site/en/tutorials/quickstart/beginner.ipynb ("TensorFlow 2 quickstart for
# beginners"): tf.keras.models.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)),
# tf.keras.layers.Dense(128, activation='relu'), tf.keras.layers.Dropout(0.2), tf.keras.layers.Dense(10)]);
# SparseCategoricalCrossentropy(from_logits=True), optimizer='adam', model.fit's default batch size 32.
# The logits and the from-logits loss are the softmax output and cross-entropy here (the same maths).
"""The TensorFlow quickstart MLP as a dlbench spec, for the parity verdict's tests."""

from dlbench.network import Dense, Dropout, Flatten, Sequential

NAME = "verdict-tf-quickstart-mlp"
BATCH_SIZE = 32


def model():
    return Sequential([Flatten(input_shape=(28, 28, 1)), Dense(128, activation="relu"), Dropout(0.2),
                       Dense(10, activation="softmax")]).compile("categorical_crossentropy", "adam")
