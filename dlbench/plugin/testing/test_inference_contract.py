"""The inference part of the contract, under every backend: ``predict`` gives
the logits NumPy computes in float64 from the same weights (judged as
``dlbench run --mode inference`` judges them), in inference mode, from the
weights the trainer holds (also after training), without touching the
training that follows."""

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import require_mode, toy_data
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.measure import inference
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.measure.session import prepare
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.networks import BATCHNORM_CASES, CONV_CASES, DROPOUT_CASES, classes

CASES = {"conv1d-batchnorm-pools": CONV_CASES["conv1d-batchnorm-pools"],
         "conv2d-same-strided-maxpool": CONV_CASES["conv2d-same-strided-maxpool"],
         "batchnorm-after-conv2d": BATCHNORM_CASES["batchnorm-after-conv2d"],
         "dense-dropout": DROPOUT_CASES["dense"]}


def reference_state(spec, data, steps: int = 6):
    """The NumPy reference's weights after a few steps: moving statistics that
    are not (0, 1), so that skipping or misusing a BatchNormalization shows."""
    plan = BatchPlan(len(data.x_train), 8, epochs=100, seed=0, max_steps=steps)
    session = prepare(get_plugins().backend(REFERENCE_BACKEND), spec, data, plan, TrainerOptions())
    for window in plan.windows(steps):
        session.trainer.train(window.indices)
    return session.trainer.weights(), plan


def verdict(session) -> dict:
    """The judge of ``dlbench run``: test-set logits against NumPy's float64 twin."""
    n_test = len(session.data.x_test)
    ours = inference.test_set_logits(session.trainer.predict, n_test, 5)
    reference = get_plugins().backend(REFERENCE_BACKEND)
    weights = session.trainer.weights()
    exact = inference.reference_logits(reference, session, weights, inference.EXACT)
    twins = {n: inference.reference_logits(reference, session, weights, e) for n, e in inference.TWINS.items()}
    return inference.output_agreement(ours, exact, twins, REFERENCE_BACKEND)


@pytest.mark.parametrize("case", list(CASES))
def test_predict_gives_numpys_float64_logits_from_the_same_weights(backend, case):
    require_mode(backend, "inference")
    spec = CASES[case]
    data = toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=43, n_test=13)
    weights, plan = reference_state(spec, data)
    session = prepare(backend, spec, data, plan, TrainerOptions(), weights)
    logits = session.trainer.predict(np.array([3, 1, 4]))
    assert logits.shape == (3, spec.output_shape[0]) and logits.dtype == np.float32
    result = verdict(session)
    assert result["agrees"], result
    assert "inference" in backend.modes


def test_predicting_leaves_training_as_it_was(backend):
    """Predictions between steps change neither the state nor the next losses
    (a backend left in eval mode would train on moving statistics, without dropout)."""
    require_mode(backend, "inference")
    spec = CASES["batchnorm-after-conv2d"]
    data = toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=43, n_test=13)
    plan = BatchPlan(len(data.x_train), 8, epochs=100, seed=0, max_steps=6)
    first, second = (prepare(backend, spec, data, plan, TrainerOptions(), initial_weights(spec, 0)).trainer
                     for _ in range(2))
    windows = [w.indices for w in plan.windows(3)]
    first.train(windows[0]), second.train(windows[0])
    before = first.weights()
    first.predict(np.arange(8))
    for layer, kept in zip(first.weights(), before):
        for name in layer:
            np.testing.assert_array_equal(layer[name], kept[name], err_msg=name)
    np.testing.assert_array_equal(first.train(windows[1]), second.train(windows[1]))


def test_predict_after_training_uses_the_trained_weights(backend):
    require_mode(backend, "inference")
    spec = CASES["dense-dropout"]
    data = toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=43, n_test=13)
    plan = BatchPlan(len(data.x_train), 8, epochs=100, seed=0, max_steps=5)
    session = prepare(backend, spec, data, plan, TrainerOptions(), initial_weights(spec, 0))
    untrained = session.trainer.predict(np.arange(13))
    for window in plan.windows(5):
        session.trainer.train(window.indices)
    assert not np.allclose(session.trainer.predict(np.arange(13)), untrained)
    result = verdict(session)  # the reference twins are built from the trainer's trained weights
    assert result["agrees"], result
