from dlbench.parity.verdict import compare
from dlbench.run.row import annotate


def row(backend, losses, acc, stochastic=False, status="ok", scenario="s"):
    return {"scenario": scenario, "backend": backend, "status": status, "stochastic": stochastic,
            "metrics": {"loss_history": losses, "loss_history_every": 2, "test_accuracy": acc}}


def test_identical_histories_agree():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    result = compare(row("torch", [2.0, 1.0002, 0.5], 0.9), ref)
    assert result["agrees"] and result["kind"] == "loss-history"
    assert abs(result["max_rel_loss_diff"] - 2e-4) < 1e-9 and result["first_step_over"] is None


def test_first_step_over_tolerance_is_reported_in_training_steps():
    result = compare(row("jax", [2.0, 1.0, 0.6], 0.9), row("numpy", [2.0, 1.0, 0.5], 0.9))
    assert not result["agrees"] and result["first_step_over"] == 4  # third recorded point, every 2 steps


def test_near_zero_losses_are_compared_absolutely():
    result = compare(row("jax", [1e-9], 1.0), row("numpy", [3e-9], 1.0))
    assert result["agrees"]


def test_accuracy_difference_beyond_tolerance_disagrees():
    result = compare(row("tf", [1.0], 0.88), row("numpy", [1.0], 0.9))
    assert not result["agrees"] and abs(result["accuracy_diff"] + 0.02) < 1e-12


def test_dropout_runs_without_a_certificate_are_not_judged_on_one_accuracy_against_one():
    """Dropout masks are each framework's own: one accuracy against one is a sample against a sample."""
    for acc in (0.89, 0.8):
        result = compare(row("torch", [5.0], acc, stochastic=True), row("numpy", [1.0], 0.9, stochastic=True))
        assert result["kind"] == "accuracy-only" and result["verdict"] == "not judged" and result["agrees"] is None
        assert result["reason"].startswith("free runs not comparable")


def test_annotate_compares_within_a_scenario_only():
    rows = [row("numpy", [1.0], 0.9), row("torch", [1.0], 0.9), row("numpy", [2.0], 0.5, scenario="t"),
            row("torch", [9.0], 0.5, scenario="t"), row("jax", [1.0], 0.9, status="failed")]
    annotate(rows)
    assert rows[1]["parity"]["agrees"] and not rows[3]["parity"]["agrees"]
    assert "parity" not in rows[0] and rows[4]["parity"] is None


def test_drift_after_the_horizon_is_reported_but_judged_on_accuracy():
    ref = row("numpy", [1.0] * 10, 0.9)
    drifted = row("torch", [1.0] * 6 + [1.1] * 4, 0.905)
    result = compare(drifted, ref, horizon=12)  # points every 2 steps: drift starts at step 12
    assert result["agrees"] and result["first_step_over"] == 12
    assert not compare(drifted, ref, horizon=13)["agrees"]


def test_a_difference_within_the_references_rounding_noise_agrees():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    ref["metrics"]["rounding_noise"] = [0.0, 0.0, 0.02]
    result = compare(row("jax", [2.0, 1.0, 0.51], 0.9), ref)
    assert result["agrees"] and result["within_rounding_noise"] and result["first_step_over"] is None
    result = compare(row("jax", [2.0, 1.0, 0.55], 0.9), ref)
    assert not result["agrees"] and result["first_step_over"] == 4


def counted(row_, n=1000):
    row_["metrics"]["test_samples"] = n
    return row_


def test_accuracy_is_judged_within_three_standard_errors_of_the_difference_of_two_accuracies():
    """Each accuracy is a proportion over its test set: the difference of two has the standard
    error sqrt(a(1-a)/n + b(1-b)/n); three of them (and at least ACCURACY_ATOL) is the tolerance."""
    ref = counted(row("numpy", [1.0, 1.0], 0.83))
    ref["metrics"]["rounding_noise"] = [0.0, 0.5]
    parted = compare(counted(row("tf", [1.0, 1.2], 0.79)), ref)
    assert parted["agrees"] and parted["accuracy_atol"] == pytest.approx(
        3 * math.sqrt(0.83 * 0.17 / 1000 + 0.79 * 0.21 / 1000))
    assert compare(counted(row("tf", [1.0, 1.2], 0.77)), ref)["verdict"] == "disagrees"
    short = compare(counted(row("tf", [2.3, 2.3], 0.13), 360), counted(row("numpy", [2.3, 2.3], 0.177), 360))
    assert short["agrees"]  # a short run near chance, 17 of 360 test samples apart: within 0.080


def test_an_accuracy_difference_of_exactly_the_tolerance_agrees():
    assert compare(row("tf", [1.0], 0.924), row("numpy", [1.0], 0.934))["agrees"]  # 10 of 1000 samples


# ------------------------------------------- the certificate's verdict (parity/verdict.compare)
import math  # noqa: E402

import pytest  # noqa: E402

def certified(row_, agrees=True, checkpoints=(True,) * 8, worst=None, verdict=None, reason=None):
    row_["metrics"]["certificate"] = {
        "agrees": agrees, "checkpoints": [{"step": 5 * i, "agrees": a} for i, a in enumerate(checkpoints)],
        "worst": worst}
    if verdict:
        row_["metrics"]["certificate"].update(verdict=verdict, reason=reason)
    return row_


WORST = {"step": 15, "margin": 0.4, "loss_diff": 1e-6, "loss_tol": 1e-5, "tensor": "layers[0].kernel",
         "tensor_diff": 2e-6, "tensor_tol": 3e-5}


def test_a_certified_backend_agrees_and_reports_its_worst_checkpoint():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    result = compare(certified(row("torch", [2.0, 1.0, 0.5], 0.9), worst=WORST,
                               checkpoints=(True,) * 6 + (False,) * 2), ref)
    assert result["kind"] == "certificate" and result["agrees"] and result["free_run_agrees"]
    assert result["checkpoints"] == 8 and result["checkpoints_agreeing"] == 6
    assert (result["worst_checkpoint"], result["worst_margin"], result["worst_loss_diff"], result["worst_loss_tol"],
            result["worst_tensor"], result["worst_tensor_diff"], result["worst_tensor_tol"]) == \
        (15, 0.4, 1e-6, 1e-5, "layers[0].kernel", 2e-6, 3e-5)
    assert result["accuracy_atol"] == 0.01 and result["reference"] == "numpy"


def test_a_backend_the_certificate_rejects_disagrees_even_when_its_free_run_matches():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    result = compare(certified(row("tf", [2.0, 1.0, 0.5], 0.9), agrees=False), ref)
    assert result["kind"] == "certificate" and not result["agrees"] and result["free_run_agrees"]


def test_a_certified_backend_with_another_outcome_disagrees():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    assert not compare(certified(row("tf", [2.0, 1.0, 0.5], 0.88)), ref)["agrees"]
    assert compare(certified(row("tf", [2.0, 1.0, 0.5], 0.89)), ref)["agrees"]  # exactly the tolerance
    assert not compare(certified(row("tf", [2.0, 1.0, 0.5], None)), ref)["agrees"]  # no test accuracy


def test_a_certified_backend_whose_free_run_parted_is_judged_within_sampling_error():
    ref = counted(row("numpy", [1.0, 1.0], 0.83))
    result = compare(certified(counted(row("tf", [1.0, 1.5], 0.79))), ref)
    assert result["agrees"] and not result["free_run_agrees"]
    assert result["accuracy_atol"] == pytest.approx(3 * math.sqrt(0.83 * 0.17 / 1000 + 0.79 * 0.21 / 1000))
    wrong = compare(certified(counted(row("tf", [1.0, 1.5], 0.77))), ref)
    assert wrong["verdict"] == "disagrees" and wrong["reason"].startswith("test accuracy -0.060")


def test_a_certified_dropout_run_rests_on_the_certificate_and_leaves_one_accuracy_unjudged():
    """The TF quickstart MLP at 16 steps read "no (acc +0.047)" with every checkpoint passing."""
    ref = row("numpy", [2.0, 1.0], 0.9, stochastic=True)
    for acc in (0.875, 0.853, 0.6):
        result = compare(certified(row("torch", [2.5, 1.5], acc, stochastic=True)), ref)
        assert result["kind"] == "certificate" and result["verdict"] == "agrees" and result["outcome"] == "not judged"
    rejected = compare(certified(row("torch", [2.5, 1.5], 0.9, stochastic=True), agrees=False,
                                 checkpoints=(False,) * 8), ref)
    assert rejected["verdict"] == "disagrees" and rejected["reason"] == "0/8 checkpoints within rounding"


def test_a_run_too_short_for_a_checkpoint_is_not_judged_and_never_reads_as_a_disagreement():
    """`--steps 1`: losses identical, no checkpoint; it used to read "no (0/0)" and exit 1."""
    ref = row("numpy", [2.0], 0.5)
    short = certified(row("torch", [2.0], 0.5), agrees=None, checkpoints=(), verdict="not judged",
                      reason="too short: fewer than 3 steps, no checkpoint")
    result = compare(short, ref)
    assert result["verdict"] == "not judged" and result["agrees"] is None
    assert result["reason"] == "too short: fewer than 3 steps, no checkpoint"
    old = certified(row("torch", [2.0], 0.5), agrees=False, checkpoints=())  # a schema-2 certificate
    assert compare(old, ref)["verdict"] == "not judged"


def test_a_run_too_short_for_a_checkpoint_whose_losses_part_already_disagrees():
    ref = row("numpy", [2.0, 1.0], 0.5)
    short = certified(row("torch", [2.0, 1.5], 0.5), agrees=None, checkpoints=(), verdict="not judged",
                      reason="too short")
    result = compare(short, ref)
    assert result["verdict"] == "disagrees" and result["reason"] == "losses differ from step 2"
    dropout = compare(certified(row("torch", [2.5], 0.5, stochastic=True), agrees=None, checkpoints=(),
                                verdict="not judged", reason="too short"), row("numpy", [2.0], 0.5, stochastic=True))
    assert dropout["verdict"] == "not judged"  # dropout losses part by design


def test_without_a_certificate_the_free_run_is_the_verdict_and_says_why():
    ref = row("numpy", [2.0, 1.0], 0.9)
    ours = row("jax", [2.0, 1.0], 0.9)
    ours["metrics"]["certificate"] = {}
    ours["metrics"]["certificate_error"] = "cannot export its training state"
    result = compare(ours, ref)
    assert result["kind"] == "loss-history" and result["agrees"]
    assert result["certificate_error"] == "cannot export its training state"
    assert "certificate_error" not in compare(row("jax", [2.0, 1.0], 0.9), ref)


# ------------------------------------------- the free-running comparison's edges
def test_histories_of_different_lengths_disagree_naming_the_lengths():
    result = compare(row("tf", [1.0, 1.0], 0.9), row("numpy", [1.0, 1.0, 1.0], 0.9))
    assert result["verdict"] == "disagrees" and result["reason"] == "2 loss points vs 3 for the reference"
    assert result["first_step_over"] == 0 and result["max_rel_loss_diff"] is None


def test_a_stochastic_reference_alone_makes_the_free_runs_incomparable():
    result = compare(row("torch", [5.0], 0.9), row("numpy", [1.0], 0.9, stochastic=True))
    assert result["kind"] == "accuracy-only" and result["verdict"] == "not judged"
    result = compare(row("torch", [5.0], 0.9, stochastic=True), row("numpy", [1.0], 0.9))
    assert result["kind"] == "accuracy-only"


def test_no_verdict_without_an_ok_row_or_a_history_on_both_sides():
    ref = row("numpy", [1.0], 0.9)
    assert compare(row("tf", [1.0], 0.9, status="failed"), ref) is None
    assert compare(row("tf", [1.0], 0.9), row("numpy", [1.0], 0.9, status="diverged")) is None
    assert compare(row("tf", [], 0.9), ref) is None
    assert compare(row("tf", [1.0], 0.9), row("numpy", [], 0.9)) is None


def test_a_loss_missing_on_one_side_only_is_a_disagreement():
    ref = row("numpy", [2.0, None], 0.9)
    assert compare(row("tf", [2.0, None], 0.9), ref)["agrees"]  # both non-finite at the same step
    result = compare(row("tf", [2.0, 1.0], 0.9), ref)
    assert not result["agrees"] and result["max_rel_loss_diff"] is None and result["first_step_over"] == 2


def test_steps_are_counted_one_per_point_without_a_stated_spacing():
    ours = row("tf", [1.0, 1.0, 2.0], 0.9)
    del ours["metrics"]["loss_history_every"]
    assert compare(ours, row("numpy", [1.0, 1.0, 1.0], 0.9))["first_step_over"] == 2


def test_a_difference_of_exactly_rtol_is_within_it():
    ref = row("numpy", [1.0, 2.0], 0.83)
    ref["metrics"]["test_samples"] = 1000  # would widen the accuracy tolerance, had the runs parted
    exact = compare(row("tf", [1.25, 2.0], 0.83), ref, rtol=0.25)
    assert exact["agrees"] and not exact["within_rounding_noise"] and exact["accuracy_atol"] == 0.01
    assert not compare(row("tf", [1.25, 2.0], 0.815), ref, rtol=0.25)["agrees"]  # 0.015 apart: not parted
    assert not compare(row("tf", [1.25, 2.5], 0.83), ref, rtol=0.2)["agrees"]


def test_a_loss_near_zero_is_compared_against_the_floor_not_itself():
    ref = row("numpy", [0.004], 0.9)
    result = compare(row("tf", [0.005], 0.9), ref, rtol=0.5)
    assert result["max_rel_loss_diff"] == pytest.approx(0.001 / 0.01) and result["agrees"]


def test_rounding_noise_forgives_up_to_twice_itself_and_only_where_it_was_measured():
    ref = row("numpy", [0.5, 0.5, 0.5], 0.9)
    ref["metrics"]["rounding_noise"] = [0.015625, 0.015625]  # 2**-6: differences below are exact
    at_twice = compare(row("tf", [0.53125, 0.5, 0.5], 0.9), ref)
    assert at_twice["agrees"] and at_twice["within_rounding_noise"]
    assert not compare(row("tf", [0.5390625, 0.5, 0.5], 0.9), ref)["agrees"]  # 2.5 times the noise
    beyond = compare(row("tf", [0.5, 0.5, 0.51], 0.9), ref)  # no noise measured at the third point
    assert not beyond["agrees"] and beyond["first_step_over"] == 4
    assert compare(row("tf", [0.5, 0.5, 0.5], 0.9), ref)["within_rounding_noise"] is False


def test_without_a_sample_count_the_accuracy_tolerance_stays_put_after_parting():
    ref = row("numpy", [1.0, 1.0], 0.83)  # parted at step 2, the horizon
    parted = compare(row("tf", [1.0, 1.2], 0.83), ref, horizon=2)
    assert parted["agrees"] and parted["accuracy_atol"] == 0.01
    assert not compare(row("tf", [1.0, 1.2], 0.815), ref, horizon=2)["agrees"]


def test_annotate_needs_an_ok_reference_and_compares_within_a_sweep_point():
    failed_ref = [row("numpy", [1.0], 0.9, status="failed"), row("torch", [1.0], 0.9)]
    annotate(failed_ref)
    assert "parity" not in failed_ref[1]
    rows = [row("numpy", [1.0], 0.9), row("numpy", [2.0], 0.9), row("torch", [2.0], 0.9), row("torch", [1.0], 0.9)]
    rows[1]["sweep_point"], rows[2]["sweep_point"] = {"batch_size": 8, "threads": 1}, {"threads": 1, "batch_size": 8}
    rows[0]["sweep_point"], rows[3]["sweep_point"] = {}, None  # no sweep point, however written
    annotate(rows)
    assert rows[2]["parity"]["agrees"] and rows[3]["parity"]["agrees"]
    assert "parity" not in rows[0] and "parity" not in rows[1]


def test_the_free_run_verdict_names_its_reference_and_settings():
    result = compare(row("tf", [1.0, 1.0], 0.9), row("numpy", [1.0, 1.0], 0.9), rtol=0.01, horizon=40)
    assert result == {"reference": "numpy", "kind": "loss-history", "agrees": True, "max_rel_loss_diff": 0.0,
                      "first_step_over": None, "accuracy_diff": 0.0, "rtol": 0.01, "accuracy_atol": 0.01,
                      "horizon": 40, "within_rounding_noise": False, "stochastic": False, "outcome": "agrees",
                      "outcome_reason": None, "verdict": "agrees", "reason": None}


def test_histories_of_different_lengths_are_reported_in_full():
    reason = "2 loss points vs 3 for the reference"
    assert compare(row("tf", [1.0, 1.0], 0.9), row("numpy", [1.0, 1.0, 1.0], 0.9)) == {
        "reference": "numpy", "kind": "loss-history", "agrees": False, "max_rel_loss_diff": None,
        "first_step_over": 0, "accuracy_diff": 0.0, "rtol": 1e-3, "horizon": 1000, "accuracy_atol": 0.01,
        "stochastic": False, "outcome": "disagrees", "outcome_reason": reason, "reason_losses": reason,
        "verdict": "disagrees", "reason": reason}


def test_the_accuracy_only_comparison_is_reported_in_full():
    from dlbench.parity.verdict import STOCHASTIC_REASON

    assert compare(row("torch", [5.0], 0.875, stochastic=True), row("numpy", [1.0], 0.9, stochastic=True)) == {
        "reference": "numpy", "kind": "accuracy-only", "agrees": None, "max_rel_loss_diff": None,
        "first_step_over": None, "accuracy_diff": 0.875 - 0.9, "accuracy_atol": None, "rtol": 1e-3,
        "horizon": 1000, "stochastic": True, "outcome": "not judged", "outcome_reason": STOCHASTIC_REASON,
        "verdict": "not judged", "reason": STOCHASTIC_REASON}


def test_a_test_accuracy_on_one_side_only_disagrees_where_accuracies_are_comparable():
    for ours, theirs in ((None, 0.9), (0.9, None)):
        free = compare(row("torch", [1.0], ours), row("numpy", [1.0], theirs))
        assert free["verdict"] == "disagrees" and free["accuracy_diff"] is None
        assert compare(row("torch", [1.0], ours, stochastic=True),
                       row("numpy", [1.0], theirs, True))["verdict"] == "not judged"
    assert compare(row("torch", [1.0], None), row("numpy", [1.0], None))["verdict"] == "agrees"  # nothing to compare


def test_a_row_without_metrics_has_no_verdict():
    assert compare({"backend": "tf", "status": "ok"}, row("numpy", [1.0], 0.9)) is None
    assert compare(row("tf", [1.0], 0.9), {"backend": "numpy", "status": "ok"}) is None


def test_a_loss_missing_on_one_side_is_not_forgiven_as_rounding_noise():
    ref = row("numpy", [2.0, 1.0], 0.9)
    ref["metrics"]["rounding_noise"] = [0.5, 0.5]
    for ours in ([2.0, None], [None, 1.0]):
        result = compare(row("tf", ours, 0.9), ref)
        assert not result["agrees"] and result["first_step_over"] is not None
    both = row("numpy", [2.0, None], 0.9)
    both["metrics"]["rounding_noise"] = [0.5, 0.5]
    assert compare(row("tf", [2.0, None], 0.9), both)["agrees"]


def test_a_certified_backend_whose_history_has_another_length_disagrees_on_the_outcome():
    ref = row("numpy", [2.0, 1.0, 0.5], 0.9)
    result = compare(certified(row("torch", [2.0, 1.0], 0.9)), ref)
    assert result["kind"] == "certificate" and not result["agrees"] and result["accuracy_atol"] == 0.01
    minimal = row("torch", [2.0, 1.0, 0.5], 0.9)
    minimal["metrics"]["certificate"] = {"agrees": True}  # no checkpoint list, no worst checkpoint
    result = compare(minimal, ref)
    assert result["verdict"] == "not judged" and result["checkpoints"] == result["checkpoints_agreeing"] == 0
    assert result["worst_checkpoint"] is None


def test_the_default_horizon_is_1000_steps():
    ref = row("numpy", [1.0] * 600, 0.9)  # a point every 2 steps
    drifted = row("torch", [1.0] * 500 + [1.1] * 100, 0.9)  # parts at point 500: step 1000
    assert compare(drifted, ref)["agrees"] and compare(drifted, ref)["horizon"] == 1000
    early = row("torch", [1.0] * 499 + [1.1] * 101, 0.9)  # step 998
    assert not compare(early, ref)["agrees"]


# ------------------------------------------- seeds: the rank test judges a dropout network's outcome
def seeded(backend, accuracies, stochastic=True):
    rows = []
    for seed, acc in enumerate(accuracies):
        r = row(backend, [1.0], acc, stochastic=stochastic)
        r["sweep_point"] = {"seed": seed}
        rows.append(r)
    return rows


def test_with_enough_seeds_the_rank_test_judges_a_dropout_networks_outcome():
    reference = seeded("numpy", [0.90, 0.91, 0.89, 0.92, 0.90, 0.91])
    same = seeded("torch", [0.91, 0.90, 0.92, 0.89, 0.91, 0.90])
    lower = seeded("jax", [0.80, 0.81, 0.79, 0.82, 0.80, 0.81])
    annotate([*reference, *same, *lower])
    assert all(r["parity"]["verdict"] == "agrees" and r["parity"]["seeds"] == 6 for r in same)
    assert all(r["parity"]["verdict"] == "disagrees" and r["parity"]["rank_test_p"] < 0.01 for r in lower)
    assert "rank test" in lower[0]["parity"]["reason"]


def test_too_few_seeds_for_the_rank_test_to_reach_its_level_leave_the_outcome_unjudged():
    reference, lower = seeded("numpy", [0.90, 0.91, 0.92]), seeded("jax", [0.50, 0.51, 0.52])
    annotate([*reference, *lower])  # 3 against 3: the smallest p the test can give is above 0.01
    assert all(r["parity"]["verdict"] == "not judged" for r in lower)


def test_seeds_of_a_network_without_dropout_keep_their_own_comparison():
    reference = seeded("numpy", [0.90] * 6, stochastic=False)
    ours = seeded("torch", [0.90] * 6, stochastic=False)
    annotate([*reference, *ours])
    assert all(r["parity"]["kind"] == "loss-history" and "rank_test_p" not in r["parity"] for r in ours)
