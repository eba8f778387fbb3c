"""The hand-written predict loops the inference overhead benchmark times
against must compute what the harness computes (else the ratio compares two
workloads), and the inference fixture of the pytest plugin serves it."""

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.measure.inference import batch_rows
from overhead import NETWORKS
from overhead_inference import BATCH_SIZES, setup


@pytest.mark.parametrize("kind", list(NETWORKS))
@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax"])
def test_handwritten_predict_computes_what_the_harness_computes(backend, kind):
    require_backend(backend)
    harness, handwritten, n_test = setup(backend, kind)
    for size in BATCH_SIZES:
        rows = batch_rows(n_test, size, 3)
        ours, theirs = np.asarray(harness(rows)), np.asarray(handwritten(rows))
        assert ours.shape == theirs.shape == (size, NETWORKS[kind][0].output_shape[0])
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
