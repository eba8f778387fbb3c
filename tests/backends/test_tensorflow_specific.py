"""TensorFlow-specific behaviour: layouts, options, threads, devices, lazy import,
one trace per run, and the XLA / tf32 / deterministic variants still training
like the NumPy reference."""

import subprocess
import sys

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.data.batches import BatchPlan
from dlbench.errors import InputError
from dlbench.spec.init import initial_weights
from dlbench.plugin.manager import get_plugins
from dlbench.spec import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, Sequential)

SPECS = {
    "relu-softmax-momentum": (Sequential([Dense(8, "relu", input_shape=(5,)), Dense(6, "tanh"),
                                          Dense(3, "softmax")]).compile("categorical_crossentropy",
                                                                        SGD(0.05, 0.9)), 3),
    "sigmoid-bce-adam": (Sequential([Dense(8, "sigmoid", input_shape=(5,)), Dense(1, "sigmoid")])
                         .compile("binary_crossentropy", Adam(0.01)), 2),
    "activation-layers-mse": (Sequential([Dense(7, input_shape=(5,)), Activation("softmax"), Dense(3),
                                          Activation("sigmoid")]).compile("mse", "adam"), 3),
}


@pytest.fixture(scope="module")
def backend():
    return require_backend("tensorflow")


def train(spec, data, options: TrainerOptions, batch_size=8, steps=25, window_steps=7):
    trainer = get_plugins().backends["tensorflow"].build(spec, initial_weights(spec, 0), options)
    trainer.place_data(data)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1000, seed=0, max_steps=steps)
    losses = np.concatenate([trainer.train(w.indices) for w in plan.windows(window_steps)])
    return trainer, losses


def assert_trains_like_numpy(spec, n_classes, options: TrainerOptions, n_train=43, batch_size=8, steps=25,
                             window_steps=7, input_shape=(5,)):
    data = toy_data(input_shape=input_shape, n_classes=n_classes, n_train=n_train)
    reference = get_plugins().backends["numpy"].build(spec, initial_weights(spec, 0), TrainerOptions())
    reference.place_data(data)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1000, seed=0, max_steps=steps)
    ref_losses = np.concatenate([reference.train(w.indices) for w in plan.windows(1000)])
    trainer, losses = train(spec, data, options, batch_size, steps, window_steps)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-5)
    for layer, ref_layer in zip(trainer.weights(), reference.weights()):
        for name in ref_layer:
            np.testing.assert_allclose(layer[name], ref_layer[name], rtol=1e-3, atol=1e-4)
    loss, acc = trainer.evaluate()
    ref_loss, ref_acc = reference.evaluate()
    assert loss == pytest.approx(ref_loss, rel=1e-3)
    assert acc == pytest.approx(ref_acc, abs=1e-9)


@pytest.mark.parametrize("case", list(SPECS))
def test_weights_right_after_build_are_the_initial_weights_exactly(backend, case):
    spec, _ = SPECS[case]
    weights = initial_weights(spec, 3)
    got = backend.build(spec, weights, TrainerOptions()).weights()
    assert len(got) == len(weights)
    for layer, expected in zip(got, weights):
        assert layer.keys() == expected.keys()
        for name in expected:
            assert layer[name].dtype == np.float32
            assert layer[name].shape == expected[name].shape
            np.testing.assert_array_equal(layer[name], expected[name])


def test_weights_are_copies_not_views_of_the_variables(backend):
    spec, n_classes = SPECS["relu-softmax-momentum"]
    trainer, _ = train(spec, toy_data(n_classes=n_classes), TrainerOptions(), steps=1)
    before = trainer.weights()
    trainer.train(np.arange(8, dtype=np.int64).reshape(1, 8))
    assert not np.array_equal(before[0]["kernel"], trainer.weights()[0]["kernel"])


def test_unknown_extra_option_is_rejected_naming_the_allowed_ones(backend):
    spec, _ = SPECS["sigmoid-bce-adam"]
    with pytest.raises(InputError, match=r"'xla'.*jit_compile"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(extra={"xla": True}))


def test_jit_compile_must_be_a_boolean(backend):
    spec, _ = SPECS["sigmoid-bce-adam"]
    with pytest.raises(InputError, match="jit_compile"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(extra={"jit_compile": "yes"}))


@pytest.mark.parametrize("case", list(SPECS))
def test_jit_compiled_window_trains_like_numpy(backend, case):
    spec, n_classes = SPECS[case]
    assert_trains_like_numpy(spec, n_classes, TrainerOptions(extra={"jit_compile": True}))


def test_jit_compiled_windows_longer_than_a_chunk_train_like_numpy(backend):
    # 301 samples in batches of 2: windows of 100 and 50 steps, cut into padded XLA chunks
    spec, n_classes = SPECS["sigmoid-bce-adam"]
    assert_trains_like_numpy(spec, n_classes, TrainerOptions(extra={"jit_compile": True}), n_train=301,
                             batch_size=2, steps=160, window_steps=100)


@pytest.fixture
def restore_tensorflow_settings():
    """Determinism is process-wide in TensorFlow; undo it so later tests run as usual."""
    yield
    from tensorflow.python.framework import config  # the only way back; public API has none

    config.disable_op_determinism()


@pytest.mark.parametrize("options", [TrainerOptions(precision="tf32"), TrainerOptions(deterministic=True)],
                         ids=["tf32", "deterministic"])
def test_precision_and_determinism_settings_still_train_like_numpy(backend, options, restore_tensorflow_settings):
    spec, n_classes = SPECS["relu-softmax-momentum"]
    assert_trains_like_numpy(spec, n_classes, options)


def test_window_function_is_traced_once_for_all_window_lengths_and_batch_sizes(backend):
    spec, n_classes = SPECS["sigmoid-bce-adam"]
    # 43 samples in batches of 8: windows of 1..5 full batches, then a partial batch of 3
    trainer, losses = train(spec, toy_data(n_classes=n_classes, n_train=43), TrainerOptions(),
                            steps=30, window_steps=4)
    assert losses.shape == (30,) and np.all(np.isfinite(losses))
    assert trainer._window.experimental_get_tracing_count() == 1


LAYER_SPECS = {
    # (spec, input shape): every layer type, padding mode and pooling kind at least once
    "conv2d-same-strided-maxpool": (Sequential([
        Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(7, 7, 2)),
        MaxPool2D(2, strides=1), Flatten(), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01)),
        (7, 7, 2)),
    "conv2d-int-padding-avgpool": (Sequential([
        Conv2D(3, (3, 2), padding=1, activation="tanh", input_shape=(6, 5, 1)), AveragePool2D(2), Flatten(),
        Dense(3, "softmax")]).compile("categorical_crossentropy", SGD(0.1, 0.9)), (6, 5, 1)),
    "conv1d-batchnorm-pools": (Sequential([
        Conv1D(4, 3, strides=2, activation="relu", input_shape=(11, 2)), BatchNormalization(momentum=0.9),
        MaxPool1D(2), AveragePool1D(2, strides=1), Flatten(), Dense(1, "sigmoid")]).compile(
        "binary_crossentropy", "adam"), (11, 2)),
    "dense-batchnorm-dropout-0": (Sequential([
        Dense(8, input_shape=(5,)), BatchNormalization(), Activation("sigmoid"), Dropout(0.0),
        Dense(3, "sigmoid")]).compile("mse", SGD(0.5)), (5,)),
}


@pytest.mark.parametrize("case", list(LAYER_SPECS))
def test_conv_pool_flatten_batchnorm_layers_train_like_numpy(backend, case):
    spec, input_shape = LAYER_SPECS[case]
    # weights include BatchNormalization's moving statistics; evaluation uses them
    assert_trains_like_numpy(spec, max(spec.output_shape[0], 2), TrainerOptions(), input_shape=input_shape)


@pytest.mark.parametrize("case", ["conv2d-same-strided-maxpool", "conv1d-batchnorm-pools"])
def test_jit_compiled_conv_and_batchnorm_train_like_numpy(backend, case):
    spec, input_shape = LAYER_SPECS[case]
    assert_trains_like_numpy(spec, max(spec.output_shape[0], 2), TrainerOptions(extra={"jit_compile": True}),
                             input_shape=input_shape)


def test_deterministic_xla_with_max_pooling_is_refused_before_training(backend):
    spec, _ = LAYER_SPECS["conv2d-same-strided-maxpool"]
    with pytest.raises(InputError, match="deterministic max-pooling gradient"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(deterministic=True,
                                                                     extra={"jit_compile": True}))


def test_dropout_masks_follow_the_seed_and_vanish_at_inference(backend):
    spec = Sequential([Dense(16, "relu", input_shape=(5,)), Dropout(0.5), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    data = toy_data(n_classes=3)
    trainer, losses = train(spec, data, TrainerOptions(seed=0), steps=10)
    _, same_seed = train(spec, data, TrainerOptions(seed=0), steps=10)
    _, other_seed = train(spec, data, TrainerOptions(seed=1), steps=10)
    np.testing.assert_array_equal(losses, same_seed)
    assert not np.array_equal(losses, other_seed)
    # inference: the NumPy reference holding the same weights, where dropout is the identity
    reference = get_plugins().backends["numpy"].build(spec, trainer.weights(), TrainerOptions())
    reference.place_data(data)
    assert trainer.evaluate() == pytest.approx(reference.evaluate(), rel=1e-5)


def test_gpu_name_is_none_and_gpu_build_refused_without_a_gpu(backend):
    if backend.gpu_name() is not None:
        pytest.skip("this machine has a GPU")
    spec, _ = SPECS["sigmoid-bce-adam"]
    with pytest.raises(RuntimeError, match="no GPU"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(device="gpu"))


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_backend_module_does_not_import_tensorflow_or_keras():
    out = run_python(
        "import sys\n"
        "from dlbench.plugin.manager import get_plugins\n"
        "import dlbench_backends.tensorflow\n"
        "backend = get_plugins().backends['tensorflow']\n"
        "backend.availability(); backend.version()\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    assert out == "[]"


@pytest.mark.slow
def test_configure_threads_applies_and_returns_the_count(backend):
    out = run_python(
        "from dlbench.plugin.manager import get_plugins\n"
        "import tensorflow as tf\n"
        "n = get_plugins().backends['tensorflow'].configure_threads(1)\n"
        "print(n, tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())")
    assert out.split() == ["1", "1", "1"]


def test_keras_runs_on_tensorflow(backend):
    from dlbench_backends.tensorflow import framework

    _, keras = framework()
    assert keras.backend.backend() == "tensorflow"
