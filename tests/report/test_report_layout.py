"""What a reader of a report sees: the results first, a legend of only the
columns shown, and figures in plain digits (no exponents in % peak or GFLOP/s)."""

import copy
import re

from dlbench.report import table as report, render
from dlbench.results.document import read_document


def html_of(document: dict) -> str:
    return render.render_html(report.runs_of([document]), {})


def legend_of(page: str) -> str:
    return page[page.index("What the columns mean"):]


def test_the_html_report_shows_results_before_the_environment_and_the_legend(real_run):
    page = html_of(read_document(real_run))
    first_table = page.index("<h2>xor-mlp</h2>")
    assert first_table < page.index("<h2>Environment</h2>") < page.index("What the columns mean")
    assert page.index("<h1>dlbench results</h1>") < first_table
    assert "<p class=legend>" not in page[:first_table]  # nothing dense before the first result


def test_the_legend_explains_the_columns_shown_and_no_others(real_run):
    legend = legend_of(html_of(read_document(real_run)))
    explained = re.findall(r"<dt>(.*?)</dt>", legend)
    assert {"agrees", "samples/s", "vs numpy", "compile s", "% peak"} <= set(explained)
    for absent in ("bf16", "fp16", "replicas", "skipped steps", "scaling eff.", "perplexity"):
        assert absent not in legend  # an fp32, single-process run of classifiers shows none of them


def test_a_mixed_precision_row_brings_its_own_explanation(real_run):
    document = read_document(real_run)
    for row in document["results"]:
        row["precision"] = "bf16"
    legend = legend_of(html_of(document))
    assert "bf16/fp16" in legend and "matmul operand" in legend


def test_a_tiny_share_of_the_peak_reads_as_less_than_a_hundredth_of_a_percent(real_run):
    document = read_document(real_run)
    fractions = [8.8e-7, 0.00048, 0.026, 0.2]
    rows = [r for r in document["results"] if r["scenario"] == "xor-mlp"]
    document["results"] = [copy.deepcopy(rows[0]) for _ in fractions]
    for row, fraction, name in zip(document["results"], fractions, "abcd"):
        row["backend"], row["metrics"]["peak_fraction"] = name, fraction
        row["metrics"]["gflops_per_sec"] = fraction * 4000
    columns, cells = report.table(report.entries(report.runs_of([document])))
    names = [c.name for c in columns]
    assert [row[names.index("% peak")] for row in cells] == ["<0.01%", "0.048%", "2.6%", "20%"]
    assert [row[names.index("GFLOP/s")] for row in cells] == ["0.00352", "1.92", "104", "800"]
    assert "<td class=r><0.01%</td>" not in html_of(document)  # escaped, as every cell
    assert "<td class=r>&lt;0.01%</td>" in html_of(document)


def test_gflops_beyond_a_thousand_are_digits_not_an_exponent():
    doc = {"schema_version": 1, "results": [{"scenario": "s", "backend": "numpy", "status": "ok",
                                             "metrics": {"samples_per_sec": 1.0, "gflops_per_sec": 1234.5}}]}
    columns, cells = report.table(report.entries(report.runs_of([doc])))
    assert cells[0][[c.name for c in columns].index("GFLOP/s")] == "1,234"


def test_data_parallel_rows_bring_the_replica_columns_meanings():
    row = {"scenario": "s", "backend": "torch", "status": "ok", "sweep_point": {"data_parallel": 2},
           "distributed": {"world_size": 2}, "metrics": {"samples_per_sec": 10.0, "peak_fraction": 0.2}}
    items = dict(report.legend_items(report.runs_of([{"results": [row], "environment": {}, "settings": {}}])))
    assert "honest test" in items["replicas"] and "every replica's ceiling" in items["% peak"]
    assert "bf16" not in items["% peak"]
