"""The hand-written loops the overhead benchmark times against must train the
same thing as the harness: same network, batches and optimizer, hence the same
losses window after window (else a ratio compares two different workloads)."""

import numpy as np
import pytest

from backend_helpers import require_backend
from overhead import NETWORKS, setup


@pytest.mark.parametrize("kind", list(NETWORKS))
@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax", "paddle"])
def test_handwritten_loop_trains_what_the_harness_trains(backend, kind):
    require_backend(backend)
    harness, handwritten, windows = setup(backend, kind)  # both have trained the first window already
    for window in windows[:2]:
        ours, theirs = np.asarray(harness(window)), np.asarray(handwritten(window))
        assert ours.shape == theirs.shape == (len(window),)
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
