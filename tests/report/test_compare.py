import copy
import json
import random

import click
import pytest
from click.testing import CliRunner

from dlbench.cli import reports as cli_reports
from dlbench.cli import InputErrorGroup
from dlbench.report.compare import AccuracyCheck, LatencyCheck, SpeedCheck, StatusCheck, compare, mann_whitney_u
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


# ------------------------------------------------------------ each check at its edges
from dlbench.report.compare import (ParityCheck, different_machines, exit_code, markdown,  # noqa: E402
                                    raw_samples, reasons, summary)


def bare(speed=None, accuracy=None, repeats=None, windows=None, **extra):
    metrics = {"samples_per_sec": speed, "test_accuracy": accuracy, "samples_per_sec_samples": repeats,
               "window_samples_per_sec": windows}
    return {"scenario": "s", "backend": "b", "status": "ok", **extra,
            "metrics": {k: v for k, v in metrics.items() if v is not None}}


def test_a_slowdown_of_exactly_the_threshold_is_not_a_regression():
    assert SpeedCheck(0.25).fails(bare(750.0), bare(1000.0)) is None
    assert SpeedCheck(0.25).fails(bare(749.0), bare(1000.0)) == "samples/s -25.1% (threshold 25%)"


def test_an_accuracy_drop_of_exactly_the_tolerance_is_not_a_regression():
    # accuracies are counts over the test set: 940 of 1000 vs 950 of 1000 is a drop of exactly 0.01
    assert AccuracyCheck(0.01).fails(bare(accuracy=0.94), bare(accuracy=0.95)) is None
    assert AccuracyCheck(0.01).improves(bare(accuracy=0.95), bare(accuracy=0.94)) is None
    assert AccuracyCheck(0.01).fails(bare(accuracy=0.939), bare(accuracy=0.95)) == \
        "test accuracy -0.0110 (tolerance 0.01)"
    assert AccuracyCheck(0.01).improves(bare(accuracy=0.961), bare(accuracy=0.95)) == \
        "test accuracy +0.0110 (tolerance 0.01)"


def test_a_missing_or_non_finite_metric_is_never_a_regression():
    assert SpeedCheck(0.05).fails(bare(), bare(1000.0)) is None
    assert SpeedCheck(0.05).fails(bare(float("nan")), bare(1000.0)) is None
    assert SpeedCheck(0.05).fails(bare(500.0), bare(float("inf"))) is None
    assert AccuracyCheck(0.01).fails(bare(accuracy=0.5), bare()) is None
    assert AccuracyCheck(0.01).fails(bare(), bare(accuracy=0.5)) is None


def test_the_rank_test_uses_repeats_when_they_can_be_significant_else_windows():
    five, fast = [100.0, 101.0, 102.0, 103.0, 104.0], [200.0, 201.0, 202.0, 203.0, 204.0]
    windows = [float(x) for x in range(100, 140)]
    kind, a, b = raw_samples(bare(repeats=five, windows=windows), bare(repeats=fast, windows=windows), 0.05)
    assert (kind, a, b) == ("repeats", five, fast)
    three = [100.0, 101.0, 102.0]  # three repeats each cannot reach p < 0.05
    assert raw_samples(bare(repeats=three, windows=windows), bare(repeats=three, windows=windows[:3]), 0.05) == \
        ("windows", windows, windows[:3])
    one, six = [1.0], [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # p could reach 0.21 < 0.5, but one sample is no spread
    assert raw_samples(bare(repeats=one, windows=one), bare(repeats=six, windows=six), 0.5) is None
    assert raw_samples(bare(repeats=six, windows=six), bare(repeats=one, windows=one), 0.5) is None
    assert raw_samples(bare(repeats=[1.0, None, float("nan"), 2.0, 3.0, 4.0, 5.0]), bare(repeats=five), 0.05) == \
        ("repeats", [1.0, 2.0, 3.0, 4.0, 5.0], five)
    assert raw_samples(bare(), bare(), 0.05) is None
    two = [1.0, 2.0]  # two windows against forty can be significant (p >= 0.0196)
    assert raw_samples(bare(windows=two), bare(windows=windows), 0.05) == ("windows", two, windows)
    assert raw_samples(bare(windows=windows), bare(windows=two), 0.05) == ("windows", windows, two)


def test_a_significant_slowdown_is_a_regression_and_an_insignificant_one_a_doubt():
    base = bare(1000.0, repeats=[1000.0, 1001.0, 1002.0, 1003.0, 1004.0])
    slow = bare(800.0, repeats=[800.0, 801.0, 802.0, 803.0, 804.0])
    assert SpeedCheck(0.05).fails(slow, base).startswith("samples/s -20.0% (threshold 5%; p=0.012 over repeats")
    assert SpeedCheck(0.05).doubts(slow, base) is None
    mixed = bare(800.0, repeats=[700.0, 1003.5, 800.0, 1000.5, 900.0])
    assert SpeedCheck(0.05).fails(mixed, base) is None
    assert SpeedCheck(0.05).doubts(mixed, base).endswith(": not significant, treated as noise")
    assert SpeedCheck(0.05).improves(base, mixed) is None  # faster, but not significantly
    assert SpeedCheck(0.05).improves(base, slow).startswith("samples/s +25.0%")


def test_a_backend_that_stopped_agreeing_with_the_reference_is_a_regression():
    agreed, disagrees = bare(parity={"agrees": True}), bare(parity={"agrees": False})
    assert ParityCheck().fails(disagrees, agreed) == "no longer agrees with the reference"
    assert ParityCheck().fails(agreed, agreed) is None
    assert ParityCheck().fails(disagrees, disagrees) is None  # it never agreed: nothing changed
    assert ParityCheck().fails(bare(), agreed) is None  # no verdict now (no reference in NEW)
    assert ParityCheck().fails(bare(parity=None), agreed) is None


def test_an_ok_status_before_and_after_or_a_baseline_that_failed_is_no_status_regression():
    failed = bare(status="failed")
    assert StatusCheck().fails(bare(), bare()) is None
    assert StatusCheck().fails(failed, failed) is None
    assert StatusCheck().fails(bare(), failed) is None


def test_sweep_points_are_compared_point_by_point():
    def point(speed, batch):
        return {**bare(speed), "sweep_point": {"batch_size": batch}}

    changes = compare(document(point(1000.0, 8), point(1000.0, 64)), document(point(1000.0, 8), point(500.0, 64)))
    assert [(c.point, c.verdict) for c in changes] == [({"batch_size": 8}, "same"), ({"batch_size": 64}, "regressed")]
    assert exit_code(changes) == 1 and exit_code(changes[:1]) == 0


def test_the_markdown_summary_counts_each_verdict_and_lists_the_reasons():
    base = document(bare(1000.0, 0.9), {**bare(1000.0), "backend": "torch"}, {**bare(1000.0), "backend": "jax"})
    new = document(bare(700.0, 0.9), {**bare(1300.0), "backend": "torch"}, {**bare(1000.0), "backend": "tf"})
    changes = compare(base, new)
    assert [c.verdict for c in changes] == ["regressed", "improved", "missing", "new"]
    assert summary(changes, 0.05) == "1 regressed (threshold 5%); 1 improved, 1 new, 1 missing"
    assert summary(changes[2:], 0.05) == "no regression (threshold 5%); 1 new, 1 missing"
    assert reasons(changes) == [("regressed", "s / b: samples/s -30.0% (threshold 5%)"),
                                ("improved", "s / torch: samples/s +30.0% (threshold 5%)")]
    text = markdown(changes, ("a.json", "b.json"), 0.05)
    assert text.startswith("base: a.json · new: b.json\n")
    assert "| s | b | 1,000 → 700 | -30.0% | - | 0.9000 → 0.9000 | +0.0000 | **regressed** |" in text
    assert "| s | jax | 1,000 → - | - | - | - → - | - | missing |" in text
    assert text.endswith("- regressed: s / b: samples/s -30.0% (threshold 5%)\n"
                         "- improved: s / torch: samples/s +30.0% (threshold 5%)\n")


def test_speeds_below_100_keep_three_significant_digits():
    changes = compare(document(bare(12.345)), document(bare(6.1)))
    assert "| s | b | 12.3 → 6.1 | -50.6% |" in markdown(changes, ("a", "b"), 0.05)


def test_different_machines_name_each_difference():
    base = {"environment": {"hostname": "vm", "cpu": "EPYC", "logical_cores": 2}}
    new = {"environment": {"hostname": "vm", "cpu": "Xeon", "logical_cores": 2, "gpus": ["H100"]}}
    assert different_machines(base, new) == ["cpu: EPYC -> Xeon", "gpus: None -> ['H100']"]
    assert different_machines(base, base) == [] and different_machines({}, {}) == []
    moved = {"environment": {"hostname": "box", "cpu": "EPYC", "logical_cores": 64}}
    assert different_machines(base, moved) == ["hostname: vm -> box", "logical_cores: 2 -> 64"]


from dlbench.report.compare import as_json, default_checks, rich_table  # noqa: E402

SEPARATED = ([1000.0, 1001.0, 1002.0, 1003.0, 1004.0], [800.0, 801.0, 802.0, 803.0, 804.0])


def test_the_p_value_of_a_change_is_the_rank_test_of_its_samples():
    changes = compare(document(bare(1000.0, repeats=SEPARATED[0])), document(bare(800.0, repeats=SEPARATED[1])))
    p, kind = changes[0].p_value()
    assert kind == "repeats" and p == pytest.approx(0.012185780355344813, rel=1e-12)
    assert compare(document(bare(1000.0)), document(bare(800.0)))[0].p_value() is None  # no raw samples
    assert compare(document(bare(1000.0)), document())[0].p_value() is None  # missing in NEW


def test_the_json_of_a_change_has_every_figure():
    base = {**bare(1000.0, 0.9, repeats=SEPARATED[0]), "sweep_point": {"batch_size": 8}}
    new = {**bare(800.0, 0.9, repeats=SEPARATED[1]), "sweep_point": {"batch_size": 8}}
    (entry,) = as_json(compare(document(base), document(new)))
    assert entry == {"scenario": "s", "backend": "b", "sweep_point": {"batch_size": 8}, "verdict": "regressed",
                     "speed_change": pytest.approx(-0.2), "accuracy_change": 0.0,
                     "p_value": pytest.approx(0.012185780355344813, rel=1e-12),
                     "regressions": ["samples/s -20.0% (threshold 5%; p=0.012 over repeats)"], "doubts": [],
                     "improvements": []}
    (plain,) = as_json(compare(document(bare(1000.0)), document(bare(1000.0))))
    assert plain["sweep_point"] is None and plain["p_value"] is None and plain["verdict"] == "same"


def test_the_default_checks_carry_every_setting():
    status, parity_, speed, latency, accuracy = default_checks(0.1, 0.02, 0.2)
    assert (type(status), type(parity_), type(latency)) == (StatusCheck, ParityCheck, LatencyCheck)
    assert (speed.threshold, speed.alpha, latency.threshold, latency.alpha, accuracy.tolerance) == (
        0.1, 0.2, 0.1, 0.2, 0.02)


def test_reasons_name_the_sweep_point_and_list_doubts():
    mixed = [700.0, 1003.5, 800.0, 1000.5, 900.0]  # slower, but not significantly
    base = [{**bare(1000.0, repeats=SEPARATED[0]), "sweep_point": {"batch_size": 8, "threads": 2}},
            {**bare(1000.0, repeats=SEPARATED[0]), "backend": "torch"}]
    new = [{**bare(800.0, repeats=mixed), "sweep_point": {"batch_size": 8, "threads": 2}},
           {**bare(1300.0, repeats=[x * 1.3 for x in SEPARATED[0]]), "backend": "torch"}]
    changes = compare(document(*base), document(*new))
    assert [c.verdict for c in changes] == ["inconclusive", "improved"]
    (doubt, improvement) = reasons(changes)
    assert doubt[0] == "inconclusive" and doubt[1].startswith("s / b [batch_size=8, threads=2]: samples/s -20.0%")
    assert doubt[1].endswith(": not significant, treated as noise")
    assert improvement[0] == "improved" and improvement[1].startswith("s / torch: samples/s +30.0%")


def test_the_markdown_table_in_full():
    base = document(bare(1000.0, 0.9, repeats=SEPARATED[0]), {**bare(50.0, 0.5), "scenario": "a|b"})
    new = document(bare(800.0, 0.9, repeats=SEPARATED[1]), {**bare(50.0, 0.5), "scenario": "a|b"})
    assert markdown(compare(base, new), ("a.json", "b.json"), 0.05) == (
        "base: a.json · new: b.json\n"
        "\n"
        "| scenario | backend | samples/s base → new | change | p | test acc base → new | Δacc | verdict |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| s | b | 1,000 → 800 | -20.0% | 0.012 | 0.9000 → 0.9000 | +0.0000 | **regressed** |\n"
        "| a\\|b | b | 50 → 50 | +0.0% | - | 0.5000 → 0.5000 | +0.0000 | same |\n"
        "\n"
        "1 regressed (threshold 5%); 1 same\n"
        "- regressed: s / b: samples/s -20.0% (threshold 5%; p=0.012 over repeats)\n")


def test_the_markdown_table_shows_the_sweep_column_only_for_sweeps():
    point = {**bare(1000.0), "sweep_point": {"threads": 4}}
    text = markdown(compare(document(point, bare(1000.0)), document(point, bare(1000.0))), ("a", "b"), 0.05)
    assert "| scenario | backend | sweep | samples/s base → new |" in text
    assert "| s | b | threads=4 | 1,000 → 1,000 |" in text and "| s | b | - | 1,000 → 1,000 |" in text


def test_the_terminal_table_has_a_row_per_change_with_its_cells():
    from rich.console import Console

    changes = compare(document(bare(1000.0, 0.9, repeats=SEPARATED[0]), {**bare(1000.0), "backend": "jax"}),
                      document(bare(800.0, 0.9, repeats=SEPARATED[1]), {**bare(1000.0), "sweep_point": {"threads": 2}}))
    console = Console(width=200, record=True, color_system=None)
    console.print(rich_table(changes))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "scenario" in line)
    assert all(name in header for name in ("backend", "sweep", "samples/s base → new", "verdict"))
    regressed = next(line for line in lines if "regressed" in line)
    for cell in ("s", "b", "1,000 → 800", "-20.0%", "0.012", "0.9000 → 0.9000", "+0.0000"):
        assert cell in regressed
    assert any("jax" in line and "missing" in line for line in lines)
    assert any("threads=2" in line and "new" in line for line in lines)


def test_tables_show_p_values_at_the_alpha_asked_for():
    three = ([1000.0, 1001.0, 1002.0], [800.0, 801.0, 802.0])  # p = 0.081: shown at alpha 0.2, not at 0.05
    changes = compare(document(bare(1000.0, repeats=three[0])), document(bare(800.0, repeats=three[1])))
    assert "| -20.0% | - |" in markdown(changes, ("a", "b"), 0.05)
    assert "| -20.0% | 0.081 |" in markdown(changes, ("a", "b"), 0.05, alpha=0.2)

    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(rich_table(changes, alpha=0.2))
    assert "0.081" in console.export_text()


def test_the_terminal_table_has_no_sweep_column_without_sweeps():
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(rich_table(compare(document(bare(1000.0, 0.9)), document(bare(900.0, 0.9)))))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "scenario" in line)
    assert "sweep" not in header and "samples/s base → new" in header and "verdict" in header
    assert any("1,000 → 900" in line and "regressed" in line for line in text.splitlines())


def test_a_summary_with_only_regressions_has_no_trailing_detail():
    changes = compare(document(bare(1000.0)), document(bare(500.0)))
    assert summary(changes, 0.05) == "1 regressed (threshold 5%)"


def test_the_default_accuracy_tolerance_is_one_point():
    changes = compare(document(bare(1000.0, 0.95)), document(bare(1000.0, 0.935)))
    assert changes[0].verdict == "regressed" and changes[0].regressions == ["test accuracy -0.0150 (tolerance 0.01)"]


def test_a_doubt_about_speed_outweighs_an_accuracy_improvement():
    mixed = [700.0, 1003.5, 800.0, 1000.5, 900.0]  # slower, but not significantly
    (change,) = compare(document(bare(1000.0, 0.90, repeats=SEPARATED[0])), document(bare(800.0, 0.93, repeats=mixed)))
    assert change.improvements == ["test accuracy +0.0300 (tolerance 0.01)"] and change.doubts
    assert change.verdict == "inconclusive"
    assert [kind for kind, _ in reasons([change])] == ["inconclusive"]


def test_the_accuracy_change_is_new_minus_base():
    (change,) = compare(document(bare(1000.0, 0.90)), document(bare(1000.0, 0.92)))
    assert change.accuracy_change == pytest.approx(0.02) and change.speed_change == 0.0
    assert as_json([change])[0]["accuracy_change"] == pytest.approx(0.02)
    assert "| 0.9000 → 0.9200 | +0.0200 | **improved** |" in markdown([change], ("a", "b"), 0.05)


def test_a_verdict_not_judged_is_no_regression_and_a_disagreement_is():
    from dlbench.report.compare import ParityCheck

    agreed = {"parity": {"verdict": "agrees", "agrees": True}}
    short = {"parity": {"verdict": "not judged", "agrees": None, "reason": "too short: no checkpoint"}}
    wrong = {"parity": {"verdict": "disagrees", "agrees": False}}
    assert ParityCheck().fails(short, agreed) is None
    assert ParityCheck().fails(wrong, agreed) == "no longer agrees with the reference"
    assert ParityCheck().fails({"parity": {"agrees": False}}, agreed) == "no longer agrees with the reference"
