"""Harness overhead: each backend's trainer against a plain hand-written loop in
the same framework, same network, batches, optimizer and threads.

The two are timed in alternation, round after round, over the same windows of
steps, and the ratio of median throughputs is reported. Used by the
pytest-benchmark suite and runnable on its own::

    python tests/benchmarks/overhead.py --backend numpy,torch,tensorflow,jax --rounds 5
"""

from __future__ import annotations

import argparse
import importlib
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
from dlbench.run.session import prepare  # noqa: E402
from dlbench.spec import SGD, Dense, Sequential  # noqa: E402

NETWORKS = {
    # kind: (spec, batch size, window steps, features, classes)
    "mlp": (Sequential([Dense(256, "relu", input_shape=(64,)), Dense(256, "relu"), Dense(10, "softmax")])
            .compile("categorical_crossentropy", SGD(0.1)), 128, 20, 64, 10),
    "xor": (Sequential([Dense(10, "relu", input_shape=(2,)), Dense(1, "sigmoid")])
            .compile("binary_crossentropy", "adam"), 1, 200, 2, 2),
}


def setup(backend_name: str, kind: str, seed: int = 0):
    """(harness train, hand-written train, windows) for one backend and network."""
    spec, batch_size, window_steps, features, classes = NETWORKS[kind]
    data = synthetic(seed, n_samples=5000, n_features=features, n_classes=classes, test_fraction=0.2)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=100, seed=seed, drop_last=True)
    session = prepare(get_plugins().backends[backend_name], spec, data, plan, TrainerOptions(seed=seed))
    trainer = session.trainer
    handwritten = importlib.import_module(f"handwritten_{backend_name}").make_loop(
        kind, session.weights, data.x_train, data.y_train)
    windows = [w.indices for w in plan.windows(window_steps)]
    # compile / warm both (their trajectories do not matter here)
    trainer.train(windows[0])
    handwritten(windows[0])
    return trainer.train, handwritten, windows[1:]


def measure(backend_name: str, kind: str, rounds: int) -> dict:
    harness, handwritten, windows = setup(backend_name, kind)
    rates = {"harness": [], "handwritten": []}
    for r in range(rounds):
        window = windows[r % len(windows)]
        for name, fn in (("harness", harness), ("handwritten", handwritten)):
            start = time.perf_counter()
            fn(window)
            rates[name].append(window.size / (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {"backend": backend_name, "network": kind, **medians,
            "ratio": medians["harness"] / medians["handwritten"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--network", default="mlp,xor")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{'backend':<11} {'network':<7} {'harness/s':>12} {'hand-written/s':>15} {'ratio':>7}")
    for backend in args.backend.split(","):
        for kind in args.network.split(","):
            r = measure(backend, kind, args.rounds)
            print(f"{backend:<11} {kind:<7} {r['harness']:>12,.0f} {r['handwritten']:>15,.0f} {r['ratio']:>7.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
