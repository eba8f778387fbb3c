"""The re-synchronised parity certificate (dlbench/parity/certificate.py): its
pieces, and a mutation test of the judge — deliberately wrong copies of the
NumPy backend must be judged disagreeing on every shipped scenario whose maths
their slip changes, while torch, TensorFlow and JAX agree on all of them (on
the shipped scenarios that is the kit's test, at 100 steps:
``test_shipped_scenario_agrees_with_numpy_for_100_steps`` in
tests/backends/test_kit_contract.py; here on the test-only scenarios)."""

from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainingState
from dlbench.plugin.manager import load_plugins
from dlbench.plugin.testing.helpers import REFERENCE_HEAVY_STEPS
from dlbench.parity import certificate
from dlbench.parity.certificate import checkpoint_steps, judge, segment_batches
from dlbench.run.row import annotate
from dlbench.scenario import resolve_scenario, scenario_files

import mutant_plugins

STEPS = 40  # each scenario's first 40 steps: eight checkpoints spread over them
TEST_SCENARIOS = [str(p) for p in sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))]
#: the shipped scenarios run here with every mutant: all but the two heavy workloads, whose layers and recipes
#: the test scenarios cover at a fraction of the cost (ResNet's basic block with its projection shortcut in
#: digits-cnn-newer-layers, AdamW with warm-up in digits-mlp-adamw-warmup, the encoder in mnist1d-transformer);
#: the kit checks both workloads on every backend (REFERENCE_HEAVY_STEPS)
MUTANT_SCENARIOS = [name for name in sorted(scenario_files()) if name not in REFERENCE_HEAVY_STEPS]


def test_checkpoints_spread_over_the_whole_run_with_room_for_a_segment():
    starts = [0, 1, 50, 100, 150, 200, 250, 300, 350, 400, 450]
    picked = checkpoint_steps(starts, total_steps=452, n=4, segment=3)
    assert picked[0] == 0 and picked[-1] == 400 and len(picked) == 4  # 450 + 3 > 452: no room
    assert checkpoint_steps([0], total_steps=2, segment=3) == []


def test_segment_batches_are_the_core_batches_of_those_steps():
    plan = BatchPlan(n_samples=10, batch_size=4, epochs=3, seed=1)  # 4, 4, 2 per epoch
    every_step = list(plan.batches())
    groups = segment_batches(plan, first_step=1, steps=3)  # steps 1, 2 (epoch 0), 3 (epoch 1)
    rows = [row for group in groups for row in group]
    assert [len(g) for g in groups] == [1, 1, 1] or sum(len(g) for g in groups) == 3
    assert all(np.array_equal(a, b) for a, b in zip(rows, every_step[1:4]))


def test_states_survive_the_checkpoint_file_exactly(tmp_path):
    state = TrainingState([{"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, np.float32)},
                           {}, {"gamma": np.ones(2, np.float32), "moving_mean": np.zeros(2, np.float32)}],
                          [{"kernel": {"m": np.ones((2, 3), np.float32)}, "bias": {"m": np.zeros(3, np.float32)}},
                           {}, {"gamma": {}}], step=7)
    arrays = {}
    certificate._put_state(arrays, "s", state)
    np.savez(tmp_path / "c.npz", **arrays)
    with np.load(tmp_path / "c.npz") as archive:
        back = certificate._get_state({k: archive[k] for k in archive.files}, "s")
    assert back.step == 7 and len(back.weights) == 3 and back.weights[1] == {} and back.slots[2] == {"gamma": {}}
    np.testing.assert_array_equal(back.weights[0]["kernel"], state.weights[0]["kernel"])
    np.testing.assert_array_equal(back.slots[0]["kernel"]["m"], state.slots[0]["kernel"]["m"])


def weights(value):
    return [{"kernel": np.full(4, value, np.float64)}]


def test_judge_accepts_rounding_and_rejects_more_than_rounding():
    start, ref32, ref64 = weights(1.0), weights(0.9), weights(0.9 + 1e-7)
    losses = np.array([1.0, 0.9])
    twins = [(losses + 1e-8, ref64)]
    same = judge(losses, weights(0.9 + 5e-7), losses, ref32, twins, start)
    assert same["agrees"] and same["margin"] <= 1
    off = judge(losses, weights(0.9 + 1e-4), losses, ref32, twins, start)
    assert not off["agrees"] and off["tensor"] == "layers[0].kernel"
    assert off["tensor_diff"] == pytest.approx(1e-4 / 0.1, rel=1e-6)  # relative to the segment's update
    wrong_loss = judge(losses * 1.001, ref32, losses, ref32, twins, start)
    assert not wrong_loss["agrees"]
    wider = judge(losses, weights(0.9 + 1e-4), losses, ref32, [*twins, (losses, weights(0.9 + 2e-5))], start)
    assert wider["agrees"]  # the farther twin sets the tolerance


def test_judge_rejects_a_nan_or_a_short_segment():
    losses = np.array([1.0, 0.9])
    twins = [(losses, weights(0.9))]
    assert not judge(np.array([1.0, np.nan]), weights(0.9), losses, weights(0.9), twins, weights(1.0))["agrees"]
    assert not judge(np.array([1.0]), weights(0.9), losses, weights(0.9), twins, weights(1.0))["agrees"]


def run_cell(scenario: str, backends: list[str], tmp_path, precision: str = "fp32", data_dir: str = "") -> dict:
    """Rows of ``backends`` (the reference first) on ``scenario``, judged as a run judges them
    (their data from ``data_dir``, a run's shared data folder, when given)."""
    from dlbench.run.worker import RunRequest, execute

    # windows of 5 steps: checkpoints are window starts, so eight of them spread over the 40 steps
    rows = [execute(RunRequest(scenario=scenario, backend=b, overrides={"max_steps": STEPS}, window_steps=5,
                               parity_dir=str(tmp_path), precision=precision, data_dir=data_dir))
            for b in ["numpy", *backends]]
    annotate(rows)
    return {r["backend"]: r for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [*MUTANT_SCENARIOS, *TEST_SCENARIOS], ids=lambda s: Path(s).stem)
def test_real_backends_agree_and_every_applicable_mutant_disagrees(scenario, tmp_path, mutants, data_cache):
    """The frameworks run here on the test-only scenarios; on a shipped one the kit's 100-step test
    certifies each of them (the same judge, more steps), so they are not run a second time."""
    loaded = resolve_scenario(scenario)
    applicable = [m.name for m in mutant_plugins.MUTANTS if m.applies(loaded)]
    shipped = scenario in MUTANT_SCENARIOS
    frameworks = [] if shipped else [b for b in ("torch", "tensorflow", "jax") if require_backend(b)]
    rows = run_cell(scenario, [*frameworks, *applicable], tmp_path, data_dir=data_cache)
    for backend in frameworks:
        verdict = rows[backend]["parity"]
        assert verdict["kind"] == "certificate", rows[backend]["metrics"].get("certificate_error")
        assert verdict["agrees"], (backend, verdict)
    for mutant in applicable:
        if rows[mutant]["status"] == "diverged":  # a loss summed over 1024 samples: caught before any judge
            continue
        verdict = rows[mutant]["parity"]
        assert rows[mutant]["status"] == "ok" and verdict["kind"] == "certificate"
        assert not verdict["agrees"], (mutant, verdict)
        assert verdict["checkpoints_agreeing"] <= verdict["checkpoints"] // 2, (mutant, verdict)


def test_every_mutant_applies_to_some_scenario():
    scenarios = [resolve_scenario(s) for s in [*scenario_files(), *TEST_SCENARIOS]]
    for mutant in mutant_plugins.MUTANTS:
        assert any(mutant.applies(s) for s in scenarios), mutant.name


def test_mutants_are_registered_as_backends(mutants):
    plugins = load_plugins()
    assert {m.name for m in mutant_plugins.MUTANTS} <= set(plugins.backends)


# ---------------------------------------------- exact picks, segments, the cell file
def test_checkpoints_are_picked_evenly_among_the_usable_window_starts():
    starts = [0, 1, 50, 100, 150, 200, 250, 300, 350, 400, 450, 450]
    assert checkpoint_steps(starts, total_steps=452, n=4, segment=3) == [0, 100, 250, 400]
    assert checkpoint_steps([0, 1, 50, 449], total_steps=452, n=4, segment=3) == [0, 1, 50, 449]  # 449 + 3 fits


def test_a_short_run_has_as_many_checkpoints_as_it_allows_the_first_at_step_0():
    """Fewer window starts than checkpoints: any step with room for a segment (the reference cuts its
    windows there). A run of 4 steps used to have 2 checkpoints and one of 1 or 2 steps none."""
    assert checkpoint_steps([0, 1], total_steps=4) == [0, 1]
    assert checkpoint_steps([0, 1], total_steps=12) == [0, 1, 3, 4, 5, 6, 8, 9]
    assert checkpoint_steps([0, 1], total_steps=48) == [0, 6, 13, 19, 26, 32, 39, 45]
    assert checkpoint_steps([0, 1], total_steps=3) == [0]
    assert checkpoint_steps([0, 1], total_steps=2) == [] and checkpoint_steps([0], total_steps=1) == []
    assert checkpoint_steps([7, 3, 3, 0], total_steps=100, n=8, segment=3)[0] == 0


def test_the_k_of_n_rule_tolerates_a_quarter_and_at_least_one_from_two_checkpoints_on():
    assert [certificate.tolerated_failures(n) for n in range(1, 17)] == \
        [0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]


def checkpoints_of(*margins):
    return [{"step": i, "agrees": m <= 1.0, "margin": m} for i, m in enumerate(margins)]


def test_one_borderline_checkpoint_decides_neither_a_short_run_nor_a_long_one():
    assert certificate.verdict(checkpoints_of(0.1, 13.0)) == ("agrees", None)  # a 4-step run, one unusual rounding
    assert certificate.verdict(checkpoints_of(*[0.1] * 7, 50.0)) == ("agrees", None)
    assert certificate.verdict(checkpoints_of(40.0, 30.0)) == ("disagrees", "0/2 checkpoints within rounding")
    assert certificate.verdict(checkpoints_of(*[0.1] * 5, 2.0, 3.0, 4.0))[0] == "disagrees"  # 3 of 8 > 2


def test_a_lone_checkpoint_agrees_disagrees_far_beyond_its_tolerance_and_is_not_judged_just_over_it():
    assert certificate.verdict(checkpoints_of(0.5)) == ("agrees", None)
    assert certificate.verdict(checkpoints_of(500.0)) == ("disagrees", "0/1 checkpoints within rounding")
    value, reason = certificate.verdict(checkpoints_of(14.0))  # an honest near-tie flip was measured at 14x
    assert value == "not judged" and reason.startswith("too short: one checkpoint, 14x its tolerance")


def test_no_checkpoint_is_no_verdict():
    assert certificate.verdict([]) == ("not judged", "too short: fewer than 3 steps, no checkpoint")


def test_a_segment_across_windows_is_one_group_per_batch_size_in_step_order():
    plan = BatchPlan(n_samples=10, batch_size=4, epochs=3, seed=1)  # steps 0-1 of 4, step 2 of 2, ...
    every_step = list(plan.batches())
    groups = segment_batches(plan, first_step=1, steps=3)  # step 1, step 2 (epoch 0's rest), step 3
    assert [g.shape for g in groups] == [(1, 4), (1, 2), (1, 4)]
    assert all(np.array_equal(g[0], every_step[s]) for g, s in zip(groups, (1, 2, 3)))
    (within,) = segment_batches(BatchPlan(100, 10, 2, seed=1), first_step=4, steps=3)
    assert within.shape == (3, 10)
    np.testing.assert_array_equal(within, np.stack(list(BatchPlan(100, 10, 2, seed=1).batches())[4:7]))


def test_segments_run_with_every_dropout_rate_at_zero_and_other_layers_unchanged():
    from dlbench.network import Dense, Dropout, Sequential

    spec = Sequential([Dense(4, "relu", input_shape=(3,)), Dropout(0.5), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", "adam")
    plain = certificate.without_dropout(spec)
    assert plain.layers[1] == Dropout(0.0) and plain.layers[0] == spec.layers[0] and plain.layers[2] == spec.layers[2]
    assert not plain.has_dropout
    no_dropout = Sequential([Dense(2, "softmax", input_shape=(3,))]).compile("categorical_crossentropy", "adam")
    assert certificate.without_dropout(no_dropout) is no_dropout


def test_each_scenario_and_settings_cell_has_its_own_checkpoint_file():
    path = certificate.cell_file("/p", "xor-mlp", {"max_steps": 40, "seed": 1})
    assert path.parent == Path("/p") and path.suffix == ".npz" and len(path.stem) == 20
    assert path == certificate.cell_file("/p", "xor-mlp", {"seed": 1, "max_steps": 40})  # key order is no setting
    assert path != certificate.cell_file("/p", "xor-mlp", {"max_steps": 40, "seed": 2})
    assert path != certificate.cell_file("/p", "digits-mlp", {"max_steps": 40, "seed": 1})


# ---------------------------------------------- the judge's figures
def test_the_judge_reports_differences_relative_to_the_loss_and_the_update():
    start, ref32 = weights(1.0), weights(0.9)
    losses = np.array([2.0, 1.0])
    twins = [(losses + 1e-6, weights(0.9 + 1e-6)), (losses - 2e-6, weights(0.9 - 1e-7))]
    verdict = judge(losses + 4e-6, weights(0.9 + 3e-6), losses, ref32, twins, start)
    # the loss scale is the largest reference loss (2.0); every element of the tensor moved by 0.1 (its update),
    # differs by 3e-6 and its farther twin's by 1e-6
    floor = certificate.FLOOR_ULPS * certificate.EPS32
    loss_tol, tensor_tol = 10 * 2e-6 + floor * 2.0, 10 * 1e-6 + floor * 0.9
    assert verdict["loss_diff"] == pytest.approx(4e-6 / 2.0, rel=1e-6)
    assert verdict["loss_tol"] == pytest.approx(loss_tol / 2.0, rel=1e-6)
    assert verdict["tensor"] == "layers[0].kernel"
    assert verdict["tensor_diff"] == pytest.approx(3e-6 / 0.1, rel=1e-6)
    assert verdict["tensor_tol"] == pytest.approx(tensor_tol / 0.1, rel=1e-6)
    assert verdict["margin"] == pytest.approx(max(4e-6 / loss_tol, 3e-6 / tensor_tol), rel=1e-6)
    assert verdict["agrees"]


def test_a_tensor_the_segment_leaves_unchanged_may_differ_by_a_few_ulps_of_itself():
    ones = [{"kernel": np.ones(4)}]
    ulp = certificate.EPS32
    twins = [(np.array([1.0]), ones)]  # the twins land exactly on the reference: no rounding measured
    close = judge(np.array([1.0]), [{"kernel": np.ones(4) + 2 * ulp}], np.array([1.0]), ones, twins, ones)
    assert close["agrees"] and close["margin"] == pytest.approx(2 * ulp / (4 * ulp), rel=1e-6)
    far = judge(np.array([1.0]), [{"kernel": np.ones(4) + 8 * ulp}], np.array([1.0]), ones, twins, ones)
    assert not far["agrees"]
    zero = judge(np.zeros(2), ones, np.zeros(2), ones, [(np.zeros(2), ones)], ones)  # a loss of 0 throughout
    assert zero["agrees"] and zero["loss_diff"] == 0.0


def test_the_judge_compares_each_layer_with_the_same_layer_of_the_twins():
    start = [{"kernel": np.ones(2)}, {}, {"kernel": np.full(2, 5.0)}]
    ref32 = [{"kernel": np.full(2, 0.5)}, {}, {"kernel": np.full(2, 4.0)}]
    twin = [{"kernel": np.full(2, 0.5 + 1e-3)}, {}, {"kernel": np.full(2, 4.0 + 1e-6)}]
    losses = np.array([1.0])
    ours = [{"kernel": np.full(2, 0.5 + 1e-3)}, {}, {"kernel": np.full(2, 4.0 + 1e-3)}]
    verdict = judge(losses, ours, losses, ref32, [(losses, twin)], start)
    assert not verdict["agrees"] and verdict["tensor"] == "layers[2].kernel"  # layer 0's rounding is not layer 2's


# ---------------------------------------------- certify, with a backend whose every figure is known
class StepTrainer:
    """w <- 0.9 w + 0.1 per step, off by ``noise`` (the reference's rounding twins) and by ``wrong[step]``
    from the checkpoint at ``step`` on (the backend under test)."""

    def __init__(self, noise, wrong):
        self.noise, self.wrong = noise, wrong

    def place_data(self, data):
        self.data = data

    def load_state(self, state):
        self.w, self.step = np.asarray(state.weights[0]["kernel"], np.float64), state.step
        self.off = self.noise + self.wrong.get(state.step, 0.0)

    def train(self, group):
        losses = []
        for _ in group:
            self.w = 0.9 * self.w + 0.1 + self.off
            self.step += 1
            losses.append(float(np.sum(self.w)))
        return np.array(losses)

    def weights(self):
        return [{"kernel": self.w.copy()}, {}]


class StepBackend:
    TWIN_NOISE = {"dtype": 1e-6, "summation": -2e-6}

    def __init__(self, wrong=None, noise=0.0, twin_noise=TWIN_NOISE):
        self.wrong, self.noise, self.twin_noise = wrong or {}, noise, twin_noise

    def build(self, spec, weights, options):
        self.built = getattr(self, "built", []) + [spec]
        noise = sum(self.twin_noise[k] for k in options.extra)
        return StepTrainer(self.noise + noise, self.wrong)


def certify_against_reference(tmp_path, backend, steps=(0, 5, 10, 15, 20, 25, 30, 35), reference=None,
                              batch_size=1):
    from types import SimpleNamespace

    from dlbench.plugin.backend import TrainerOptions
    from dlbench.measure.session import prepare

    spec, plan = SimpleNamespace(has_dropout=False), BatchPlan(40 * batch_size, batch_size, 1, seed=0)
    states = {s: TrainingState([{"kernel": np.full(3, 1.0 + s / 10, np.float32)}, {}], [{"kernel": {}}, {}], s)
              for s in steps}
    path = tmp_path / "cell.npz"
    reference = reference or StepBackend()
    certificate.reference_checkpoints(prepare(reference, spec, None, plan, TrainerOptions(), []), states, path)
    return certificate.certify(prepare(backend, spec, None, plan, TrainerOptions(), []), path)


def test_a_backend_within_its_references_rounding_at_every_checkpoint_is_certified(tmp_path):
    verdict = certify_against_reference(tmp_path, StepBackend(noise=1e-5))  # within 10 x the farther twin
    assert verdict["agrees"] and verdict["agreeing"] == 8
    assert [c["step"] for c in verdict["checkpoints"]] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert all(c["agrees"] for c in verdict["checkpoints"])
    assert verdict["segment_steps"] == 3 and verdict["tolerance_factor"] == 10.0
    assert verdict["tolerated_failures"] == 2 and verdict["verdict"] == "agrees" and verdict["reason"] is None


def test_a_backend_is_certified_at_three_quarters_of_the_checkpoints_and_not_below(tmp_path):
    two_wrong = certify_against_reference(tmp_path, StepBackend({10: 1e-3, 25: 1e-2}))
    assert two_wrong["agrees"] and two_wrong["agreeing"] == 6
    assert [c["agrees"] for c in two_wrong["checkpoints"]] == [True, True, False, True, True, False, True, True]
    assert two_wrong["worst"]["step"] == 25 and two_wrong["worst"]["margin"] > 1
    three_wrong = certify_against_reference(tmp_path, StepBackend({10: 1e-3, 25: 1e-2, 35: 1e-3}))
    assert not three_wrong["agrees"] and three_wrong["agreeing"] == 5


def test_a_backend_wrong_by_more_than_rounding_everywhere_is_not_certified(tmp_path):
    verdict = certify_against_reference(tmp_path, StepBackend(noise=1e-3))
    assert not verdict["agrees"] and verdict["agreeing"] == 0


def test_no_checkpoint_certifies_nothing_and_rejects_nothing(tmp_path):
    verdict = certify_against_reference(tmp_path, StepBackend(), steps=())
    assert verdict["verdict"] == "not judged" and verdict["agrees"] is None
    assert verdict["checkpoints"] == [] and verdict["worst"] is None


def test_the_reference_leaves_its_states_and_every_twins_segment_in_the_cell_file(tmp_path):
    certify_against_reference(tmp_path, StepBackend(), steps=(0, 5))
    with np.load(tmp_path / "cell.npz") as archive:
        stored = {k: archive[k] for k in archive.files}
    assert not (tmp_path / "cell.tmp.npz").exists()
    assert stored["steps"].tolist() == [0, 5]
    state = certificate._get_state(stored, "5/state")
    assert state.step == 5 and np.allclose(state.weights[0]["kernel"], 1.5)
    w = np.full(3, 1.5)
    for _ in range(3):
        w = 0.9 * w + 0.1
    np.testing.assert_allclose(stored["5/float32/weights/0/kernel"], w, rtol=1e-12)
    np.testing.assert_allclose(stored["5/float32/losses"][-1], 3 * w[0], rtol=1e-12)
    assert stored["5/float64/weights/0/kernel"].dtype == np.float64
    assert not np.array_equal(stored["5/float64/losses"], stored["5/float32/losses"])
    assert not np.array_equal(stored["5/reversed/losses"], stored["5/float32/losses"])
    assert all(f"5/blocked{n}/losses" in stored for n in (3, 4, 16))


def test_states_are_stored_in_float32_with_an_integer_step_whatever_they_came_in(tmp_path):
    state = TrainingState([{"kernel": np.full((2, 2), 0.1, np.float64)}], [{"kernel": {"v": np.full((2, 2), 0.2)}}],
                          step=np.float64(3.0))
    arrays = {}
    certificate._put_state(arrays, "s", state)
    assert arrays["s/weights/0/kernel"].dtype == np.float32 and arrays["s/slots/0/kernel/v"].dtype == np.float32
    assert arrays["s/step"].dtype == np.int64


def test_the_judge_reports_a_short_or_non_finite_segment_as_an_infinite_margin():
    losses = np.array([1.0, 0.9])
    twins = [(losses, weights(0.9))]
    rejected = {"agrees": False, "margin": float("inf"), "loss_diff": None, "loss_tol": None, "tensor": None,
                "tensor_diff": None, "tensor_tol": None}
    assert judge(np.array([1.0, np.nan]), weights(0.9), losses, weights(0.9), twins, weights(1.0)) == rejected
    assert judge(np.array([1.0]), weights(0.9), losses, weights(0.9), twins, weights(1.0)) == rejected


def test_loss_differences_are_reported_relative_to_the_largest_reference_loss_even_below_1():
    losses = np.array([0.5, 0.25])
    twins = [(losses + 1e-6, weights(0.9))]
    verdict = judge(losses + 2e-6, weights(0.9), losses, weights(0.9), twins, weights(1.0))
    assert verdict["loss_diff"] == pytest.approx(2e-6 / 0.5, rel=1e-6)


def test_a_zero_tensor_that_rounding_leaves_at_zero_must_stay_at_zero():
    zero = [{"bias": np.zeros(3)}]
    losses = np.array([1.0])
    assert judge(losses, zero, losses, zero, [(losses, zero)], zero)["agrees"]
    moved = judge(losses, [{"bias": np.full(3, 1e-9)}], losses, zero, [(losses, zero)], zero)
    assert not moved["agrees"] and moved["tensor"] == "layers[0].bias"


def test_the_worst_tensor_is_the_one_furthest_beyond_its_tolerance():
    start = [{"kernel": np.ones(2)}, {"kernel": np.ones(2)}]
    ref32 = [{"kernel": np.full(2, 0.5)}, {"kernel": np.full(2, 0.5)}]
    twin = [{"kernel": np.full(2, 0.5 + 1e-6)}, {"kernel": np.full(2, 0.5 + 1e-3)}]
    ours = [{"kernel": np.full(2, 0.5 + 1e-3)}, {"kernel": np.full(2, 0.5 + 1e-3)}]
    losses = np.array([1.0])
    verdict = judge(losses, ours, losses, ref32, [(losses, twin)], start)
    assert not verdict["agrees"] and verdict["tensor"] == "layers[0].kernel"  # not simply the last layer
    no_tensors = judge(losses, [{}], losses, [{}], [(losses, [{}])], [{}])
    assert no_tensors["agrees"] and no_tensors["tensor"] is None and no_tensors["tensor_diff"] is None


def test_a_margin_of_exactly_1_agrees():
    # a loss tolerance of exactly T = 10 * 2**-10 + 4 ulps of 1.0, every figure exact in binary
    tol = 10 * 2.0 ** -10 + certificate.FLOOR_ULPS * certificate.EPS32
    ref, twins = np.array([1.0]), [(np.array([1.0 + 2.0 ** -10]), [{}])]
    at = judge(np.array([1.0 + tol]), [{}], ref, [{}], twins, [{}])
    assert at["margin"] == 1.0 and at["agrees"]
    beyond = judge(np.array([1.0 + 1.5 * tol]), [{}], ref, [{}], twins, [{}])
    assert beyond["margin"] == 1.5 and not beyond["agrees"]


def test_a_segment_starting_where_a_window_ends_has_no_empty_group():
    plan = BatchPlan(n_samples=10, batch_size=4, epochs=3, seed=1)  # windows: steps 0-1, 2, 3-4, 5, ...
    assert [g.shape for g in segment_batches(plan, first_step=2, steps=3)] == [(1, 2), (2, 4)]


def test_a_few_elements_far_off_do_not_decide_a_tensor_but_many_do():
    """Tensors are judged at the 99th percentile of their elements (ELEMENT_QUANTILE): a ReLU input that
    rounds to the other side of zero moves one unit, a wrong backend moves them all."""
    start, ref32, twin = ([{"kernel": np.full(200, v)}] for v in (1.0, 0.9, 0.9 + 1e-6))
    losses = np.array([1.0])
    one_off = np.full(200, 0.9 + 1e-6)
    one_off[7] += 0.05  # one element in 200: beyond the 99th percentile
    assert judge(losses, [{"kernel": one_off}], losses, ref32, [(losses, twin)], start)["agrees"]
    three_off = one_off.copy()
    three_off[[20, 30]] += 0.05  # three in 200 (1.5%)
    verdict = judge(losses, [{"kernel": three_off}], losses, ref32, [(losses, twin)], start)
    assert not verdict["agrees"] and verdict["tensor"] == "layers[0].kernel"


def test_the_loss_floor_grows_with_the_log_of_the_batch_size():
    """A batch mean summed in another order moves by up to log2(batch) ulps, which the twins do not show."""
    ulp = certificate.EPS32
    ref, exact_twins = np.array([1.0]), [(np.array([1.0]), [{}])]
    ours = np.array([1.0 + 20 * ulp])  # 20 ulps of the loss: beyond 4 ulps, within 4 * log2(1024) = 40
    assert not judge(ours, [{}], ref, [{}], exact_twins, [{}])["agrees"]  # batch 1: the floor is 4 ulps
    assert not judge(ours, [{}], ref, [{}], exact_twins, [{}], batch_size=2)["agrees"]  # log2(2) = 1
    wide = judge(ours, [{}], ref, [{}], exact_twins, [{}], batch_size=1024)
    assert wide["agrees"] and wide["loss_tol"] == pytest.approx(40 * ulp, rel=1e-9)


def test_certify_judges_the_loss_with_the_runs_batch_size(tmp_path):
    exact = StepBackend(twin_noise={"dtype": 0.0, "summation": 0.0})  # twins land exactly on the reference
    verdict = certify_against_reference(tmp_path, StepBackend(), reference=exact, batch_size=4, steps=(0, 5))
    assert verdict["agrees"]
    assert [c["loss_tol"] for c in verdict["checkpoints"]] == pytest.approx([4 * 2 * certificate.EPS32] * 2,
                                                                            rel=1e-9)


def test_a_tensor_without_elements_agrees_with_nothing_to_report():
    empty = [{"kernel": np.zeros((0, 3))}]
    verdict = judge(np.array([1.0]), empty, np.array([1.0]), empty, [(np.array([1.0]), empty)], empty)
    assert verdict["agrees"] and verdict["margin"] == 0.0 and verdict["tensor_diff"] == 0.0


def test_segments_run_on_a_trainer_built_from_the_runs_spec_without_dropout_and_given_its_data():
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.measure.session import prepare
    from dlbench.network import Dense, Dropout, Sequential

    spec = Sequential([Dense(4, "relu", input_shape=(3,)), Dropout(0.5), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", "adam")
    backend, data = StepBackend(), object()
    runner = certificate.SegmentRunner(prepare(backend, spec, data, BatchPlan(40, 1, 1, seed=0), TrainerOptions(), []),
                                       TrainerOptions())
    assert backend.built[-1] == certificate.without_dropout(spec) and runner.trainer.data is data


def test_eight_checkpoints_by_default():
    # 80 usable starts (395 + 3 <= 400); picks at round(linspace(0, 79, 8)) = 0, 11, 23, 34, 45, 56, 68, 79
    assert checkpoint_steps(list(range(0, 400, 5)), total_steps=400) == [0, 55, 115, 170, 225, 280, 340, 395]


def test_the_reference_cuts_its_windows_at_checkpoints_that_are_not_window_starts():
    from dlbench.measure.timing import train_and_measure

    class Recorder:
        def __init__(self):
            self.calls, self.step = [], 0

        def train(self, indices):
            self.calls.append(len(indices))
            self.step += len(indices)
            return np.ones(len(indices))

        def state(self):
            return self.step

    trainer, plan = Recorder(), BatchPlan(n_samples=120, batch_size=10, epochs=1, seed=0)  # 12 steps
    m = train_and_measure(trainer, plan, window_steps=50, checkpoints={0, 4, 9})
    assert m.states == {0: 0, 4: 4, 9: 9} and m.steps == 12
    assert trainer.calls == [1, 3, 5, 3]  # the first step alone (compile), then windows cut at 4 and 9


# ---------------------------------------------- the twins' other summation orders
def test_the_blocked_twin_sums_every_reduction_in_blocks_added_pairwise():
    from dlbench_backends.numpy.precision import Arithmetic

    blocked, rng = Arithmetic(blocks=4), np.random.default_rng(0)
    x = rng.standard_normal((86528, 4)).astype(np.float32)  # a conv bias gradient's batch x positions
    exact = x.astype(np.float64).sum(axis=0)
    parts = [x[i * 86528 // 4:(i + 1) * 86528 // 4].sum(axis=0) for i in range(4)]
    np.testing.assert_array_equal(blocked.sum(x, 0), (parts[0] + parts[1]) + (parts[2] + parts[3]))
    assert not np.array_equal(blocked.sum(x, 0), x.sum(axis=0))  # another order: other roundings
    np.testing.assert_allclose(blocked.sum(x, 0), exact, rtol=1e-4, atol=1e-3)
    images = rng.standard_normal((6, 5, 5, 3)).astype(np.float32)
    assert blocked.sum(images, (0, 1, 2), keepdims=True).shape == (1, 1, 1, 3)
    np.testing.assert_allclose(blocked.sum(images, (0, 1, 2)), images.sum(axis=(0, 1, 2)), rtol=1e-5)
    a, b = rng.standard_normal((7, 288)).astype(np.float32), rng.standard_normal((288, 5)).astype(np.float32)
    out = np.empty((7, 5), np.float32)
    assert blocked.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_the_reversed_twin_routes_a_tied_max_pool_gradient_to_the_last_maximum():
    from dlbench.network import MaxPool2D
    from dlbench_backends.numpy.kernels import PoolLayer
    from dlbench_backends.numpy.precision import Arithmetic

    x = np.array([[[[0.5], [0.5]], [[0.1], [0.5]]]], np.float32)  # one 2x2 window, three tied maxima
    for arith, routed in ((Arithmetic(), (0, 0)), (Arithmetic(reverse=True), (1, 1))):
        pool = PoolLayer(MaxPool2D(2), "max", arith)
        pool.forward(x)
        grad = pool.backward(np.ones((1, 1, 1, 1), np.float32))[0, :, :, 0]
        assert grad.sum() == 1.0 and grad[routed] == 1.0


def test_batchnorm_statistics_are_summed_in_the_twins_order_and_the_references_bit_for_bit():
    from dlbench.network import BatchNormalization
    from dlbench_backends.numpy.kernels import BatchNormLayer
    from dlbench_backends.numpy.precision import Arithmetic

    x = np.random.default_rng(1).standard_normal((32, 9, 9, 4)).astype(np.float32) + 3.0
    params = {"gamma": np.ones(4, np.float32), "beta": np.zeros(4, np.float32)}

    def statistics(arith):
        state = {"moving_mean": np.zeros(4, np.float32), "moving_variance": np.zeros(4, np.float32)}
        BatchNormLayer(BatchNormalization(momentum=0.0), params, {}, state, arith).forward(x)
        return state["moving_mean"], state["moving_variance"]

    mean, var = statistics(Arithmetic())
    np.testing.assert_array_equal(mean, x.mean(axis=(0, 1, 2)))
    np.testing.assert_array_equal(var, x.var(axis=(0, 1, 2)))
    reversed_mean, _ = statistics(Arithmetic(reverse=True))
    assert not np.array_equal(reversed_mean, mean) and np.allclose(reversed_mean, mean, rtol=1e-5)


def test_the_frameworks_left_out_of_the_mutant_sweep_are_certified_by_the_kit_on_every_shipped_scenario():
    from dlbench.plugin.testing import test_contract

    marks = {m.name: m for m in test_contract.test_shipped_scenario_agrees_with_numpy_for_100_steps.pytestmark}
    assert set(MUTANT_SCENARIOS) <= set(marks["parametrize"].args[1])
