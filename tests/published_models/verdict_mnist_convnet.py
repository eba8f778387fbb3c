# Source: keras-team/keras-io, examples/vision/mnist_convnet.py ("Simple MNIST convnet"):
# keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
# layers.MaxPooling2D(pool_size=(2, 2)), layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
# layers.MaxPooling2D(pool_size=(2, 2)), layers.Flatten(), layers.Dropout(0.5),
# layers.Dense(num_classes, activation="softmax")]); loss="categorical_crossentropy", optimizer="adam",
# batch_size=128. The model the parity issue (#33) found TensorFlow "disagreeing" on at step 0.
"""The keras-io MNIST convnet as a dlbench spec, for the parity verdict's tests."""

from dlbench.network import Conv2D, Dense, Dropout, Flatten, MaxPool2D, Sequential

NAME = "verdict-mnist-convnet"
BATCH_SIZE = 128


def model():
    return Sequential([Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), MaxPool2D(2),
                       Conv2D(64, 3, activation="relu"), MaxPool2D(2), Flatten(), Dropout(0.5),
                       Dense(10, activation="softmax")]).compile("categorical_crossentropy", "adam")
