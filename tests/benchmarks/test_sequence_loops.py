"""The hand-written sequence-model loops the speed benchmark times against
train what the harness trains (same network, weights, batches, optimizer): the
same losses window after window, else a ratio compares two different workloads."""

import numpy as np
import pytest

from backend_helpers import require_backend
from sequence_overhead import SEQUENCE_NETWORKS, setup


@pytest.mark.slow
@pytest.mark.parametrize("network", list(SEQUENCE_NETWORKS))
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_handwritten_sequence_loop_trains_what_the_harness_trains(backend, network):
    require_backend(backend)
    harness, handwritten, windows = setup(backend, network, window_steps=3)  # both trained the first window
    for window in windows[:2]:
        ours, theirs = np.asarray(harness(window)), np.asarray(handwritten(window))
        assert ours.shape == theirs.shape == (len(window),)
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
