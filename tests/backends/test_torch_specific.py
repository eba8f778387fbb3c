"""What only the torch backend has: its layouts (Linear's transposed kernel, NCHW
weights in the channels_last memory format), its thread and precision
settings, batches gathered in parts, small parameters updated on one thread,
torch.compile, and its own BatchNorm and Dropout modules. The contract every
backend keeps is in ``test_contract.py``."""

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.distributed import replica_slice
from dlbench.network import (SGD, Adam, BatchNormalization, Conv1D, Conv2D, Dense, ExponentialDecay, Flatten, RMSprop,
                             Sequential)
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy, trained
from dlbench.plugin.testing.networks import BATCHNORM_CASES, BUILD_CASES, CONV_CASES, DROPOUT_CASES, cnn

SPEC = BUILD_CASES["dense-activation-momentum"]
COMPILED = TrainerOptions(extra={"compile": True})


@pytest.fixture(scope="module")
def backend():
    return require_backend("torch")


def test_linear_weight_is_the_transposed_kernel(backend):
    weights = initial_weights(SPEC, seed=3)
    trainer = backend.build(SPEC, weights, TrainerOptions())
    linear = trainer.holders[0]
    assert tuple(linear.weight.shape) == (8, 5)
    np.testing.assert_array_equal(linear.weight.detach().numpy(), weights[0]["kernel"].T)


def test_configure_threads_returns_the_count_in_effect(backend):
    import torch

    before = torch.get_num_threads()
    try:
        assert backend.configure_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


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


def test_windows_gathered_in_several_parts_train_like_numpy(backend, monkeypatch):
    import dlbench_backends.torch.trainer as torch_trainer

    monkeypatch.setattr(torch_trainer, "GATHER_BYTES", 100)  # 8 samples of 5 floats + label: 2 steps a part
    spec = Sequential([Dense(6, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1, 0.5))
    assert_trains_like_numpy("torch", spec, toy_data(n_classes=3, n_train=43), steps=12)


@pytest.mark.parametrize("sizes, calls", [((3, 5), [(1, [3, 5])]),
                                           ((40000, 3), [(1, [3]), (2, [40000])]),
                                           ((40000,), [(2, [40000])])])
def test_small_parameters_are_updated_on_one_thread(backend, monkeypatch, sizes, calls):
    import types

    import torch

    import dlbench_backends.torch.optim as torch_optim

    seen = []
    monkeypatch.setitem(torch_optim.OPTIMIZERS, "sgd", lambda config, params, state: types.SimpleNamespace(
        update=lambda grads, found_inf, lr: seen.append((torch.get_num_threads(), [g.numel() for g in grads]))))
    optimizer = torch_optim.build_optimizer(SGD(0.1), [torch.zeros(n) for n in sizes])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        optimizer.update([torch.ones(n) for n in sizes])
        assert seen == calls
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy"])
def test_compiled_training_matches_numpy(backend, loss):
    from torch._dynamo.utils import counters

    units, out = (3, "softmax") if loss == "categorical_crossentropy" else (1, "sigmoid")
    spec = Sequential([Dense(8, "relu", input_shape=(5,)), Dense(units, out)]).compile(loss, "adam")
    # 43 samples in batches of 8: the partial batch of 3 recompiles for its shape
    frames_before = counters["frames"]["ok"]  # a session-wide counter: count this test's frames only
    assert_trains_like_numpy("torch", spec, toy_data(n_classes=max(units, 2), n_train=43), COMPILED, steps=12)
    assert counters["frames"]["ok"] - frames_before >= 2, "both batch shapes were compiled"


# ------------------------------------------------------- convolutional networks
def test_batchnorm_moving_statistics_are_buffers_the_optimizer_never_sees(backend):
    spec = BATCHNORM_CASES["batchnorm-after-conv2d"]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    bn = trainer.holders[1]
    trained_params = {id(p) for p in trainer.params}
    assert {id(bn.gamma), id(bn.beta)} <= trained_params
    assert id(bn.moving_mean) not in trained_params and id(bn.moving_variance) not in trained_params
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
    assert_trains_like_numpy("torch", spec, data, steps=12)


def test_conv_weight_is_the_permuted_kernel(backend):
    spec = cnn(Conv2D(4, (3, 2), padding="same", input_shape=(6, 5, 3)), BatchNormalization(0.9, 1e-5),
               Flatten(), Dense(3, "softmax"))
    weights = initial_weights(spec, 7)
    weights[0]["kernel"] = np.random.default_rng(1).standard_normal(weights[0]["kernel"].shape).astype(np.float32)
    conv = backend.build(spec, weights, TrainerOptions()).holders[0]
    assert tuple(conv.weight.shape) == (4, 3, 3, 2)
    np.testing.assert_array_equal(conv.weight.detach().numpy(), weights[0]["kernel"].transpose(3, 2, 0, 1))


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


# ---------------------------------------------------------------------- dropout
def dropout_run(options: TrainerOptions):
    spec = DROPOUT_CASES["conv"]
    return trained("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), options, steps=10)


def test_dropout_masks_owe_nothing_to_torchs_global_generator(backend):
    import torch

    trainer, losses = dropout_run(TrainerOptions(seed=0))
    torch.manual_seed(123)
    again, same_seed = dropout_run(TrainerOptions(seed=0))
    np.testing.assert_array_equal(losses, same_seed)
    for layer, other in zip(trainer.weights(), again.weights()):
        for name in layer:
            np.testing.assert_array_equal(layer[name], other[name])


def test_evaluate_puts_the_model_back_into_training_mode(backend):
    spec = DROPOUT_CASES["conv"]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(toy_data(input_shape=spec.input_shape, n_train=43))
    trainer.evaluate()
    assert trainer.model.training


@pytest.mark.slow
@pytest.mark.parametrize("case", ["two-convs-strided-same", "averagepool1d"])
def test_compiled_conv_networks_train_like_numpy(backend, case):
    spec = CONV_CASES[case]
    assert_trains_like_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), COMPILED, steps=12)


@pytest.mark.slow
def test_compiled_batchnorm_and_dropout(backend):
    spec = BATCHNORM_CASES["batchnorm-after-conv1d-then-pool"]
    assert_trains_like_numpy("torch", spec, toy_data(input_shape=spec.input_shape, n_train=43), COMPILED, steps=12)
    options = TrainerOptions(seed=0, extra={"compile": True})
    np.testing.assert_array_equal(dropout_run(options)[1], dropout_run(options)[1])


def test_adam_step_count_follows_a_loaded_state(backend):
    """Adam's per-parameter step tensors are the state's step after load_state."""
    spec = Sequential([Dense(4, "relu", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", Adam(0.01))
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    state = trainer.state()
    state.step = 7
    trainer.load_state(state)
    assert {float(slots["step"]) for slots in trainer.optimizer.state.values()} == {7.0}


def test_an_lstm_in_a_precision_the_cpu_lacks_is_unavailable_not_failed(backend):
    """oneDNN has no float16 LSTM on CPUs without fp16 instructions: there an
    fp16 LSTM is an "unavailable" row saying so; a row at any other precision,
    or of a network without an LSTM, is not affected."""
    from dlbench.run.worker import RunRequest, execute
    from dlbench.scenario import resolve_scenario
    from dlbench_backends.torch.precision import lstm_unavailable

    lstm, gru = resolve_scenario("chars-lstm").model, resolve_scenario("adding-gru").model
    assert backend.precision_unavailable("bf16", "cpu", lstm) is None
    assert backend.precision_unavailable("fp16", "cpu", gru) is None
    reason = lstm_unavailable()
    assert backend.precision_unavailable("fp16", "cpu", lstm) == reason
    row = execute(RunRequest(scenario="chars-lstm", backend="torch", precision="fp16", overrides={"max_steps": 2}))
    assert row["status"] == ("unavailable" if reason else "ok"), row.get("error")
    assert row.get("error") == reason


def test_every_torch_replica_process_takes_the_slice_of_its_global_rank(backend, monkeypatch):
    """Two hosts of two replica processes each: torchrun gives each its RANK (0-3) and its LOCAL_RANK (0-1)."""
    from dlbench_backends.torch import TorchBackend, distributed

    indices = np.arange(3 * 8).reshape(3, 8)
    slices = []
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank % 2))
        monkeypatch.setenv("WORLD_SIZE", "4")
        slices.append(replica_slice(indices, distributed.rank(), 4))
        assert TorchBackend().process_rank() == rank % 2  # the first process of each host writes its row
    assert sorted(np.concatenate(slices, axis=1).ravel().tolist()) == indices.ravel().tolist()


@pytest.mark.parametrize("optimizer", [RMSprop(0.1, schedule=ExponentialDecay(0.5)),
                                       SGD(0.1, schedule=ExponentialDecay(0.5))], ids=["rmsprop", "sgd"])
def test_a_step_fp16_skips_does_not_advance_the_schedule(optimizer):
    """The schedule's step count lives on the device: a skipped step (found_inf = 1)
    leaves it, and the next step uses the learning rate of the step that was skipped."""
    torch = pytest.importorskip("torch")
    from dlbench_backends.torch.optim import build_optimizer

    param = torch.zeros(3)
    built = build_optimizer(optimizer, [param])
    built.update([torch.full((3,), float("inf"))], torch.ones(()))
    assert float(built.step) == 0 and torch.equal(param, torch.zeros(3))
    built.update([torch.ones(3)], torch.zeros(()))
    assert float(built.step) == 1
    first = 0.1 / (torch.sqrt(torch.tensor(0.1)) + optimizer.epsilon) if optimizer.name == "rmsprop" else 0.1
    torch.testing.assert_close(param, torch.full((3,), -float(first)))  # at the rate of step 0, not of step 1
