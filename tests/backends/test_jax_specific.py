"""What only the JAX backend has: layers it names when it cannot build them,
XLA's thread pool, one compilation per batch size, its options (scan,
chunk_steps, custom_vjp) still training like NumPy, its optimizer rules
against float64 and optax, the carry's moving statistics, dropout masks that
depend on (seed, step) only, and the conv / max-pool gradients written for
XLA:CPU against JAX's own. The contract every backend keeps is in ``test_contract.py``."""

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.errors import InputError
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.network import (SGD, Adam, BatchNormalization, Conv1D, Conv2D, Dense, Dropout, Flatten, MaxPool1D,
                          MaxPool2D, ModelSpec, Sequential)
from dlbench.network.init import initial_weights
from dlbench.network.layers import conv_output_length
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy
from dlbench.plugin.testing.networks import BUILD_CASES, CONV_CASES, DROPOUT_CASES

SPEC = BUILD_CASES["tanh-adam"]


@pytest.fixture(scope="module")
def backend():
    return require_backend("jax")


def build(backend, spec=SPEC, **options):
    return backend.build(spec, initial_weights(spec, 0), TrainerOptions(**options))


def run_in_fresh_python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
    return result.stdout.strip()


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


def test_one_compilation_per_batch_size_whatever_the_window_lengths(backend):
    trainer = build(backend, extra={"chunk_steps": 16})
    trainer.place_data(toy_data(n_train=43))
    rng = np.random.default_rng(0)
    for steps, batch in [(1, 8), (5, 8), (16, 8), (7, 8), (40, 8), (1, 3), (2, 3)]:
        losses = trainer.train(rng.integers(0, 43, (steps, batch)))
        assert losses.shape == (steps,) and np.all(np.isfinite(losses))
    assert trainer._window._cache_size() == 2


@pytest.mark.parametrize("options", [
    TrainerOptions(extra={"scan": False}),
    TrainerOptions(extra={"chunk_steps": 2}),  # windows split into several calls
    TrainerOptions(extra={"scan": False, "chunk_steps": 3}),
], ids=["no-scan", "chunked", "no-scan-chunked"])
@pytest.mark.parametrize("optimizer", [SGD(0.1, 0.9), Adam(0.01)], ids=["momentum", "adam"])
def test_options_still_train_like_numpy(backend, options, optimizer):
    spec = Sequential([Dense(8, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", optimizer)
    assert_trains_like_numpy("jax", spec, toy_data(n_train=43), options, window_steps=4)


@pytest.mark.parametrize("options", [TrainerOptions(extra={"custom_vjp": False}),
                                     TrainerOptions(extra={"scan": False}),
                                     TrainerOptions(extra={"chunk_steps": 3})],
                         ids=["jax-rules", "no-scan", "chunked"])
def test_options_still_train_a_cnn_like_numpy(backend, options):
    spec = Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 1)), MaxPool2D(2),
                       Conv2D(4, 2, strides=2, padding="same", activation="relu"), Flatten(), Dense(3, "softmax")]
                      ).compile("categorical_crossentropy", Adam(0.01))
    assert_trains_like_numpy("jax", spec, toy_data(spec.input_shape, n_train=43), options, window_steps=4)


# ------------------------------------------------------------------ optimizers
def spec_update_float64(optimizer, w, grads, first_step=1, m=0.0, v=0.0):
    """The update rules of dlbench.network in float64, one step per gradient."""
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
        params, state = rule.update(jax.device_put(g), params, state)
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


# ----------------------------------------------------------- the carry, dropout
def test_moving_statistics_are_updated_by_training_and_never_by_the_optimizer(backend):
    layers = [Conv2D(2, 2, input_shape=(4, 4, 1)), BatchNormalization(0.9, 1e-5), Flatten(), Dense(3, "softmax")]
    params, stats, (m, v, t), step, scaler = build(
        backend, Sequential(layers).compile("categorical_crossentropy", Adam())).carry
    assert scaler == ()  # fp32: no loss-scale state
    assert set(params[1]) == {"gamma", "beta"} and set(stats[1]) == {"moving_mean", "moving_variance"}
    assert set(m[1]) == set(v[1]) == {"gamma", "beta"}  # no optimizer state for the moving statistics
    spec = Sequential(layers).compile("categorical_crossentropy", SGD(0.1, 0.9))
    data = toy_data(spec.input_shape, n_train=43)
    trainer = build(backend, spec)
    velocity, taken = trainer.carry[2]  # the optimizer state: its slots, then the steps taken
    assert set(velocity[1]) == {"gamma", "beta"} and int(taken) == 0
    trainer.place_data(data)
    trainer.train(np.arange(16).reshape(2, 8))
    reference = get_plugins().backends["numpy"].build(spec, initial_weights(spec, 0), TrainerOptions())
    reference.place_data(data)
    reference.train(np.arange(16).reshape(2, 8))
    got, ref = trainer.weights()[1], reference.weights()[1]
    assert not np.allclose(got["moving_mean"], 0) and not np.allclose(got["moving_variance"], 1)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-7)
    assert int(trainer.carry[3]) == 2  # the global step


def dropout_losses(backend, seed, steps=12, **extra):
    spec = DROPOUT_CASES["dense"]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions(seed=seed, extra=extra))
    data = toy_data(n_train=40, n_test=40)
    trainer.place_data(Dataset(data.x_train, data.y_train, data.x_train, data.y_train, data.n_classes))
    plan = BatchPlan(40, 40, epochs=100, seed=0, max_steps=steps)
    return np.concatenate([trainer.train(w.indices) for w in plan.windows(5)]), trainer


def test_dropout_is_training_only_and_its_masks_depend_on_the_seed_and_step_only(backend):
    losses, trainer = dropout_losses(backend, seed=7)
    evaluation = trainer.evaluate()
    # the whole training set as one batch: the last step's training loss
    # (with masks, before the update) differs from the inference loss
    # (without) by far more than one SGD step changes it
    last_train_loss = trainer.train(np.arange(40)[None])[0]
    assert abs(last_train_loss - evaluation[0]) > 0.01
    # the masks depend on (seed, global step) only, not on how steps are grouped into calls
    np.testing.assert_allclose(dropout_losses(backend, seed=7, chunk_steps=2)[0], losses, rtol=1e-6)
    np.testing.assert_allclose(dropout_losses(backend, seed=7, scan=False)[0], losses, rtol=1e-6)


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
    from dlbench_backends.jax.precision import Policy

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
        convs = [make_conv((*shape, 2), kernel_size, strides, pads, Policy("fp32"), custom_vjp=custom)
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
    for layers, input_shape in [(list(CONV_CASES["two-convs"].layers), (5, 5, 1)),
                                ([Conv1D(4, 5, strides=2, padding=1, activation="relu", input_shape=(40, 1)),
                                  Conv1D(4, 3, strides=2), Flatten(), Dense(3, "softmax")], (40, 1))]:
        spec = Sequential(layers).compile("categorical_crossentropy", Adam())
        trainer = build(backend, spec, extra={"chunk_steps": 4})
        trainer.place_data(toy_data(input_shape, n_train=16))
        text = trainer._window.lower(trainer.carry, trainer.x_train, trainer.t_train,
                                     np.zeros((4, 8), np.int32), 1).compile().as_text()
        labels = [line.split("dim_labels=")[1].split(",")[0] for line in text.splitlines() if " convolution(" in line]
        assert len(labels) >= 5  # forward, dE/dx and dE/dK convolutions
        assert set(labels) <= {"b01f_01io->b01f", "b0f_0io->b0f"}, labels


def test_attention_in_a_precision_xla_cannot_run_is_unavailable_not_failed(backend):
    """XLA:CPU has no float16 batched dot accumulating in float32: a float16
    Transformer on the CPU is an "unavailable" row saying so (bf16 runs)."""
    from dlbench.scenario import resolve_scenario
    from dlbench_backends.jax.precision import attention_unavailable

    gpt, mlp = resolve_scenario("chars-gpt").model, resolve_scenario("digits-mlp").model
    assert backend.precision_unavailable("bf16", "cpu", gpt) is None
    assert backend.precision_unavailable("fp16", "cpu", mlp) is None  # no attention, nothing to try
    assert backend.precision_unavailable("fp16", "cpu", gpt) == attention_unavailable("cpu", "float16")
    assert attention_unavailable("cpu", "bfloat16") is None
