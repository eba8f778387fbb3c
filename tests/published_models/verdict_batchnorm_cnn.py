# Source: ilitvinoff/tensorflow-learn, code/ciphers.py (a Keras Sequential MNIST CNN with BatchNormalization):
# tf.keras.Sequential([Input(shape=(28, 28, 1)), Conv2D(32, (3, 3), activation='relu'),
# Conv2D(64, (3, 3), activation='relu'), MaxPool2D(), BatchNormalization(), Conv2D(128, (3, 3), activation='relu'),
# MaxPool2D(), BatchNormalization(), GlobalAvgPool2D(), Dense(64, activation='relu'),
# Dense(10, activation='softmax')]). GlobalAvgPool2D over its 5x5x128 map is AveragePooling2D(5) and Flatten
# here (the same maths); Keras's defaults otherwise: Adam, BatchNormalization momentum 0.99, batch size 32.
"""A 28x28 CNN with BatchNormalization as a dlbench spec, for the parity verdict's tests."""

from dlbench.network import AveragePool2D, BatchNormalization, Conv2D, Dense, Flatten, MaxPool2D, Sequential

NAME = "verdict-batchnorm-cnn"
BATCH_SIZE = 32


def model():
    return Sequential([Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), Conv2D(64, 3, activation="relu"),
                       MaxPool2D(2), BatchNormalization(momentum=0.99), Conv2D(128, 3, activation="relu"),
                       MaxPool2D(2), BatchNormalization(momentum=0.99), AveragePool2D(5), Flatten(),
                       Dense(64, activation="relu"), Dense(10, activation="softmax")]).compile(
        "categorical_crossentropy", "adam")
