"""The backend contract for sequence models, under every backend: token ids
through an embedding, a dense layer per timestep, the cross-entropy of every
token, recurrent layers in both modes, convolutions among them; each trains like the NumPy reference
(losses step by step, every weight in canonical layout, test loss and
per-token accuracy), and its training state goes out and comes back exactly."""

import numpy as np
import pytest

from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.like_numpy import assert_trains_like_numpy
from dlbench.plugin.testing.sequence_networks import (CONVOLUTION_IN_SEQUENCE_CASES, RECURRENT_CASES,
                                                      SEQUENCE_INFRA_CASES)

CASES = {**SEQUENCE_INFRA_CASES, **RECURRENT_CASES}


@pytest.mark.parametrize("case", list(SEQUENCE_INFRA_CASES))
def test_token_models_train_like_numpy(compared_backend, case):
    spec, data = SEQUENCE_INFRA_CASES[case]
    assert_trains_like_numpy(compared_backend.name, spec, data, steps=12)


@pytest.mark.parametrize("case", list(RECURRENT_CASES))
def test_recurrent_layers_train_like_numpy(compared_backend, case):
    spec, data = RECURRENT_CASES[case]
    assert_trains_like_numpy(compared_backend.name, spec, data, steps=12)


@pytest.mark.parametrize("case", list(CONVOLUTION_IN_SEQUENCE_CASES))
def test_convolutions_inside_sequence_models_train_like_numpy(compared_backend, case):
    """A Conv1D, pooling or BatchNormalization on (time, features) between an embedding or before a
    recurrent layer: a backend that lays sequences out otherwise than signals must move between them."""
    spec, data = CONVOLUTION_IN_SEQUENCE_CASES[case]
    assert_trains_like_numpy(compared_backend.name, spec, data, steps=12)


@pytest.mark.parametrize("case", ["embedding-dense-per-timestep-adam", "lstm-sequences-lm", "gru-last"])
def test_sequence_training_state_round_trips_exactly(backend, case):
    spec, data = CASES[case]
    plan = BatchPlan(len(data.x_train), 8, epochs=2, seed=0)
    windows = [w.indices for w in plan.windows(3)]
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(data)
    trainer.train(windows[0])
    state = trainer.state()
    names = {name for layer in state.slots for name in layer}
    assert names & {"embeddings", "recurrent_kernel", "kernel"}, names
    fresh = backend.build(spec, initial_weights(spec, 1), TrainerOptions())
    fresh.place_data(data)
    fresh.load_state(state)
    again = fresh.state()
    for a, b in zip(state.weights + [s for layer in state.slots for s in layer.values()],
                    again.weights + [s for layer in again.slots for s in layer.values()]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(trainer.train(windows[1]), fresh.train(windows[1]))
