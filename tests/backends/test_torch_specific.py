"""What is specific to the torch backend: layouts, options, settings, lazy import."""

import subprocess
import sys

import numpy as np
import pytest

from backend_helpers import assert_matches_numpy, require_backend, toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.errors import InputError
from dlbench.spec.init import initial_weights
from dlbench.spec import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, Sequential)

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
    linear = trainer.holders[0]
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
    code = ("import sys, dlbench_backends.torch as m; from dlbench.plugin.manager import get_plugins; "
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


def test_windows_gathered_in_several_parts_train_like_numpy(backend, monkeypatch):
    import dlbench_backends.torch.trainer as torch_trainer

    monkeypatch.setattr(torch_trainer, "GATHER_BYTES", 100)  # 8 samples of 5 floats + label: 2 steps a part
    spec = Sequential([Dense(6, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1, 0.5))
    assert_matches_numpy("torch", spec, toy_data(n_classes=3, n_train=43), steps=12)


@pytest.mark.parametrize("sizes, calls", [((3, 5), [(1, [3, 5])]),
                                           ((40000, 3), [(1, [3]), (2, [40000])]),
                                           ((40000,), [(2, [40000])])])
def test_small_parameters_are_updated_on_one_thread(backend, monkeypatch, sizes, calls):
    import torch

    import types

    import dlbench_backends.torch.optim as torch_optim

    seen = []
    monkeypatch.setitem(torch_optim.OPTIMIZERS, "sgd", lambda config, params, state: types.SimpleNamespace(
        update=lambda grads: seen.append((torch.get_num_threads(), [g.numel() for g in grads]))))
    update = torch_optim.build_optimizer(SGD(0.1), [torch.zeros(n) for n in sizes]).update
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
    frames_before = counters["frames"]["ok"]  # a session-wide counter: count this test's frames only
    assert_matches_numpy("torch", spec, toy_data(n_classes=max(units, 2), n_train=43), steps=12)
    assert counters["frames"]["ok"] - frames_before >= 2, "both batch shapes were compiled"


# ------------------------------------------------------- convolutional networks
def cnn(*layers, optimizer=None):
    return Sequential(list(layers)).compile("categorical_crossentropy", optimizer or Adam(0.01))


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
}

# Dense and conv biases feed BatchNormalization, which removes any shift: their
# gradient is 0 up to rounding, and Adam would turn that noise into full steps,
# so these train with SGD.
BATCHNORM_CASES = {
    "batchnorm-after-dense": cnn(Dense(5, input_shape=(4,)), BatchNormalization(0.9, 1e-5), Activation("relu"),
                                 Dense(3, "softmax"), optimizer=SGD(0.1, 0.9)),
    "batchnorm-after-conv2d": cnn(Conv2D(2, 2, input_shape=(4, 4, 1)), BatchNormalization(0.9, 1e-5), Flatten(),
                                  Dense(3, "softmax"), optimizer=SGD(0.1, 0.9)),
    "batchnorm-after-conv1d-then-pool": cnn(Conv1D(4, 3, strides=2, activation="relu", input_shape=(11, 2)),
                                            BatchNormalization(0.9, 1e-5), MaxPool1D(2), Flatten(),
                                            Dense(3, "softmax"), optimizer=SGD(0.05, 0.9)),
    "batchnorm-first-on-an-image": cnn(BatchNormalization(0.8, 1e-3, input_shape=(4, 3, 2)), Flatten(),
                                       Dense(3, "softmax"), optimizer=Adam(0.01)),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_and_pooling_networks_train_like_numpy(backend, case):
    spec = CONV_CASES[case]
    # 43 samples in batches of 8: a partial batch of 3 too; weights, test loss and accuracy compared as well
    assert_matches_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), steps=25)


@pytest.mark.parametrize("case", list(BATCHNORM_CASES))
def test_batchnorm_trains_and_evaluates_like_numpy(backend, case):
    """Losses (batch statistics), the moving statistics among the weights, and
    evaluate() (moving statistics) all as in the reference."""
    spec = BATCHNORM_CASES[case]
    assert_matches_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), steps=25)


def test_batchnorm_with_one_value_per_channel_is_beta_as_in_numpy(backend):
    spec = BATCHNORM_CASES["batchnorm-after-dense"]
    assert_matches_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=20), batch_size=1, steps=6)


def test_batchnorm_moving_statistics_are_buffers_the_optimizer_never_sees(backend):
    spec = BATCHNORM_CASES["batchnorm-after-conv2d"]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    bn = trainer.holders[1]
    trained = {id(p) for p in trainer.params}
    assert {id(bn.gamma), id(bn.beta)} <= trained
    assert id(bn.moving_mean) not in trained and id(bn.moving_variance) not in trained
    assert {name for name, _ in bn.named_buffers()} >= {"moving_mean", "moving_variance"}


def test_batchnorm_moving_variance_follows_the_biased_batch_variance(backend):
    import torch

    spec = cnn(BatchNormalization(0.9, 1e-3, input_shape=(3,)), Dense(2, "softmax"))
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32) * 4 + 2)
    with torch.no_grad():
        y = trainer.model(x)  # training mode
    bn = trainer.holders[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * x.mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * x.var(0, correction=0).numpy(), rtol=1e-5)
    assert y.shape == (50, 2)


def test_conv_weights_in_another_memory_format_than_their_gradients_still_train_like_numpy(backend, monkeypatch):
    """Contiguous (NCHW) conv weights fed channels_last inputs get channels_last
    gradients from autograd.grad; the fused update must not pair up the wrong elements."""
    import torch

    import dlbench_backends.torch.network as torch_network
    from dlbench_backends.torch.trainer import TorchTrainer

    monkeypatch.setattr(torch_network, "CHANNELS_LAST", False)
    monkeypatch.setattr(TorchTrainer, "_network_input", lambda self, x: x.movedim(-1, -3))
    spec = CONV_CASES["two-convs-strided-same"]
    data = toy_data(input_shape=spec.input_shape, n_train=43)
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(data)
    x = trainer._network_input(trainer.x_train[:8])
    loss = trainer.loss(trainer.model(x), trainer.t_train[:8], trainer.output)
    grads = torch.autograd.grad(loss, trainer.params)
    assert any(g.stride() != p.stride() for g, p in zip(grads, trainer.params)), "the case this test is about"
    assert_matches_numpy("torch", spec, data, steps=12)


def test_conv_layouts_round_trip_exactly(backend):
    spec = cnn(Conv2D(4, (3, 2), padding="same", input_shape=(6, 5, 3)), BatchNormalization(0.9, 1e-5),
               Activation("relu"), MaxPool2D(2), Flatten(), Dense(3, "softmax"))
    weights = initial_weights(spec, 7)
    rng = np.random.default_rng(1)
    for layer in weights:  # distinct values everywhere, so that any permutation would show
        for name in layer:
            layer[name] = rng.standard_normal(layer[name].shape).astype(np.float32)
    weights[1]["moving_variance"] = np.abs(weights[1]["moving_variance"])
    trainer = backend.build(spec, weights, TrainerOptions())
    got = trainer.weights()
    conv = trainer.holders[0]
    assert tuple(conv.weight.shape) == (4, 3, 3, 2)
    np.testing.assert_array_equal(conv.weight.detach().numpy(), weights[0]["kernel"].transpose(3, 2, 0, 1))
    for layer, ref in zip(got, weights):
        assert list(layer) == list(ref)
        for name in layer:
            assert layer[name].dtype == np.float32 and layer[name].flags.c_contiguous
            np.testing.assert_array_equal(layer[name], ref[name])


def test_conv1d_kernel_round_trips_and_runs_as_a_height_1_conv2d(backend):
    spec = cnn(Conv1D(3, 4, strides=2, padding="same", input_shape=(9, 2)), Flatten(), Dense(3, "softmax"))
    weights = initial_weights(spec, 2)
    trainer = backend.build(spec, weights, TrainerOptions())
    assert tuple(trainer.holders[0].weight.shape) == (3, 2, 1, 4)
    np.testing.assert_array_equal(trainer.weights()[0]["kernel"], weights[0]["kernel"])


def test_inputs_are_kept_channels_last_and_viewed_without_a_copy(backend):
    import torch

    spec = CONV_CASES["maxpool2d"]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(toy_data(input_shape=spec.input_shape))
    x = trainer._network_input(trainer.x_train)
    assert tuple(x.shape[1:]) == (1, 6, 6) and x.data_ptr() == trainer.x_train.data_ptr()
    assert trainer.holders[0].weight.is_contiguous(memory_format=torch.channels_last)


DROPOUT_SPEC = cnn(Conv2D(4, 2, activation="relu", input_shape=(5, 5, 1)), Dropout(0.5), Flatten(), Dense(16, "relu"),
                   Dropout(0.5), Dense(3, "softmax"), optimizer=SGD(0.1))


def dropout_run(seed: int, spec=DROPOUT_SPEC, steps=10):
    from backend_helpers import train_on

    return train_on("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), 8, steps, seed=seed)


def test_dropout_same_seed_same_losses_other_seed_other_losses(backend):
    import torch

    losses, weights, _ = dropout_run(0)
    torch.manual_seed(123)  # torch's global generator plays no part
    again, weights_again, _ = dropout_run(0)
    np.testing.assert_array_equal(losses, again)
    for layer, other in zip(weights, weights_again):
        for name in layer:
            np.testing.assert_array_equal(layer[name], other[name])
    assert not np.array_equal(losses, dropout_run(1)[0])


def test_dropout_is_on_in_training_and_off_in_evaluation(backend):
    from dlbench.plugin.manager import get_plugins
    from dlbench_backends.numpy.network import Network

    spec = DROPOUT_SPEC
    data = toy_data(input_shape=spec.input_shape, n_train=43)
    weights = initial_weights(spec, 0)
    trainer = backend.build(spec, weights, TrainerOptions(seed=0))
    trainer.place_data(data)
    with_dropout = trainer.train(np.arange(8)[None])
    # the loss of that first batch without dropout, i.e. in inference
    net = Network(spec, weights)
    z = net.logits(data.x_train[:8].astype(np.float32), training=False)
    inference_loss, _ = net.loss(z, data.y_train[:8].astype(np.int64), net.output)
    assert abs(with_dropout[0] - inference_loss) > 1e-3
    # evaluate: deterministic, and what the reference holding the same weights gives (dropout = identity)
    evaluation = trainer.evaluate()
    assert trainer.evaluate() == evaluation
    holder = get_plugins().backends["numpy"].build(spec, trainer.weights(), TrainerOptions())
    holder.place_data(data)
    assert evaluation == pytest.approx(holder.evaluate(), rel=1e-5)
    assert trainer.model.training  # evaluate() put the model back into training mode


@pytest.mark.slow
@pytest.mark.parametrize("case", ["two-convs-strided-same", "averagepool1d"])
def test_compiled_conv_networks_train_like_numpy(backend, monkeypatch, case):
    spec = CONV_CASES[case]
    build = backend.build
    monkeypatch.setattr(type(backend), "build",
                        lambda self, s, w, options: build(s, w, TrainerOptions(extra={"compile": True})))
    assert_matches_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), steps=12)


@pytest.mark.slow
def test_compiled_batchnorm_and_dropout(backend, monkeypatch):
    build = backend.build
    monkeypatch.setattr(type(backend), "build", lambda self, s, w, options: build(
        s, w, TrainerOptions(seed=options.seed, extra={"compile": True})))
    spec = BATCHNORM_CASES["batchnorm-after-conv1d-then-pool"]
    assert_matches_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), steps=12)
    losses = dropout_run(0)[0]
    np.testing.assert_array_equal(losses, dropout_run(0)[0])
