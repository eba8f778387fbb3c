"""The newer layers pinned against each framework's own stock implementation:
torch's nn.LeakyReLU / nn.ELU / nn.SiLU / nn.GELU(approximate=...) /
bias=False layers / nn.AdaptiveMax|AvgPool, Keras's LeakyReLU / ELU / silu /
gelu(approximate=...) / use_bias=False / GlobalMax|AveragePooling, and
jax.nn's leaky_relu / elu / silu / gelu(approximate=...) with jnp.max /
jnp.mean. Each stock network is built by hand from the core's initial
weights, trained with the framework's stock SGD on the core's batches, and
must give the backend's losses and weights to float32 rounding."""

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.network import (SGD, Activation, Conv1D, Conv2D, Dense, GlobalAveragePool2D, GlobalMaxPool1D,
                          GlobalMaxPool2D, Sequential, activation_alpha)
from dlbench.network.init import initial_weights

LEARNING_RATE, STEPS = 0.1, 3


def _compile(*layers):
    return Sequential(list(layers)).compile("categorical_crossentropy", SGD(LEARNING_RATE))


NETWORKS = {
    "gelu-forms": _compile(Dense(16, "gelu_erf", input_shape=(5,)), Dense(8, "gelu_tanh"), Dense(3, "softmax")),
    "leaky-relu-elu-silu-no-bias": _compile(
        Dense(8, input_shape=(5,), use_bias=False), Activation("leaky_relu", alpha=0.2), Dense(8),
        Activation("elu", alpha=0.5), Dense(8, "silu"), Dense(6, "leaky_relu"), Dense(3, "softmax")),
    "conv2d-no-bias-global-max": _compile(Conv2D(4, 3, padding="same", use_bias=False, input_shape=(5, 4, 2)),
                                          Activation("leaky_relu", alpha=0.3), GlobalMaxPool2D(), Dense(3, "softmax")),
    "conv2d-global-average": _compile(Conv2D(4, 3, padding="same", activation="elu", input_shape=(5, 4, 2)),
                                      GlobalAveragePool2D(), Dense(3, "softmax")),
    "conv1d-no-bias-global-max": _compile(Conv1D(4, 3, padding="same", use_bias=False, activation="silu",
                                                 input_shape=(7, 2)), GlobalMaxPool1D(), Dense(3, "softmax")),
}


def _core_run(backend_name: str, spec):
    """(the backend's losses, its weights after them, the batches, the data, the initial weights)."""
    data = toy_data(input_shape=spec.input_shape, n_classes=3, n_train=24)
    # inputs three times larger: pre-activations out where the GELU forms differ most (|x| ~ 3),
    # so that either form in the other's place changes the first loss by 5e-5 (the tolerance: 2e-6)
    data = Dataset(data.x_train * 3, data.y_train, data.x_test * 3, data.y_test, data.n_classes)
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
        assert stock.keys() == core.keys(), i
        for name in core:
            np.testing.assert_allclose(stock[name], core[name], rtol=1e-5, atol=2e-6, err_msg=f"layer {i} {name}")


# ------------------------------------------------------------------------ torch
def _torch_modules(spec, weights):
    """nn modules of the spec's logit layers, channels-first, holding the core's weights;
    (modules, per layer the (canonical name, parameter, to canonical) of its weights)."""
    import torch
    from torch import nn

    act = {"leaky_relu": lambda a: nn.LeakyReLU(a), "elu": lambda a: nn.ELU(a), "silu": lambda a: nn.SiLU(),
           "gelu_erf": lambda a: nn.GELU(), "gelu_tanh": lambda a: nn.GELU(approximate="tanh")}
    pools = {GlobalMaxPool2D: nn.AdaptiveMaxPool2d, GlobalAveragePool2D: nn.AdaptiveAvgPool2d,
             GlobalMaxPool1D: nn.AdaptiveMaxPool1d}
    modules, params = [], []
    for layer, (in_shape, _), w in zip(spec.logit_layers(), spec.shapes, weights):
        held = []
        if isinstance(layer, Dense):
            module = nn.Linear(in_shape[-1], layer.units, bias=layer.use_bias)
            module.weight.data = torch.from_numpy(w["kernel"].T.copy())
            held.append(("kernel", module.weight, lambda t: t.T))
        elif isinstance(layer, (Conv1D, Conv2D)):
            conv = nn.Conv1d if layer.ndim == 1 else nn.Conv2d
            module = conv(in_shape[-1], layer.filters, layer.kernel_size, padding="same", bias=layer.use_bias)
            order = (2, 1, 0) if layer.ndim == 1 else (3, 2, 0, 1)
            module.weight.data = torch.from_numpy(w["kernel"].transpose(order).copy())
            held.append(("kernel", module.weight, lambda t, order=order: t.permute(*np.argsort(order))))
        else:
            module = pools[type(layer)](1) if type(layer) in pools else None
        if getattr(layer, "use_bias", False):
            module.bias.data = torch.from_numpy(w["bias"].copy())
            held.append(("bias", module.bias, lambda t: t))
        modules += [module] if module is not None else []
        modules += [nn.Flatten()] if type(layer) in pools else []
        name = getattr(layer, "activation", "linear")
        modules += [act[name](activation_alpha(layer))] if name in act else []
        params.append(held)
    return nn.Sequential(*modules), params


@pytest.mark.parametrize("case", list(NETWORKS))
def test_torch_stock_modules_train_as_the_torch_backend(case):
    require_backend("torch")
    import torch
    from torch.nn import functional as F

    spec = NETWORKS[case]
    losses, trained, batches, data, weights = _core_run("torch", spec)
    model, params = _torch_modules(spec, weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x = torch.from_numpy(data.x_train).movedim(-1, 1) if len(spec.input_shape) > 1 else torch.from_numpy(data.x_train)
    stock_losses = []
    for rows in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[rows]), torch.from_numpy(data.y_train[rows]).long())
        loss.backward()
        optimizer.step()
        stock_losses.append(loss.item())
    stock_weights = [{name: to(p).detach().numpy() for name, p, to in held} for held in params]
    _assert_same(stock_losses, stock_weights, losses, trained)


# ------------------------------------------------------------------------- Keras
def _keras_model(spec, weights):
    from dlbench_backends.tensorflow import framework

    _, keras = framework()
    k = keras.layers
    act = {"leaky_relu": lambda a: k.LeakyReLU(negative_slope=a), "elu": lambda a: k.ELU(alpha=a),
           "silu": lambda a: k.Activation("silu"), "gelu_erf": lambda a: k.Activation("gelu"),
           "gelu_tanh": lambda a: k.Activation(lambda x: keras.activations.gelu(x, approximate=True))}
    pools = {GlobalMaxPool2D: k.GlobalMaxPooling2D, GlobalAveragePool2D: k.GlobalAveragePooling2D,
             GlobalMaxPool1D: k.GlobalMaxPooling1D}
    built, holders = [], []
    for layer in spec.logit_layers():
        if isinstance(layer, Dense):
            built.append(k.Dense(layer.units, use_bias=layer.use_bias))
        elif isinstance(layer, (Conv1D, Conv2D)):
            conv = k.Conv1D if layer.ndim == 1 else k.Conv2D
            built.append(conv(layer.filters, layer.kernel_size, padding="same", use_bias=layer.use_bias))
        elif type(layer) in pools:
            built.append(pools[type(layer)]())
        holders.append(built[-1] if isinstance(layer, (Dense, Conv1D, Conv2D)) else None)
        name = getattr(layer, "activation", "linear")
        if name in act:
            built.append(act[name](activation_alpha(layer)))
    model = keras.Sequential([keras.Input(spec.input_shape), *built])
    for holder, w in zip(holders, weights):
        if holder is not None:
            holder.set_weights([w["kernel"], *([w["bias"]] if "bias" in w else [])])
    return model, holders


@pytest.mark.parametrize("case", list(NETWORKS))
def test_keras_stock_layers_train_as_the_tensorflow_backend(case):
    require_backend("tensorflow")
    from dlbench_backends.tensorflow import framework

    tf, keras = framework()
    spec = NETWORKS[case]
    losses, trained, batches, data, weights = _core_run("tensorflow", spec)
    model, holders = _keras_model(spec, weights)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    stock_losses = []
    for rows in batches:
        with tf.GradientTape() as tape:
            logits = model(data.x_train[rows], training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(data.y_train[rows], logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        stock_losses.append(float(loss))
    stock_weights = [{} if h is None else dict(zip(["kernel", "bias"], h.get_weights())) for h in holders]
    _assert_same(stock_losses, stock_weights, losses, trained)


# --------------------------------------------------------------------------- JAX
def _jax_forward(spec):
    import jax
    import jax.numpy as jnp
    from jax import lax

    act = {"leaky_relu": lambda x, a: jax.nn.leaky_relu(x, a), "elu": lambda x, a: jax.nn.elu(x, a),
           "silu": lambda x, a: jax.nn.silu(x), "gelu_erf": lambda x, a: jax.nn.gelu(x, approximate=False),
           "gelu_tanh": lambda x, a: jax.nn.gelu(x, approximate=True), "linear": lambda x, a: x}
    layers = spec.logit_layers()

    def forward(params, x):
        for layer, p in zip(layers, params):
            if isinstance(layer, Dense):
                x = x @ p["kernel"]
            elif isinstance(layer, (Conv1D, Conv2D)):
                numbers = ("NWC", "WIO", "NWC") if layer.ndim == 1 else ("NHWC", "HWIO", "NHWC")
                x = lax.conv_general_dilated(x, p["kernel"], (1,) * layer.ndim, "SAME", dimension_numbers=numbers)
            elif isinstance(layer, (GlobalMaxPool1D, GlobalMaxPool2D)):
                x = jnp.max(x, axis=tuple(range(1, x.ndim - 1)))
            elif isinstance(layer, GlobalAveragePool2D):
                x = jnp.mean(x, axis=(1, 2))
            x = x + p["bias"] if "bias" in p else x
            name = getattr(layer, "activation", "linear")
            x = act[name](x, activation_alpha(layer))
        return x
    return forward


@pytest.mark.parametrize("case", list(NETWORKS))
def test_jax_nn_functions_train_as_the_jax_backend(case):
    require_backend("jax")
    import jax
    import jax.numpy as jnp
    import optax

    spec = NETWORKS[case]
    losses, trained, batches, data, weights = _core_run("jax", spec)
    forward = _jax_forward(spec)

    def loss_of(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()

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


def test_torch_bidirectional_lstm_module_trains_as_the_torch_backend():
    """nn.LSTM(bidirectional=True) given the core's weights (torch's two biases: the
    canonical one and zeros) and its output as the spec reads it: every step's
    [forward, backward] state, or [h_T of the forward, h_1 of the backward]."""
    require_backend("torch")
    import torch
    from torch import nn
    from torch.nn import functional as F

    from dlbench.network.sequence import LSTM, Bidirectional

    spec = _compile(Bidirectional(LSTM(3, return_sequences=True), input_shape=(5, 2)), Bidirectional(LSTM(2)),
                    Dense(3, "softmax"))
    losses, trained, batches, data, weights = _core_run("torch", spec)
    lstms = [nn.LSTM(2, 3, batch_first=True, bidirectional=True), nn.LSTM(6, 2, batch_first=True, bidirectional=True)]
    head = nn.Linear(4, 3)
    with torch.no_grad():
        for lstm, w in zip(lstms, weights):
            for suffix, direction in (("", "forward"), ("_reverse", "backward")):
                getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(w[f"{direction}.kernel"].T.copy()))
                getattr(lstm, f"weight_hh_l0{suffix}").copy_(
                    torch.from_numpy(w[f"{direction}.recurrent_kernel"].T.copy()))
                getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(w[f"{direction}.bias"]))
                getattr(lstm, f"bias_hh_l0{suffix}").zero_()
                getattr(lstm, f"bias_hh_l0{suffix}").requires_grad_(False)  # the spec has one bias
        head.weight.copy_(torch.from_numpy(weights[2]["kernel"].T.copy()))
        head.bias.copy_(torch.from_numpy(weights[2]["bias"]))
    params = [p for m in (*lstms, head) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE)
    stock_losses = []
    for rows in batches:
        optimizer.zero_grad()
        sequence, _ = lstms[0](torch.from_numpy(data.x_train[rows]))
        _, (h_n, _) = lstms[1](sequence)  # h_n (2, B, u): the forward's h_T, the backward's h_1
        loss = F.cross_entropy(head(torch.cat([h_n[0], h_n[1]], dim=-1)), torch.from_numpy(data.y_train[rows]).long())
        loss.backward()
        optimizer.step()
        stock_losses.append(loss.item())
    stock_weights = [{f"{direction}.{name}": getattr(lstm, f"{attr}_l0{suffix}").detach().numpy().T
                      if name != "bias" else getattr(lstm, f"bias_ih_l0{suffix}").detach().numpy()
                      for suffix, direction in (("", "forward"), ("_reverse", "backward"))
                      for name, attr in (("kernel", "weight_ih"), ("recurrent_kernel", "weight_hh"), ("bias", None))}
                     for lstm in lstms]
    stock_weights.append({"kernel": head.weight.detach().numpy().T, "bias": head.bias.detach().numpy()})
    _assert_same(stock_losses, stock_weights, losses, trained)
