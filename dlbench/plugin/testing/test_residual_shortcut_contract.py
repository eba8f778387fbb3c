"""A residual block whose shortcut is a chain of its own (ResNet's projection
shortcut: a strided 1x1 convolution without a bias, then BatchNormalization)
under every backend: distinct weights, the shortcut's included, go in and come
out exactly under their ``"shortcut.<k>.<name>"`` names; it trains and
evaluates (moving statistics) like the NumPy reference; its training state
round-trips."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.network import (SGD, Activation, BatchNormalization, Conv2D, Dense, GlobalAveragePool2D, Residual,
                          Sequential)
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy, trained


def basic_block(filters: int, strides: int) -> Residual:
    """He et al. 2016's basic block with the projection shortcut (option B)."""
    return Residual([Conv2D(filters, 3, strides=strides, padding="same", use_bias=False),
                     BatchNormalization(0.9, 1e-5), Activation("relu"),
                     Conv2D(filters, 3, padding="same", use_bias=False), BatchNormalization(0.9, 1e-5)],
                    shortcut=[Conv2D(filters, 1, strides=strides, use_bias=False), BatchNormalization(0.9, 1e-5)])


SPEC = Sequential([Conv2D(3, 3, padding="same", use_bias=False, input_shape=(6, 6, 2)), BatchNormalization(0.9, 1e-5),
                   Activation("relu"), basic_block(4, 2), Activation("relu"), GlobalAveragePool2D(),
                   Dense(3, "softmax")]).compile("categorical_crossentropy", SGD(0.1, 0.9))


def test_the_block_names_its_shortcut_parameters_after_the_inner_ones():
    names = list(SPEC.param_shapes()[3])
    assert names[:6] == ["0.kernel", "1.gamma", "1.beta", "1.moving_mean", "1.moving_variance", "3.kernel"]
    assert names[-5:] == ["shortcut.0.kernel", "shortcut.1.gamma", "shortcut.1.beta", "shortcut.1.moving_mean",
                          "shortcut.1.moving_variance"]
    assert SPEC.param_shapes()[3]["shortcut.0.kernel"] == (1, 1, 3, 4) and SPEC.shapes[3][1] == (3, 3, 4)


def test_weights_go_in_and_come_out_exactly(backend):
    rng = np.random.default_rng(1)
    weights = [{name: np.abs(rng.standard_normal(w.shape)).astype(np.float32) + 0.1 for name, w in layer.items()}
               for layer in initial_weights(SPEC, 0)]
    got = backend.build(SPEC, weights, TrainerOptions()).weights()
    assert [list(layer) for layer in got] == [list(layer) for layer in weights]
    for layer, ref in zip(got, weights):
        for name in layer:
            np.testing.assert_array_equal(layer[name], ref[name], err_msg=name)


def test_trains_and_evaluates_like_numpy(compared_backend):
    data = toy_data(input_shape=SPEC.input_shape, n_classes=3, n_train=43)
    assert_trains_like_numpy(compared_backend.name, SPEC, data, steps=12, window_steps=5)


def test_the_shortcuts_training_state_round_trips(backend):
    data = toy_data(input_shape=SPEC.input_shape, n_classes=3, n_train=43)
    source, _ = trained(backend.name, SPEC, data, steps=4)
    state = source.state()
    assert {"shortcut.0.kernel", "shortcut.1.gamma", "shortcut.1.beta"} <= set(state.slots[3])
    fresh = backend.build(SPEC, initial_weights(SPEC, 9), TrainerOptions())
    fresh.place_data(data)
    fresh.load_state(state)
    for ours, theirs in zip(fresh.state().weights, state.weights):
        for name in theirs:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    indices = np.arange(16).reshape(2, 8)
    np.testing.assert_array_equal(fresh.train(indices), source.train(indices))


@pytest.mark.parametrize("shortcut, message", [
    ([Conv2D(4, 1, strides=1)], "layers: a residual block's layers must give the shape of its shortcut (6, 6, 4)"),
    ([], "layers: a residual block's layers must give back its input's shape (6, 6, 2)"),
])
def test_a_block_whose_branches_differ_in_shape_is_refused(shortcut, message):
    from dlbench.errors import InputError

    with pytest.raises(InputError) as info:
        Sequential([Residual([Conv2D(4, 3, strides=2, padding="same")], shortcut=shortcut), Dense(3, "softmax")],
                   input_shape=(6, 6, 2)).compile("categorical_crossentropy", "sgd")
    assert f"{info.value.field}: {info.value.message}".startswith(f"layers[0].{message}")
