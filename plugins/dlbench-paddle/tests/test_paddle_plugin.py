"""The Paddle plugin (``plugins/dlbench-paddle``) against Paddle's own stock
layers and optimizers: the conventions the plugin converts (GRU gate order,
BatchNorm momentum, Adam's epsilon, Linear's (in, out) weight, layer_norm's
epsilon limit), what it refuses to approximate (bf16/fp16 on a CPU), and that
it is a separate distribution using only dlbench's public contract. The
contract suite (the kit, ``python -m dlbench.plugin.testing paddle``) runs the plugin;
this file holds what only Paddle has. Skipped where the plugin is not installed.

The plugin's own tests, outside the repository's ``tests/``: Paddle 3.3.1's
library segfaults when it loads into a process that has imported TensorFlow,
so they run in a process of their own (``tests/test_paddle_kit.py`` runs
``python -m pytest plugins/dlbench-paddle/tests -n 0``)."""

import ast
import sys
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlbench_paddle")
paddle = pytest.importorskip("paddle")

from dlbench.plugin.testing.helpers import toy_data  # noqa: E402
from dlbench.errors import InputError  # noqa: E402
from dlbench.network import GRU, SGD, Adam, BatchNormalization, Dense, Sequential  # noqa: E402
from dlbench.network.init import initial_weights  # noqa: E402
from dlbench.network.transformer import LayerNormalization  # noqa: E402
from dlbench.plugin.backend import TrainerOptions  # noqa: E402
from dlbench.plugin.manager import get_plugins  # noqa: E402

PLUGIN = Path(__file__).resolve().parents[1] / "dlbench_paddle"
ROWS = np.arange(24).reshape(3, 8)


def paddle_backend():
    return get_plugins().backend("paddle")


def trained(spec, data, rows=ROWS, seed=0):
    trainer = paddle_backend().build(spec, initial_weights(spec, seed), TrainerOptions())
    trainer.place_data(data)
    return trainer, trainer.train(rows)


def stock_losses(model, optimizer, loss, data, rows=ROWS) -> np.ndarray:
    """Paddle's own training loop: forward, loss, backward, step, clear_grad."""
    x, y = paddle.to_tensor(data.x_train), paddle.to_tensor(data.y_train.astype(np.int64))
    losses = []
    for batch in rows:
        index = paddle.to_tensor(batch)
        value = loss(model(paddle.gather(x, index)), paddle.gather(y, index))
        value.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(value))
    return np.array(losses, np.float32)


def test_the_plugin_is_its_own_distribution_registered_by_entry_point():
    dist = importlib.metadata.distribution("dlbench-paddle")
    points = {ep.name: ep.value for ep in dist.entry_points if ep.group == "dlbench.backends"}
    assert points == {"paddle": "dlbench_paddle"}
    assert get_plugins().backend_plugin["paddle"] == "paddle"


def test_the_plugin_imports_nothing_from_the_builtin_backends():
    for path in PLUGIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.startswith("dlbench_backends") for name in names), path.name


def test_linear_weight_is_the_canonical_kernel_and_adam_takes_the_specs_epsilon():
    """Stock nn.Linear with the canonical kernel untransposed and stock Adam with the
    spec's epsilon train as the plugin does (to Paddle's float32 betas, see the next
    test); Paddle's default epsilon (1e-8, the spec's 1e-3 here) would not."""
    spec = Sequential([Dense(6, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", Adam(0.05, epsilon=1e-3))
    data = toy_data()
    _, losses = trained(spec, data)
    weights = initial_weights(spec, 0)

    def stock(epsilon):
        layers = [paddle.nn.Linear(5, 6), paddle.nn.ReLU(), paddle.nn.Linear(6, 3)]
        for layer, w in zip(layers[::2], weights):
            layer.weight.set_value(w["kernel"])
            layer.bias.set_value(w["bias"])
        model = paddle.nn.Sequential(*layers)
        adam = paddle.optimizer.Adam(0.05, epsilon=epsilon, parameters=model.parameters())
        return stock_losses(model, adam, paddle.nn.functional.cross_entropy, data)

    np.testing.assert_allclose(stock(1e-3), losses, rtol=1e-5)
    assert np.abs(stock(1e-8) - losses).max() > 1e-4


def test_adam_is_the_canonical_update_not_paddles_float32_beta_one():
    """Paddle's Adam computes 1 - beta2 from float32(0.999), 1.3e-5 off: after a
    few steps its second moment is that far from the float64 formula, while the
    plugin's (the canonical update in Paddle ops) is the float32 gradient's rounding away."""
    spec = Sequential([Dense(3, "softmax", input_shape=(5,))]).compile("categorical_crossentropy", Adam(0.01))
    data = toy_data()
    trainer, _ = trained(spec, data, ROWS[:1])
    w = initial_weights(spec, 0)[0]
    x, labels = data.x_train[ROWS[0]].astype(np.float64), data.y_train[ROWS[0]]
    z = x @ w["kernel"] + w["bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    v_exact = (1 - 0.999) * (x.T @ p / len(labels)) ** 2
    ours = trainer.state().slots[0]["kernel"]["v"]
    assert np.abs(ours / v_exact - 1).max() < 5e-6  # the float32 gradient, squared
    model = paddle.nn.Linear(5, 3)
    model.weight.set_value(w["kernel"])
    model.bias.set_value(w["bias"])
    adam = paddle.optimizer.Adam(0.01, epsilon=1e-7, parameters=model.parameters())
    stock_losses(model, adam, paddle.nn.functional.cross_entropy, data, ROWS[:1])
    stock_v = adam.state_dict()[f"{model.weight.name}_moment2_0"].numpy()
    assert np.abs(stock_v / v_exact - 1).max() > 1e-5


def test_gru_converts_the_gate_order_paddles_stock_gru_has():
    """Paddle's nn.GRU keeps gates r, z, c; the canonical kernel is z, r, h. The
    plugin's logits equal a stock nn.GRU's given the swapped kernel, not the unswapped one."""
    spec = Sequential([GRU(4, input_shape=(6, 3)), Dense(2, "softmax")]).compile("categorical_crossentropy", "adam")
    data = toy_data(input_shape=(6, 3), n_classes=2)
    trainer = paddle_backend().build(spec, initial_weights(spec, 1), TrainerOptions())
    trainer.place_data(data)
    ours = trainer.predict(np.arange(8))
    w = initial_weights(spec, 1)

    def stock(swap: bool):
        def order(a):
            return np.concatenate([a[..., 4:8], a[..., :4], a[..., 8:]], axis=-1) if swap else a

        gru = paddle.nn.GRU(3, 4)
        gru.weight_ih_l0.set_value(order(w[0]["kernel"]).T)
        gru.weight_hh_l0.set_value(order(w[0]["recurrent_kernel"]).T)
        gru.bias_ih_l0.set_value(order(w[0]["bias"])[0])
        gru.bias_hh_l0.set_value(order(w[0]["bias"])[1])
        h = gru(paddle.to_tensor(data.x_test[:8]))[0][:, -1]
        return (h.numpy() @ w[1]["kernel"] + w[1]["bias"])

    np.testing.assert_allclose(stock(True), ours, rtol=1e-5, atol=1e-6)
    assert np.abs(stock(False) - ours).max() > 1e-3


def test_batchnorm_momentum_means_what_paddles_stock_batchnorm_means():
    """Paddle's momentum is Keras's (the weight of the old statistics) and its
    moving variance follows the biased batch variance: the plugin's moving
    statistics after a step equal stock nn.BatchNorm1D's with the same momentum
    (the first step normalizes with the initial weights, before the update)."""
    spec = Sequential([Dense(4, input_shape=(5,)), BatchNormalization(0.8, 1e-5), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    data = toy_data()
    trainer, _ = trained(spec, data, ROWS[:1])
    stock = paddle.nn.BatchNorm1D(4, momentum=0.8, epsilon=1e-5)
    stock.train()
    w = initial_weights(spec, 0)[0]
    stock(paddle.to_tensor(data.x_train[ROWS[0]] @ w["kernel"] + w["bias"]))
    moved = trainer.weights()[1]
    np.testing.assert_allclose(moved["moving_mean"], stock._mean.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(moved["moving_variance"], stock._variance.numpy(), rtol=1e-5)
    assert not np.allclose(moved["moving_mean"], 0.0)


def test_layer_norm_epsilon_above_paddles_limit_is_computed_not_refused():
    """Paddle's fused layer_norm refuses epsilon > 1e-3; the spec allows it, and the plugin computes it."""
    with pytest.raises(ValueError, match="epsilon"):
        paddle.nn.functional.layer_norm(paddle.ones([2, 4]), [4], epsilon=0.1)
    spec = Sequential([Dense(4, input_shape=(5,)), LayerNormalization(epsilon=0.1), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", "adam")
    trainer = paddle_backend().build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(toy_data())
    w = initial_weights(spec, 0)
    h = trainer.x_test.numpy()[:5].astype(np.float64) @ w[0]["kernel"] + w[0]["bias"]
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 0.1)
    expected = h @ w[2]["kernel"] + w[2]["bias"]
    np.testing.assert_allclose(trainer.predict(np.arange(5)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_are_unavailable_with_paddles_reason_and_never_run_as_fp32(precision):
    reason = paddle_backend().precision_unavailable(precision, "cpu")
    assert reason and "paddle" in reason and ("bfloat16" if precision == "bf16" else "float16") in reason
    spec = Sequential([Dense(3, "softmax", input_shape=(5,))]).compile("categorical_crossentropy", "adam")
    with pytest.raises(InputError, match=precision):
        paddle_backend().build(spec, initial_weights(spec, 0), TrainerOptions(precision=precision))


def test_dropout_masks_leave_paddles_global_generator_alone():
    from dlbench.network import Dropout

    spec = Sequential([Dense(8, "relu", input_shape=(5,)), Dropout(0.5), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", "adam")
    paddle.seed(123)
    before = paddle.rand([4]).numpy()
    paddle.seed(123)
    trained(spec, toy_data())
    np.testing.assert_array_equal(paddle.rand([4]).numpy(), before)


def test_peak_matmul_is_paddles_and_has_no_half_precision_on_a_cpu():
    backend = paddle_backend()
    product = backend.matmul(64)
    assert isinstance(product(), paddle.Tensor)
    assert backend.matmul(64, "bfloat16") is None


def test_paddle_is_refused_in_a_process_that_already_holds_tensorflow(monkeypatch):
    """Paddle 3.3.1 crashes a process that loaded TensorFlow first (SIGSEGV):
    building there is one clear error, never a dead process."""
    import dlbench_paddle

    monkeypatch.delitem(sys.modules, "paddle")
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    spec = Sequential([Dense(3, "softmax", input_shape=(5,))]).compile("categorical_crossentropy", SGD(0.1))
    with pytest.raises(RuntimeError, match="already holds TensorFlow"):
        paddle_backend().build(spec, initial_weights(spec, 0), TrainerOptions())
    with pytest.raises(RuntimeError, match="already holds TensorFlow"):
        dlbench_paddle.load_paddle()


@pytest.mark.parametrize("loss", [{"name": "categorical_crossentropy", "label_smoothing": 0.2},
                                  {"name": "huber", "delta": 0.5}, "mae"], ids=["label-smoothing", "huber", "mae"])
def test_the_newer_losses_train_as_the_reference(loss):
    """i38loss's options (label smoothing written out in Paddle ops, huber's delta, mae) and a
    regression's R^2 from evaluate: the losses, weights and test figures of the NumPy reference."""
    from dlbench.data.base import Dataset
    from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy, trained as trained_like

    regression = loss != {"name": "categorical_crossentropy", "label_smoothing": 0.2}
    spec = Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "linear" if regression else "softmax")]).compile(
        loss, Adam(0.01))
    data = toy_data(input_shape=(5,), n_classes=3, n_train=40)
    if not regression:
        assert_trains_like_numpy("paddle", spec, data)
        return
    y = np.random.default_rng(1).standard_normal((56, 3)).astype(np.float32)
    data = Dataset(data.x_train, y[:40], data.x_test, y[40:], 0)
    (reference, reference_losses), (candidate, losses) = (trained_like(backend, spec, data)
                                                          for backend in ("numpy", "paddle"))
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(candidate.evaluate(), reference.evaluate(), rtol=1e-3, atol=1e-5)
