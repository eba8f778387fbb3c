"""The re-synchronised parity certificate (dlbench/run/certificate.py): its
pieces, and a mutation test of the judge — deliberately wrong copies of the
NumPy backend must be judged disagreeing on every shipped scenario whose maths
their slip changes, while torch, TensorFlow and JAX agree on all of them."""

from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainingState
from dlbench.plugin.manager import load_plugins
from dlbench.run import certificate, parity
from dlbench.run.certificate import checkpoint_steps, judge, segment_batches
from dlbench.scenario import resolve_scenario, scenario_files

import mutant_plugins

STEPS = 40  # each scenario's first 40 steps: eight checkpoints spread over them
TEST_SCENARIOS = [str(p) for p in sorted((Path(__file__).parent / "scenarios").glob("*.toml"))]


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


def run_cell(scenario: str, backends: list[str], tmp_path) -> dict:
    """Rows of ``backends`` (the reference first) on ``scenario``, judged as a run judges them."""
    from dlbench.run.worker import RunRequest, execute

    # windows of 5 steps: checkpoints are window starts, so eight of them spread over the 40 steps
    rows = [execute(RunRequest(scenario=scenario, backend=b, overrides={"max_steps": STEPS}, window_steps=5,
                               parity_dir=str(tmp_path))) for b in ["numpy", *backends]]
    parity.annotate(rows)
    return {r["backend"]: r for r in rows}


@pytest.fixture
def mutants(monkeypatch):
    from dlbench.plugin import manager

    monkeypatch.setenv("DLBENCH_PLUGINS", "mutant_plugins")
    manager.get_plugins.cache_clear()
    yield
    manager.get_plugins.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [*sorted(scenario_files()), *TEST_SCENARIOS],
                         ids=lambda s: Path(s).stem)
def test_real_backends_agree_and_every_applicable_mutant_disagrees(scenario, tmp_path, mutants):
    loaded = resolve_scenario(scenario)
    applicable = [m.name for m in mutant_plugins.MUTANTS if m.applies(loaded)]
    frameworks = [b for b in ("torch", "tensorflow", "jax") if require_backend(b)]
    rows = run_cell(scenario, [*frameworks, *applicable], tmp_path)
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
