"""The losses pinned against each framework's own stock losses: torch's
nn.MSELoss / L1Loss / HuberLoss(delta) / CrossEntropyLoss(label_smoothing),
Keras's MeanSquaredError / MeanAbsoluteError / Huber(delta) /
CategoricalCrossentropy(from_logits, label_smoothing), and optax's
huber_loss / smooth_labels + softmax_cross_entropy (jnp for mse and mae:
optax has neither). A small MLP is built by hand from the core's initial
weights, trained with the framework's stock SGD on the core's batches, and
must give the backend's losses and weights to float32 rounding."""

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.network import SGD, Dense, Sequential
from dlbench.network.init import initial_weights
from dlbench.plugin.backend import TrainerOptions

LEARNING_RATE, STEPS, SMOOTHING, DELTA = 0.1, 3, 0.2, 0.5


def _regression(loss):
    return Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(2)]).compile(loss, SGD(LEARNING_RATE))


CASES = {
    "mse": _regression("mse"),
    "mae": _regression("mae"),
    "huber": _regression({"name": "huber", "delta": DELTA}),
    "label-smoothing": Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")]).compile(
        {"name": "categorical_crossentropy", "label_smoothing": SMOOTHING}, SGD(LEARNING_RATE)),
}


def _data(spec) -> Dataset:
    """Class labels for cross-entropy; otherwise float targets whose residuals straddle huber's delta."""
    data = toy_data(input_shape=(5,), n_classes=3, n_train=24)
    if spec.loss == "categorical_crossentropy":
        return data
    rng = np.random.default_rng(1)
    y = rng.standard_normal((len(data.x_train) + len(data.x_test), 2)).astype(np.float32)
    return Dataset(data.x_train, y[:len(data.x_train)], data.x_test, y[len(data.x_train):], 0)


def _core_run(backend_name: str, spec):
    """(the backend's losses, its weights after them, the batches, the data, the initial weights)."""
    data = _data(spec)
    weights = initial_weights(spec, 0)
    plan = BatchPlan(len(data.x_train), 8, epochs=10, seed=0, max_steps=STEPS)
    batches = [rows for window in plan.windows(STEPS) for rows in window.indices]
    trainer = require_backend(backend_name).build(spec, weights, TrainerOptions())
    trainer.place_data(data)
    losses = np.concatenate([trainer.train(window.indices) for window in plan.windows(STEPS)])
    return losses, trainer.weights(), batches, data, weights


def _assert_same(stock_losses, stock_weights, losses, weights):
    np.testing.assert_allclose(stock_losses, losses, rtol=2e-6, atol=1e-7, err_msg="losses")
    for i, (stock, core) in enumerate(zip(stock_weights, weights, strict=True)):
        for name in core:
            np.testing.assert_allclose(stock[name], core[name], rtol=1e-5, atol=2e-6, err_msg=f"layer {i} {name}")


@pytest.mark.parametrize("case", list(CASES))
def test_torch_stock_losses_train_as_the_torch_backend(case):
    require_backend("torch")
    import torch
    from torch import nn

    spec = CASES[case]
    losses, trained, batches, data, weights = _core_run("torch", spec)
    linears = [nn.Linear(5, 8), nn.Linear(8, spec.output_shape[0])]
    with torch.no_grad():
        for linear, w in zip(linears, weights):
            linear.weight.copy_(torch.from_numpy(w["kernel"].T.copy()))
            linear.bias.copy_(torch.from_numpy(w["bias"]))
    model = nn.Sequential(linears[0], nn.Tanh(), linears[1])
    stock = {"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": nn.HuberLoss(delta=DELTA),
             "label-smoothing": nn.CrossEntropyLoss(label_smoothing=SMOOTHING)}[case]
    targets = torch.from_numpy(data.y_train.astype(np.int64) if case == "label-smoothing" else data.y_train)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    stock_losses = []
    for rows in batches:
        optimizer.zero_grad()
        loss = stock(model(torch.from_numpy(data.x_train[rows])), targets[rows])
        loss.backward()
        optimizer.step()
        stock_losses.append(loss.item())
    stock_weights = [{"kernel": lin.weight.detach().numpy().T, "bias": lin.bias.detach().numpy()} for lin in linears]
    _assert_same(stock_losses, stock_weights, losses, trained)


@pytest.mark.parametrize("case", list(CASES))
def test_keras_stock_losses_train_as_the_tensorflow_backend(case):
    require_backend("tensorflow")
    from dlbench_backends.tensorflow import framework

    tf, keras = framework()
    spec = CASES[case]
    losses, trained, batches, data, weights = _core_run("tensorflow", spec)
    dense = [keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(spec.output_shape[0])]
    model = keras.Sequential([keras.Input((5,)), *dense])
    for layer, w in zip(dense, weights):
        layer.set_weights([w["kernel"], w["bias"]])
    stock = {"mse": keras.losses.MeanSquaredError(), "mae": keras.losses.MeanAbsoluteError(),
             "huber": keras.losses.Huber(delta=DELTA),
             "label-smoothing": keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=SMOOTHING)}[case]
    targets = np.eye(3, dtype=np.float32)[data.y_train] if case == "label-smoothing" else data.y_train
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    stock_losses = []
    for rows in batches:
        with tf.GradientTape() as tape:
            loss = stock(targets[rows], model(data.x_train[rows], training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        stock_losses.append(float(loss))
    stock_weights = [dict(zip(["kernel", "bias"], layer.get_weights())) for layer in dense]
    _assert_same(stock_losses, stock_weights, losses, trained)


@pytest.mark.parametrize("case", list(CASES))
def test_optax_stock_losses_train_as_the_jax_backend(case):
    require_backend("jax")
    import jax
    import jax.numpy as jnp
    import optax

    spec = CASES[case]
    losses, trained, batches, data, weights = _core_run("jax", spec)
    stock = {"mse": lambda out, t: jnp.mean((out - t) ** 2), "mae": lambda out, t: jnp.mean(jnp.abs(out - t)),
             "huber": lambda out, t: jnp.mean(optax.huber_loss(out, t, delta=DELTA)),
             "label-smoothing": lambda out, t: jnp.mean(optax.softmax_cross_entropy(
                 out, optax.smooth_labels(jax.nn.one_hot(t, 3), SMOOTHING)))}[case]

    def loss_of(params, x, t):
        hidden = jnp.tanh(x @ params[0]["kernel"] + params[0]["bias"])
        return stock(hidden @ params[1]["kernel"] + params[1]["bias"], t)

    params = [{k: jnp.asarray(v) for k, v in w.items()} for w in weights]
    optimizer = optax.sgd(LEARNING_RATE)
    state = optimizer.init(params)
    stock_losses = []
    for rows in batches:
        loss, grads = jax.value_and_grad(loss_of)(params, data.x_train[rows], data.y_train[rows])
        updates, state = optimizer.update(grads, state)
        params = optax.apply_updates(params, updates)
        stock_losses.append(float(loss))
    _assert_same(stock_losses, [{k: np.asarray(v) for k, v in p.items()} for p in params], losses, trained)


def test_the_cases_reach_both_sides_of_the_huber_delta():
    """Huber's pin means something only where some residuals are past delta and some within."""
    spec = CASES["huber"]
    data = _data(spec)
    w = initial_weights(spec, 0)
    out = np.tanh(data.x_train @ w[0]["kernel"] + w[0]["bias"]) @ w[1]["kernel"] + w[1]["bias"]
    beyond = np.abs(out - data.y_train) > DELTA
    assert 0.2 < beyond.mean() < 0.8


def test_mae_gradient_at_a_zero_residual_is_torch_l1_loss_zero_on_every_backend():
    """torch's L1Loss and TensorFlow's abs give 0 where the output equals its target; jnp.abs gives 1,
    so the JAX backend writes |r| as sign(r) r. Each backend's mae gradient: (0, -1/3, 1/3)."""
    z, t = np.array([[1.0, -2.0, 0.5]], np.float32), np.array([[1.0, 0.0, 0.0]], np.float32)
    expected = [0, -1 / 3, 1 / 3]
    require_backend("torch")
    import torch

    from dlbench_backends.torch.losses import mae as torch_mae

    zt = torch.from_numpy(z).requires_grad_()
    torch.nn.L1Loss()(zt, torch.from_numpy(t)).backward()
    np.testing.assert_allclose(zt.grad.numpy()[0], expected, rtol=1e-6)
    zt.grad = None
    torch_mae(zt, torch.from_numpy(t), lambda v: v).backward()
    np.testing.assert_allclose(zt.grad.numpy()[0], expected, rtol=1e-6)

    require_backend("jax")
    import jax
    import jax.numpy as jnp

    from dlbench_backends.jax.losses import mae as jax_mae

    assert float(jax.grad(jnp.abs)(0.0)) == 1.0  # why the backend does not use jnp.abs
    np.testing.assert_allclose(jax.grad(lambda v: jax_mae(v, t, lambda u: u))(z)[0], expected, rtol=1e-6)

    require_backend("tensorflow")
    from dlbench_backends.tensorflow import framework
    from dlbench_backends.tensorflow.losses import LOSSES as TF_LOSSES

    tf, _ = framework()
    zv = tf.Variable(z)
    with tf.GradientTape() as tape:
        loss = TF_LOSSES["mae"](zv, tf.constant(t), lambda u: u)
    np.testing.assert_allclose(tape.gradient(loss, zv).numpy()[0], expected, rtol=1e-6)
