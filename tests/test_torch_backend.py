"""What is specific to the torch backend: layouts, options, settings, lazy import."""

import subprocess
import sys

import numpy as np
import pytest

from backend_helpers import assert_matches_numpy, require_backend, toy_data
from dlbench.backend import TrainerOptions
from dlbench.errors import InputError
from dlbench.initializers import initial_weights
from dlbench.spec import SGD, Activation, Adam, Dense, Flatten, Sequential

SPEC = Sequential([Dense(8, activation="relu", input_shape=(5,)), Activation("tanh"), Dense(6),
                   Dense(3, activation="softmax")]).compile("categorical_crossentropy", SGD(0.1, 0.9))


@pytest.fixture(scope="module")
def backend():
    return require_backend("torch")


def test_weights_right_after_build_are_the_initial_weights_exactly(backend):
    weights = initial_weights(SPEC, seed=3)
    got = backend.build(SPEC, weights, TrainerOptions()).weights()
    assert len(got) == len(weights)
    for layer, ref in zip(got, weights):
        assert layer.keys() == ref.keys()
        for name in layer:
            assert layer[name].dtype == np.float32 and layer[name].flags.c_contiguous
            np.testing.assert_array_equal(layer[name], ref[name])


def test_linear_weight_is_the_transposed_kernel(backend):
    weights = initial_weights(SPEC, seed=3)
    trainer = backend.build(SPEC, weights, TrainerOptions())
    linear = trainer.linears[0]
    assert tuple(linear.weight.shape) == (8, 5)
    np.testing.assert_array_equal(linear.weight.detach().numpy(), weights[0]["kernel"].T)


def test_weights_returned_are_copies_that_training_does_not_change(backend):
    trainer = backend.build(SPEC, initial_weights(SPEC, seed=0), TrainerOptions())
    trainer.place_data(toy_data(n_classes=3))
    before = trainer.weights()
    snapshot = [{k: v.copy() for k, v in layer.items()} for layer in before]
    trainer.train(np.arange(16).reshape(2, 8))
    for layer, ref in zip(before, snapshot):
        for name in layer:
            np.testing.assert_array_equal(layer[name], ref[name])


def test_unknown_extra_option_is_rejected_naming_the_allowed_ones(backend):
    with pytest.raises(InputError, match=r"'jit'.*expected one of compile"):
        backend.build(SPEC, initial_weights(SPEC, 0), TrainerOptions(extra={"jit": True}))


def test_compile_option_must_be_a_bool(backend):
    with pytest.raises(InputError, match="true or false"):
        backend.build(SPEC, initial_weights(SPEC, 0), TrainerOptions(extra={"compile": "yes"}))


def test_configure_threads_returns_the_count_in_effect(backend):
    import torch

    before = torch.get_num_threads()
    try:
        assert backend.configure_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_no_gpu_on_this_machine_means_no_gpu_name(backend):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert backend.gpu_name() is None
    with pytest.raises(InputError, match="no CUDA GPU"):
        backend.build(SPEC, initial_weights(SPEC, 0), TrainerOptions(device="gpu"))


def test_precision_and_determinism_are_set_explicitly(backend):
    import torch

    weights = initial_weights(SPEC, 0)
    try:
        backend.build(SPEC, weights, TrainerOptions(precision="tf32", deterministic=True))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.are_deterministic_algorithms_enabled()
        backend.build(SPEC, weights, TrainerOptions())
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        backend.build(SPEC, weights, TrainerOptions())


def test_backend_module_imports_without_importing_torch():
    code = ("import sys, dlbench_backends.torch_backend as m; from dlbench.plugins import get_plugins; "
            "b = get_plugins().backends['torch']; b.availability(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_deterministic_training_matches_numpy(backend, monkeypatch):
    import backend_helpers

    build = backend.build
    monkeypatch.setattr(type(backend), "build",
                        lambda self, spec, w, options: build(spec, w, TrainerOptions(deterministic=True)))
    spec = Sequential([Dense(6, "sigmoid", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", Adam(0.01))
    try:
        backend_helpers.assert_matches_numpy("torch", spec, toy_data(n_classes=3, n_train=43), steps=12)
    finally:
        build(SPEC, initial_weights(SPEC, 0), TrainerOptions())


def test_layers_it_cannot_build_are_named(backend):
    spec = Sequential([Flatten(input_shape=(2, 3)), Dense(2, "softmax")]).compile("categorical_crossentropy")
    with pytest.raises(NotImplementedError, match="'flatten'"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions())


def test_windows_gathered_in_several_parts_train_like_numpy(backend, monkeypatch):
    import dlbench_backends.torch_backend as torch_backend

    monkeypatch.setattr(torch_backend, "GATHER_BYTES", 100)  # 8 samples of 5 floats + label: 2 steps a part
    spec = Sequential([Dense(6, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1, 0.5))
    assert_matches_numpy("torch", spec, toy_data(n_classes=3, n_train=43), steps=12)


@pytest.mark.parametrize("sizes, calls", [((3, 5), [(1, [3, 5])]),
                                           ((40000, 3), [(1, [3]), (2, [40000])]),
                                           ((40000,), [(2, [40000])])])
def test_small_parameters_are_updated_on_one_thread(backend, monkeypatch, sizes, calls):
    import torch

    import dlbench_backends.torch_backend as torch_backend

    seen = []
    monkeypatch.setitem(torch_backend.UPDATES, "sgd", lambda config, params: lambda grads: seen.append(
        (torch.get_num_threads(), [g.numel() for g in grads])))
    update = torch_backend.optimizer_update(SGD(0.1), [torch.zeros(n) for n in sizes])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        update([torch.ones(n) for n in sizes])
        assert seen == calls
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy"])
def test_compiled_training_matches_numpy(backend, monkeypatch, loss):
    from torch._dynamo.utils import counters

    units, out = (3, "softmax") if loss == "categorical_crossentropy" else (1, "sigmoid")
    spec = Sequential([Dense(8, "relu", input_shape=(5,)), Dense(units, out)]).compile(loss, "adam")
    build = backend.build
    monkeypatch.setattr(type(backend), "build",
                        lambda self, s, w, options: build(s, w, TrainerOptions(extra={"compile": True})))
    # 43 samples in batches of 8: the partial batch of 3 recompiles for its shape
    assert_matches_numpy("torch", spec, toy_data(n_classes=max(units, 2), n_train=43), steps=12)
    assert counters["frames"]["ok"] >= 2, "both batch shapes were compiled"
