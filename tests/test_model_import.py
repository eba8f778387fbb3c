"""Models users have: Keras and torch models read into specs, their weights
converted exactly, and benchmarked on every backend through dlbench.benchmark."""

import os

import numpy as np
import pytest

import backend_helpers
import dlbench
from dlbench import InputError
from dlbench.data.base import Dataset
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.measure.session import prepare
from dlbench.data.batches import BatchPlan

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
L, nn = keras.layers, torch.nn


def xor_arrays(n=200, seed=0):
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = (corners + 0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    y = (corners[:, 0] ^ corners[:, 1]).astype(np.float32)  # as a Keras user has them: floats
    return x[:160], y[:160], x[160:], y[160:]


def digit_images(channels_first=False):
    """scikit-learn's 8x8 digits as images, NHWC (Keras) or NCHW (torch)."""
    data = next(d for d in BUILTIN_DATASETS if d.name == "digits").load(0, {"spatial": True})
    move = (lambda x: np.ascontiguousarray(np.moveaxis(x, -1, 1))) if channels_first else (lambda x: x)
    return move(data.x_train[:256]), data.y_train[:256], move(data.x_test[:128]), data.y_test[:128]


def keras_xor():
    model = keras.Sequential([keras.Input((2,)), L.Dense(10, activation="relu"), L.Dense(1, activation="sigmoid")],
                             name="xor")
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.01))
    return model


def keras_cnn():
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, padding="same", activation="relu"),
                              L.MaxPooling2D(2), L.Conv2D(6, (2, 3), strides=(1, 2)), L.ReLU(),
                              L.BatchNormalization(momentum=0.9), L.Flatten(), L.Dropout(0.0), L.Dense(10),
                              L.Softmax()], name="cnn")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), optimizer=keras.optimizers.Adam(0.003))
    return model


def torch_xor():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 1), nn.Sigmoid())


def torch_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, (2, 3), stride=(1, 2)),
                         nn.BatchNorm2d(6, momentum=0.2, eps=1e-4), nn.Tanh(), nn.Flatten(), nn.Dropout(0.0),
                         nn.Linear(6 * 3 * 1, 10))


#: runs long enough for the certificate's 8 checkpoints (one window start per epoch): with fewer, one
#: checkpoint where a near-zero gradient's sign went another way in Adam's first steps decides the verdict
EIGHT_EPOCHS = dict(epochs=8)


#: the four built-in backends, named: "all" would add any installed plugin (paddle)
BUILT_INS = ",".join(backend_helpers.BUILT_INS)


def assert_four_agreeing_rows(results):
    rows = {r.backend: r for r in results.rows}
    assert set(rows) == {"numpy", "torch", "tensorflow", "jax"}, results
    assert all(rows[b].parity["checkpoints"] == 8 for b in ("torch", "tensorflow", "jax"))
    assert all(r.status == "ok" for r in rows.values()), [(r.backend, r.error) for r in rows.values()]
    assert all(rows[b].agrees for b in ("torch", "tensorflow", "jax")), [r.parity for r in rows.values()]
    pytest.importorskip("pandas")
    frame = results.to_pandas()
    assert len(frame) == 4 and {"scenario", "backend", "status", "agrees", "test_accuracy", "samples_per_sec",
                                "repeat"} <= set(frame.columns)
    assert list(frame["backend"]) == ["numpy", "torch", "tensorflow", "jax"]


@pytest.mark.slow
def test_a_keras_xor_mlp_trains_alike_on_four_backends():
    results = dlbench.benchmark(keras_xor(), data=xor_arrays(), backends=BUILT_INS, batch_size=8, **EIGHT_EPOCHS,
                                progress=False)
    assert_four_agreeing_rows(results)
    assert results.rows[0].scenario == "keras-xor"
    assert results.document["settings"]["sources"]["keras-xor"].startswith("Keras Sequential 'xor' (2 layers)")


@pytest.mark.slow
def test_a_keras_cnn_trains_alike_on_four_backends():
    results = dlbench.benchmark(keras_cnn(), data=digit_images(), backends=BUILT_INS, batch_size=32, **EIGHT_EPOCHS,
                                progress=False)
    assert_four_agreeing_rows(results)


@pytest.mark.slow
def test_a_torch_mlp_and_an_nchw_cnn_train_alike_on_four_backends():
    results = dlbench.benchmark(torch_xor(), data=xor_arrays(), backends=BUILT_INS, batch_size=8, **EIGHT_EPOCHS,
                                progress=False)
    assert_four_agreeing_rows(results)
    results = dlbench.benchmark(torch_cnn(), data=digit_images(channels_first=True), backends=BUILT_INS,
                                loss=nn.CrossEntropyLoss(), batch_size=32, **EIGHT_EPOCHS, weights="model",
                                progress=False)
    assert_four_agreeing_rows(results)


# ------------------------------------------------------------ reading models
def test_keras_layer_configuration_loss_and_optimizer_are_read():
    spec = dlbench.from_keras(keras_cnn())
    conv, pool, conv2, relu, norm, *_ = spec.layers
    assert (conv.filters, conv.kernel_size, conv.padding, conv.activation) == (4, (3, 3), "same", "relu")
    assert pool.pool_size == (2, 2) and (conv2.kernel_size, conv2.strides) == ((2, 3), (1, 2))
    assert relu == dlbench.Activation("relu") and (norm.momentum, norm.epsilon) == (0.9, 1e-3)
    assert spec.input_shape == (8, 8, 1) and spec.loss == "categorical_crossentropy"
    assert spec.optimizer == dlbench.Adam(learning_rate=0.003)  # Keras keeps it in float32: read back as written
    logits = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    logits.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
    spec = dlbench.from_keras(logits)
    assert spec.layers[-1] == dlbench.Activation("softmax") and spec.optimizer == dlbench.SGD(0.1, momentum=0.5)


def test_torch_layouts_momentum_and_loss_are_converted():
    net = torch_cnn()
    spec = dlbench.from_torch(net, (1, 8, 8), loss=nn.CrossEntropyLoss(),
                              optimizer=torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    assert spec.input_shape == (8, 8, 1) and spec.output_shape == (10,)
    norm = spec.layers[4]
    assert norm.momentum == pytest.approx(0.8) and norm.epsilon == 1e-4  # torch's 0.2 is the new batch's weight
    assert spec.layers[-1] == dlbench.Activation("softmax") and spec.loss == "categorical_crossentropy"
    assert spec.optimizer == dlbench.SGD(learning_rate=0.05, momentum=0.9)
    assert spec.layers[0].padding == 1 and spec.layers[3].strides == (1, 2)
    assert dlbench.from_torch(torch_xor(), (2,)).loss == "binary_crossentropy"


def framework_loss(kind, model, x, y):
    """The mean loss of the user's own model on (x, y), computed by its framework."""
    if kind == "keras":
        p = np.asarray(model(x, training=False))
        if p.shape[1] == 1:
            p = np.clip(p[:, 0], 1e-7, 1 - 1e-7)
            return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
        return float(np.mean(-np.log(p[np.arange(len(y)), y.astype(int)])))
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
        if out.shape[1] == 1:
            return float(nn.functional.binary_cross_entropy(out[:, 0], torch.from_numpy(y).float()))
        return float(nn.functional.cross_entropy(out, torch.from_numpy(y).long()))


def trained(model, kind):
    """The model after a few steps of its own framework's training, so that
    moving statistics and weights are not the initial ones."""
    x, y, _, _ = digit_images(channels_first=kind == "torch")
    if kind == "keras":
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        return model
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for rows in np.array_split(np.arange(len(x)), 4):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x[rows])), torch.from_numpy(y[rows]).long()).backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("kind", ["keras", "torch"])
@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax"])
def test_converted_weights_compute_the_models_own_function_on_every_backend(kind, backend):
    """The round trip: the model's weights in canonical layout, loaded by a
    backend, give back the same arrays and the model's own test loss (eval
    mode: the moving statistics count, and so does the Flatten's order)."""
    model = trained(keras_cnn() if kind == "keras" else torch_cnn(), kind)
    chosen = get_plugins().backend(backend)
    if not chosen.availability().available:
        pytest.skip(f"{backend} is not installed")
    options = dict(loss=nn.CrossEntropyLoss()) if kind == "torch" else {}
    imported = get_plugins().backend("tensorflow" if kind == "keras" else "torch").import_model(
        model, input_shape=(8, 8, 1) if kind == "keras" else (1, 8, 8), **options)
    x, y, x_test, y_test = digit_images(channels_first=kind == "torch")
    data = Dataset(*digit_images(), 10)
    session = prepare(chosen, imported.spec, data, BatchPlan(len(x), 32, 1, 0), TrainerOptions(), imported.weights)
    for given, back in zip(imported.weights, session.trainer.weights()):
        assert set(given) == set(back) and all(np.array_equal(given[k], back[k]) for k in given)
    loss, _ = session.trainer.evaluate()
    assert loss == pytest.approx(framework_loss(kind, model, x_test, y_test), rel=1e-4)


def signal_models():
    """A 1-D network of the other layer kinds, with a BatchNorm1d after the Flatten (torch's features reordered)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(2, 3, 3, stride=1, padding="same"), nn.Sigmoid(), nn.AvgPool1d(2),
                        nn.Sequential(nn.Flatten(), nn.BatchNorm1d(18), nn.Identity()), nn.Linear(18, 3))
    inputs = keras.Input((12, 2))
    x = L.Conv1D(3, 3, padding="same", activation="sigmoid")(inputs)
    x = L.Flatten()(L.AveragePooling1D(2)(x))
    outputs = L.Dense(3, activation="softmax")(L.BatchNormalization(momentum=0.5, epsilon=1e-2)(x))
    chain = keras.Model(inputs, outputs, name="signal")
    chain.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    return {"torch": net, "keras": chain}


@pytest.mark.parametrize("kind", ["keras", "torch"])
def test_a_signal_network_and_a_functional_chain_compute_their_own_function(kind):
    """Conv1D, average pooling, BatchNorm over flattened features, a functional Keras chain, a nested Sequential."""
    model = signal_models()[kind]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 12, 2)).astype(np.float32), np.arange(64) % 3
    theirs = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if kind == "torch" else x
    if kind == "torch":
        with torch.no_grad():  # moving statistics that are not the initial ones
            model.train()(torch.from_numpy(theirs) * 3 + 1)
    else:
        model.fit(x * 3 + 1, y, batch_size=64, epochs=1, verbose=0)
    reader = get_plugins().backend("torch" if kind == "torch" else "tensorflow")
    imported = reader.import_model(model, input_shape=theirs.shape[1:],
                                   **({"loss": nn.CrossEntropyLoss()} if kind == "torch" else {}))
    expected = {"keras": ["conv1d", "averagepool1d", "flatten", "batchnorm", "dense"],
                "torch": ["conv1d", "activation", "averagepool1d", "flatten", "batchnorm", "dense", "activation"]}
    assert [layer.type for layer in imported.spec.layers] == expected[kind]
    data = Dataset(x, y, x, y, 3)
    session = prepare(get_plugins().backend("numpy"), imported.spec, data, BatchPlan(64, 64, 1, 0), TrainerOptions(),
                      imported.weights)
    assert session.trainer.evaluate()[0] == pytest.approx(framework_loss(kind, model, theirs, y), rel=1e-5)


def test_weights_model_is_where_a_benchmark_starts():
    """One full batch, one step: the first training loss is the model's own loss on the training set."""
    model = trained(torch_cnn(), "torch")
    x, y, x_test, y_test = digit_images(channels_first=True)
    results = dlbench.benchmark(model, data=(x, y, x_test, y_test), backends="numpy", loss=nn.CrossEntropyLoss(),
                                batch_size=len(x), steps=1, weights="model", progress=False)
    model.train()  # training mode, as the step's forward pass: BatchNorm normalizes with the batch's statistics
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y).long()))
    assert results.rows[0].metrics["loss_history"][0] == pytest.approx(expected, rel=1e-5)
    assert results.document["settings"]["sources"]["torch-sequential"].endswith("initial weights: the model's own")


# ---------------------------------------------------------------- bad models
class NotAChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, x):
        return self.a(x) + self.b(x)


def keras_with(*layers, input_shape=(8, 8, 1)):
    model = keras.Sequential([keras.Input(input_shape), *layers])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def keras_branching():
    inputs = keras.Input((4,))
    outputs = L.Add()([L.Dense(3)(inputs), L.Dense(3)(inputs)])
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", optimizer="adam")
    return model


BAD_MODELS = [
    (lambda: keras_with(L.Conv2D(2, 3), L.ZeroPadding2D(), L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")),
     "layer 1 ('zero_padding2d", "ZeroPadding2D layers cannot be read; supported: InputLayer, Dense"),
    (lambda: keras_with(L.Flatten(), L.Dense(10, activation="selu")), "layer 1 ('dense",
     "activation 'selu'; supported: activation one of linear, relu"),
    (lambda: keras_with(L.Conv2D(2, 3, dilation_rate=2), L.Flatten(), L.Dense(10, activation="softmax")),
     "layer 0 ('conv2d", "dilation_rate=(2, 2)"),
    (lambda: keras_with(L.Flatten(), L.Dense(10, activation="softmax", kernel_regularizer="l2")),
     "layer 1 ('dense", "kernel_regularizer="),
    (keras_branching, "Keras model", "reads an earlier result, not the last one: the graph branches"),
    (lambda: NotAChain(), "torch NotAChain", "layer 1 ('b', Linear, line "),
    (lambda: NotAChain(), "return self.a(x) + self.b(x)", "reads an earlier result, not the last one: the graph branches"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.SELU()), "layer 2 (SELU)",
     "SELU modules cannot be read; supported: Linear, Conv1d"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.PReLU()), "layer 2 (PReLU)",
     "PReLU modules cannot be read; supported: Linear, Conv1d"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, groups=1, dilation=2), nn.Flatten(), nn.Linear(32, 10)),
     "layer 0 (Conv2d)", "dilation=(2, 2)"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(60, 10)), "layer 1 (Linear)", "in_features=60, but its input is (64,)"),
]


@pytest.mark.parametrize("make, where, message", BAD_MODELS, ids=[m for _, _, m in BAD_MODELS])
def test_an_unsupported_model_is_one_error_naming_the_layer_and_nothing_is_written(make, where, message, tmp_path):
    model = make()
    loss = nn.CrossEntropyLoss() if isinstance(model, nn.Module) else None
    with pytest.raises(InputError) as caught:
        dlbench.benchmark(model, data=digit_images(channels_first=loss is not None), loss=loss, out=tmp_path / "out",
                          progress=False)
    assert where in str(caught.value) and message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_readers_refuse_what_they_cannot_express_in_the_loss_and_optimizer():
    with pytest.raises(InputError, match="CrossEntropyLoss takes logits, but the module ends in a softmax"):
        dlbench.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=1)), (2,), loss=nn.CrossEntropyLoss())
    net = torch_xor()
    with pytest.raises(InputError, match="Adam with amsgrad=True has no counterpart"):
        dlbench.from_torch(net, (2,), optimizer=torch.optim.Adam(net.parameters(), amsgrad=True))
    with pytest.raises(InputError, match="optimizer Adagrad cannot be read; expected one of Adadelta, Adam, AdamW, "
                                         "RMSprop, SGD of torch.optim"):
        dlbench.from_torch(net, (2,), optimizer=torch.optim.Adagrad(net.parameters()))
    with pytest.raises(InputError, match="give loss=: a dlbench loss"):
        dlbench.from_torch(nn.Sequential(nn.Linear(2, 3)), (2,))
    model = keras_xor()
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adagrad())
    with pytest.raises(InputError, match="optimizer Adagrad cannot be read; expected one of Adadelta, Adam, AdamW, "
                                         "RMSprop, SGD"):
        dlbench.from_keras(model)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    for refused, message in [(keras.optimizers.SGD(weight_decay=0.01), "SGD with weight_decay=0.01"),
                             (keras.optimizers.Adam(clipnorm=1.0), "Adam with clipnorm=1.0"),
                             (keras.optimizers.SGD(schedule, momentum=0.9), "SGD with momentum under a schedule")]:
        model.compile(loss="binary_crossentropy", optimizer=refused)
        with pytest.raises(InputError, match=message):
            dlbench.from_keras(model)
    uncompiled = keras.Sequential([keras.Input((2,)), L.Dense(1, activation="sigmoid")])
    with pytest.raises(InputError, match="the model is not compiled"):
        dlbench.from_keras(uncompiled)
    assert dlbench.from_keras(uncompiled, loss="binary_crossentropy", optimizer="sgd").optimizer == dlbench.SGD()


def test_torch_optimizers_are_read_with_their_conventions():
    net = torch_xor()
    params = net.parameters
    read = {
        torch.optim.RMSprop(params(), lr=0.01, alpha=0.95, eps=1e-6, momentum=0.9, centered=True, weight_decay=1e-4):
            dlbench.RMSprop(0.01, rho=0.95, epsilon=1e-6, momentum=0.9, centered=True, weight_decay=1e-4),
        torch.optim.AdamW(params(), lr=3e-4, betas=(0.8, 0.99)):  # torch's default decay, 0.01, is the spec's
            dlbench.AdamW(3e-4, beta_1=0.8, beta_2=0.99, epsilon=1e-8),
        torch.optim.Adam(params(), weight_decay=0.1, decoupled_weight_decay=True):
            dlbench.AdamW(1e-3, epsilon=1e-8, weight_decay=0.1),
        torch.optim.Adam(params(), weight_decay=0.1): dlbench.Adam(1e-3, epsilon=1e-8, weight_decay=0.1),
        torch.optim.SGD(params(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4):
            dlbench.SGD(0.1, 0.9, nesterov=True, weight_decay=5e-4),
        torch.optim.Adadelta(params(), lr=1.0): dlbench.Adadelta(1.0, rho=0.9, epsilon=1e-6),
    }
    for optimizer, expected in read.items():
        assert dlbench.from_torch(net, (2,), loss="binary_crossentropy", optimizer=optimizer).optimizer == expected


def test_keras_optimizers_and_schedules_are_read_with_their_conventions():
    schedules = keras.optimizers.schedules
    read = [
        (keras.optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, global_clipnorm=1.0),
         dlbench.RMSprop(0.01, rho=0.8, epsilon=1e-7, momentum=0.5, centered=True, clip_global_norm=1.0)),
        (keras.optimizers.AdamW(0.001, clipvalue=0.5),  # Keras's default decay, 0.004, kept
         dlbench.AdamW(0.001, weight_decay=0.004, clip_value=0.5)),
        (keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), dlbench.SGD(0.1, 0.9, nesterov=True)),
        (keras.optimizers.Adadelta(), dlbench.Adadelta(0.001, rho=0.95, epsilon=1e-7)),
        (keras.optimizers.SGD(schedules.ExponentialDecay(0.1, 30, 0.1, staircase=True)),
         dlbench.SGD(0.1, schedule=dlbench.StepDecay(30, 0.1))),
        (keras.optimizers.Adam(schedules.ExponentialDecay(0.01, 1, 0.9)),
         dlbench.Adam(0.01, schedule=dlbench.ExponentialDecay(0.9))),
        (keras.optimizers.Adam(schedules.CosineDecay(0.01, 100, alpha=0.1)),
         dlbench.Adam(0.01, schedule=dlbench.CosineDecay(100, 0.1))),
        (keras.optimizers.AdamW(schedules.CosineDecay(0.0, 90, warmup_target=0.002, warmup_steps=10)),
         dlbench.AdamW(0.002, weight_decay=0.004, schedule=dlbench.WarmupCosine(10, 100))),
    ]
    model = keras_xor()
    for optimizer, expected in read:
        model.compile(loss="binary_crossentropy", optimizer=optimizer)
        assert dlbench.from_keras(model).optimizer == expected, type(optimizer).__name__
