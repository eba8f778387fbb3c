"""Transformer speed: each backend's trainer against a plain hand-written loop
in the same framework (``transformer_<backend>.py``: the framework's standard
modules), on the ``mnist1d-transformer`` network, its data and batches, the
same threads; and every trainer against the fastest one (the NumPy backend
should be within 3x). Timed in alternation, round after round, over the same
windows; ratios of median throughputs. Run on its own (a benchmark, never a
timed test)::

    python tests/benchmarks/transformer_overhead.py --backend numpy,torch,tensorflow,jax --rounds 7
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

from dlbench.plugin.backend import TrainerOptions  # noqa: E402
from dlbench.plugin.manager import get_plugins  # noqa: E402
from dlbench.run.session import prepare_scenario  # noqa: E402
from dlbench.scenario import resolve_scenario  # noqa: E402

SCENARIO = "mnist1d-transformer"
WINDOW_STEPS = 10


def heads(scenario) -> int:
    return scenario.model.layers[2].layers[1].num_heads


def setup(backend_name: str, with_handwritten: bool = True, window_steps: int = WINDOW_STEPS):
    """(harness train, hand-written train or None, windows): both warmed on the first window."""
    scenario = resolve_scenario(SCENARIO)
    session = prepare_scenario(scenario, get_plugins().backends[backend_name], TrainerOptions(seed=0))
    windows = [w.indices for w in session.plan.windows(window_steps)]
    session.trainer.train(windows[0])
    handwritten = None
    if with_handwritten:
        handwritten = importlib.import_module(f"transformer_{backend_name}").make_loop(
            session.weights, session.data.x_train, session.data.y_train, heads(scenario))
        handwritten(windows[0])
    return session.trainer.train, handwritten, windows[1:]


def measure(backend_name: str, rounds: int) -> dict:
    harness, handwritten, windows = setup(backend_name, with_handwritten=backend_name != "numpy")
    loops = {"harness": harness, **({"handwritten": handwritten} if handwritten else {})}
    rates = {name: [] for name in loops}
    for r in range(rounds):
        window = windows[r % len(windows)]
        for name, fn in loops.items():
            start = time.perf_counter()
            fn(window)
            rates[name].append(window.size / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy,torch,tensorflow,jax")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results = {backend: measure(backend, args.rounds) for backend in args.backend.split(",")}
    fastest = max(r["harness"] for r in results.values())
    print(f"{'backend':<11} {'harness/s':>10} {'hand-written/s':>15} {'vs hand':>8} {'vs fastest':>11}")
    for backend, r in results.items():
        hand = r.get("handwritten")
        print(f"{backend:<11} {r['harness']:>10,.0f} {hand or float('nan'):>15,.0f} "
              f"{r['harness'] / hand if hand else float('nan'):>8.3f} {r['harness'] / fastest:>11.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
