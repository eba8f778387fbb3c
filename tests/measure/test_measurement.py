"""The measurement's arithmetic, with a fake trainer on a fake clock: every
figure below is known exactly, so a swapped term cannot pass."""

import math

import numpy as np
import pytest

from dlbench.data.batches import BatchPlan
from dlbench.measure.timing import UNSTABLE_CV, summarize, train_and_measure
from dlbench.run.row import combine_repeats

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
    assert m["gflops_per_sec"] == 22.0  # 110 samples/s * 2e9 FLOPs per step of 10 samples
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


# ------------------------------------------------ windows, checkpoints, edge cases
from dlbench.measure.timing import loss_history, window_starts  # noqa: E402


def test_window_starts_are_where_timed_windows_begin_with_each_batch_sizes_first_step_alone():
    plan = BatchPlan(95, 10, 2, seed=0)  # per epoch 9 full batches and one of 5
    # epoch 0: step 0 alone (first batch of 10), 1-3, 4-7, 8, step 9 alone (first batch of 5);
    # epoch 1: 10-13, 14-17, 18, 19 (a batch of 5 again: not alone, no compile any more)
    assert window_starts(plan, 4) == [0, 1, 4, 8, 9, 10, 14, 18, 19]
    assert window_starts(BatchPlan(10, 10, 3, seed=0), 4) == [0, 1, 2]  # one step per epoch


class CheckpointedTrainer(FakeTrainer):
    """A trainer whose state is its step count; taking it costs a second on the clock."""

    def state(self):
        self.clock.now += 1.0
        return self.steps


def test_states_are_taken_before_their_window_and_outside_the_timed_region():
    clock = FakeClock()
    trainer = CheckpointedTrainer(clock)
    plan = BatchPlan(100, 10, 3, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    m = train_and_measure(trainer, plan, 4, clock=clock, checkpoints=frozenset({1, 8, 12, 28}))
    assert m.states == {1: 1, 8: 8, 12: 12, 28: 28}  # step 12 starts no window: the window 10-13 is cut there
    assert m.compile_seconds == pytest.approx(COMPILE + STEP)
    assert m.steady_seconds == pytest.approx(29 * STEP)


def test_every_loss_is_kept_as_a_float():
    m, _ = measure()
    assert len(m.losses) == 30 and all(type(x) is float and x == 0.5 for x in m.losses)


def test_a_window_the_clock_cannot_resolve_counts_no_throughput():
    class InstantTrainer(FakeTrainer):
        def train(self, indices):
            self.steps += len(indices)
            return np.full(len(indices), 0.5, np.float32)

    clock = FakeClock()  # never advances
    plan = BatchPlan(100, 10, 1, seed=0)
    m = train_and_measure(InstantTrainer(clock), plan, 4, clock=clock)
    assert m.steady_seconds == 0.0 and m.samples_per_sec is None and m.window_samples_per_sec == []
    assert m.steps == 10 and m.steady_samples == 90


def test_a_target_reached_exactly_counts_as_reached():
    m, _ = measure(epochs=3, target=0.6)  # 0.3 * 2 == 0.6 after epoch 2
    assert m.time_to_accuracy == pytest.approx(COMPILE + 20 * STEP)


def test_a_target_first_reached_after_the_last_epoch_is_timed_at_the_end():
    m, _ = measure(epochs=3, target=0.85)  # 0.9 only after epoch 3
    assert m.time_to_accuracy == pytest.approx(COMPILE + 30 * STEP)


def test_training_stops_at_the_end_of_the_window_that_diverged():
    class Diverging(FakeTrainer):
        def train(self, indices):
            losses = super().train(indices)
            return np.full(len(losses), np.inf, np.float32) if self.steps > 8 else losses

    clock = FakeClock()
    trainer = Diverging(clock)
    plan = BatchPlan(100, 10, 3, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    m = train_and_measure(trainer, plan, 4, clock=clock)
    assert m.diverged_at == 8 and trainer.steps == m.steps == 10 and len(m.losses) == 10  # window: steps 8-9


def test_the_loss_history_keeps_every_kth_loss_within_the_point_budget():
    assert loss_history(list(range(25)), max_points=10) == ([0, 3, 6, 9, 12, 15, 18, 21, 24], 3)
    assert loss_history(list(range(10)), max_points=10) == (list(range(10)), 1)
    assert loss_history(list(range(11)), max_points=10) == (list(range(0, 11, 2)), 2)
    assert loss_history([], max_points=10) == ([], 1)


def test_summary_of_one_sample_and_of_a_zero_mean():
    assert summarize([5.0]) == {"n": 1, "median": 5.0, "q1": 5.0, "q3": 5.0, "iqr": 0.0, "mean": 5.0,
                                "std": 0.0, "cv": 0.0, "min": 5.0, "max": 5.0}
    centred = summarize([-1.0, 1.0, float("inf")])
    assert centred["n"] == 2 and centred["mean"] == 0.0 and centred["cv"] == 0.0
    assert centred["std"] == pytest.approx(math.sqrt(2))
    assert centred["min"] == -1.0 and centred["max"] == 1.0


def test_summary_reports_count_extremes_and_cv():
    s = summarize([4.0, 2.0, None, 6.0])
    assert s["n"] == 3 and s["min"] == 2.0 and s["max"] == 6.0
    assert s["std"] == 2.0 and s["cv"] == pytest.approx(0.5)


def single(windows, samples_per_sec=100.0):
    r = row(samples_per_sec)
    r["metrics"]["window_samples_per_sec"] = windows
    return r


def test_a_single_repeat_takes_its_spread_from_its_windows():
    stable = combine_repeats([single([90.0, 100.0, 110.0])])["metrics"]  # cv exactly 10%: not above it
    assert stable["samples_per_sec_stats"]["n"] == 3 and stable["samples_per_sec_stats"]["median"] == 100.0
    assert stable["samples_per_sec_stats"]["cv"] == UNSTABLE_CV and not stable["unstable"]
    noisy = combine_repeats([single([80.0, 100.0, 120.0])])["metrics"]
    assert noisy["unstable"] and noisy["samples_per_sec"] == 100.0
    assert combine_repeats([single([])])["metrics"]["unstable"] is False


def test_repeats_combine_wall_time_to_its_median():
    rows = [row(100.0), row(120.0), row(110.0)]
    for r, wall in zip(rows, (5.0, 3.0, 4.0)):
        r["metrics"]["wall_seconds"] = wall
    m = combine_repeats(rows)["metrics"]
    assert m["wall_seconds"] == 4.0 and m["wall_seconds_samples"] == [5.0, 3.0, 4.0]
    assert m["compile_seconds_samples"] == [1.0, 1.0, 1.0]


def test_no_gflops_without_a_flop_count_or_a_throughput():
    no_flops = row(100.0)
    del no_flops["metrics"]["flops_per_step"]
    assert "gflops_per_sec" not in combine_repeats([no_flops, no_flops])["metrics"]
    assert "gflops_per_sec" not in combine_repeats([row(None), row(None)])["metrics"]


def test_the_first_failed_repeat_is_the_row():
    combined = combine_repeats([row(None, status="timeout"), row(100.0), row(None, status="failed")])
    assert combined["status"] == "timeout" and combined["repeats"] == 3 and "samples_per_sec_stats" not in \
        combined["metrics"]


def test_a_target_met_before_training_is_timed_at_the_first_epoch_end():
    m, _ = measure(epochs=3, target=0.0)  # evaluation runs at epoch ends only, never before the first step
    assert m.time_to_accuracy == pytest.approx(COMPILE + 10 * STEP)


def test_partial_batches_count_in_the_throughput_but_not_in_the_spread():
    m, _ = measure(n_samples=95, batch_size=10, epochs=2, window=4)
    # epoch 0: windows 1-3, 4-7, 8 (step 0 and the first partial batch, step 9, are compile time);
    # epoch 1: 10-13, 14-17, 18, and the partial batch 19, which is steady time but not a full window
    assert len(m.window_samples_per_sec) == 6
    assert m.steady_samples == 17 * 10 + 5 and m.steady_seconds == pytest.approx(18 * STEP)


def test_two_repeats_take_their_spread_across_the_repeats():
    rows = [single([100.0] * 3, 100.0), single([100.0] * 3, 140.0)]
    m = combine_repeats(rows)["metrics"]
    assert m["samples_per_sec_stats"]["n"] == 2 and m["samples_per_sec_stats"]["median"] == 120.0
    assert m["unstable"]  # the windows of each were steady; the repeats were not


def test_a_single_repeat_without_window_samples_has_no_spread_and_is_stable():
    r = row(100.0)
    del r["metrics"]["window_samples_per_sec"]
    m = combine_repeats([r])["metrics"]
    assert m["samples_per_sec_stats"] == {"n": 0} and m["unstable"] is False and m["samples_per_sec"] == 100.0


def test_progress_is_reported_after_every_window_outside_the_timed_region():
    clock = FakeClock()
    trainer = FakeTrainer(clock)
    plan = BatchPlan(100, 10, 1, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    done = []

    def progress(steps):
        done.append(steps)
        clock.now += 5.0  # drawing a progress bar takes no training time

    m = train_and_measure(trainer, plan, 4, clock=clock, progress=progress)
    assert done == [1, 4, 8, 10]  # step 0 alone (compile), 1-3, 4-7, 8-9
    assert m.compile_seconds == pytest.approx(COMPILE + STEP) and m.steady_seconds == pytest.approx(9 * STEP)


def test_accuracy_is_evaluated_at_epoch_ends_only():
    class CountingTrainer(FakeTrainer):
        evaluations = 0

        def evaluate(self):
            self.evaluations += 1
            return 0.0, self.steps / 30  # rises every step, so an evaluation between epochs would tell

    clock = FakeClock()
    trainer = CountingTrainer(clock)
    plan = BatchPlan(100, 10, 3, seed=0)
    trainer.steps_per_epoch = plan.steps_per_epoch
    m = train_and_measure(trainer, plan, 4, target_accuracy=0.5, clock=clock)
    assert trainer.evaluations == 2 and m.time_to_accuracy == pytest.approx(COMPILE + 20 * STEP)  # 10/30, 20/30


def test_the_loss_history_keeps_at_most_ten_thousand_points_by_default():
    assert loss_history([0.5] * 10_000)[1] == 1
    kept, every = loss_history([0.5] * 10_001)
    assert every == 2 and len(kept) == 5001
