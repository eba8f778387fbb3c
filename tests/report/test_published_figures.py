"""Every derived figure a report publishes, checked against a hand computation
on every path that produces it: a single run (the worker's row), repeats
(``combine_repeats`` through the suite's job), sweeps, seeds, data-parallel
rows and inference, and the records every report format is rendered from.

The hand computations are written out here, from the definitions in the
legend (``dlbench.report.table.LEGEND``): tokens/s = samples/s x tokens per
sample; GFLOP/s = samples/s x FLOPs per step / batch / 1e9; % peak = GFLOP/s
/ (the ceiling x replicas); per replica = samples/s / world size; vs fastest
= samples/s / the group's fastest (1 for the fastest, below 1 for the rest);
vs numpy = samples/s / the reference's; speedup = samples/s / the sweep's base
point's; efficiency = speedup / (N / N_base); perplexity = exp(test loss);
inference samples/s = batch x calls / the calls' total time.
"""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dlbench.report import inference as inference_report, table as report, render
from dlbench.measure import inference
from dlbench.run import suite
from dlbench.plugin.distributed import DataParallel
from dlbench.run.settings import Job, RunRequest
from dlbench.run.worker import execute
from dlbench.scenario import resolve_scenario
from dlbench.network.flops import training_step_flops

SCENARIO = str(Path(__file__).parents[1] / "scenarios" / "chars-simple-rnn.toml")
TOKENS = 8  # the scenario's sequence length: tokens per sample
BATCH = 8


@pytest.fixture(scope="module")
def lm_row() -> dict:
    """A real single run of a language model (training, then inference), in process (half a second)."""
    row = execute(RunRequest(scenario=SCENARIO, backend="numpy", overrides={"max_steps": 6}, window_steps=2,
                             mode="both", inference_batch_sizes=[1, 4], inference_calls=5))
    assert row["status"] == "ok", row.get("error")
    return row


def inference_samples_per_sec(batch_size: int, latencies_ms: list[float]) -> float:
    return batch_size * len(latencies_ms) / (sum(latencies_ms) / 1e3)


# ------------------------------------------------------------ a single run
def test_a_single_runs_throughput_figures_are_its_samples_per_second_times_what_a_step_holds(lm_row):
    m = lm_row["metrics"]
    spec = resolve_scenario(SCENARIO).model
    assert m["samples_per_sec"] == pytest.approx(float(np.median(m["window_samples_per_sec"])), rel=1e-12)
    assert m["tokens_per_sample"] == TOKENS and m["batch_size"] == BATCH
    assert m["tokens_per_sec"] == pytest.approx(m["samples_per_sec"] * TOKENS, rel=1e-12)
    assert m["flops_per_step"] == training_step_flops(spec, BATCH)
    assert m["gflops_per_sec"] == pytest.approx(m["samples_per_sec"] * m["flops_per_step"] / BATCH / 1e9, rel=1e-12)
    assert m["test_perplexity"] == pytest.approx(math.exp(m["test_loss"]), rel=1e-12)


def test_a_single_runs_inference_figures_are_batch_times_calls_over_their_time_in_tokens_too(lm_row):
    for entry in lm_row["metrics"]["inference"]:
        expected = inference_samples_per_sec(entry["batch_size"], entry["latency_samples_ms"])
        assert entry["samples_per_sec"] == pytest.approx(expected, rel=1e-12)
        assert entry["tokens_per_sec"] == pytest.approx(expected * TOKENS, rel=1e-12)
        assert entry["calls"] == 5 == len(entry["latency_samples_ms"])


def test_inference_latencies_are_the_percentiles_mean_and_throughput_of_the_calls():
    latencies = [float(k) for k in np.random.default_rng(0).permutation(np.arange(1, 101))]  # 1 ... 100 ms
    entry = inference.latency_entry(4, latencies, 0.25)
    # linear interpolation between order statistics: the q-th percentile of 1..100 is 1 + 0.99 q
    assert entry["latency_ms"] == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01, "mean": 50.5}, rel=1e-12)
    assert entry["samples_per_sec"] == pytest.approx(4 * 100 / 5.050, rel=1e-12)
    assert (entry["calls"], entry["compile_seconds"]) == (100, 0.25)


@pytest.mark.parametrize("calls, low, high", [(1000, 983, 997), (368, None, 368), (367, None, None),
                                              (300, 293, None), (50, 48, None), (1, 1, None)])
def test_the_published_p99_interval_is_between_the_order_statistics_the_binomial_gives(calls, low, high):
    """The ranks of the module's docstring: with 1000 calls the 983rd and 997th fastest; an upper end (the
    slowest call) from 368 calls on, where P(all N calls below the p99) = 0.99^N drops to 2.5% (the docs said
    459, the 1% point); 300 calls: from the 293rd up, 50: from the 48th; one call: from it up."""
    entry = inference.latency_entry(1, [float(k) for k in range(calls, 0, -1)], 0.0)  # call k took k ms
    found_low, found_high = entry["p99_ci95_ms"]
    assert found_high == high and (low is None or found_low == low), (found_low, found_high)


def test_the_outputs_verdict_is_the_worst_rows_relative_difference_within_ten_times_the_twins_rounding():
    exact = np.array([[4.0, -2.0], [1.0, 0.5], [-8.0, 2.0]])  # differences in powers of two: exact arithmetic
    twins = {"float32": exact + [[0.0, 0.0625], [0.0, 0.0], [0.0, 0.0]],  # rounding 0.0625 / 4 = 0.015625
             "reversed": exact + [[0.0, 0.0], [0.00390625, 0.0], [0.0, 0.0]]}
    at_the_edge = exact + [[0.0, 0.625], [0.0, 0.0], [0.25, 0.0]]  # rows: 0.625 / 4 = 10 x 0.015625, 0, 0.25 / 8
    verdict = inference.output_agreement(at_the_edge, exact, twins, "numpy")
    assert verdict == {"reference": "numpy", "agrees": True, "max_rel_diff": 0.15625, "worst_row": 0,
                       "rounding": 0.015625, "tolerance": 0.15625, "rows": 3}
    over = inference.output_agreement(exact + [[0.0, 0.0], [0.0, 0.0], [0.0, 1.5]], exact, twins, "numpy")
    assert (over["agrees"], over["max_rel_diff"], over["worst_row"]) == (False, 1.5 / 8, 2)
    tiny = inference.output_agreement(exact, exact, {"float32": exact}, "numpy")  # float32 computed it exactly
    assert tiny["tolerance"] == 8 * float(np.finfo(np.float32).eps) and tiny["agrees"]
    assert inference.output_agreement(exact[:2], exact, twins, "numpy") == {
        "reference": "numpy", "agrees": False, "max_rel_diff": None, "tolerance": None,
        "reason": "logits of shape (2, 2), the reference's are (3, 2)"}


# ------------------------------------------------------------------ repeats
def repetition(row: dict, samples_per_sec: float, latency_ms: float, test_loss: float) -> dict:
    """``row`` as another repetition would give it: other speeds and latencies (its derived figures
    left as the first run computed them, which the combined row must not keep)."""
    out = copy.deepcopy(row)
    m = out["metrics"]
    m.update(samples_per_sec=samples_per_sec, window_samples_per_sec=[samples_per_sec] * 3, test_loss=test_loss,
             test_perplexity=math.exp(test_loss))
    for entry in m["inference"]:
        entry["latency_samples_ms"] = [latency_ms * (1 + 0.1 * k) for k in range(len(entry["latency_samples_ms"]))]
    return out


@pytest.fixture
def repeated(lm_row, monkeypatch):
    """The suite's job at ``--repeat 3`` (its workers replaced by three repetitions of the real row), two
    replicas, and a ceiling of 50 GFLOP/s per replica."""
    rows = iter([repetition(lm_row, sps, ms, loss) for sps, ms, loss in
                 ((100.0, 1.0, 2.0), (400.0, 3.0, 3.0), (200.0, 2.0, 4.0))])

    def next_repetition(request):
        row = next(rows)
        row["distributed"] = {"world_size": 2}
        row["metrics"]["samples_per_sec_per_replica"] = row["metrics"]["samples_per_sec"] / 2
        return row

    monkeypatch.setattr(suite, "execute", next_repetition)
    runs = suite.Suite([], {}, None, repeat=3, in_process=True, peak_gflops={"fp32": 50.0})
    return runs.run_job(Job(RunRequest(scenario=SCENARIO, backend="numpy", data_parallel=DataParallel(2))))


def test_repeats_publish_every_figure_of_the_median_samples_per_second(repeated):
    m = repeated["metrics"]
    assert repeated["repeats"] == 3 and m["samples_per_sec"] == 200.0  # the median of 100, 400, 200 (their mean is 233)
    assert m["tokens_per_sec"] == pytest.approx(200.0 * TOKENS, rel=1e-12)
    gflops = 200.0 * m["flops_per_step"] / BATCH / 1e9
    assert m["gflops_per_sec"] == pytest.approx(gflops, rel=1e-12)
    assert m["samples_per_sec_per_replica"] == pytest.approx(100.0, rel=1e-12)
    assert m["peak_fraction"] == pytest.approx(gflops / (50.0 * 2), rel=1e-12)
    assert m["test_perplexity"] == pytest.approx(math.exp(2.0), rel=1e-12)  # the first repetition's, as its loss


def test_repeats_pool_every_calls_latency_for_inference_samples_and_tokens_per_second(repeated):
    for entry in repeated["metrics"]["inference"]:
        calls = 5
        pooled = [ms * (1 + 0.1 * k) for ms in (1.0, 3.0, 2.0) for k in range(calls)]
        expected = inference_samples_per_sec(entry["batch_size"], pooled)
        assert entry["calls"] == 3 * calls and entry["repeats"] == 3
        assert entry["compile_seconds_samples"] == [entry["compile_seconds"]] * 3  # the repetitions are copies
        assert entry["samples_per_sec"] == pytest.approx(expected, rel=1e-12)
        assert entry["tokens_per_sec"] == pytest.approx(expected * TOKENS, rel=1e-12)
        assert entry["latency_ms"]["p50"] == pytest.approx(float(np.percentile(pooled, 50)), rel=1e-12)


def test_repeats_publish_the_first_disagreeing_inference_verdict_else_the_first(lm_row, monkeypatch):
    def verdicts(*agree: bool) -> dict:
        rows = []
        for k, agrees in enumerate(agree):
            row = repetition(lm_row, 100.0 + k, 1.0, 2.0)
            row["metrics"]["inference_outputs"] = {"agrees": agrees, "max_rel_diff": float(k)}
            rows.append(row)
        monkeypatch.setattr(suite, "execute", lambda request: rows.pop(0))
        job = Job(RunRequest(scenario=SCENARIO, backend="numpy"))
        return suite.Suite([], {}, None, repeat=len(agree), in_process=True).run_job(job)["metrics"]["inference_outputs"]

    assert verdicts(True, False, False) == {"agrees": False, "max_rel_diff": 1.0}
    assert verdicts(True, True, True) == {"agrees": True, "max_rel_diff": 0.0}


@pytest.mark.parametrize("precision, ceiling", [("fp32", 50.0), ("bf16", 200.0)])
def test_a_single_run_through_the_suite_keeps_its_figures_and_gets_its_share_of_its_precisions_peak(
        lm_row, monkeypatch, precision, ceiling):
    # the worker stamps its row with the request's precision, which picks the ceiling
    monkeypatch.setattr(suite, "execute", lambda request: {**copy.deepcopy(lm_row), "precision": request.precision})
    row = suite.Suite([], {}, None, in_process=True, peak_gflops={"fp32": 50.0, "bf16": 200.0}).run_job(
        Job(RunRequest(scenario=SCENARIO, backend="numpy", precision=precision)))
    m, first = row["metrics"], lm_row["metrics"]
    assert m["samples_per_sec"] == pytest.approx(first["samples_per_sec"], rel=1e-12)
    assert m["tokens_per_sec"] == pytest.approx(first["samples_per_sec"] * TOKENS, rel=1e-12)
    assert m["peak_fraction"] == pytest.approx(first["gflops_per_sec"] / ceiling, rel=1e-12)
    for entry, alone in zip(m["inference"], first["inference"]):
        assert entry["tokens_per_sec"] == pytest.approx(alone["samples_per_sec"] * TOKENS, rel=1e-12)


# -------------------------------------------------- reports: ratios and sweeps
def trained(backend: str, sps: float, point: dict | None = None, **extra) -> dict:
    row = {"scenario": "s", "backend": backend, "status": "ok", "mode": "train",
           "metrics": {"samples_per_sec": sps, "test_accuracy": extra.pop("accuracy", 0.9)}, **extra}
    if point:
        row["sweep_point"] = point
    return row


def records(rows: list[dict]) -> dict:
    """The JSON report's records of a run of ``rows``: what every format shows."""
    return json.loads(render.render_json(report.runs_of([{"schema_version": 1, "results": rows}])))


def by(records_: list[dict], *keys) -> dict:
    return {tuple(r[k] for k in keys): r for r in records_}


def test_vs_fastest_and_vs_numpy_are_ratios_to_the_fastest_and_to_the_reference_of_the_same_point():
    rows = [trained("numpy", 100.0), trained("torch", 400.0), trained("jax", 200.0),
            trained("failed-one", 0.0, status="failed")]
    # a batch sweep: each point has its own fastest and its own reference
    rows += [trained(b, sps, {"batch_size": bs}) for bs, speeds in ((8, (50.0, 25.0)), (64, (80.0, 320.0)))
             for b, sps in zip(("numpy", "torch"), speeds)]
    found = by(records(rows)["rows"], "backend", "sweep_batch_size")
    assert [(found[b, None]["vs_fastest"], found[b, None]["vs_numpy"]) for b in ("numpy", "torch", "jax")] == \
        [(0.25, 1.0), (1.0, 4.0), (0.5, 2.0)]
    assert found["failed-one", None]["vs_fastest"] is None and found["failed-one", None]["vs_numpy"] is None
    assert (found["torch", 8]["vs_fastest"], found["torch", 8]["vs_numpy"]) == (0.5, 0.5)
    assert (found["numpy", 64]["vs_fastest"], found["torch", 64]["vs_numpy"]) == (0.25, 4.0)
    # speedup along the batch axis: over the same backend's smallest batch
    assert (found["numpy", 64]["speedup"], found["torch", 64]["speedup"]) == (80.0 / 50.0, 320.0 / 25.0)


def test_thread_and_data_parallel_sweeps_give_speedup_per_added_thread_or_replica():
    rows = [trained(b, sps, {"threads": t}) for t, speeds in ((1, (100.0, 100.0)), (2, (150.0, 190.0)),
                                                             (4, (200.0, 360.0))) for b, sps in zip(("numpy", "jax"), speeds)]
    rows += [trained("numpy", 100.0, {"data_parallel": n}, distributed={"world_size": 1}) for n in (1, 2)]
    rows += [trained("jax", sps, {"data_parallel": n}, distributed={"world_size": n}) for n, sps in ((1, 120.0), (2, 180.0), (4, 300.0))]
    found = by(records(rows)["rows"], "backend", "sweep_threads", "replicas")
    assert found["jax", 4, None]["thread_efficiency"] == pytest.approx(3.6 / 4, rel=1e-12)
    assert found["numpy", 2, None]["thread_efficiency"] == pytest.approx(0.75, rel=1e-12)
    assert found["jax", None, 2]["scaling_efficiency"] == pytest.approx((180.0 / 120.0) / 2, rel=1e-12)
    assert found["jax", None, 4]["scaling_efficiency"] == pytest.approx((300.0 / 120.0) / 4, rel=1e-12)
    assert found["jax", None, 1]["scaling_efficiency"] == 1.0
    reference = [r for r in records(rows)["rows"] if r["backend"] == "numpy" and r["sweep_threads"] is None]
    assert [r["scaling_efficiency"] for r in reference] == [None, None]  # one process at every point
    assert found["jax", None, 2]["vs_numpy"] == pytest.approx(1.8, rel=1e-12)  # at the same point: 180 / 100


def test_ratios_are_taken_within_each_scenario_and_efficiency_against_the_sweeps_own_base_point():
    rows = [{**trained(b, sps), "scenario": scenario} for scenario, speeds in (("a", (100.0, 50.0)), ("b", (10.0, 40.0)))
            for b, sps in zip(("numpy", "torch"), speeds)]
    found = by(records(rows)["rows"], "scenario", "backend")
    assert [found[k]["vs_fastest"] for k in (("a", "numpy"), ("a", "torch"), ("b", "numpy"), ("b", "torch"))] == \
        [1.0, 0.5, 0.25, 1.0]
    # a sweep from 2 threads: 8 threads are 4 times the base point's, a failed point has no figures
    rows = [trained("jax", sps, {"threads": t}) for t, sps in ((2, 100.0), (8, 300.0))]
    rows.append(trained("jax", 0.0, {"threads": 4}, status="failed"))
    found = by(records(rows)["rows"], "sweep_threads")
    assert (found[8,]["speedup"], found[8,]["thread_efficiency"]) == (3.0, 0.75)
    assert (found[4,]["speedup"], found[4,]["thread_efficiency"], found[4,]["vs_fastest"]) == (None, None, None)


def test_seed_points_have_their_own_ratios_and_no_speedup():
    rows = [trained(b, sps, {"seed": s}) for s, speeds in ((0, (100.0, 300.0)), (1, (200.0, 100.0)))
            for b, sps in zip(("numpy", "torch"), speeds)]
    found = {(r["backend"], r["vs_fastest"], r["vs_numpy"], r["speedup"]) for r in records(rows)["rows"]}
    assert found == {("numpy", 1 / 3, 1.0, None), ("torch", 1.0, 3.0, None), ("numpy", 1.0, 1.0, None),
                     ("torch", 0.5, 0.5, None)}


def test_a_precision_sweep_gives_speedup_and_accuracy_against_fp32():
    rows = [trained("torch", sps, {"precision": p}, accuracy=acc, precision=p)
            for p, sps, acc in (("fp32", 100.0, 0.90), ("bf16", 250.0, 0.875), ("fp16", 150.0, 0.8125))]
    found = by(records(rows)["rows"], "precision")
    assert [(found[p,]["speedup"], found[p,]["accuracy_vs_fp32"]) for p in ("fp32", "bf16", "fp16")] == \
        [(1.0, 0.0), (2.5, 0.875 - 0.90), (1.5, 0.8125 - 0.90)]


def inferred(backend: str, speeds: dict[int, float], point: dict | None = None, tokens: int | None = None,
             mode: str = "inference") -> dict:
    """A row that measured inference: at each batch size, calls of 1 ms scaled to give ``speeds``."""
    entries = []
    for b, sps in speeds.items():
        entry = {"batch_size": b, "samples_per_sec": sps, "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0,
                                                                         "mean": 1.0}, "calls": 10}
        if tokens:
            entry.update(tokens_per_sample=tokens, tokens_per_sec=sps * tokens)
        entries.append(entry)
    row = trained(backend, 10.0, point, mode=mode)
    row["metrics"] = {"inference": entries, "inference_outputs": {"agrees": True}}
    return row


def test_inference_vs_fastest_is_below_one_for_the_slower_backends_at_each_batch_size():
    rows = [inferred("numpy", {1: 1000.0, 32: 8000.0}), inferred("torch", {1: 4000.0, 32: 4000.0}, mode="both"),
            inferred("jax", {1: 2000.0, 32: 16000.0})]
    found = by(records(rows)["inference"], "backend", "inference_batch_size")
    assert {k: (r["inference_vs_fastest"], r["inference_vs_numpy"]) for k, r in found.items()} == {
        ("numpy", 1): (0.25, 1.0), ("torch", 1): (1.0, 4.0), ("jax", 1): (0.5, 2.0),
        ("numpy", 32): (0.5, 1.0), ("torch", 32): (0.25, 0.5), ("jax", 32): (1.0, 2.0)}
    lines = inference_report.lines(report.entries(report.runs_of([{"schema_version": 1, "results": rows}])))
    assert all(0 < line.vs_fastest <= 1 for line in lines)


def test_inference_tables_show_the_ratios_and_tokens_per_second_of_their_records():
    rows = [inferred("numpy", {4: 1000.0}, tokens=TOKENS), inferred("torch", {4: 4000.0}, tokens=TOKENS)]
    items = report.entries(report.runs_of([{"schema_version": 1, "results": rows}]))
    header, cells, _ = inference_report.table(items)
    shown = {row[0]: dict(zip(header, row)) for row in cells}
    assert (shown["numpy"]["vs fastest"], shown["numpy"]["vs numpy"], shown["numpy"]["tokens/s"]) == \
        ("0.25×", "1.00×", "8,000")
    assert (shown["torch"]["vs fastest"], shown["torch"]["vs numpy"], shown["torch"]["tokens/s"]) == \
        ("1.00×", "4.00×", "32,000")
