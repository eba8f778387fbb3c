"""Inference benchmarks: the timing arithmetic, the p99's interval, the
outputs judge (with its mutation test), the schema, compare, the reports
and the command line (``--mode inference|both``)."""

import copy
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.errors import InputError
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.report import compare as comparing, render
from dlbench.report.table import runs_of
from dlbench.results import schema
from dlbench.measure import inference
from dlbench.measure.session import prepare_scenario
from dlbench.scenario import resolve_scenario
from inference_mutants import MUTANTS

BATCHNORM_DROPOUT = "tests/scenarios/digits-cnn-batchnorm-dropout.toml"


# ----------------------------------------------------------------- timing
class StepClock:
    """A clock that advances by the next of ``durations`` every second reading."""

    def __init__(self, durations):
        self.durations, self.now, self.readings = list(durations), 0.0, 0

    def __call__(self):
        if self.readings % 2:
            self.now += self.durations.pop(0)
        self.readings += 1
        return self.now


def test_the_first_call_is_compile_time_and_warm_up_calls_are_not_timed():
    seen = []
    durations = [5.0] + [1.0] * inference.WARMUP_CALLS + [0.001, 0.002, 0.003, 0.004]
    entry = inference.measure_batch_size(lambda rows: seen.append(rows.copy()), 7, 3, calls=4,
                                         clock=StepClock(durations))
    assert entry["compile_seconds"] == 5.0
    assert entry["calls"] == 4 and entry["latency_samples_ms"] == pytest.approx([1, 2, 3, 4])
    assert entry["latency_ms"]["p50"] == pytest.approx(2.5) and entry["latency_ms"]["mean"] == pytest.approx(2.5)
    assert entry["latency_ms"]["p99"] == pytest.approx(np.percentile([1, 2, 3, 4], 99))
    assert entry["samples_per_sec"] == pytest.approx(3 * 4 / 0.010)
    # the same rows for every backend: batch k holds rows k*b ... modulo the test set
    assert [list(r) for r in seen[:3]] == [[0, 1, 2], [3, 4, 5], [6, 0, 1]]


def test_the_call_count_fits_the_time_budget_between_its_bounds():
    def calls_at(seconds):
        clock = StepClock([seconds] * (1 + inference.WARMUP_CALLS + inference.MAX_CALLS))
        return inference.measure_batch_size(lambda rows: None, 10, 1, clock=clock)["calls"]

    assert calls_at(1e-6) == inference.MAX_CALLS
    assert calls_at(0.01) == int(inference.TIME_BUDGET_SECONDS / 0.01)
    assert calls_at(1.0) == inference.MIN_CALLS


def binomial_cdf(k, n, q):
    return sum(math.comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize("n", [50, 300, 1000])
def test_the_p99_interval_is_the_tightest_order_statistics_that_cover_95_percent(n):
    samples = [float(i) for i in range(1, n + 1)]  # the k-th smallest is k
    low, high = inference.percentile_interval(samples)
    l = int(low)
    assert binomial_cdf(l - 1, n, 0.99) <= 0.025 < binomial_cdf(l, n, 0.99)  # P(B < l) within the tail, l + 1 not
    if high is None:  # the upper end reaches past the slowest call
        assert 1 - binomial_cdf(n - 1, n, 0.99) > 0.025
    else:
        u = int(high)
        assert 1 - binomial_cdf(u - 1, n, 0.99) <= 0.025 < 1 - binomial_cdf(u - 2, n, 0.99)
    if n == 1000:  # the documented figures: between the 983rd and 997th fastest of 1000 calls
        assert (low, high) == (983.0, 997.0)


@pytest.mark.parametrize("text, sizes", [(None, []), ("", []), ("1,32,256", [1, 32, 256]), ("8,8,1", [8, 1])])
def test_inference_batch_sizes_parse(text, sizes):
    assert inference.parse_batch_sizes(text) == sizes
    assert inference.batch_sizes_for(sizes, 64) == (sizes or [1, 64])


@pytest.mark.parametrize("text", ["0", "1,0", "-2", "a", "1,,2"])
def test_bad_inference_batch_sizes_are_refused(text):
    with pytest.raises(InputError, match="--inference-batch-size: .*expected positive integers"):
        inference.parse_batch_sizes(text)


# ----------------------------------------------------------- the judge
def session_for(backend, scenario=BATCHNORM_DROPOUT, extra=None):
    loaded = resolve_scenario(scenario, get_plugins().scenario_dirs)
    return prepare_scenario(loaded, backend, TrainerOptions(seed=0, extra=extra or {}))


def test_the_norm_wise_relative_difference_is_per_row_against_the_rows_largest_logit():
    exact = np.array([[1.0, -4.0], [0.5, 0.25]])
    ours = exact + np.array([[0.0, 0.004], [0.0005, 0.0]])
    assert inference.rel_diff(ours, exact) == (pytest.approx(1e-3), 0)
    assert inference.rel_diff(exact + np.array([[0, 0], [0, np.nan]]), exact) == (math.inf, 1)
    steps = np.stack([exact, 2 * exact], axis=1)  # a sequence model's (samples, steps, units): a row per sample
    assert inference.rel_diff(steps + 0.008 * (steps == -8.0), steps) == (pytest.approx(1e-3), 0)


def test_the_reference_agrees_with_its_float64_twin_within_its_own_rounding():
    metrics = inference.inference_metrics(session_for(get_plugins().backend("numpy")), [1, 32], 5,
                                          get_plugins().backend("numpy"))
    verdict = metrics["inference_outputs"]
    assert verdict["agrees"] and verdict["rows"] == 359
    assert 0 < verdict["max_rel_diff"] <= verdict["rounding"] < 1e-5
    assert verdict["tolerance"] == pytest.approx(max(10 * verdict["rounding"], 8 * np.finfo(np.float32).eps))
    assert [e["batch_size"] for e in metrics["inference"]] == [1, 32] and metrics["inference"][0]["calls"] == 5


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_a_backend_that_predicts_something_else_disagrees(mutant):
    verdict = inference.inference_metrics(session_for(mutant), [8], 2, get_plugins().backend("numpy"))[
        "inference_outputs"]
    assert not verdict["agrees"], mutant.name
    assert verdict["max_rel_diff"] > 10 * verdict["tolerance"]


def test_logits_of_another_shape_disagree():
    verdict = inference.output_agreement(np.zeros((3, 2)), np.ones((3, 4)), {"float32": np.ones((3, 4))}, "numpy")
    assert not verdict["agrees"] and "shape" in verdict["reason"]


# ---------------------------------------------------------------- schema
def inference_row(backend="numpy", samples=(1.0, 1.1, 0.9, 1.2), batch_size=1, agrees=True, mode="inference"):
    entry = inference.latency_entry(batch_size, list(samples), 0.5)
    return {"scenario": "s", "backend": backend, "status": "ok", "mode": mode,
            "metrics": {"inference": [entry], "inference_outputs": {"reference": "numpy", "agrees": agrees,
                                                                     "max_rel_diff": 1e-7, "tolerance": 1e-5}}}


@pytest.mark.parametrize("change, message", [
    ({"mode": "serve"}, "results[0].mode: unknown 'serve'"),
    ({"metrics": {"inference": {}}}, "results[0].metrics.inference: expected a list"),
    ({"metrics": {"inference": [{"batch_size": 0, "calls": 3, "latency_ms": {}}]}},
     "results[0].metrics.inference[0].batch_size: expected a positive integer, got 0"),
    ({"metrics": {"inference": [{"batch_size": 2, "calls": 3, "latency_ms": {"p50": 1}}]}},
     "results[0].metrics.inference[0].latency_ms: expected numbers p50, p90, p99, mean"),
])
def test_malformed_inference_rows_are_refused(change, message):
    doc = {"schema_version": 2, "results": [{**inference_row(), **change}]}
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        schema.checked_document(doc, "run.json")


def test_an_inference_row_passes_the_schema():
    doc = {"schema_version": schema.SCHEMA_VERSION, "results": [inference_row()]}
    assert schema.checked_document(copy.deepcopy(doc), "run.json") == doc


# --------------------------------------------------------------- compare
def test_compare_judges_latency_on_the_raw_per_call_samples():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.05, 300)
    slower = base * 1.2
    check = comparing.LatencyCheck(0.05)
    assert check.fails(inference_row(samples=slower), inference_row(samples=base)).startswith(
        "batch-1 inference p50 latency +20.0% (threshold 5%; p=")
    assert check.fails(inference_row(samples=base), inference_row(samples=slower)) is None
    assert check.improves(inference_row(samples=base), inference_row(samples=slower)).startswith(
        "batch-1 inference p50 latency -16.7%")
    # the median jumps by a third, the calls hardly differ: noise, not a regression
    even, tipped = inference_row(samples=[1.0, 2.0] * 50), inference_row(samples=[1.0] * 49 + [2.0] * 51)
    assert check.fails(tipped, even) is None
    assert check.doubts(tipped, even).endswith("not significant, treated as noise")
    # rows from runs at other batch sizes are not compared
    assert check.fails(inference_row(samples=slower, batch_size=8), inference_row(samples=base)) is None


def test_compare_reports_an_inference_regression_as_a_regression():
    base = {"results": [inference_row(samples=[1.0 + 0.01 * i for i in range(100)])]}
    new = {"results": [inference_row(samples=[1.5 + 0.01 * i for i in range(100)])]}
    changes = comparing.compare(base, new)
    assert changes[0].verdict == "regressed" and comparing.exit_code(changes) == 1


# --------------------------------------------------------------- reports
def document(rows):
    return {"schema_version": 2, "created": "2026-12-02T18:00:00Z", "environment": {"hostname": "vm"},
            "settings": {}, "results": rows}


def test_every_report_format_has_the_inference_table():
    rows = [inference_row("numpy", [2.0, 2.2, 2.1]), inference_row("torch", [1.0, 1.1, 1.05], agrees=False)]
    runs = runs_of([document(rows)])
    markdown = render.render(runs, "markdown")
    assert "Inference (s):" in markdown and "p99 ms \\[95% CI\\]" in markdown  # brackets escaped, shown as [95% CI]
    torch_line = next(line for line in markdown.splitlines() if line.startswith("| torch"))
    assert "| no |" in torch_line and "2.00×" in torch_line  # twice numpy's samples/s, but disagreeing
    assert "| test acc |" not in markdown  # nothing trained: no training table
    html = render.render(runs, "html", with_plots=False)
    assert "Inference (s):" in html and "p50 ms" in html
    records = json.loads(render.render(runs, "json"))["inference"]
    assert [(r["backend"], r["inference_batch_size"], r["outputs_agree"]) for r in records] == [
        ("numpy", 1, True), ("torch", 1, False)]
    assert records[1]["inference_vs_numpy"] == pytest.approx(2.0, rel=1e-6)
    assert "latency_p99_ms" in render.render(runs, "csv").splitlines()[0]


def test_sequence_inference_reports_tokens_per_second_and_other_rows_do_not():
    entry = inference.latency_entry(4, [2.0, 2.0], 0.1)  # 4 samples per 2 ms: 2000 samples/s
    assert inference.with_tokens([entry], None) == [entry]
    [tokens] = inference.with_tokens([entry], 20)
    assert tokens["tokens_per_sec"] == pytest.approx(40_000) and tokens["tokens_per_sample"] == 20
    sequence = inference_row("numpy", [2.0, 2.0], batch_size=4)
    sequence["metrics"]["inference"] = [tokens]
    markdown = render.render(runs_of([document([sequence])]), "markdown")
    assert "| tokens/s |" in markdown and "| 40,000 |" in markdown
    assert json.loads(render.render(runs_of([document([sequence])]), "json"))["inference"][0][
        "inference_tokens_per_sec"] == pytest.approx(40_000)
    assert "tokens/s |" not in render.render(runs_of([document([inference_row()])]), "markdown")


def test_the_latency_plot_draws_every_backend():
    from dlbench.report import plots

    runs = runs_of([document([inference_row("numpy"), inference_row("torch", [0.5, 0.6, 0.7])])])
    fig = plots.latency_figure(plots.entries(runs), "s")
    lines = fig.axes[0].get_lines()
    assert {line.get_label() for line in lines} >= {"numpy (4 calls)", "torch (3 calls)"}
    assert fig.axes[0].get_xscale() == "log"


# ----------------------------------------------------------- command line
def test_mode_inference_on_numpy_gives_a_row_with_latencies_and_agreeing_outputs(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--scenario", "xor-mlp", "--mode", "inference",
                                       "--inference-batch-size", "1,3", "--inference-calls", "20", "--format", "json",
                                       "--out", str(tmp_path), "--in-process"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["results"][0]
    assert row["mode"] == "inference" and row["status"] == "ok"
    assert [(e["batch_size"], e["calls"], len(e["latency_samples_ms"])) for e in row["metrics"]["inference"]] == [
        (1, 20, 20), (3, 20, 20)]
    assert row["metrics"]["inference_outputs"]["agrees"]
    assert "samples_per_sec_samples" not in row["metrics"] or row["metrics"].get("samples_per_sec") is None


def test_mode_inference_on_a_sequence_scenario_counts_tokens(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--scenario", "adding-gru", "--mode", "inference",
                                       "--inference-batch-size", "2", "--inference-calls", "5", "--format", "json",
                                       "--out", str(tmp_path), "--in-process"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["results"][0]["metrics"]["inference"]
    length = resolve_scenario("adding-gru").model.input_shape[0]
    assert entry["tokens_per_sample"] == length
    assert entry["tokens_per_sec"] == pytest.approx(entry["samples_per_sec"] * length)


def test_mode_both_trains_then_predicts_from_the_trained_weights(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--scenario", "moons-mlp", "--mode", "both",
                                       "--steps", "30", "--inference-calls", "5", "--format", "json",
                                       "--out", str(tmp_path), "--in-process"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["results"][0]
    assert row["mode"] == "both" and row["metrics"]["steps"] == 30 and row["metrics"]["samples_per_sec"] > 0
    batch_size = resolve_scenario("moons-mlp").train.batch_size
    assert [e["batch_size"] for e in row["metrics"]["inference"]] == [1, batch_size]  # the default sizes
    markdown = CliRunner().invoke(main, ["report", *map(str, tmp_path.glob("*/*.json")), "--format", "markdown"])
    assert "Inference (moons-mlp):" in markdown.output and "| test acc |" in markdown.output


def test_disagreeing_inference_outputs_fail_the_run():
    from dlbench.run.runner import exit_code

    assert exit_code(document([inference_row("numpy"), inference_row("torch")])) == 0
    assert exit_code(document([inference_row("numpy"), inference_row("torch", agrees=False)])) == 1


def test_a_backend_that_cannot_run_inference_leaves_an_unavailable_row(monkeypatch):
    """What ``--backend all`` does with it (named explicitly, it is refused before the run: test_bad_input)."""
    from dlbench.run.settings import RunRequest
    from dlbench.run.worker import execute

    monkeypatch.setenv("DLBENCH_PLUGINS", "fault_plugins")
    get_plugins.cache_clear()
    try:
        row = execute(RunRequest(scenario="xor-mlp", backend="diverge", mode="inference"))
    finally:
        get_plugins.cache_clear()
    assert row["status"] == "unavailable" and row["error"] == "backend 'diverge' cannot run inference"


def test_the_python_api_measures_inference_and_its_rows_say_so():
    import dlbench

    results = dlbench.benchmark("xor-mlp", backends="numpy", mode="inference", inference_batch_size=[1, 2],
                                progress=False)
    row = results.rows[0]
    assert [e["batch_size"] for e in row.inference] == [1, 2] and row.outputs_agree is True
    assert "mode='inference'" in results.document["command"][0]


def test_repetitions_pool_their_calls_and_keep_a_disagreeing_verdict():
    from dlbench.run.row import combine_repeats

    fast, slow = inference_row(samples=[1.0] * 10), inference_row(samples=[3.0] * 10, agrees=False)
    fast["metrics"]["inference"][0]["compile_seconds"], slow["metrics"]["inference"][0]["compile_seconds"] = 0.2, 0.4
    [entry] = combine_repeats([fast, slow])["metrics"]["inference"]
    assert entry["calls"] == 20 and entry["repeats"] == 2 and entry["p50_per_repeat_ms"] == [1.0, 3.0]
    assert entry["latency_ms"]["mean"] == pytest.approx(2.0) and entry["latency_ms"]["p90"] == pytest.approx(3.0)
    assert entry["samples_per_sec"] == pytest.approx(20 / 0.040) and entry["compile_seconds"] == pytest.approx(0.3)
    assert combine_repeats([fast, slow])["metrics"]["inference_outputs"]["agrees"] is False
