"""Sequence-model and workload speed: each backend's trainer against a plain hand-written
loop in the same framework, written with the framework's standard modules, on
the two sequence benchmark networks and issue 38's two workloads, their data and
batches, the same threads:

* ``lstm``: ``chars-lstm``, the LSTM language model (``lstm_<backend>.py``);
* ``transformer``: ``mnist1d-transformer``, the Transformer encoder
  (``transformer_<backend>.py``);
* ``resnet20``: ``resnet20-cifar``, He et al.'s CIFAR ResNet-20 with projection
  shortcuts (``resnet20_<backend>.py``);
* ``bert``: ``bert-tiny-style``, the BERT-Tiny-sized post-norm encoder
  (``bert_<backend>.py``);

and every trainer against the fastest one (the NumPy backend should be within
3x). Timed in alternation, round after round, over the same windows; ratios of
median throughputs. Run on its own, on a quiet machine (a benchmark, never a
timed test)::

    python tests/benchmarks/sequence_overhead.py --network lstm,transformer --backend numpy,torch,tensorflow,jax --rounds 7
    python tests/benchmarks/sequence_overhead.py --network resnet20,bert --backend torch,tensorflow,jax --rounds 7
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
from dlbench.measure.session import prepare_scenario  # noqa: E402
from dlbench.scenario import resolve_scenario  # noqa: E402

#: network -> (scenario, module prefix of its hand-written loops)
SEQUENCE_NETWORKS = {"lstm": ("chars-lstm", "lstm_"), "transformer": ("mnist1d-transformer", "transformer_")}
#: issue 38's two workloads; their loops are tested on their first steps (test_workload_loops: ResNet-20's
#: float32 trainings part within a few steps, so a later window cannot be compared)
WORKLOADS = {"resnet20": ("resnet20-cifar", "resnet20_"), "bert": ("bert-tiny-style", "bert_")}
NETWORKS = {**SEQUENCE_NETWORKS, **WORKLOADS}
WINDOW_STEPS = 10


def setup(backend_name: str, network: str, with_handwritten: bool = True, window_steps: int = WINDOW_STEPS):
    """(harness train, hand-written train or None, windows): both warmed on the first window."""
    scenario_name, prefix = NETWORKS[network]
    scenario = resolve_scenario(scenario_name)
    session = prepare_scenario(scenario, get_plugins().backends[backend_name], TrainerOptions(seed=0))
    windows = [w.indices for w in session.plan.windows(window_steps)]
    session.trainer.train(windows[0])
    handwritten = None
    if with_handwritten:
        handwritten = importlib.import_module(f"{prefix}{backend_name}").make_loop(
            session.weights, session.data.x_train, session.data.y_train, scenario)
        handwritten(windows[0])
    return session.trainer.train, handwritten, windows[1:]


def measure(backend_name: str, network: str, rounds: int) -> dict:
    harness, handwritten, windows = setup(backend_name, network, with_handwritten=backend_name != "numpy")
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
    parser.add_argument("--network", default=",".join(NETWORKS), help="comma-separated: " + ", ".join(NETWORKS))
    parser.add_argument("--backend", default="numpy,torch,tensorflow,jax")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for network in args.network.split(","):
        results = {backend: measure(backend, network, args.rounds) for backend in args.backend.split(",")}
        fastest = max(r["harness"] for r in results.values())
        print(f"\n{network} ({NETWORKS[network][0]}), samples/s, median of {args.rounds} rounds")
        print(f"{'backend':<11} {'harness/s':>10} {'hand-written/s':>15} {'vs hand':>8} {'vs fastest':>11}")
        for backend, r in results.items():
            hand = r.get("handwritten")
            print(f"{backend:<11} {r['harness']:>10,.0f} {hand or float('nan'):>15,.0f} "
                  f"{r['harness'] / hand if hand else float('nan'):>8.3f} {r['harness'] / fastest:>11.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
