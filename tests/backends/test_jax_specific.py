"""JAX-specific behaviour: layouts, options, threads, devices, lazy import,
one compilation per batch size, the options still training like NumPy, and
every layer (convolutions, pooling, BatchNormalization, Dropout) against NumPy."""

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from backend_helpers import assert_matches_numpy, require_backend, toy_data, train_on
from dlbench.plugin.backend import TrainerOptions
from dlbench.data.batches import BatchPlan
from dlbench.errors import InputError
from dlbench.spec.init import initial_weights
from dlbench.spec.layers import conv_output_length
from dlbench.spec import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec, Sequential)

SPEC = Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")]).compile(
    "categorical_crossentropy", Adam(0.01))


@pytest.fixture(scope="module")
def backend():
    return require_backend("jax")


def build(backend, spec=SPEC, **options):
    return backend.build(spec, initial_weights(spec, 0), TrainerOptions(**options))


def run_in_fresh_python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
    return result.stdout.strip()


def test_weights_right_after_build_equal_the_initial_weights_exactly(backend):
    expected = initial_weights(SPEC, 0)
    weights = build(backend).weights()
    assert len(weights) == len(expected)
    for layer, ref in zip(weights, expected):
        assert layer.keys() == ref.keys()
        for name in layer:
            assert layer[name].dtype == np.float32
            np.testing.assert_array_equal(layer[name], ref[name])


def test_training_never_writes_into_the_callers_weights(backend):
    weights = initial_weights(SPEC, 0)
    trainer = backend.build(SPEC, weights, TrainerOptions())
    trainer.place_data(toy_data())
    trainer.train(np.arange(16).reshape(2, 8))
    for layer, ref in zip(weights, initial_weights(SPEC, 0)):
        for name in layer:
            np.testing.assert_array_equal(layer[name], ref[name])


@dataclass(frozen=True)
class Mystery:
    """A layer type the backend has never heard of."""

    input_shape: tuple | None = None
    type: ClassVar[str] = "mystery"

    def output_shape(self, input_shape):
        return input_shape

    def param_shapes(self, input_shape):
        return {}


def test_layers_it_cannot_build_are_named(backend):
    spec = ModelSpec((3,), (Dense(4), Mystery(), Dense(2, "softmax")), "categorical_crossentropy", Adam())
    with pytest.raises(InputError, match="mystery") as info:
        build(backend, spec)
    assert info.value.field == "layers[1]"


@pytest.mark.parametrize("extra, field", [({"jit": True}, "--backend-option"),
                                          ({"scan": "yes"}, "--backend-option"),
                                          ({"chunk_steps": 0}, "--backend-option"),
                                          ({"custom_vjp": "yes"}, "--backend-option")])
def test_bad_extra_options_are_rejected_naming_the_key(backend, extra, field):
    with pytest.raises(InputError) as info:
        build(backend, extra=extra)
    assert info.value.field == field
    if "jit" in extra:
        assert all(key in str(info.value) for key in ("chunk_steps", "scan", "custom_vjp"))


POOL_THREADS = """
import os, jax.numpy as jnp
(jnp.ones((256, 256)) @ jnp.ones((256, 256))).block_until_ready()
names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]
print(names.count('tf_XLAEigen'))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_configure_threads_sizes_xlas_cpu_pool_before_jax_starts(threads):
    require_backend("jax")
    out = run_in_fresh_python(
        "from dlbench.plugin.manager import get_plugins\n"
        f"print(get_plugins().backends['jax'].configure_threads({threads}))\n"
        + (POOL_THREADS if sys.platform == "linux" else "print(0)\n"),
        PJRT_NPROC="", NPROC="")
    in_effect, pool = map(int, out.split())
    assert in_effect == threads
    if sys.platform == "linux":  # XLA's pool threads, counted by name; a rename must fail here, not skip
        assert pool == threads, f"{pool} threads named tf_XLAEigen; did XLA rename its CPU pool threads?"


def test_gpu_is_none_without_a_gpu_and_building_on_it_fails_clearly(backend):
    if backend.gpu_name() is not None:
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="no gpu device"):
        build(backend, device="gpu")


def test_module_imports_without_importing_jax():
    out = run_in_fresh_python(
        "import sys\n"
        "import dlbench_backends.jax as m\n"
        "from dlbench.plugin.manager import get_plugins\n"
        "backend = get_plugins().backends['jax']\n"
        "backend.availability(); backend.version()\n"
        "print('jax' in sys.modules)\n")
    assert out == "False"


def test_one_compilation_per_batch_size_whatever_the_window_lengths(backend):
    trainer = build(backend, extra={"chunk_steps": 16})
    trainer.place_data(toy_data(n_train=43))
    rng = np.random.default_rng(0)
    for steps, batch in [(1, 8), (5, 8), (16, 8), (7, 8), (40, 8), (1, 3), (2, 3)]:
        losses = trainer.train(rng.integers(0, 43, (steps, batch)))
        assert losses.shape == (steps,) and np.all(np.isfinite(losses))
    assert trainer._window._cache_size() == 2


def train_with_options(backend, spec, data, batch_size, steps, window_steps, options):
    trainer = backend.build(spec, initial_weights(spec, 0), options)
    trainer.place_data(data)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1000, seed=0, max_steps=steps)
    losses = np.concatenate([trainer.train(w.indices) for w in plan.windows(window_steps)])
    return losses, trainer.weights(), trainer.evaluate()


@pytest.mark.parametrize("options", [
    TrainerOptions(extra={"scan": False}),
    TrainerOptions(extra={"chunk_steps": 2}),  # windows split into several calls
    TrainerOptions(extra={"scan": False, "chunk_steps": 3}),
    TrainerOptions(deterministic=True),
    TrainerOptions(precision="tf32"),  # TF32 exists on GPUs only: on CPU, fp32
], ids=["no-scan", "chunked", "no-scan-chunked", "deterministic", "tf32-on-cpu"])
@pytest.mark.parametrize("optimizer", [SGD(0.1, 0.9), Adam(0.01)], ids=["momentum", "adam"])
def test_options_still_train_like_numpy(backend, options, optimizer):
    spec = Sequential([Dense(8, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", optimizer)
    data = toy_data(n_train=43)
    ref_losses, ref_weights, ref_eval = train_on("numpy", spec, data, batch_size=8, steps=25)
    losses, weights, evaluation = train_with_options(backend, spec, data, 8, 25, 4, options)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-5)
    for layer, ref in zip(weights, ref_weights):
        for name in layer:
            np.testing.assert_allclose(layer[name], ref[name], rtol=1e-3, atol=1e-4)
    assert evaluation[1] == pytest.approx(ref_eval[1], abs=1e-9)


def spec_update_float64(optimizer, w, grads, first_step=1, m=0.0, v=0.0):
    """The update rules of dlbench.spec in float64, one step per gradient."""
    for t, g in enumerate(grads, first_step):
        if optimizer.name == "sgd":
            m = optimizer.momentum * m + g
            w = w - optimizer.learning_rate * m
            continue
        b1, b2 = optimizer.beta_1, optimizer.beta_2
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - optimizer.learning_rate * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + optimizer.epsilon)
    return w


def apply_rule(optimizer, params, grads, state=None):
    jax = pytest.importorskip("jax")
    from dlbench_backends.jax.optim import build_optimizer

    rule = build_optimizer(optimizer)
    params = jax.device_put(params)
    state = jax.device_put(rule.init(params) if state is None else state)
    for g in grads:
        params, state = rule.update(params, jax.device_put(g), state)
    return np.asarray(params[0]["kernel"], np.float64)


@pytest.mark.parametrize("optimizer", [SGD(0.05, 0.9), Adam(0.01), Adam(0.01, 0.8, 0.9999, 1e-6)],
                         ids=["momentum", "adam", "adam-b2-0.9999"])
def test_update_rules_match_the_spec_in_float64(optimizer):
    # from zero weights the updates are not lost in rounding: a 1e-5 error in
    # Adam's bias correction (float32(0.999) rounds 1 - b2) shows up here
    rng = np.random.default_rng(0)
    grads = [[{"kernel": rng.standard_normal((4, 3)).astype(np.float32)}] for _ in range(5)]
    ours = apply_rule(optimizer, [{"kernel": np.zeros((4, 3), np.float32)}], grads)
    expected = spec_update_float64(optimizer, 0.0, [g[0]["kernel"].astype(np.float64) for g in grads])
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-8)


def test_adam_bias_correction_late_in_training():
    optimizer = Adam()
    rng = np.random.default_rng(0)
    m, v = (0.01 * rng.standard_normal((4, 3))).astype(np.float32), (1e-4 * rng.random((4, 3))).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    zeros = np.zeros((4, 3), np.float32)
    state = ([{"kernel": m}], [{"kernel": v}], np.int32(2999))
    ours = apply_rule(optimizer, [{"kernel": zeros}], [[{"kernel": g}]], state)
    expected = spec_update_float64(optimizer, 0.0, [g.astype(np.float64)], 3000, m.astype(np.float64),
                                   v.astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


@pytest.mark.parametrize("optimizer", [SGD(0.05, 0.9), Adam(0.01, 0.8, 0.99, 1e-6)], ids=["momentum", "adam"])
def test_update_rules_equal_optax(optimizer):
    # optax computes 1 - b**t in float32 (about 1e-6 off for b2 = 0.99), hence rtol 1e-5
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    reference = (optax.sgd(optimizer.learning_rate, optimizer.momentum) if optimizer.name == "sgd" else
                 optax.adam(optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2, optimizer.epsilon))
    rng = np.random.default_rng(0)
    params = [{"kernel": rng.standard_normal((4, 3)).astype(np.float32)}]
    grads = [[{"kernel": rng.standard_normal((4, 3)).astype(np.float32)}] for _ in range(50)]
    theirs, state = jax.device_put(params), reference.init(jax.device_put(params))
    for g in grads:
        updates, state = reference.update(g, state)
        theirs = optax.apply_updates(theirs, updates)
    ours = apply_rule(optimizer, params, grads)
    np.testing.assert_allclose(ours, theirs[0]["kernel"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- convolutional layers
def softmax_head(*layers):
    return [*layers, Flatten(), Dense(3, "softmax")]


CONV_CASES = {
    "conv2d-valid-stride1": softmax_head(Conv2D(3, 3, input_shape=(6, 5, 2))),
    "conv2d-same-stride2-kernel3x2": softmax_head(Conv2D(2, (3, 2), strides=2, padding="same", activation="relu",
                                                         input_shape=(7, 6, 2))),
    "conv2d-same-even-kernel": softmax_head(Conv2D(2, 4, padding="same", input_shape=(5, 5, 1))),
    "conv2d-int-padding-strides1x2": softmax_head(Conv2D(2, 3, strides=(1, 2), padding=1, activation="tanh",
                                                         input_shape=(5, 6, 1))),
    "conv1d-valid": softmax_head(Conv1D(3, 3, input_shape=(9, 2))),
    "conv1d-same-stride2": softmax_head(Conv1D(2, 4, strides=2, padding="same", input_shape=(9, 2))),
    "conv1d-int-padding": softmax_head(Conv1D(2, 3, padding=2, activation="relu", input_shape=(6, 1))),
    "two-convs": softmax_head(Conv2D(2, 2, activation="relu", input_shape=(5, 5, 1)),
                              Conv2D(2, 2, strides=2, padding="same")),
    "maxpool2d": softmax_head(Conv2D(2, 2, input_shape=(6, 6, 1)), MaxPool2D(2)),
    "maxpool2d-overlapping": softmax_head(Conv2D(2, 2, input_shape=(7, 7, 1)), MaxPool2D(3, strides=2)),
    "averagepool2d": softmax_head(Conv2D(2, 2, input_shape=(7, 6, 1)), AveragePool2D((2, 3), strides=(2, 1))),
    "maxpool1d": softmax_head(Conv1D(2, 3, input_shape=(10, 1)), MaxPool1D(2)),
    "averagepool1d": softmax_head(Conv1D(2, 3, input_shape=(10, 1)), AveragePool1D(3, strides=2)),
}
# SGD with momentum for BatchNormalization: the bias of a layer followed by
# BatchNormalization has a gradient that is zero in exact arithmetic, pure
# rounding noise in float32, which Adam's m / sqrt(v) scales up to full
# learning-rate steps (different noise, different biases, different moving
# means: 2e-2 apart after 25 steps, with identical losses).
BATCHNORM_CASES = {
    "batchnorm-after-dense": [Dense(5, input_shape=(5,)), BatchNormalization(0.9, 1e-5), Activation("relu"),
                              Dense(3, "softmax")],
    "batchnorm-after-conv": softmax_head(Conv2D(2, 2, input_shape=(4, 4, 1)), BatchNormalization(0.9, 1e-5)),
    "batchnorm-first": [BatchNormalization(0.9, 1e-5, input_shape=(5,)), Dense(3, "softmax")],
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_and_pool_layers_train_like_numpy(backend, case):
    spec = Sequential(CONV_CASES[case]).compile("categorical_crossentropy", Adam(0.01))
    assert_matches_numpy("jax", spec, toy_data(spec.input_shape, n_train=43), batch_size=8, steps=25)


@pytest.mark.parametrize("case", list(BATCHNORM_CASES))
def test_batchnorm_trains_and_evaluates_like_numpy(backend, case):
    # assert_matches_numpy also compares the moving statistics (weights) and
    # evaluate(), which normalizes with them
    spec = Sequential(BATCHNORM_CASES[case]).compile("categorical_crossentropy", SGD(0.1, 0.9))
    assert_matches_numpy("jax", spec, toy_data(spec.input_shape, n_train=43), batch_size=8, steps=25)


def test_moving_statistics_are_updated_by_training_and_never_by_the_optimizer(backend):
    layers = BATCHNORM_CASES["batchnorm-after-conv"]
    params, stats, (m, v, t), step = build(backend, Sequential(layers).compile("categorical_crossentropy",
                                                                              Adam())).carry
    assert set(params[1]) == {"gamma", "beta"} and set(stats[1]) == {"moving_mean", "moving_variance"}
    assert set(m[1]) == set(v[1]) == {"gamma", "beta"}  # no optimizer state for the moving statistics
    spec = Sequential(layers).compile("categorical_crossentropy", SGD(0.1, 0.9))
    data = toy_data(spec.input_shape, n_train=43)
    trainer = build(backend, spec)
    assert set(trainer.carry[2][1]) == {"gamma", "beta"}  # the velocities
    trainer.place_data(data)
    trainer.train(np.arange(16).reshape(2, 8))
    ref = backend_numpy_after(spec, data, np.arange(16).reshape(2, 8))
    got = trainer.weights()[1]
    assert not np.allclose(got["moving_mean"], 0) and not np.allclose(got["moving_variance"], 1)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(got[name], ref[1][name], rtol=1e-5, atol=1e-7)
    assert int(trainer.carry[3]) == 2  # the global step


def backend_numpy_after(spec, data, indices):
    from dlbench.plugin.manager import get_plugins
    trainer = get_plugins().backends["numpy"].build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(data)
    trainer.train(indices)
    return trainer.weights()


def test_evaluate_normalizes_with_the_moving_statistics(backend):
    spec = Sequential([BatchNormalization(0.5, 1e-3, input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(1e-6))
    data = toy_data(n_train=16, n_test=16)
    data = type(data)(data.x_train * 3 + 2, data.y_train, data.x_train * 3 + 2, data.y_train, data.n_classes)
    trainer = build(backend, spec)
    trainer.place_data(data)
    (train_loss,) = trainer.train(np.arange(16)[None])  # batch statistics: x normalized exactly
    loss, _ = trainer.evaluate()  # moving statistics: halfway from (0, 1) to the batch's
    assert abs(loss - train_loss) > 1e-3
    w = trainer.weights()
    x = data.x_test.astype(np.float64)
    np.testing.assert_allclose(w[0]["moving_mean"], 0.5 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(w[0]["moving_variance"], 0.5 + 0.5 * x.var(axis=0), rtol=1e-5)
    z = (x - w[0]["moving_mean"]) / np.sqrt(w[0]["moving_variance"] + 1e-3) @ w[1]["kernel"] + w[1]["bias"]
    expected = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(16), data.y_test])
    assert loss == pytest.approx(expected, rel=1e-5)


def test_conv_batchnorm_weights_round_trip_exactly(backend):
    spec = Sequential(softmax_head(Conv2D(3, (3, 2), strides=2, padding="same", input_shape=(7, 6, 2)),
                                   BatchNormalization(0.9, 1e-5), MaxPool2D(2))
                      ).compile("categorical_crossentropy", Adam(0.01))
    initial = initial_weights(spec, 3)
    fresh = backend.build(spec, initial, TrainerOptions()).weights()
    for layer, ref in zip(fresh, initial):
        assert list(layer) == list(ref)  # same names, same order
        for name in layer:
            assert layer[name].dtype == np.float32 and layer[name].shape == ref[name].shape
            np.testing.assert_array_equal(layer[name], ref[name])
    trainer = backend.build(spec, initial, TrainerOptions())
    trainer.place_data(toy_data(spec.input_shape, n_train=24))
    trainer.train(np.arange(24).reshape(3, 8))
    trained = trainer.weights()
    assert not np.array_equal(trained[1]["moving_mean"], initial[1]["moving_mean"])
    again = backend.build(spec, trained, TrainerOptions()).weights()
    for layer, ref in zip(again, trained):
        assert list(layer) == list(ref)
        for name in layer:
            np.testing.assert_array_equal(layer[name], ref[name])


# ------------------------------------------------------------------- dropout
def dropout_spec(rate, optimizer=SGD(0.1)):
    return Sequential([Dense(16, "relu", input_shape=(5,)), Dropout(rate), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", optimizer)


def test_dropout_rate_zero_matches_numpy_and_the_network_without_it(backend):
    data = toy_data(n_train=43)
    assert_matches_numpy("jax", dropout_spec(0.0, Adam(0.01)), data, batch_size=8, steps=25)
    with_dropout = train_on("jax", dropout_spec(0.0, Adam(0.01)), data, 8, 25)
    without = Sequential([Dense(16, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", Adam(0.01))
    np.testing.assert_array_equal(with_dropout[0], train_on("jax", without, data, 8, 25)[0])


def dropout_losses(backend, seed, steps=12, **extra):
    spec = dropout_spec(0.5)
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions(seed=seed, extra=extra))
    data = toy_data(n_train=40, n_test=40)
    trainer.place_data(type(data)(data.x_train, data.y_train, data.x_train, data.y_train, data.n_classes))
    plan = BatchPlan(40, 40, epochs=100, seed=0, max_steps=steps)
    losses = np.concatenate([trainer.train(w.indices) for w in plan.windows(5)])
    return losses, trainer


def test_dropout_is_training_only_and_reproducible_from_the_seed(backend):
    losses, trainer = dropout_losses(backend, seed=7)
    assert np.all(np.isfinite(losses))
    evaluation = trainer.evaluate()
    assert trainer.evaluate() == evaluation  # inference: no randomness
    # the whole training set as one batch: the last step's training loss
    # (with masks, before the update) differs from the inference loss
    # (without) by far more than one SGD step changes it
    last_train_loss = trainer.train(np.arange(40)[None])[0]
    assert abs(last_train_loss - evaluation[0]) > 0.01
    again, _ = dropout_losses(backend, seed=7)
    np.testing.assert_array_equal(losses, again)
    other, _ = dropout_losses(backend, seed=8)
    assert not np.allclose(losses, other)
    # the masks depend on (seed, global step) only, not on how steps are grouped into calls
    chunked, _ = dropout_losses(backend, seed=7, chunk_steps=2)
    stepwise, _ = dropout_losses(backend, seed=7, scan=False)
    np.testing.assert_allclose(chunked, losses, rtol=1e-6)
    np.testing.assert_allclose(stepwise, losses, rtol=1e-6)


def test_dropout_keeps_about_one_minus_rate_and_scales_the_kept(backend):
    jax = pytest.importorskip("jax")
    from dlbench_backends.jax.network import dropout_layer

    apply = dropout_layer(Dropout(0.25), (50,), None)
    x = np.ones((400, 50), np.float32)
    y, _ = apply({}, {}, x, True, jax.random.key(0))
    y = np.asarray(y)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(np.asarray(apply({}, {}, x, False, None)[0]), x)


# ------------------------------------------- gradients written for XLA:CPU
def conv_modes():
    """(spatial shape, kernel, strides, padding): every padding mode, strides
    that leave inputs unused, padding wider than the kernel."""
    for k, s, padding in itertools.product((1, 2, 3, 4), (1, 2, 3), ("valid", "same", 1, 3)):
        yield (6,), (k,), (s,), padding
        yield (5, 6), (k, max(k - 1, 1)), (s, 1 if s == 3 else s + 1), padding
    yield (1,), (1,), (5,), 2  # every window in the padding


def test_custom_conv_gradients_equal_jaxs_own_in_every_mode():
    jax = pytest.importorskip("jax")
    from dlbench_backends.jax.kernels import make_conv

    rng = np.random.default_rng(0)
    checked = 0
    for shape, kernel_size, strides, padding in conv_modes():
        sizes = [conv_output_length(n, k, s, padding) for n, k, s in zip(shape, kernel_size, strides)]
        if any(out < 1 for out, _, _ in sizes):
            continue
        pads = [(before, after) for _, before, after in sizes]
        x = rng.standard_normal((3, *shape, 2)).astype(np.float32)
        kernel = rng.standard_normal((*kernel_size, 2, 4)).astype(np.float32)
        g = rng.standard_normal((3, *(out for out, _, _ in sizes), 4)).astype(np.float32)
        convs = [make_conv((*shape, 2), kernel_size, strides, pads, jax.lax.Precision.HIGHEST, custom_vjp=custom)
                 for custom in (True, False)]
        (y, grads), (y_ref, grads_ref) = jax.jit(lambda x, kernel, g: [
            (conv(x, kernel), jax.vjp(conv, x, kernel)[1](g)) for conv in convs])(x, kernel, g)
        np.testing.assert_array_equal(y, y_ref)
        for got, expected in zip(grads, grads_ref):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{shape} {kernel_size} {strides} {padding}")
        checked += 1
    assert checked > 60


@pytest.mark.parametrize("custom_vjp", [True, False], ids=["custom", "jax-rule"])
def test_max_pool_gradient_goes_to_the_first_maximum_like_numpy(custom_vjp):
    jax = pytest.importorskip("jax")
    from dlbench_backends.jax.kernels import make_max_pool
    from dlbench_backends.numpy.kernels import PoolLayer

    rng = np.random.default_rng(0)
    for spec, shape in [(MaxPool2D(2), (6, 6)), (MaxPool2D(3, strides=2), (7, 7)), (MaxPool2D((2, 3), (1, 2)), (5, 7)),
                        (MaxPool1D(2), (9,)), (MaxPool1D(3, strides=1), (7,))]:
        x = rng.integers(0, 3, (2, *shape, 3)).astype(np.float32)  # ties in most windows
        pool = make_max_pool((*shape, 3), spec.pool_size, spec.strides, custom_vjp)
        y, vjp = jax.vjp(pool, x)
        g = rng.standard_normal(y.shape).astype(np.float32)
        reference = PoolLayer(spec, "max")
        np.testing.assert_array_equal(y, reference.forward(x))
        # overlapping windows add their gradients in another order: rounding apart
        np.testing.assert_allclose(vjp(g)[0], reference.backward(g), rtol=1e-6, atol=1e-7)


def test_every_convolution_in_the_compiled_window_is_in_eigens_form(backend):
    # XLA:CPU runs convolutions on Eigen only in this form, and rewrites other
    # forms only outside loops: a gradient conv in another form would be a
    # naive loop inside the window. (Not for every shape: XLA's simplifier
    # swaps the operands of a dE/dx conv whose kernel outgrows its input,
    # e.g. a 3-wide kernel over an output of length 2.)
    for layers, input_shape in [(CONV_CASES["two-convs"], (5, 5, 1)),
                                (softmax_head(Conv1D(4, 5, strides=2, padding=1, activation="relu",
                                                     input_shape=(40, 1)), Conv1D(4, 3, strides=2)), (40, 1))]:
        spec = Sequential(layers).compile("categorical_crossentropy", Adam())
        trainer = build(backend, spec, extra={"chunk_steps": 4})
        trainer.place_data(toy_data(input_shape, n_train=16))
        text = trainer._window.lower(trainer.carry, trainer.x_train, trainer.t_train,
                                     np.zeros((4, 8), np.int32), 1).compile().as_text()
        labels = [line.split("dim_labels=")[1].split(",")[0] for line in text.splitlines() if " convolution(" in line]
        assert len(labels) >= 5  # forward, dE/dx and dE/dK convolutions
        assert set(labels) <= {"b01f_01io->b01f", "b0f_0io->b0f"}, labels


@pytest.mark.parametrize("options", [TrainerOptions(extra={"custom_vjp": False}),
                                     TrainerOptions(extra={"scan": False}),
                                     TrainerOptions(extra={"chunk_steps": 3})],
                         ids=["jax-rules", "no-scan", "chunked"])
def test_options_still_train_a_cnn_like_numpy(backend, options):
    spec = Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 1)), MaxPool2D(2),
                       Conv2D(4, 2, strides=2, padding="same", activation="relu"), Flatten(), Dense(3, "softmax")]
                      ).compile("categorical_crossentropy", Adam(0.01))
    data = toy_data(spec.input_shape, n_train=43)
    ref_losses, _, ref_eval = train_on("numpy", spec, data, batch_size=8, steps=25)
    losses, _, evaluation = train_with_options(backend, spec, data, 8, 25, 4, options)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-5)
    assert evaluation[1] == pytest.approx(ref_eval[1], abs=1e-9)
