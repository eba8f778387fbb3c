"""The hand-written loops the overhead benchmark times against must train the
same thing as the harness: same network, batches and optimizer, hence the same
losses window after window (else a ratio compares two different workloads).

Paddle's check runs in a process of its own: Paddle 3.3.1's library segfaults
when it loads into a process that has imported TensorFlow (as this one has)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend
from overhead import LOOPS_OF, NETWORKS, setup

#: backends whose framework cannot share this process with TensorFlow
OWN_PROCESS = {"paddle"}
BACKENDS = ["numpy", "torch", "tensorflow", "jax", "paddle"]
#: (backend, network): every backend's loop of the overhead networks, and the wide networks' loops there are
CASES = [(b, k) for k in NETWORKS for b in BACKENDS] + [(b, k) for k, loops in LOOPS_OF.items() for b in loops]


def check_handwritten_loop(backend: str, kind: str) -> None:
    harness, handwritten, windows = setup(backend, kind)  # both have trained the first window already
    for window in windows[:2]:
        ours, theirs = np.asarray(harness(window)), np.asarray(handwritten(window))
        assert ours.shape == theirs.shape == (len(window),)
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend, kind", CASES)
def test_handwritten_loop_trains_what_the_harness_trains(backend, kind):
    require_backend(backend)
    if backend not in OWN_PROCESS:
        check_handwritten_loop(backend, kind)
        return
    here = Path(__file__).parent
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; from test_handwritten_loops import "
            "check_handwritten_loop; check_handwritten_loop(sys.argv[3], sys.argv[4])")
    result = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent), backend, kind],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
