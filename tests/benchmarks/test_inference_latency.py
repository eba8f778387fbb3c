"""Inference latency of every shipped scenario on every backend, through the
plugin's ``dlbench_predictor`` fixture: one benchmark per (scenario, backend,
batch size), batch 1 (MLPerf's SingleStream) and the scenario's batch size,
grouped by scenario and batch size so that pytest-benchmark's table compares
the backends. Each round predicts one batch of test rows (compile and warm-up
excluded). Regression workflow as for training: ``--benchmark-enable
--benchmark-autosave``, then ``--benchmark-compare --benchmark-compare-fail=median:10%``.
"""

import numpy as np
import pytest

from backend_helpers import in_process_backends
from dlbench.pytest_plugin import shipped_scenarios

ROUNDS = 50


@pytest.mark.parametrize("batch", ["1", "scenario"])
@pytest.mark.parametrize("backend", in_process_backends())  # plugins: in processes of their own
@pytest.mark.parametrize("scenario", shipped_scenarios())
def test_inference_batch(benchmark, dlbench_predictor, scenario, backend, batch):
    predictor = dlbench_predictor(scenario, backend, batch_size=1 if batch == "1" else None)
    benchmark.group = f"{scenario} inference, batch {predictor.batch_size}"
    benchmark.extra_info.update(predictor.info)
    logits = benchmark.pedantic(predictor.predict, rounds=ROUNDS, iterations=1)
    assert np.shape(logits)[0] == predictor.batch_size and np.all(np.isfinite(logits))
    if benchmark.stats is not None:
        benchmark.extra_info["samples_per_sec"] = predictor.samples_per_sec(benchmark.stats.stats.median)
