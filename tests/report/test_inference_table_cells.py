"""What a reader sees in the inference table: every cell's exact text, on
both sides of each formatting threshold, the columns that appear for which
rows and their alignment, the status and agreement words, the line order,
and the legend beside the table. Built from small hand-made result rows
(no framework, no run), so each test takes milliseconds."""

from __future__ import annotations

import pytest

from dlbench.report import inference, render
from dlbench.report.table import Entry, Run, runs_of

BASE_HEADER = ["backend", "batch", "status", "agrees", "rel diff", "p50 ms", "p90 ms", "p99 ms [95% CI]",
               "mean ms", "samples/s", "vs fastest", "vs numpy", "compile s", "calls"]


def result(batch_size=1, p50=1.0, p90=2.0, p99=3.0, mean=1.5, ci=(2.5, 4.0), samples=100.0, compile_s=0.5,
           calls=40, tokens=None) -> dict:
    r = {"batch_size": batch_size, "calls": calls, "compile_seconds": compile_s, "samples_per_sec": samples,
         "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "mean": mean},
         "p99_ci95_ms": None if ci is None else list(ci)}
    if tokens is not None:
        r["tokens_per_sec"] = tokens
    return r


def row(backend="numpy", results=(), status="ok", mode="inference", outputs=None, point=None, **metrics) -> dict:
    found = {"scenario": "s", "backend": backend, "status": status, "mode": mode,
             "metrics": {"inference": [dict(r) for r in results], **metrics}}
    if outputs is not None:
        found["metrics"]["inference_outputs"] = outputs
    if point is not None:
        found["sweep_point"] = point
    return found


AGREES = {"agrees": True, "max_rel_diff": 1.234e-7, "tolerance": 1e-5}


def cells_of(*rows, run=None) -> tuple[list[str], list[list[str]], list[bool]]:
    run = run or Run("vm", {"results": list(rows)})
    return inference.table([Entry(run, r) for r in rows])


def only_line(**changes) -> dict[str, str]:
    """The cells of a one-line table of a numpy row with ``changes`` to its result, by column name."""
    header, [cells], _ = cells_of(row("numpy", [result(**changes)], outputs=AGREES))
    return dict(zip(header, cells))


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value, text", [
    (0.012345, "0.0123"), (1.0, "1"), (2.5, "2.5"), (99.94, "99.9"), (100.0, "100"), (1234.4, "1,234"),
    (98765.4, "98,765")])
def test_latencies_show_three_significant_digits_below_100_ms_and_whole_grouped_ms_above(value, text):
    cells = only_line(p50=value, p90=value, mean=value)
    assert (cells["p50 ms"], cells["p90 ms"], cells["mean ms"]) == (text, text, text)


@pytest.mark.parametrize("value, text", [
    (0.5, "0.5"), (12.345, "12.3"), (99.94, "99.9"), (100.0, "100"), (1234.4, "1,234"), (1234567.0, "1,234,567")])
def test_samples_per_second_show_three_significant_digits_below_100_and_whole_grouped_above(value, text):
    assert only_line(samples=value)["samples/s"] == text


@pytest.mark.parametrize("value, text", [(0.5, "0.5"), (12.345, "12.3"), (40000.0, "40,000")])
def test_tokens_per_second_are_formatted_like_samples_per_second(value, text):
    assert only_line(tokens=value)["tokens/s"] == text


def test_the_p99_cell_carries_its_95_percent_interval():
    assert only_line(p99=3.0, ci=(2.5, 4.0))["p99 ms [95% CI]"] == "3 [2.5, 4]"
    assert only_line(p99=150.0, ci=(120.4, 1500.0))["p99 ms [95% CI]"] == "150 [120, 1,500]"


def test_an_interval_that_reaches_past_the_slowest_call_is_open_ended():
    assert only_line(p99=3.0, ci=(2.5, None))["p99 ms [95% CI]"] == "3 [2.5, >]"


def test_a_p99_without_an_interval_is_the_bare_value():
    assert only_line(p99=3.0, ci=None)["p99 ms [95% CI]"] == "3"


def test_compile_seconds_have_three_decimals_and_the_call_count_is_exact():
    cells = only_line(compile_s=0.12345, calls=1234)
    assert (cells["compile s"], cells["calls"], cells["batch"]) == ("0.123", "1234", "1")
    assert only_line(compile_s=None)["compile s"] == "-"


@pytest.mark.parametrize("speed, text", [
    (200.0, "2.00×"), (100.0, "1.00×"), (50.0, "0.50×"), (1.0, "0.01×"), (0.42, "0.0042×")])
def test_speed_ratios_have_two_decimals_down_to_a_hundredth_and_two_digits_below(speed, text):
    rows = [row("numpy", [result(samples=100.0)], outputs=AGREES), row("torch", [result(samples=speed)])]
    header, cells, _ = cells_of(*rows)
    torch = dict(zip(header, cells[1]))
    fastest = max(speed, 100.0)
    assert torch["vs numpy"] == text
    assert torch["vs fastest"] == inference._ratio(speed / fastest)
    assert dict(zip(header, cells[0]))["vs numpy"] == "1.00×"


def test_vs_fastest_is_one_for_the_fastest_and_below_one_for_slower_backends():
    rows = [row("numpy", [result(samples=50.0)], outputs=AGREES), row("torch", [result(samples=200.0)]),
            row("jax", [result(samples=100.0)])]
    header, cells, _ = cells_of(*rows)
    by_backend = {c[0]: dict(zip(header, c)) for c in cells}
    assert {b: (c["vs fastest"], c["vs numpy"]) for b, c in by_backend.items()} == {
        "numpy": ("0.25×", "1.00×"), "torch": ("1.00×", "4.00×"), "jax": ("0.50×", "2.00×")}


def test_ratios_are_taken_per_batch_size_and_missing_speeds_show_a_dash():
    rows = [row("numpy", [result(1, samples=10.0), result(8, samples=80.0)], outputs=AGREES),
            row("torch", [result(1, samples=20.0), result(8, samples=None)])]
    header, cells, _ = cells_of(*rows)
    got = [(c[0], c[1], dict(zip(header, c))["vs fastest"], dict(zip(header, c))["vs numpy"]) for c in cells]
    assert got == [("numpy", "1", "0.50×", "1.00×"), ("torch", "1", "1.00×", "2.00×"),
                   ("numpy", "8", "1.00×", "1.00×"), ("torch", "8", "-", "-")]


def test_without_a_reference_row_vs_numpy_is_a_dash():
    header, [cells], _ = cells_of(row("torch", [result(samples=20.0)]))
    assert dict(zip(header, cells))["vs numpy"] == "-" and dict(zip(header, cells))["vs fastest"] == "1.00×"


# ------------------------------------------------------- status, agreement
def test_agreement_words_and_the_relative_difference_with_its_tolerance():
    rows = [row("numpy", [result()], outputs=AGREES),
            row("torch", [result()], outputs={"agrees": True, "max_rel_diff": 3.21e-6, "tolerance": 1e-5}),
            row("jax", [result()], outputs={"agrees": False, "max_rel_diff": 0.5, "tolerance": 1e-5}),
            row("tensorflow", [result()], outputs={"agrees": False, "reason": "logits of shape (3, 2)"}),
            row("mlx", [result()])]
    header, cells, _ = cells_of(*rows)
    assert [(c[0], c[header.index("agrees")], c[header.index("rel diff")]) for c in cells] == [
        ("numpy", "reference", "1.2e-07 (tol 1.0e-05)"), ("torch", "yes", "3.2e-06 (tol 1.0e-05)"),
        ("jax", "no", "5.0e-01 (tol 1.0e-05)"), ("tensorflow", "no", "logits of shape (3, 2)"),
        ("mlx", "-", "-")]


def test_a_reference_row_that_did_not_finish_is_not_called_the_reference():
    header, [cells], _ = cells_of(row("numpy", [result()], status="diverged"))
    assert (cells[header.index("status")], cells[header.index("agrees")]) == ("diverged", "-")


def test_a_row_whose_inference_failed_shows_failed_and_dashes_above_the_measured_lines():
    header, cells, _ = cells_of(row("numpy", [result()], outputs=AGREES),
                                row("torch", [], status="ok", inference_error="RuntimeError: boom"),
                                row("jax", [], status="error"))
    assert cells[0] == ["torch", "-", "failed", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert cells[1] == ["jax", "-", "error", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert cells[2][:3] == ["numpy", "1", "ok"]


def test_a_whole_line_reads_as_its_cells():
    header, cells, right = cells_of(row("numpy", [result(4, p50=0.5, p90=0.75, p99=1.25, mean=0.625, ci=(1.0, 2.0),
                                                         samples=6400.0, compile_s=1.5, calls=321)], outputs=AGREES))
    assert header == BASE_HEADER
    assert cells == [["numpy", "4", "ok", "reference", "1.2e-07 (tol 1.0e-05)", "0.5", "0.75", "1.25 [1, 2]",
                      "0.625", "6,400", "1.00×", "1.00×", "1.500", "321"]]
    assert right == [False, True, False, False] + [True] * 10


# ----------------------------------------------------------------- columns
def test_rows_that_only_trained_have_no_inference_table():
    assert cells_of(row("numpy", [result()], mode="train")) is None
    header, cells, _ = cells_of(row("numpy", [result()], mode="both", outputs=AGREES),
                                row("torch", [result()], mode="train"))
    assert [c[0] for c in cells] == ["numpy"] and header == BASE_HEADER


def test_sequence_rows_add_a_right_aligned_tokens_column_after_samples():
    header, [cells], right = cells_of(row("numpy", [result(samples=2000.0, tokens=40000.0)], outputs=AGREES))
    assert header == [*BASE_HEADER[:10], "tokens/s", *BASE_HEADER[10:]]
    assert cells[9:11] == ["2,000", "40,000"]
    assert right == [False, True, False, False] + [True] * 11


def test_a_sweep_adds_a_left_aligned_sweep_column_after_the_backend():
    header, cells, right = cells_of(row("numpy", [result()], outputs=AGREES, point={"threads": 1}),
                                    row("numpy", [result()], outputs=AGREES, point={"threads": 2}))
    assert header == ["backend", "sweep", *BASE_HEADER[1:]]
    assert [c[:3] for c in cells] == [["numpy", "threads=1", "1"], ["numpy", "threads=2", "1"]]
    assert right == [False, False, True, False, False] + [True] * 10


def test_several_runs_add_a_left_aligned_run_column_and_ratios_stay_within_each_run():
    slow = row("numpy", [result(samples=10.0)], outputs=AGREES)
    fast = row("numpy", [result(samples=40.0)], outputs=AGREES)
    torch = row("torch", [result(samples=20.0)])
    runs = runs_of([{"environment": {"hostname": "a"}, "results": [slow, torch]},
                    {"environment": {"hostname": "b"}, "results": [fast]}])
    items = [Entry(runs[0], slow), Entry(runs[0], torch), Entry(runs[1], fast)]
    header, cells, right = inference.table(items)
    assert header == ["backend", "run", *BASE_HEADER[1:]]
    assert right == [False, False, True, False, False] + [True] * 10
    col = header.index("vs numpy")
    assert [(c[0], c[1], c[col]) for c in cells] == [("numpy", "a", "1.00×"), ("torch", "a", "2.00×"),
                                                     ("numpy", "b", "1.00×")]


def test_lines_are_ordered_by_batch_size_then_as_the_rows_came():
    rows = [row("torch", [result(8), result(1)]), row("numpy", [result(2), result(1)], outputs=AGREES)]
    _, cells, _ = cells_of(*rows)
    assert [(c[0], c[1]) for c in cells] == [("torch", "1"), ("numpy", "1"), ("numpy", "2"), ("torch", "8")]


# ------------------------------------------------------------------ legend
def test_the_legend_follows_a_report_with_inference_and_defines_each_column():
    markdown = render.render(runs_of([{"results": [row("numpy", [result()], outputs=AGREES)]}]), "markdown")
    assert markdown.rstrip().endswith(inference.INFERENCE_LEGEND)
    legend = inference.INFERENCE_LEGEND
    assert legend.startswith("Inference: forward passes only") and legend.endswith("float32 rounding.")
    for definition in (
            "(BatchNorm moving statistics, no dropout, no autograd), from the initial weights (--mode inference) "
            "or the trained ones (--mode both)",
            "the first call timed apart (compile s), then the timed calls (calls)",
            "latency percentiles in ms with the distribution-free 95% interval of the p99",
            "samples/s = batch size x calls / their total time",
            "(tokens/s: times the tokens per sample, for sequence inputs)",
            "vs fastest, vs numpy: ratio of samples/s at the same batch size in the same run",
            "agrees: the test-set logits' largest norm-wise relative difference to numpy's float64 forward pass, "
            "within 10x the reference's own float32 rounding"):
        assert definition in legend


def test_a_report_without_inference_has_no_inference_legend():
    trained = {"scenario": "s", "backend": "numpy", "status": "ok", "mode": "train",
               "metrics": {"samples_per_sec": 10.0}}
    assert "Inference:" not in render.render(runs_of([{"results": [trained]}]), "markdown")


# ------------------------------------------------- CSV and JSON records
def test_the_records_carry_every_raw_value_of_a_line_under_its_column_name():
    measured = row("torch", [result(8, ci=(2.5, None), samples=200.0, tokens=4000.0)], mode="both",
                   outputs={"agrees": False, "max_rel_diff": 0.5, "tolerance": 1e-5}, point={"batch_size": 32})
    failed = row("jax", [], inference_error="RuntimeError: boom", point={"batch_size": 32})
    reference = row("numpy", [result(8, samples=100.0)], outputs=AGREES, point={"batch_size": 32})
    run = Run("vm", {"results": [reference, measured, failed]})
    found = inference.records([Entry(run, r) for r in (reference, measured, failed)])
    assert [r["backend"] for r in found] == ["jax", "numpy", "torch"]
    assert found[2] == {
        "run": "vm", "scenario": "s", "backend": "torch", "mode": "both", "sweep_batch_size": 32,
        "sweep_threads": None, "status": "ok", "inference_batch_size": 8, "latency_p50_ms": 1.0,
        "latency_p90_ms": 2.0, "latency_p99_ms": 3.0, "latency_mean_ms": 1.5, "latency_p99_ci95_low_ms": 2.5,
        "latency_p99_ci95_high_ms": None, "inference_samples_per_sec": 200.0, "inference_tokens_per_sec": 4000.0,
        "inference_vs_fastest": 1.0, "inference_vs_numpy": 2.0, "inference_compile_seconds": 0.5,
        "inference_calls": 40, "outputs_agree": False, "outputs_max_rel_diff": 0.5, "outputs_tolerance": 1e-5,
        "inference_error": None}
    assert found[1]["inference_vs_fastest"] == 0.5 and found[1]["inference_vs_numpy"] == 1.0
    jax = found[0]
    assert (jax["inference_batch_size"], jax["latency_p99_ms"], jax["latency_p99_ci95_low_ms"],
            jax["inference_samples_per_sec"], jax["inference_error"]) == (None, None, None, None, "RuntimeError: boom")


def test_a_verdict_without_both_difference_and_tolerance_shows_its_reason_or_a_dash():
    rows = [row("torch", [result()], outputs={"agrees": False, "max_rel_diff": 0.5}),
            row("jax", [result()], outputs={"agrees": False, "tolerance": 1e-5, "reason": "no logits"}),
            row("tensorflow", [result()], outputs={"agrees": True})]
    header, cells, _ = cells_of(*rows)
    assert [(c[0], c[header.index("rel diff")]) for c in cells] == [("torch", "-"), ("jax", "no logits"),
                                                                    ("tensorflow", "-")]


def test_a_row_without_a_status_shows_a_dash():
    measured = row("torch", [result()])
    del measured["status"]
    header, [cells], _ = cells_of(measured)
    assert cells[header.index("status")] == "-"
