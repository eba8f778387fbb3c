"""Do two backends train the same network? Compare against the NumPy reference.

The verdict rests on the re-synchronised certificate of
:mod:`dlbench.run.certificate` and on the outcome (test accuracy); what
follows describes the free-running comparison, which is reported beside it
and is the verdict only where a backend cannot take part in the certificate.

Per step ``i``, the relative loss difference is
``|loss_i - ref_i| / max(|ref_i|, LOSS_FLOOR)``: relative where the loss is
large, absolute (scaled by the floor) where it approaches zero, so a loss
of 1e-9 vs 2e-9 is not a disagreement. A backend agrees when every step of the first ``HORIZON_STEPS`` is within
``rtol`` — or, in documents written before the certificate, within twice
the reference's ``rounding_noise`` (a float64 and a one-ulp twin run over
the first 1000 steps) — and the final
test accuracies differ by at most ``accuracy_atol`` — or, once the two loss
histories have parted by more than ``rtol`` anywhere (two different models,
whatever the reason), by at most twice the binomial standard error of the
reference's accuracy on its test set.
The horizon exists because training is chaotic: two float32
implementations that differ by one rounding in a sum drift apart
exponentially (Adam at lr 1e-2 on MNIST-1D leaves 1e-3 after about 350
steps on every framework alike), so beyond it only the outcome — accuracy —
is judged. The largest difference and the first step over ``rtol`` are
reported over the whole run all the same.

Dropout draws its masks from each framework's own random generator, so two
backends training a network with dropout follow different trajectories by
design. For those runs (``row["stochastic"]``) only the test accuracies are
compared, within ``STOCHASTIC_ACCURACY_ATOL``; ``parity["kind"]`` says which
agreement was checked: ``"loss-history"`` or ``"accuracy-only"``.
"""

from __future__ import annotations

import json
import math

REFERENCE_BACKEND = "numpy"
LOSS_RTOL = 1e-3
LOSS_FLOOR = 1e-2
ACCURACY_ATOL = 0.01
STOCHASTIC_ACCURACY_ATOL = 0.03
HORIZON_STEPS = 1000
#: the measured rounding noise is one sample of how far float32 can move a
#: trajectory; a backend within twice that is indistinguishable from rounding
NOISE_FACTOR = 2.0


def compare(row: dict, reference: dict, rtol: float = LOSS_RTOL, accuracy_atol: float = ACCURACY_ATOL,
            horizon: int = HORIZON_STEPS) -> dict | None:
    """Parity of ``row`` against ``reference``; None when either has no history.

    With a certificate (:mod:`dlbench.run.certificate`) the verdict rests on
    it and on the outcome: the backend agrees at every re-synchronised
    checkpoint, and its test accuracy is within ``accuracy_atol`` (or the
    reference's sampling error, once the free runs have parted). The
    free-running comparison is kept beside it as information. Without one (a
    backend that cannot export its training state, a resumed run whose
    reference is gone) the free-run verdict below is all there is."""
    free = _free_run(row, reference, rtol, accuracy_atol, horizon)
    cert = row.get("metrics", {}).get("certificate")
    if free is None or not cert:
        if free is not None and row.get("metrics", {}).get("certificate_error"):
            free["certificate_error"] = row["metrics"]["certificate_error"]
        return free
    atol = STOCHASTIC_ACCURACY_ATOL if free["kind"] == "accuracy-only" else free.get("accuracy_atol", accuracy_atol)
    outcome = free["accuracy_diff"] is not None and _within(free["accuracy_diff"], atol)
    worst = cert.get("worst") or {}
    return {**free, "kind": "certificate", "agrees": bool(cert["agrees"]) and outcome,
            "free_run_agrees": free["agrees"], "accuracy_atol": atol,
            "checkpoints": len(cert.get("checkpoints", [])),
            "checkpoints_agreeing": sum(1 for c in cert.get("checkpoints", []) if c["agrees"]),
            "worst_checkpoint": worst.get("step"), "worst_margin": worst.get("margin"),
            "worst_loss_diff": worst.get("loss_diff"), "worst_loss_tol": worst.get("loss_tol"),
            "worst_tensor": worst.get("tensor"), "worst_tensor_diff": worst.get("tensor_diff"),
            "worst_tensor_tol": worst.get("tensor_tol")}


def _free_run(row: dict, reference: dict, rtol: float, accuracy_atol: float, horizon: int) -> dict | None:
    """The free-running comparison: loss histories step by step, and the outcome."""
    ours = row.get("metrics", {}).get("loss_history") or []
    ref = reference.get("metrics", {}).get("loss_history") or []
    if row.get("status") != "ok" or reference.get("status") != "ok" or not ours or not ref:
        return None
    if row.get("stochastic") or reference.get("stochastic"):
        return _compare_accuracy_only(row, reference)
    if len(ours) != len(ref):
        return {"reference": reference["backend"], "kind": "loss-history", "agrees": False, "max_rel_loss_diff": None,
                "first_step_over": 0, "accuracy_diff": None, "rtol": rtol,
                "reason": f"{len(ours)} loss points vs {len(ref)} for the reference"}
    every = row["metrics"].get("loss_history_every", 1)
    noise = reference["metrics"].get("rounding_noise") or []
    diffs = [_rel(a, b) for a, b in zip(ours, ref)]
    worst = max(diffs)
    over = [d > rtol and not (i < len(noise) and _abs(a, b) <= NOISE_FACTOR * noise[i])
            for i, (d, a, b) in enumerate(zip(diffs, ours, ref))]
    first_over = next((i * every for i, o in enumerate(over) if o), None)
    within_noise_only = any(d > rtol and not o for d, o in zip(diffs, over))
    acc, ref_acc = row["metrics"].get("test_accuracy"), reference["metrics"].get("test_accuracy")
    accuracy_diff = None if acc is None or ref_acc is None else acc - ref_acc
    if worst > rtol:  # the trajectories parted: two models, each accuracy a sample
        accuracy_atol = max(accuracy_atol, _sampling_error(ref_acc, reference["metrics"].get("test_samples")))
    agrees = ((first_over is None or first_over >= horizon) and accuracy_diff is not None
              and _within(accuracy_diff, accuracy_atol))
    return {"reference": reference["backend"], "kind": "loss-history", "agrees": agrees,
            "max_rel_loss_diff": worst if math.isfinite(worst) else None,
            "first_step_over": first_over, "accuracy_diff": accuracy_diff, "rtol": rtol,
            "accuracy_atol": accuracy_atol, "horizon": horizon, "within_rounding_noise": within_noise_only}


def _compare_accuracy_only(row: dict, reference: dict) -> dict:
    acc, ref_acc = row["metrics"].get("test_accuracy"), reference["metrics"].get("test_accuracy")
    diff = None if acc is None or ref_acc is None else acc - ref_acc
    return {"reference": reference["backend"], "kind": "accuracy-only", "agrees": diff is not None and
            _within(diff, STOCHASTIC_ACCURACY_ATOL), "max_rel_loss_diff": None, "first_step_over": None,
            "accuracy_diff": diff, "accuracy_atol": STOCHASTIC_ACCURACY_ATOL,
            "reason": "dropout masks come from each framework's own generator"}


def _within(diff: float, atol: float) -> bool:
    """|diff| <= atol, where accuracies are counts over n (k/n): 10 samples of
    1000 is 0.01, not 0.010000000000000009."""
    return round(abs(diff), 9) <= atol


def _sampling_error(accuracy: float | None, n: int | None) -> float:
    """Twice the binomial standard error of an accuracy measured on n samples."""
    if accuracy is None or not n:
        return 0.0
    return 2 * math.sqrt(accuracy * (1 - accuracy) / n)


def _abs(a: float | None, b: float | None) -> float:
    return float("inf") if a is None or b is None else abs(a - b)


def _rel(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return float("inf") if a is not b else 0.0
    return abs(a - b) / max(abs(b), LOSS_FLOOR)


def annotate(rows: list[dict]) -> None:
    """Set ``row['parity']`` on every row whose scenario (and sweep point) has an ok reference row."""
    def cell(row):
        return row["scenario"], json.dumps(row.get("sweep_point") or {}, sort_keys=True)

    references = {cell(r): r for r in rows if r["backend"] == REFERENCE_BACKEND and r.get("status") == "ok"}
    for row in rows:
        ref = references.get(cell(row))
        if ref is not None and row is not ref:
            row["parity"] = compare(row, ref)
