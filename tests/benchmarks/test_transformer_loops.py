"""The hand-written Transformer loops the speed benchmark times against train
what the harness trains (same network, weights, batches, optimizer): the same
losses window after window, else a ratio compares two different workloads."""

import numpy as np
import pytest

from backend_helpers import require_backend
from transformer_overhead import setup


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_handwritten_transformer_loop_trains_what_the_harness_trains(backend):
    require_backend(backend)
    harness, handwritten, windows = setup(backend, window_steps=3)  # both have trained the first window already
    for window in windows[:2]:
        ours, theirs = np.asarray(harness(window)), np.asarray(handwritten(window))
        assert ours.shape == theirs.shape == (len(window),)
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
