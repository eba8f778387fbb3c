from dlbench.run.parity import annotate, compare


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


def test_dropout_runs_are_compared_on_accuracy_only():
    result = compare(row("torch", [5.0], 0.89, stochastic=True), row("numpy", [1.0], 0.9, stochastic=True))
    assert result["kind"] == "accuracy-only" and result["agrees"]
    assert not compare(row("torch", [1.0], 0.8, True), row("numpy", [1.0], 0.9, True))["agrees"]


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


def test_after_the_trajectories_part_accuracy_is_judged_within_sampling_error():
    ref = row("numpy", [1.0, 1.0], 0.83)
    ref["metrics"]["test_samples"] = 1000  # 2 standard errors: 0.0238
    ref["metrics"]["rounding_noise"] = [0.0, 0.5]
    parted = compare(row("tf", [1.0, 1.2], 0.817), ref)
    assert parted["agrees"] and parted["accuracy_atol"] > 0.02
    assert not compare(row("tf", [1.0, 1.2], 0.80), ref)["agrees"]
    same_path = compare(row("tf", [1.0, 1.0], 0.817), ref)
    assert not same_path["agrees"] and same_path["accuracy_atol"] == 0.01


def test_an_accuracy_difference_of_exactly_the_tolerance_agrees():
    assert compare(row("tf", [1.0], 0.924), row("numpy", [1.0], 0.934))["agrees"]  # 10 of 1000 samples
