"""Training throughput of every shipped scenario on every backend.

One benchmark per (scenario, backend), grouped by scenario so that
pytest-benchmark's table compares the backends of a scenario. Each round
trains one window of steps (data on the device, compile excluded). Quick
check: ``python -m pytest tests/benchmarks --benchmark-disable``; regression
workflow: ``--benchmark-autosave``, then ``--benchmark-compare
--benchmark-compare-fail=median:10%``.
"""

import numpy as np
import pytest

from backend_helpers import in_process_backends
from dlbench.pytest_plugin import shipped_scenarios

ROUNDS = 10


@pytest.mark.parametrize("backend", in_process_backends())  # plugins: in processes of their own
@pytest.mark.parametrize("scenario", shipped_scenarios())
def test_training_window(benchmark, dlbench_trainer, scenario, backend):
    trainer = dlbench_trainer(scenario, backend)
    benchmark.group = scenario
    benchmark.extra_info.update(trainer.info)
    losses = benchmark.pedantic(trainer.run_window, rounds=ROUNDS, iterations=1)
    assert np.shape(losses) == (trainer.steps_per_call,)
    assert np.all(np.isfinite(losses))
    if benchmark.stats is not None:
        benchmark.extra_info["samples_per_sec"] = trainer.samples_per_sec(benchmark.stats.stats.median)
