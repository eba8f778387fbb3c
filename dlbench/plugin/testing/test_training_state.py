"""The training-state contract (dlbench.plugin.backend.TrainingState), run
under every backend (``conftest.py``): a trainer's full state comes out in canonical layout,
goes into a fresh trainer exactly, and training continues as if never stopped;
a state taken from NumPy continues on every other backend like on NumPy."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import require_backend, toy_data
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions, TrainingState, empty_slots
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.network import (SGD, Adadelta, Adam, AdamW, BatchNormalization, Conv2D, CosineDecay, Dense, Flatten,
                             MaxPool2D, RMSprop, Sequential, StepDecay, WarmupCosine)
from dlbench.network.init import initial_weights

NETWORKS = {
    "mlp-adam": (Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")])
                 .compile("categorical_crossentropy", Adam(0.01)), (5,)),
    "mlp-momentum": (Sequential([Dense(8, "relu", input_shape=(5,)), Dense(3, "softmax")])
                     .compile("categorical_crossentropy", SGD(0.05, 0.9)), (5,)),
    # every slot the newer optimizers keep, and a schedule: the step count must come back with them
    "mlp-rmsprop-centered-momentum-warmup": (
        Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")])
        .compile("categorical_crossentropy", RMSprop(0.01, momentum=0.5, centered=True, clip_global_norm=1.0,
                                                     schedule=WarmupCosine(warmup_steps=3, decay_steps=20))), (5,)),
    "mlp-adadelta-step-schedule": (
        Sequential([Dense(8, "relu", input_shape=(5,)), Dense(3, "softmax")])
        .compile("categorical_crossentropy", Adadelta(1.0, weight_decay=0.01, schedule=StepDecay(5, 0.5))), (5,)),
    "mlp-adamw-cosine": (Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")])
                         .compile("categorical_crossentropy", AdamW(0.01, schedule=CosineDecay(12, 0.1))), (5,)),
    "mlp-sgd-bce": (Sequential([Dense(6, "relu", input_shape=(5,)), Dense(1, "sigmoid")])
                    .compile("binary_crossentropy", SGD(0.1)), (5,)),
    # relu before BatchNormalization: a conv bias feeding BatchNormalization directly has a zero true
    # gradient, so under Adam it follows rounding noise (NumPy float32 vs float64 part by 2.5e-4 there)
    "cnn-batchnorm-adam": (Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
                                       BatchNormalization(),
                                       MaxPool2D(2), Flatten(), Dense(3, "softmax")])
                           .compile("categorical_crossentropy", Adam(0.01)), (6, 6, 1)),
}


def trainer_for(backend, name):
    spec, input_shape = NETWORKS[name]
    n_classes = 2 if spec.loss == "binary_crossentropy" else 3
    data = toy_data(input_shape=input_shape, n_classes=n_classes, n_train=40)
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(data)
    plan = BatchPlan(len(data.x_train), 8, epochs=10, seed=0)
    windows = [w.indices for w in plan.windows(4)]
    return trainer, windows


def assert_states_equal(a: TrainingState, b: TrainingState, rtol=0.0, atol=0.0):
    assert a.step == b.step
    assert len(a.weights) == len(b.weights) and len(a.slots) == len(b.slots)
    for i, (la, lb) in enumerate(zip(a.weights, b.weights)):
        assert la.keys() == lb.keys(), f"layer {i} parameter names"
        for k in la:
            assert la[k].dtype == np.float32 and la[k].shape == lb[k].shape, f"layer {i} {k}"
            np.testing.assert_allclose(la[k], lb[k], rtol=rtol, atol=atol, err_msg=f"layer {i} {k}")
    for i, (sa, sb) in enumerate(zip(a.slots, b.slots)):
        assert sa.keys() == sb.keys(), f"layer {i} slots"
        for p in sa:
            assert sa[p].keys() == sb[p].keys(), f"layer {i} {p} slot names"
            for k in sa[p]:
                assert sa[p][k].dtype == np.float32 and sa[p][k].shape == sb[p][k].shape
                np.testing.assert_allclose(sa[p][k], sb[p][k], rtol=rtol, atol=atol,
                                           err_msg=f"layer {i} {p} slot {k}")


@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_fresh_trainer_state_is_the_initial_weights_with_empty_slots(backend, network):
    spec, _ = NETWORKS[network]
    trainer, _ = trainer_for(backend, network)
    assert_states_equal(trainer.state(), TrainingState(initial_weights(spec, 0), empty_slots(spec), 0))


@pytest.mark.parametrize("network", list(NETWORKS))
def test_state_round_trip_is_exact_and_training_continues_unchanged(backend, network):
    first, windows = trainer_for(backend, network)
    first.train(windows[0])
    first.train(windows[1])
    saved = first.state()
    assert saved.step == len(windows[0]) + len(windows[1])
    second, _ = trainer_for(backend, network)
    second.load_state(saved.copy())
    assert_states_equal(second.state(), saved)  # exact
    ours, theirs = first.train(windows[2]), second.train(windows[2])
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-7)
    assert_states_equal(second.state(), first.state(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_state_taken_from_numpy_continues_like_numpy(compared_backend, network):
    reference, windows = trainer_for(require_backend(REFERENCE_BACKEND), network)
    for window in windows[:3]:
        reference.train(window)
    checkpoint = reference.state()
    other, _ = trainer_for(compared_backend, network)
    other.load_state(checkpoint.copy())
    np.testing.assert_allclose(other.train(windows[3]), reference.train(windows[3]), rtol=1e-5, atol=1e-6)
    assert_states_equal(other.state(), reference.state(), rtol=1e-4, atol=1e-6)
