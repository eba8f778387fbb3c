import copy
import json
import random

import click
import pytest
from click.testing import CliRunner

from dlbench.cli import reports as cli_reports
from dlbench.cli import InputErrorGroup
from dlbench.report.compare import AccuracyCheck, SpeedCheck, StatusCheck, compare, mann_whitney_u
from dlbench.results.document import write_document


@click.group(cls=InputErrorGroup)
def cli():
    """The compare command under the same error handling as ``dlbench``."""


cli.add_command(cli_reports.compare)


def row(backend="numpy", speed=1000.0, accuracy=0.95, noise=0.02, seed=0, status="ok", scenario="digits-mlp"):
    """A result row whose raw samples (3 repeats, 40 windows) scatter by ``noise`` around ``speed``."""
    rng = random.Random(seed)
    return {"scenario": scenario, "backend": backend, "status": status, "error": None,
            "metrics": {"samples_per_sec": speed, "test_accuracy": accuracy,
                        "samples_per_sec_samples": [speed * (1 + rng.gauss(0, noise)) for _ in range(3)],
                        "window_samples_per_sec": [speed * (1 + rng.gauss(0, noise)) for _ in range(40)]}}


def document(*rows):
    return {"schema_version": 1, "created": "2026-11-28T16:00:00Z", "environment": {"hostname": "vm"},
            "settings": {}, "results": list(rows)}


def slower(doc: dict, factor: float) -> dict:
    """``doc`` with every speed (median and raw samples) multiplied by ``factor``."""
    doc = copy.deepcopy(doc)
    for r in doc["results"]:
        m = r["metrics"]
        m["samples_per_sec"] *= factor
        for key in ("samples_per_sec_samples", "window_samples_per_sec"):
            m[key] = [x * factor for x in m.get(key, [])]
        for key in ("median", "q1", "q3", "iqr", "mean", "std", "min", "max"):
            if key in m.get("samples_per_sec_stats", {}):
                m["samples_per_sec_stats"][key] *= factor
    return doc


def write(tmp_path, name, doc):
    path = tmp_path / name
    write_document(doc, path)
    return path


def test_the_same_run_compared_with_itself_exits_0(real_run):
    result = CliRunner().invoke(cli, ["compare", str(real_run), str(real_run)])
    assert result.exit_code == 0, result.output
    assert "no regression" in result.output and "regressed" not in result.output.replace("no regression", "")


def test_a_run_20_percent_slower_exits_1_and_names_the_regression(tmp_path):
    base = document(row("numpy", 1000.0, seed=1), row("torch", 800.0, seed=2))
    base_path, new_path = write(tmp_path, "base.json", base), write(tmp_path, "new.json", slower(base, 0.8))
    result = CliRunner().invoke(cli, ["compare", str(base_path), str(new_path), "--threshold", "5%"])
    assert result.exit_code == 1, result.output
    assert "digits-mlp / numpy: samples/s -20.0%" in result.output
    assert "2 regressed" in result.output


def test_a_doctored_real_run_20_percent_slower_exits_1(real_run, tmp_path):
    doc = json.loads(real_run.read_text())
    for r in doc["results"]:  # without raw samples the verdict rests on the medians, not on this machine's noise
        r["metrics"].pop("window_samples_per_sec", None)
        r["metrics"].pop("samples_per_sec_samples", None)
    result = CliRunner().invoke(cli, ["compare", str(real_run), str(write(tmp_path, "slow.json", slower(doc, 0.8)))])
    assert result.exit_code == 1, result.output
    assert "regressed" in result.output


def test_a_slowdown_within_the_threshold_passes(tmp_path):
    base = document(row(seed=1))
    result = CliRunner().invoke(cli, ["compare", str(write(tmp_path, "a.json", base)),
                                      str(write(tmp_path, "b.json", slower(base, 0.92))), "--threshold", "10%"])
    assert result.exit_code == 0, result.output


def test_a_slowdown_the_rank_test_cannot_tell_from_noise_is_inconclusive(tmp_path):
    base = document(row(noise=0.6, seed=3))
    new = document(row(speed=800.0, noise=0.6, seed=4))
    result = CliRunner().invoke(cli, ["compare", str(write(tmp_path, "a.json", base)),
                                      str(write(tmp_path, "b.json", new)), "--format", "json"])
    assert result.exit_code == 0, result.output
    change = json.loads(result.output)["changes"][0]
    assert change["verdict"] == "inconclusive" and change["p_value"] >= 0.05


def test_an_improvement_is_reported_and_passes(tmp_path):
    base = document(row(seed=1))
    result = CliRunner().invoke(cli, ["compare", str(write(tmp_path, "a.json", base)),
                                      str(write(tmp_path, "b.json", slower(base, 1.5))), "--format", "markdown"])
    assert result.exit_code == 0
    assert "**improved**" in result.output and "samples/s +50.0%" in result.output


def test_checks_are_objects_with_fails():
    base, slow = row(speed=1000.0), row(speed=700.0, seed=5)
    assert SpeedCheck(0.05).fails(slow, base).startswith("samples/s -30.0%")
    assert SpeedCheck(0.05).fails(base, slow) is None
    assert SpeedCheck(0.05).improves(base, slow).startswith("samples/s +42.9%")
    assert AccuracyCheck(0.01).fails(row(accuracy=0.90), row(accuracy=0.95)) == \
        "test accuracy -0.0500 (tolerance 0.01)"
    assert AccuracyCheck(0.01).fails(row(accuracy=0.945), row(accuracy=0.95)) is None
    failed = {"scenario": "digits-mlp", "backend": "numpy", "status": "failed", "error": "boom"}
    assert StatusCheck().fails(failed, base) == "status failed (was ok): boom"


def test_rows_only_on_one_side_are_new_or_missing_and_do_not_fail():
    changes = compare(document(row("numpy"), row("torch")), document(row("numpy"), row("jax")))
    assert {c.backend: c.verdict for c in changes} == {"numpy": "same", "torch": "missing", "jax": "new"}
    assert not any(c.regressions for c in changes)


def test_a_backend_that_stopped_working_is_a_regression(tmp_path):
    base = document(row("torch"))
    new = document({"scenario": "digits-mlp", "backend": "torch", "status": "timeout", "error": "no result"})
    result = CliRunner().invoke(cli, ["compare", str(write(tmp_path, "a.json", base)),
                                      str(write(tmp_path, "b.json", new))])
    assert result.exit_code == 1 and "status timeout (was ok)" in result.output


def test_mann_whitney_u_matches_the_textbook():
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0 and p == pytest.approx(0.0122, abs=1e-4)
    assert mann_whitney_u([1, 1, 1], [1, 1, 1]) == (4.5, 1.0)
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [3.1, 2.0, 5.5, 5.5, 1.0, 7.2], [4.0, 8.8, 9.1, 5.5, 6.0]
    expected = scipy_stats.mannwhitneyu(a, b, method="asymptotic")
    assert mann_whitney_u(a, b) == pytest.approx((expected.statistic, expected.pvalue))


@pytest.mark.parametrize("args, message", [
    (["compare", "missing.json", "{run}"], "missing.json: cannot read result file"),
    (["compare", "{run}", "{run}", "--threshold", "fast"], "expected a percentage such as 5%"),
])
def test_bad_compare_input_exits_2(real_run, args, message):
    result = CliRunner().invoke(cli, [a.format(run=real_run) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
