"""JAX-specific behaviour: layouts, options, threads, devices, lazy import,
one compilation per batch size, and the options still training like NumPy."""

import os
import subprocess
import sys

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data, train_on
from dlbench.backend import TrainerOptions
from dlbench.batches import BatchPlan
from dlbench.errors import InputError
from dlbench.initializers import initial_weights
from dlbench.spec import SGD, Adam, Dense, Flatten, Sequential

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


def test_layers_it_cannot_build_are_named(backend):
    spec = Sequential([Flatten(input_shape=(2, 3)), Dense(2, "softmax")]).compile("categorical_crossentropy", "adam")
    with pytest.raises(InputError, match="flatten") as info:
        build(backend, spec)
    assert info.value.field == "layers[0]"


@pytest.mark.parametrize("extra, field", [({"jit": True}, "backend_options.jit"),
                                          ({"scan": "yes"}, "backend_options.scan"),
                                          ({"chunk_steps": 0}, "backend_options.chunk_steps")])
def test_bad_extra_options_are_rejected_naming_the_key(backend, extra, field):
    with pytest.raises(InputError) as info:
        build(backend, extra=extra)
    assert info.value.field == field
    if "jit" in extra:
        assert "chunk_steps" in str(info.value) and "scan" in str(info.value)


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
        "from dlbench.plugins import get_plugins\n"
        f"print(get_plugins().backends['jax'].configure_threads({threads}))\n"
        + (POOL_THREADS if sys.platform == "linux" else "print(0)\n"),
        PJRT_NPROC="", NPROC="")
    in_effect, pool = map(int, out.split())
    assert in_effect == threads
    if pool > 0:  # XLA's pool threads, counted where the platform names them
        assert pool == threads


def test_gpu_is_none_without_a_gpu_and_building_on_it_fails_clearly(backend):
    if backend.gpu_name() is not None:
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="no gpu device"):
        build(backend, device="gpu")


def test_module_imports_without_importing_jax():
    out = run_in_fresh_python(
        "import sys\n"
        "import dlbench_backends.jax_backend as m\n"
        "from dlbench.plugins import get_plugins\n"
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
    from dlbench_backends.jax_backend import OPTIMIZERS

    rule = OPTIMIZERS[optimizer.name](optimizer)
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
