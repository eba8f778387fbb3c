"""Inference harness overhead: each backend's ``Trainer.predict`` against a
plain hand-written predict loop in the same framework (``handwritten_predict``),
same network, weights, test rows and threads. The target: the harness's
batch-1 latency and batch-256 throughput within 5% of the hand-written loop's.

The two are called in alternation, round after round, on the same batches;
per batch size the ratio of median per-call latencies is reported (for
throughput at batch 256 that is the inverse ratio). Runnable on its own::

    python tests/benchmarks/overhead_inference.py --backend numpy,torch,tensorflow,jax --calls 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from dlbench.data.batches import BatchPlan  # noqa: E402
from dlbench.data.builtin import synthetic  # noqa: E402
from dlbench.plugin.backend import TrainerOptions  # noqa: E402
from dlbench.plugin.manager import get_plugins  # noqa: E402
from dlbench.measure.inference import batch_rows  # noqa: E402
from dlbench.measure.session import prepare  # noqa: E402
from handwritten_predict import make_predict  # noqa: E402
from overhead import NETWORKS  # noqa: E402

BATCH_SIZES = (1, 256)


def setup(backend_name: str, kind: str, seed: int = 0):
    """(harness predict, hand-written predict, n_test) for one backend and network."""
    spec, batch_size, _, features, classes = NETWORKS[kind]
    data = synthetic(seed, n_samples=5000, n_features=features, n_classes=classes, test_fraction=0.2)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=1, seed=seed)
    session = prepare(get_plugins().backends[backend_name], spec, data, plan, TrainerOptions(seed=seed))
    handwritten = make_predict(backend_name, session.weights, data.x_test)
    return session.trainer.predict, handwritten, len(data.x_test)


def measure(backend_name: str, kind: str, calls: int) -> list[dict]:
    harness, handwritten, n_test = setup(backend_name, kind)
    found = []
    for size in BATCH_SIZES:
        batches = [batch_rows(n_test, size, k) for k in range(64)]
        for fn in (harness, handwritten):  # compile and warm both
            for rows in batches[:10]:
                fn(rows)
        latencies = {"harness": [], "handwritten": []}
        for call in range(calls):
            rows = batches[call % len(batches)]
            for name, fn in (("harness", harness), ("handwritten", handwritten)):
                start = time.perf_counter()
                fn(rows)
                latencies[name].append(time.perf_counter() - start)
        medians = {k: statistics.median(v) for k, v in latencies.items()}
        found.append({"backend": backend_name, "network": kind, "batch_size": size,
                      "harness_ms": medians["harness"] * 1e3, "handwritten_ms": medians["handwritten"] * 1e3,
                      "latency_ratio": medians["harness"] / medians["handwritten"],
                      "throughput_ratio": medians["handwritten"] / medians["harness"]})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--network", default="mlp,xor")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    print(f"{'backend':<11} {'network':<7} {'batch':>5} {'harness ms':>11} {'hand-written ms':>16} "
          f"{'latency ratio':>14} {'throughput ratio':>17}")
    for backend in args.backend.split(","):
        for kind in args.network.split(","):
            for r in measure(backend, kind, args.calls):
                print(f"{backend:<11} {kind:<7} {r['batch_size']:>5} {r['harness_ms']:>11.4f} "
                      f"{r['handwritten_ms']:>16.4f} {r['latency_ratio']:>14.3f} {r['throughput_ratio']:>17.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
