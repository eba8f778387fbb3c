"""Harness overhead: each backend's trainer against a plain hand-written loop in
the same framework, same network, batches, optimizer and threads.

The two are timed in alternation, round after round, over the same windows of
steps, and the ratio of median throughputs is reported. Used by the
pytest-benchmark suite and runnable on its own::

    python tests/benchmarks/overhead.py --backend numpy,torch,tensorflow,jax --rounds 5

On a GPU (``--device gpu``, torch and JAX) ``--timer events`` checks the
harness's synchronisation: the harness is timed as the runner times it (the
wall clock around ``train``, which returns host losses), and also, like the
hand-written loop, by the device: torch with CUDA events recorded on the
stream around the call; JAX, which has no event API, by the wall clock around
a call whose losses are host values (the device has finished). A harness whose
clock stopped before the device finished would show a wall-clock rate above its
event-timed one. ``--json`` prints one JSON object per (backend, network).

On a busy machine, ``--timer cpu`` times both by this thread's CPU time
(``time.thread_time``), which leaves out the time other processes held the
core; it counts this thread only, so run it with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) and for the NumPy backend (the frameworks run
their own thread pools). ``--timer process`` times both by the whole process's
CPU time (``time.process_time``, every thread): for a framework that runs ops
on threads of its own (Paddle's static-graph executor), with one thread per
pool (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import importlib
import json
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
from dlbench.measure.session import prepare  # noqa: E402
from dlbench.network import SGD, Dense, Sequential  # noqa: E402

NETWORKS = {
    # kind: (spec, batch size, window steps, features, classes)
    "mlp": (Sequential([Dense(256, "relu", input_shape=(64,)), Dense(256, "relu"), Dense(10, "softmax")])
            .compile("categorical_crossentropy", SGD(0.1)), 128, 20, 64, 10),
    "xor": (Sequential([Dense(10, "relu", input_shape=(2,)), Dense(1, "sigmoid")])
            .compile("binary_crossentropy", "adam"), 1, 200, 2, 2),
    # the seed's batch size: a step is ~35 us of NumPy calls, so every call the harness adds shows
    "tiny": (Sequential([Dense(10, "relu", input_shape=(64,)), Dense(10, "softmax")])
             .compile("categorical_crossentropy", SGD(0.1)), 1, 200, 64, 10),
}

#: wider networks whose hand-written loop only some backends have (``LOOPS_OF``): synthetic-fcn's
#: 512-1024-1024-10 MLP, SGD with momentum, batch 1024 (arithmetic dominates a step)
WIDE_NETWORKS = {
    "fcn": (Sequential([Dense(1024, "relu", input_shape=(512,)), Dense(1024, "relu"), Dense(10, "softmax")])
            .compile("categorical_crossentropy", SGD(0.05, 0.9)), 1024, 2, 512, 10),
}
#: the backends whose hand-written loop trains each wide network
LOOPS_OF = {"fcn": ("paddle",)}


def setup(backend_name: str, kind: str, seed: int = 0, device: str = "cpu", scan: bool = False):
    """(harness train, hand-written train, windows) for one backend and network
    on ``device`` ("gpu": torch and JAX, whose loops take a device); ``scan``:
    JAX's loop an expert writes, a window in one jitted ``lax.scan`` as the harness does."""
    spec, batch_size, window_steps, features, classes = {**NETWORKS, **WIDE_NETWORKS}[kind]
    data = synthetic(seed, n_samples=5000, n_features=features, n_classes=classes, test_fraction=0.2)
    plan = BatchPlan(len(data.x_train), batch_size, epochs=100, seed=seed, drop_last=True)
    options = TrainerOptions(device=device, seed=seed)
    session = prepare(get_plugins().backends[backend_name], spec, data, plan, options)
    trainer = session.trainer
    on_device = {} if device == "cpu" else {"device": device}
    if scan and backend_name == "jax":
        on_device["scan"] = True
    handwritten = importlib.import_module(f"handwritten_{backend_name}").make_loop(
        kind, session.weights, data.x_train, data.y_train, **on_device)
    windows = [w.indices for w in plan.windows(window_steps)]
    # compile / warm both (their trajectories do not matter here)
    trainer.train(windows[0])
    handwritten(windows[0])
    return trainer.train, handwritten, windows[1:]


def wall_seconds(fn, window) -> float:
    start = time.perf_counter()
    fn(window)
    return time.perf_counter() - start


def thread_cpu_seconds(fn, window) -> float:
    """CPU seconds of this thread around ``fn(window)``: on a busy machine what the
    steps cost without the time other processes held the core (one BLAS thread only:
    other threads' work is not counted)."""
    start = time.thread_time()
    fn(window)
    return time.thread_time() - start


def process_cpu_seconds(fn, window) -> float:
    """CPU seconds of this whole process (every thread) around ``fn(window)``: on a busy
    machine, for a framework that runs ops on threads of its own (Paddle's static-graph
    executor does), what the steps cost without the time other processes held the cores.
    Run it with one thread per pool (``OMP_NUM_THREADS=1``): idle workers that spin count."""
    start = time.process_time()
    fn(window)
    return time.process_time() - start


def cuda_event_seconds(fn, window) -> float:
    """Seconds between CUDA events recorded on torch's current stream before and after ``fn(window)``."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn(window)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def device_timer(backend_name: str, device: str, timer: str):
    """(timer name, seconds(fn, window)): CUDA events for torch on a GPU when
    asked; this thread's CPU time when asked (``cpu``); else the wall clock
    around a call that returns host values."""
    if timer == "events" and device == "gpu" and backend_name == "torch":
        return "cuda-events", cuda_event_seconds
    if timer == "cpu":
        return "thread-cpu", thread_cpu_seconds
    if timer == "process":
        return "process-cpu", process_cpu_seconds
    return "wall", wall_seconds


def measure(backend_name: str, kind: str, rounds: int, device: str = "cpu", timer: str = "wall",
            scan: bool = False) -> dict:
    """Median samples/s of the harness (wall clock, as the runner times it, or
    this thread's CPU time with ``timer="cpu"``; and by the device timer) and of
    the hand-written loop (device timer), over the same windows."""
    harness, handwritten, windows = setup(backend_name, kind, device=device, scan=scan)
    timer_name, device_seconds = device_timer(backend_name, device, timer)
    harness_seconds = {"cpu": thread_cpu_seconds, "process": process_cpu_seconds}.get(timer, wall_seconds)
    timings = {"harness": (harness, harness_seconds), "harness_timed_by_device": (harness, device_seconds),
               "handwritten": (handwritten, device_seconds)}
    rates = {name: [] for name in timings}
    for r in range(rounds):
        window = windows[r % len(windows)]
        for name, (fn, seconds) in timings.items():
            rates[name].append(window.size / seconds(fn, window))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {"backend": backend_name, "network": kind, "device": device, "timer": timer_name, **medians,
            "ratio": medians["harness"] / medians["handwritten"],
            "sync_ratio": medians["harness"] / medians["harness_timed_by_device"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--network", default="mlp,xor,tiny")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--timer", choices=("wall", "events", "cpu", "process"), default="wall",
                        help="events: the hand-written loop timed by CUDA events (torch on a GPU); cpu: both "
                             "timed by this thread's CPU time (a busy machine, OPENBLAS_NUM_THREADS=1, NumPy); "
                             "process: by the process's CPU time, every thread (a busy machine, OMP_NUM_THREADS=1, "
                             "a framework with threads of its own: paddle)")
    parser.add_argument("--scan", action="store_true", help="JAX's hand-written loop: a window in one lax.scan")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    if not args.json:
        print(f"{'backend':<11} {'network':<7} {'harness/s':>12} {'hand-written/s':>15} {'ratio':>7} timer")
    for backend in args.backend.split(","):
        for kind in args.network.split(","):
            r = measure(backend, kind, args.rounds, args.device, args.timer, args.scan)
            print(json.dumps(r) if args.json else f"{backend:<11} {kind:<7} {r['harness']:>12,.0f} "
                  f"{r['handwritten']:>15,.0f} {r['ratio']:>7.3f} {r['timer']}", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
