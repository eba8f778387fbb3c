"""The hand-written loops of the two workloads people choose frameworks by
(``resnet20-cifar``, ``bert-tiny-style``; ``resnet20_<backend>.py``,
``bert_<backend>.py``) train what the harness trains: from the core's initial
weights, on its first batches, the same losses, else the speed benchmark's
ratio compares two different workloads.

The first loss (the initial weights' forward pass) must agree to float32
rounding; the next ones carry one or more updates. ResNet-20 is compared on
its first two steps only: float32 rounding alone moves its third loss by
2.5e-4 (the torch loop in float32 against the same loop in float64: a ReLU
input within rounding of zero flips side and BatchNorm over 32 images spreads
it) and the fourth by 1e-3, so a later loss tells rounding from nothing. The
BERT-style encoder's torch and Keras loops agree to 2e-7 over four steps;
JAX's differs by a measured, explained 6e-6 to 1.3e-5 from the second loss on
(tolerance 5e-5): optax's Adam computes the bias correction ``1 - b2**t`` in
float32 from ``b2`` rounded to float32, 1.3e-5 smaller than the spec's at step
1 (the harness computes it in float64); with ``jax_enable_x64``, where optax's
step count and that correction are float64, the same loop agrees to 1e-7.
"""

import dataclasses
import importlib

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.measure.session import prepare_scenario
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.scenario import resolve_scenario
from sequence_overhead import WORKLOADS

#: network -> (samples generated, steps compared)
SIZES = {"resnet20": (120, 2), "bert": (200, 4)}


def first_losses(backend_name: str, network: str) -> tuple[np.ndarray, np.ndarray]:
    """(harness, hand-written) losses of the first steps, each from the core's initial weights."""
    (name, prefix), (n_samples, steps) = WORKLOADS[network], SIZES[network]
    scenario = resolve_scenario(name)
    scenario = dataclasses.replace(scenario, data_options={**scenario.data_options, "n_samples": n_samples})
    session = prepare_scenario(scenario, get_plugins().backends[backend_name], TrainerOptions(seed=0))
    window = next(iter(session.plan.windows(steps))).indices
    handwritten = importlib.import_module(f"{prefix}{backend_name}").make_loop(
        session.weights, session.data.x_train, session.data.y_train, scenario)
    return np.asarray(session.trainer.train(window)), np.asarray(handwritten(window))


@pytest.mark.slow
@pytest.mark.parametrize("network", list(WORKLOADS))
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_handwritten_workload_loop_trains_what_the_harness_trains(backend, network):
    require_backend(backend)
    ours, theirs = first_losses(backend, network)
    assert ours.shape == theirs.shape == (SIZES[network][1],)
    np.testing.assert_allclose(theirs[0], ours[0], rtol=1e-6)
    rtol = 1e-4 if network == "resnet20" else 5e-5 if backend == "jax" else 1e-5
    np.testing.assert_allclose(theirs[1:], ours[1:], rtol=rtol)
