"""Timing a training run honestly, and the statistics of the samples.

The timed region holds training steps only. ``Trainer.train`` returns host
values, so every window of steps ends with the device synchronized before
the clock is read. The first step of each distinct batch shape is timed
alone and reported as compile/first-step time (JIT tracing happens there);
it is part of the trajectory, so warm-up adds no extra steps. Evaluation
(for time to accuracy) runs at epoch ends, outside the timer.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from dlbench.plugin.backend import Trainer
from dlbench.data.batches import BatchPlan, Window

MAX_LOSS_POINTS = 10_000


@dataclass
class TrainingMeasurement:
    losses: list = field(default_factory=list)
    compile_seconds: float = 0.0
    steady_seconds: float = 0.0
    steady_samples: int = 0
    window_samples_per_sec: list = field(default_factory=list)
    steps: int = 0
    time_to_accuracy: float | None = None
    diverged_at: int | None = None
    states: dict = field(default_factory=dict)  # step -> TrainingState taken before that step (untimed)

    @property
    def samples_per_sec(self) -> float | None:
        return self.steady_samples / self.steady_seconds if self.steady_seconds > 0 else None


def _split_first_steps(windows, seen: set):
    """Yield (window, is_first) with the first step of each new batch size on its own."""
    for window in windows:
        if window.batch_size not in seen:
            seen.add(window.batch_size)
            yield Window(window.epoch, window.first_step, window.indices[:1]), True
            if window.steps == 1:
                continue
            window = Window(window.epoch, window.first_step + 1, window.indices[1:])
        yield window, False


def _split_at(windows, steps):
    """Yield (window, is_first) with every window that contains one of ``steps``
    (after its first step) cut there, so that a checkpoint's state can be
    taken before it; a short run's checkpoints need not be window starts."""
    for window, is_first in windows:
        cuts = sorted(s - window.first_step for s in steps if window.first_step < s < window.first_step + window.steps)
        for lo, hi in zip([0, *cuts], [*cuts, window.steps]):
            yield Window(window.epoch, window.first_step + lo, window.indices[lo:hi]), is_first


def window_starts(plan: BatchPlan, window_steps: int) -> list[int]:
    """The steps at which :func:`train_and_measure` starts a timed window."""
    return [w.first_step for w, _ in _split_first_steps(plan.windows(window_steps), set())]


def train_and_measure(trainer: Trainer, plan: BatchPlan, window_steps: int,
                      target_accuracy: float | None = None, clock=time.perf_counter,
                      checkpoints=frozenset(), progress=None) -> TrainingMeasurement:
    """Train ``plan`` on ``trainer`` in windows of ``window_steps``. At each
    step in ``checkpoints`` the full training state is taken (a window is cut there),
    and after each window ``progress(steps done)`` is called, both outside the
    timed region. ``clock`` is replaceable so the arithmetic of the
    measurement can be tested exactly."""
    m = TrainingMeasurement()
    epoch = 0
    for window, is_first in _split_at(_split_first_steps(plan.windows(window_steps), set()), checkpoints):
        if window.epoch != epoch:
            _check_target(trainer, m, target_accuracy)
            epoch = window.epoch
        if window.first_step in checkpoints:
            m.states[window.first_step] = trainer.state()
        start = clock()
        losses = trainer.train(window.indices)
        elapsed = clock() - start
        m.losses.extend(float(x) for x in losses)
        m.steps += window.steps
        if is_first:
            m.compile_seconds += elapsed
        else:
            m.steady_seconds += elapsed
            m.steady_samples += window.samples
            if elapsed > 0 and window.batch_size == plan.batch_size:  # partial batches would skew the spread
                m.window_samples_per_sec.append(window.samples / elapsed)
        if not np.all(np.isfinite(losses)):
            m.diverged_at = window.first_step + int(np.argmin(np.isfinite(losses)))
            return m
        if progress is not None:
            progress(m.steps)
    _check_target(trainer, m, target_accuracy)
    return m


def _check_target(trainer: Trainer, m: TrainingMeasurement, target: float | None) -> None:
    if target is None or m.time_to_accuracy is not None:
        return
    _, acc = trainer.evaluate()
    if acc >= target:
        m.time_to_accuracy = m.compile_seconds + m.steady_seconds


def loss_history(losses: list[float], max_points: int = MAX_LOSS_POINTS) -> tuple[list[float], int]:
    """(every k-th loss, k): the whole history when it has at most ``max_points``."""
    every = max(1, math.ceil(len(losses) / max_points))
    return losses[::every], every


def summarize(samples: list[float]) -> dict:
    """Median, IQR, mean, std and coefficient of variation of raw samples."""
    finite = [s for s in samples if s is not None and math.isfinite(s)]
    if not finite:
        return {"n": 0}
    q1, median, q3 = (np.percentile(finite, [25, 50, 75]).tolist())
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    cv = std / mean if mean else 0.0
    return {"n": len(finite), "median": median, "q1": q1, "q3": q3, "iqr": q3 - q1,
            "mean": mean, "std": std, "cv": cv, "min": min(finite), "max": max(finite)}


UNSTABLE_CV = 0.10
