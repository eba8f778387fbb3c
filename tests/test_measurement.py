"""The measurement's arithmetic, with a fake trainer on a fake clock: every
figure below is known exactly, so a swapped term cannot pass."""

import math

import numpy as np
import pytest

from dlbench.data.batches import BatchPlan
from dlbench.run.timing import UNSTABLE_CV, combine_repeats, summarize, train_and_measure

COMPILE, STEP = 2.0, 0.01  # seconds: the first step of a batch shape, every other step


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeTrainer:
    """Each step advances the clock by STEP, the first of each batch size by COMPILE more;
    accuracy after epoch e (1-based) is 0.3 * e."""

    def __init__(self, clock):
        self.clock, self.seen, self.steps, self.epochs_done = clock, set(), 0, 0
        self.steps_per_epoch = None

    def train(self, indices):
        for row in indices:
            self.clock.now += STEP + (COMPILE if len(row) not in self.seen else 0.0)
            self.seen.add(len(row))
            self.steps += 1
        return np.full(len(indices), 0.5, np.float32)

    def evaluate(self):
        return 0.0, 0.3 * (self.steps // self.steps_per_epoch)


def measure(n_samples=100, batch_size=10, epochs=3, window=4, target=None):
    clock = FakeClock()
    trainer = FakeTrainer(clock)
    plan = BatchPlan(n_samples, batch_size, epochs, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    return train_and_measure(trainer, plan, window, target, clock=clock), plan


def test_compile_time_is_the_first_step_and_steady_time_the_rest():
    m, plan = measure()
    assert m.steps == plan.total_steps == 30
    assert m.compile_seconds == pytest.approx(COMPILE + STEP)
    assert m.steady_seconds == pytest.approx(29 * STEP)
    assert m.steady_samples == 29 * 10


def test_samples_per_sec_counts_samples_not_steps():
    m, _ = measure(batch_size=10)
    assert m.samples_per_sec == pytest.approx(10 / STEP)  # 1000 samples/s, not 100 steps/s
    assert m.window_samples_per_sec and all(v == pytest.approx(10 / STEP) for v in m.window_samples_per_sec)


def test_windows_hold_window_steps_and_skip_partial_batches_in_the_spread():
    m, _ = measure(n_samples=95, batch_size=10, epochs=1, window=4)  # 9 full batches + one of 5
    # windows of 4: steps 0-3 (step 0 alone, as compile time, then 1-3), 4-7, 8; the partial batch (step 9)
    # is a new batch size, so it is compile time too and adds no window
    assert len(m.window_samples_per_sec) == 3
    assert m.compile_seconds == pytest.approx(2 * (COMPILE + STEP))  # batch sizes 10 and 5, once each


def test_time_to_accuracy_is_training_time_at_the_first_epoch_end_reaching_the_target():
    m, _ = measure(epochs=3, target=0.5)  # 0.3 after epoch 1, 0.6 after epoch 2
    assert m.time_to_accuracy == pytest.approx(COMPILE + 20 * STEP)
    unreachable, _ = measure(epochs=3, target=0.95)
    assert unreachable.time_to_accuracy is None


def test_divergence_stops_at_the_first_non_finite_loss():
    class Diverging(FakeTrainer):
        def train(self, indices):
            losses = super().train(indices)
            first = self.steps - len(indices)
            losses[[i for i in range(len(losses)) if first + i >= 6]] = np.nan
            return losses

    clock = FakeClock()
    trainer = Diverging(clock)
    plan = BatchPlan(100, 10, 3, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    m = train_and_measure(trainer, plan, 4, clock=clock)
    assert m.diverged_at == 6


def row(samples_per_sec, compile_seconds=1.0, status="ok"):
    return {"scenario": "s", "backend": "b", "status": status,
            "metrics": {"samples_per_sec": samples_per_sec, "compile_seconds": compile_seconds,
                        "wall_seconds": 3.0, "flops_per_step": 2e9, "batch_size": 10,
                        "window_samples_per_sec": [samples_per_sec] * 3}}


def test_repeats_combine_to_medians_with_raw_samples_kept():
    combined = combine_repeats([row(100.0, 1.0), row(130.0, 3.0), row(110.0, 2.0)])
    m = combined["metrics"]
    assert m["samples_per_sec"] == 110.0 and m["compile_seconds"] == 2.0
    assert m["samples_per_sec_samples"] == [100.0, 130.0, 110.0]
    assert m["gflops_per_sec"] == pytest.approx(110.0 * 2e9 / 10 / 1e9)
    assert combined["repeats"] == 3


def test_unstable_when_the_spread_exceeds_ten_percent_of_the_mean():
    steady = combine_repeats([row(100.0), row(101.0), row(99.0)])["metrics"]
    noisy = combine_repeats([row(100.0), row(150.0), row(60.0)])["metrics"]
    assert not steady["unstable"] and noisy["unstable"]
    assert noisy["samples_per_sec_stats"]["cv"] > UNSTABLE_CV > steady["samples_per_sec_stats"]["cv"]


def test_a_failed_repeat_makes_the_row_failed():
    combined = combine_repeats([row(100.0), row(None, status="failed")])
    assert combined["status"] == "failed" and combined["repeats"] == 2


def test_summary_statistics():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["q1"] == 2.0 and s["q3"] == 4.0 and s["iqr"] == 2.0
    assert s["mean"] == 22.0 and s["std"] == pytest.approx(math.sqrt(sum((x - 22) ** 2 for x in
                                                                         [1, 2, 3, 4, 100]) / 4))
    assert summarize([float("nan"), None]) == {"n": 0}
