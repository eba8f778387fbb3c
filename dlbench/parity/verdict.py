"""Do two backends train the same network? The verdict against the NumPy reference.

The verdict has three values (``parity["verdict"]``):

* **agrees**: the re-synchronised certificate (:mod:`dlbench.parity.certificate`)
  found the backend's training steps within the reference's own float32
  rounding at enough checkpoints (its k-of-n rule), and the outcome (test
  accuracy), where it is comparable, is within its sampling error;
* **disagrees**: too many checkpoints beyond that rounding, or a comparable
  outcome beyond its sampling error, or (runs too short for a checkpoint, or
  a backend without a certificate) loss histories that part within the
  horizon;
* **not judged**, with ``parity["reason"]``: the run is too short for a
  checkpoint (fewer steps than a segment), or a single checkpoint was only
  just over its tolerance, or, without a certificate, the free runs are not
  comparable (dropout). ``parity["agrees"]`` is then None (True / False for
  the other two, as in documents of schema 2).

The outcome is compared only where it means something. Dropout draws its
masks from each framework's own generator, so two backends training a
network with dropout follow different trajectories by design, and one
accuracy against one is a sample against a sample: not judged, unless the
run trained from several seeds (``--seeds``), where a two-sided Mann-Whitney
rank test of the seeds' accuracies against the reference's decides (at
``RANK_TEST_ALPHA``, once there are enough seeds for the test to reach it).
Without dropout the accuracies are compared within three standard errors of
the difference of two accuracies measured on the same number of test
samples (and at least ``ACCURACY_ATOL``): a short run's accuracy near chance
moves by several test samples for a tiny change of the weights.

The free-running comparison is information beside the verdict, and the
verdict itself only where there is no certificate. Per step ``i``, the
relative loss difference is ``|loss_i - ref_i| / max(|ref_i|, LOSS_FLOOR)``.
The free runs agree when every step of the first ``HORIZON_STEPS`` is within
``rtol`` (in documents written before the certificate, or within twice the
reference's ``rounding_noise``) and the outcome agrees. The horizon exists
because training is chaotic: two float32 implementations that differ by one
rounding in a sum drift apart exponentially.
"""

from __future__ import annotations

import json
import math

from dlbench.parity.stats import mann_whitney_u, smallest_p

REFERENCE_BACKEND = "numpy"


def is_reference(backend: str) -> bool:
    """Whether ``backend`` is the reference every other backend is judged
    against (the one place that decides a backend's role)."""
    return backend == REFERENCE_BACKEND


AGREES, DISAGREES, NOT_JUDGED = "agrees", "disagrees", "not judged"
VERDICTS = (AGREES, DISAGREES, NOT_JUDGED)
LOSS_RTOL = 1e-3
LOSS_FLOOR = 1e-2
ACCURACY_ATOL = 0.01
#: accuracies are compared within this many standard errors of their difference
ACCURACY_Z = 3.0
#: a seed sweep's rank test calls the outcome different below this p-value
RANK_TEST_ALPHA = 0.01
HORIZON_STEPS = 1000
#: the measured rounding noise is one sample of how far float32 can move a
#: trajectory; a backend within twice that is indistinguishable from rounding
NOISE_FACTOR = 2.0
STOCHASTIC_REASON = ("free runs not comparable: dropout masks come from each framework's own generator "
                     "(--seeds N compares the outcome distributions)")


def compare(row: dict, reference: dict, rtol: float = LOSS_RTOL, accuracy_atol: float = ACCURACY_ATOL,
            horizon: int = HORIZON_STEPS) -> dict | None:
    """Parity of ``row`` against ``reference``; None when either has no history."""
    free = _free_run(row, reference, rtol, accuracy_atol, horizon)
    if free is None:
        return None
    metrics = row.get("metrics", {})
    cert = metrics.get("certificate")
    if not cert:
        if metrics.get("certificate_error"):
            free["certificate_error"] = metrics["certificate_error"]
        return decide(free)
    checkpoints = cert.get("checkpoints", [])
    worst = cert.get("worst") or {}
    parity = {**free, "kind": "certificate", "free_run_agrees": free["agrees"],
              "certificate_verdict": certificate_verdict(cert), "certificate_reason": cert.get("reason"),
              "checkpoints": len(checkpoints),
              "checkpoints_agreeing": sum(1 for c in checkpoints if c["agrees"]),
              "tolerated_failures": cert.get("tolerated_failures"),
              "worst_checkpoint": worst.get("step"), "worst_margin": worst.get("margin"),
              "worst_loss_diff": worst.get("loss_diff"), "worst_loss_tol": worst.get("loss_tol"),
              "worst_tensor": worst.get("tensor"), "worst_tensor_diff": worst.get("tensor_diff"),
              "worst_tensor_tol": worst.get("tensor_tol")}
    return decide(parity)


def certificate_verdict(cert: dict) -> str:
    """The certificate's own verdict (documents before the three values: from ``agrees``;
    no checkpoint at all was never a verdict)."""
    if cert.get("verdict") in VERDICTS:
        return cert["verdict"]
    return NOT_JUDGED if not cert.get("checkpoints") else AGREES if cert.get("agrees") else DISAGREES


def decide(parity: dict) -> dict:
    """``parity`` with its ``verdict``, ``agrees`` and ``reason`` from the
    certificate (when it has one), the free-run losses and the outcome."""
    verdict, reason = _verdict(parity)
    return {**parity, "verdict": verdict, "agrees": None if verdict == NOT_JUDGED else verdict == AGREES,
            "reason": reason}


def _verdict(p: dict) -> tuple[str, str | None]:
    outcome, outcome_reason = p["outcome"], p.get("outcome_reason")
    losses_part = p.get("first_step_over") is not None and p["first_step_over"] < p.get("horizon", HORIZON_STEPS)
    if p["kind"] == "certificate":
        cert = p["certificate_verdict"]
        if cert == DISAGREES:
            return DISAGREES, f"{p['checkpoints_agreeing']}/{p['checkpoints']} checkpoints within rounding"
        if outcome == DISAGREES:
            return DISAGREES, outcome_reason
        if cert == AGREES:
            return AGREES, None
        if losses_part and not p.get("stochastic"):
            return DISAGREES, f"losses differ from step {p['first_step_over']}"
        return NOT_JUDGED, p.get("certificate_reason") or "too short: no checkpoint"
    if p.get("stochastic"):
        return (outcome, outcome_reason) if outcome != NOT_JUDGED else (NOT_JUDGED, STOCHASTIC_REASON)
    if p.get("reason_losses"):
        return DISAGREES, p["reason_losses"]
    if losses_part:
        return DISAGREES, f"losses differ from step {p['first_step_over']}"
    return (AGREES, None) if outcome != DISAGREES else (DISAGREES, outcome_reason)


def _free_run(row: dict, reference: dict, rtol: float, accuracy_atol: float, horizon: int) -> dict | None:
    """The free-running comparison: loss histories step by step, and the outcome."""
    ours = row.get("metrics", {}).get("loss_history") or []
    ref = reference.get("metrics", {}).get("loss_history") or []
    if row.get("status") != "ok" or reference.get("status") != "ok" or not ours or not ref:
        return None
    stochastic = bool(row.get("stochastic") or reference.get("stochastic"))
    acc, ref_acc = row["metrics"].get("test_accuracy"), reference["metrics"].get("test_accuracy")
    accuracy_diff = None if acc is None or ref_acc is None else acc - ref_acc
    base = {"reference": reference["backend"], "stochastic": stochastic, "accuracy_diff": accuracy_diff,
            "rtol": rtol, "horizon": horizon}
    if stochastic:
        return {**base, "kind": "accuracy-only", "agrees": None, "max_rel_loss_diff": None,
                "first_step_over": None, "accuracy_atol": None, "outcome": NOT_JUDGED,
                "outcome_reason": STOCHASTIC_REASON}
    if len(ours) != len(ref):
        reason = f"{len(ours)} loss points vs {len(ref)} for the reference"
        return {**base, "kind": "loss-history", "agrees": False, "max_rel_loss_diff": None, "first_step_over": 0,
                "accuracy_atol": accuracy_atol, "outcome": DISAGREES, "outcome_reason": reason,
                "reason_losses": reason}
    every = row["metrics"].get("loss_history_every", 1)
    noise = reference["metrics"].get("rounding_noise") or []
    diffs = [_rel(a, b) for a, b in zip(ours, ref)]
    worst = max(diffs)
    over = [d > rtol and not (i < len(noise) and _abs(a, b) <= NOISE_FACTOR * noise[i])
            for i, (d, a, b) in enumerate(zip(diffs, ours, ref))]
    first_over = next((i * every for i, o in enumerate(over) if o), None)
    atol = max(accuracy_atol, ACCURACY_Z * _difference_error(acc, ref_acc, row["metrics"].get("test_samples"),
                                                             reference["metrics"].get("test_samples")))
    outcome, outcome_reason = _accuracy_outcome(acc, ref_acc, atol)
    agrees = (first_over is None or first_over >= horizon) and outcome == AGREES
    return {**base, "kind": "loss-history", "agrees": agrees, "max_rel_loss_diff": worst if math.isfinite(worst)
            else None, "first_step_over": first_over, "accuracy_atol": atol,
            "within_rounding_noise": any(d > rtol and not o for d, o in zip(diffs, over)),
            "outcome": outcome, "outcome_reason": outcome_reason}


def _accuracy_outcome(acc: float | None, ref_acc: float | None, atol: float) -> tuple[str, str | None]:
    """The outcome of two deterministic runs: a test accuracy on one side only is a difference."""
    if acc is None and ref_acc is None:
        return NOT_JUDGED, "no test accuracy to compare"
    if acc is None or ref_acc is None:
        return DISAGREES, f"test accuracy on one side only ({acc} vs the reference's {ref_acc})"
    diff = acc - ref_acc
    if _within(diff, atol):
        return AGREES, None
    return DISAGREES, f"test accuracy {diff:+.3f} (tolerance {atol:.3f})"


def _within(diff: float, atol: float) -> bool:
    """|diff| <= atol, where accuracies are counts over n (k/n): 10 samples of
    1000 is 0.01, not 0.010000000000000009."""
    return round(abs(diff), 9) <= atol


def _difference_error(a: float | None, b: float | None, n_a: int | None, n_b: int | None) -> float:
    """The standard error of the difference of two accuracies, each a binomial
    proportion over its own test set (0 where a count is missing)."""
    if a is None or b is None or not n_a or not n_b:
        return 0.0
    return math.sqrt(a * (1 - a) / n_a + b * (1 - b) / n_b)


def _abs(a: float | None, b: float | None) -> float:
    return float("inf") if a is None or b is None else abs(a - b)


def _rel(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return float("inf") if a is not b else 0.0
    return abs(a - b) / max(abs(b), LOSS_FLOOR)


def cell_of(row: dict, without_seed: bool = False) -> tuple:
    point = dict(row.get("sweep_point") or {})
    if without_seed:
        point.pop("seed", None)
    return row["scenario"], json.dumps(point, sort_keys=True)


def judge_seeds(rows: list[dict]) -> None:
    """Per (scenario, other sweep coordinates, backend) trained from several
    seeds with dropout: the outcome of every seed's row is the rank test of
    the seeds' test accuracies against the reference's, where the seeds are
    enough for it to reach ``RANK_TEST_ALPHA`` (else it stays not judged)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if "seed" in (row.get("sweep_point") or {}) and row.get("status") == "ok":
            groups.setdefault((*cell_of(row, without_seed=True), row["backend"]), []).append(row)
    for (scenario, point, backend), group in groups.items():
        reference = groups.get((scenario, point, REFERENCE_BACKEND), [])
        ours = [r["metrics"]["test_accuracy"] for r in group if r["metrics"].get("test_accuracy") is not None]
        ref = [r["metrics"]["test_accuracy"] for r in reference if r["metrics"].get("test_accuracy") is not None]
        judged = [r for r in group if (r.get("parity") or {}).get("stochastic")]
        if is_reference(backend) or not judged or smallest_p(len(ours), len(ref)) >= RANK_TEST_ALPHA:
            continue
        p_value = mann_whitney_u(ours, ref)[1]
        outcome = AGREES if p_value >= RANK_TEST_ALPHA else DISAGREES
        reason = None if outcome == AGREES else (f"test accuracy over {len(ours)} seeds differs from the "
                                                 f"reference's {len(ref)} (rank test p = {p_value:.2g})")
        for r in judged:
            r["parity"] = decide({**r["parity"], "outcome": outcome, "outcome_reason": reason,
                                  "rank_test_p": p_value, "seeds": len(ours)})
