"""The networks the backend contract suite trains, by name: every layer type,
padding mode, pooling kind, loss and optimizer at least once. Each trains
with ``toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=43)``
in batches of 8 unless a test says otherwise (43 samples: a partial batch of
3 too, a second batch shape)."""

from dlbench.network import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, GlobalAveragePool2D, GlobalMaxPool1D, GlobalMaxPool2D, MaxPool1D,
                          MaxPool2D, Sequential)


def classes(spec) -> int:
    """The number of classes the toy data needs for ``spec``'s output."""
    return max(spec.output_shape[0], 2)


def mlp(hidden: str, loss: str, units_out: int, out_act: str, optimizer, input_dim: int = 5):
    return Sequential([Dense(8, activation=hidden, input_shape=(input_dim,)), Dense(6, activation="tanh"),
                       Dense(units_out, activation=out_act)]).compile(loss=loss, optimizer=optimizer)


def cnn(*layers, optimizer=None):
    return Sequential(list(layers)).compile("categorical_crossentropy", optimizer or Adam(0.01))


#: dense networks: every activation, loss and optimizer (with the number of classes of their data)
MLP_CASES = {
    "relu-softmax-sgd": (mlp("relu", "categorical_crossentropy", 3, "softmax", SGD(0.1)), 3),
    "sigmoid-softmax-momentum": (mlp("sigmoid", "categorical_crossentropy", 3, "softmax", SGD(0.05, 0.9)), 3),
    "tanh-softmax-adam": (mlp("tanh", "categorical_crossentropy", 4, "softmax", Adam(0.01, 0.8, 0.99, 1e-6)), 3),
    "softmax-hidden-adam": (mlp("softmax", "categorical_crossentropy", 3, "softmax", Adam()), 3),
    "linear-bce-adam": (mlp("linear", "binary_crossentropy", 1, "sigmoid", "adam"), 2),
    "mse-linear-out": (mlp("relu", "mse", 1, "linear", SGD(0.01)), 2),
    "mse-sigmoid-out": (mlp("relu", "mse", 3, "sigmoid", SGD(0.5, 0.5)), 3),
    "activation-layers": (Sequential([Dense(7, input_shape=(5,)), Activation("relu"), Dense(3),
                                      Activation("softmax")]).compile("categorical_crossentropy", "adam"), 3),
    "leaky-relu-elu-silu-momentum": (Sequential([Dense(8, "leaky_relu", input_shape=(5,)), Dense(8, "elu"),
                                                 Dense(6, "silu"), Dense(3, "softmax")])
                                     .compile("categorical_crossentropy", SGD(0.1, 0.9)), 3),
    "gelu-erf-and-tanh-adam": (Sequential([Dense(8, "gelu_erf", input_shape=(5,)), Dense(6, "gelu_tanh"),
                                           Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)), 3),
    # alphas other than the defaults, the last one the output activation under mse
    "alpha-activation-layers-mse": (Sequential([Dense(7, input_shape=(5,)), Activation("leaky_relu", alpha=0.3),
                                                Dense(7), Activation("elu", alpha=0.5), Dense(3),
                                                Activation("leaky_relu", alpha=0.2)]).compile("mse", SGD(0.1)), 3),
}

#: dense networks of the regression losses and the loss options (their data: float targets,
#: ``toy_regression(units=spec.output_shape[0])``, or class labels where the loss is cross-entropy)
LOSS_OPTION_CASES = {
    "mae-linear-sgd": mlp("relu", "mae", 2, "linear", SGD(0.05)),
    "mae-sigmoid-momentum": mlp("tanh", "mae", 1, "sigmoid", SGD(0.1, 0.9)),
    "huber-delta-0.5-adam": mlp("relu", {"name": "huber", "delta": 0.5}, 2, "linear", Adam(0.01)),
    "huber-default-delta-tanh-sgd": mlp("sigmoid", "huber", 3, "tanh", SGD(0.1)),
    "mse-float-targets-adam": mlp("tanh", "mse", 2, "linear", Adam(0.01)),
    "label-smoothing-0.2-momentum": mlp("relu", {"name": "categorical_crossentropy", "label_smoothing": 0.2}, 3,
                                        "softmax", SGD(0.1, 0.9)),
}

#: networks whose weights go in and come out exactly (the data: their number of classes)
BUILD_CASES = {
    "dense-activation-momentum": Sequential([Dense(8, activation="relu", input_shape=(5,)), Activation("tanh"),
                                             Dense(6), Dense(3, activation="softmax")])
    .compile("categorical_crossentropy", SGD(0.1, 0.9)),
    "tanh-adam": Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")])
    .compile("categorical_crossentropy", Adam(0.01)),
    "relu-softmax-momentum": Sequential([Dense(8, "relu", input_shape=(5,)), Dense(6, "tanh"), Dense(3, "softmax")])
    .compile("categorical_crossentropy", SGD(0.05, 0.9)),
    "sigmoid-bce-adam": Sequential([Dense(8, "sigmoid", input_shape=(5,)), Dense(1, "sigmoid")])
    .compile("binary_crossentropy", Adam(0.01)),
    "activation-layers-mse": Sequential([Dense(7, input_shape=(5,)), Activation("softmax"), Dense(3),
                                         Activation("sigmoid")]).compile("mse", "adam"),
    "no-biases": Sequential([Conv2D(2, 2, input_shape=(4, 4, 1), use_bias=False), Activation("leaky_relu", alpha=0.3),
                             Flatten(), Dense(3, "softmax", use_bias=False)])
    .compile("categorical_crossentropy", SGD(0.1, 0.9)),
}

CONV_CASES = {
    "conv2d-valid-stride1": cnn(Conv2D(3, 3, input_shape=(6, 5, 2)), Flatten(), Dense(3, "softmax")),
    "conv2d-same-stride2-kernel-3x2": cnn(Conv2D(2, (3, 2), strides=2, padding="same", activation="relu",
                                                 input_shape=(7, 6, 2)), Flatten(), Dense(3, "softmax")),
    "conv2d-same-even-kernel": cnn(Conv2D(2, 4, padding="same", input_shape=(5, 5, 1)), Flatten(),
                                   Dense(3, "softmax")),
    "conv2d-int-padding-strides-1x2": cnn(Conv2D(2, 3, strides=(1, 2), padding=1, activation="tanh",
                                                 input_shape=(5, 6, 1)), Flatten(), Dense(3, "softmax")),
    "conv1d-valid": cnn(Conv1D(3, 3, input_shape=(9, 2)), Flatten(), Dense(3, "softmax")),
    "conv1d-same-stride2": cnn(Conv1D(2, 4, strides=2, padding="same", input_shape=(9, 2)), Flatten(),
                               Dense(3, "softmax")),
    "conv1d-int-padding": cnn(Conv1D(2, 3, padding=2, activation="relu", input_shape=(6, 1)), Flatten(),
                              Dense(3, "softmax")),
    "two-convs": cnn(Conv2D(2, 2, activation="relu", input_shape=(5, 5, 1)), Conv2D(2, 2, strides=2, padding="same"),
                     Flatten(), Dense(3, "softmax")),
    "two-convs-strided-same": cnn(Conv2D(2, 2, activation="relu", input_shape=(5, 5, 2)),
                                  Conv2D(3, 2, strides=2, padding="same"), Flatten(), Dense(3, "softmax")),
    "maxpool2d": cnn(Conv2D(2, 2, input_shape=(6, 6, 1)), MaxPool2D(2), Flatten(), Dense(3, "softmax")),
    "maxpool2d-overlapping": cnn(Conv2D(2, 2, input_shape=(7, 7, 1)), MaxPool2D(3, strides=2), Flatten(),
                                 Dense(3, "softmax")),
    "averagepool2d": cnn(Conv2D(2, 2, input_shape=(7, 6, 1)), AveragePool2D((2, 3), strides=(2, 1)), Flatten(),
                         Dense(3, "softmax")),
    "maxpool1d": cnn(Conv1D(2, 3, input_shape=(10, 1)), MaxPool1D(2), Flatten(), Dense(3, "softmax")),
    "averagepool1d": cnn(Conv1D(2, 3, input_shape=(10, 1)), AveragePool1D(3, strides=2), Flatten(),
                         Dense(3, "softmax")),
    # spatial inputs without a convolution first; softmax over a feature map's channels
    "pool-then-conv-softmax-channels": cnn(MaxPool2D(2, strides=1, input_shape=(5, 5, 3)),
                                           Conv2D(3, 2, activation="softmax"), Flatten(), Dense(3, "softmax")),
    "flatten-first": cnn(Flatten(input_shape=(3, 4, 2)), Dense(3, "softmax")),
    "dropout-rate-0": cnn(Conv2D(3, 2, activation="relu", input_shape=(5, 5, 1)), Dropout(0.0), Flatten(),
                          Dropout(0.0), Dense(3, "softmax")),
    # every layer type, padding mode and pooling kind with each loss and optimizer
    "conv2d-same-strided-maxpool": Sequential([
        Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(7, 7, 2)),
        MaxPool2D(2, strides=1), Flatten(), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
    "conv2d-int-padding-avgpool": Sequential([
        Conv2D(3, (3, 2), padding=1, activation="tanh", input_shape=(6, 5, 1)), AveragePool2D(2), Flatten(),
        Dense(3, "softmax")]).compile("categorical_crossentropy", SGD(0.1, 0.9)),
    "conv1d-batchnorm-pools": Sequential([
        Conv1D(4, 3, strides=2, activation="relu", input_shape=(11, 2)), BatchNormalization(momentum=0.9),
        MaxPool1D(2), AveragePool1D(2, strides=1), Flatten(), Dense(1, "sigmoid")]).compile(
        "binary_crossentropy", "adam"),
    # no biases before BatchNormalization (what use_bias = false is for), global pooling
    "conv2d-no-bias-batchnorm-global-average": cnn(Conv2D(4, 3, padding="same", use_bias=False, input_shape=(5, 5, 2)),
                                                   BatchNormalization(0.9, 1e-3), Activation("relu"),
                                                   GlobalAveragePool2D(), Dense(3, "softmax", use_bias=False)),
    "conv2d-global-max-pool": cnn(Conv2D(3, 2, activation="leaky_relu", input_shape=(5, 4, 2)), GlobalMaxPool2D(),
                                  Dense(3, "softmax")),
    "conv1d-no-bias-global-max-pool": cnn(Conv1D(3, 3, strides=2, use_bias=False, input_shape=(9, 2)),
                                          GlobalMaxPool1D(), Dense(3, "softmax")),
    "dense-batchnorm-dropout-0": Sequential([
        Dense(8, input_shape=(5,)), BatchNormalization(), Activation("sigmoid"), Dropout(0.0),
        Dense(3, "sigmoid")]).compile("mse", SGD(0.5)),
}

# Dense and conv biases feed BatchNormalization, which removes any shift: their
# gradient is 0 up to rounding, and Adam's m / sqrt(v) would turn that noise
# into full learning-rate steps (different noise, different biases, different
# moving means: 2e-2 apart after 25 steps, with identical losses), so these
# train with SGD.
BATCHNORM_CASES = {
    "batchnorm-after-dense": cnn(Dense(5, input_shape=(4,)), BatchNormalization(0.9, 1e-5), Activation("relu"),
                                 Dense(3, "softmax"), optimizer=SGD(0.1, 0.9)),
    "batchnorm-after-dense-5": cnn(Dense(5, input_shape=(5,)), BatchNormalization(0.9, 1e-5), Activation("relu"),
                                   Dense(3, "softmax"), optimizer=SGD(0.1, 0.9)),
    "batchnorm-after-conv2d": cnn(Conv2D(2, 2, input_shape=(4, 4, 1)), BatchNormalization(0.9, 1e-5), Flatten(),
                                  Dense(3, "softmax"), optimizer=SGD(0.1, 0.9)),
    "batchnorm-after-conv1d-then-pool": cnn(Conv1D(4, 3, strides=2, activation="relu", input_shape=(11, 2)),
                                            BatchNormalization(0.9, 1e-5), MaxPool1D(2), Flatten(),
                                            Dense(3, "softmax"), optimizer=SGD(0.05, 0.9)),
    "batchnorm-first": cnn(BatchNormalization(0.9, 1e-5, input_shape=(5,)), Dense(3, "softmax"),
                           optimizer=SGD(0.1, 0.9)),
    "batchnorm-first-on-an-image": cnn(BatchNormalization(0.8, 1e-3, input_shape=(4, 3, 2)), Flatten(),
                                       Dense(3, "softmax"), optimizer=Adam(0.01)),
}

DROPOUT_CASES = {
    "dense": Sequential([Dense(16, "relu", input_shape=(5,)), Dropout(0.5), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1)),
    "conv": cnn(Conv2D(4, 2, activation="relu", input_shape=(5, 5, 1)), Dropout(0.5), Flatten(), Dense(16, "relu"),
                Dropout(0.5), Dense(3, "softmax"), optimizer=SGD(0.1)),
}
