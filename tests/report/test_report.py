import copy
import csv
import io
import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from dlbench.cli import reports as cli_reports

from dlbench.results import store as storage

from dlbench.report import table as report, render as report_formats
from dlbench.cli import InputErrorGroup
from dlbench.results.document import read_document, write_document


@click.group(cls=InputErrorGroup)
def cli():
    """The report commands under the same error handling as ``dlbench``."""


for _command in (cli_reports.report, cli_reports.compare, cli_reports.history_):
    cli.add_command(_command)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def other_machine(document: dict) -> dict:
    """The same run on another host, where a torch row failed without metrics."""
    doc = copy.deepcopy(document)
    doc["environment"]["hostname"] = "gpu-box"
    doc["environment"]["gpus"] = ["NVIDIA H100"]
    doc["created"] = "2030-01-01T00:00:00Z"
    doc["results"].append({"scenario": "xor-mlp", "backend": "torch", "status": "failed",
                           "error": "RuntimeError: out of memory"})
    return doc


@pytest.fixture
def two_runs(real_run, tmp_path):
    path = tmp_path / "other.json"
    write_document(other_machine(read_document(real_run)), path)
    return real_run, path


def scenarios_and_backends(path):
    rows = read_document(path)["results"]
    return {(r["scenario"], r["backend"]) for r in rows}


def test_markdown_report_has_environment_and_one_table_per_scenario(real_run):
    result = invoke("report", real_run, "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "## Environment" in text and "| CPU |" in text and "| numpy |" in text
    assert "## xor-mlp" in text and "## digits-mlp" in text
    header = next(line for line in text.splitlines() if line.startswith("| backend |"))
    for column in ("status", "agrees", "test acc", "final loss", "samples/s", "vs fastest", "vs numpy",
                   "compile s"):
        assert f"| {column} |" in header
    for table in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M):  # GitHub needs equal cell counts
        counts = {line.count(" | ") for line in table.splitlines() if not line.startswith("|--")}
        assert len(counts) == 1, table
    assert "reference" in text


def test_runs_side_by_side_are_labelled_by_what_differs(two_runs):
    text = invoke("report", *two_runs, "--format", "markdown").output
    assert "| run |" in text
    env_header = next(line for line in text.splitlines() if line.startswith("|  |"))
    assert "gpu-box" in env_header and "NVIDIA H100" in env_header
    assert "| torch | gpu-box" in text and "| failed |" in text
    assert "xor-mlp / torch: failed: RuntimeError: out of memory" in text


def test_missing_metrics_show_a_dash(real_run, tmp_path):
    doc = read_document(real_run)
    doc["results"] = [{"scenario": "xor-mlp", "backend": "jax", "status": "unavailable",
                       "error": "jax is not installed", "metrics": {}, "parity": None},
                      {"scenario": "xor-mlp", "backend": "numpy", "status": "ok"}]
    doc["environment"] = {}
    doc["settings"] = {}
    path = tmp_path / "sparse.json"
    write_document(doc, path)
    for fmt in ("table", "markdown", "csv", "html", "json"):
        result = invoke("report", path, "--format", fmt, "--no-plots")
        assert result.exit_code == 0, (fmt, result.output)
    assert "| jax | unavailable | - | - | - | - |" in invoke("report", path, "--format", "markdown").output


def test_speed_ratios_are_taken_within_one_run():
    rows = [{"scenario": "s", "backend": "numpy", "status": "ok", "metrics": {"samples_per_sec": 100.0}},
            {"scenario": "s", "backend": "torch", "status": "ok", "metrics": {"samples_per_sec": 400.0}},
            {"scenario": "s", "backend": "jax", "status": "failed", "metrics": {}}]
    runs = report.runs_of([{"schema_version": 1, "results": rows}])
    ratios = {r["backend"]: (r["vs_fastest"], r["vs_numpy"]) for r in report_formats.tidy_records(runs)}
    assert ratios == {"numpy": (0.25, 1.0), "torch": (1.0, 4.0), "jax": (None, None)}


def test_csv_is_tidy_one_row_per_scenario_backend_run(two_runs):
    result = invoke("report", *two_runs, "--format", "csv")
    records = list(csv.DictReader(io.StringIO(result.output)))
    expected = {(s, b, run) for path, run in zip(two_runs, ("vm", "gpu-box"))
                for s, b in scenarios_and_backends(path)}
    got = {(r["scenario"], r["backend"], r["host"]) for r in records}
    assert len(records) == len(expected) == 5
    assert got == {(s, b, read_document(p)["environment"]["hostname"]) for p in two_runs
                   for s, b in scenarios_and_backends(p)}
    ok = next(r for r in records if r["backend"] == "numpy")
    assert float(ok["samples_per_sec"]) > 0 and ok["status"] == "ok"


def test_html_is_one_self_contained_file_with_embedded_pictures(two_runs, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", *two_runs, "--out", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('src="data:image/png;base64,') >= 3  # two loss pictures and the throughput bars
    assert not re.search(r"""(src|href)=(?!["']?data:)""", page)
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    assert not list(tmp_path.glob("*.png"))


def test_markdown_out_writes_pictures_beside_it(real_run, tmp_path):
    out = tmp_path / "published" / "README.md"
    result = invoke("report", real_run, "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"README-xor-mlp-loss.png", "README-digits-mlp-loss.png", "README-throughput.png"} <= set(pictures)
    for name in pictures:
        assert (out.parent / name).read_bytes().startswith(b"\x89PNG")


def test_report_latest_reports_the_newest_stored_run(real_run, tmp_path):
    old = read_document(real_run)
    new = other_machine(old)
    for doc in (new, old):  # stored out of order: the newest is the one created last
        write_document(doc, storage.store_path(tmp_path, doc))
    result = invoke("report", "--latest", "--root", tmp_path, "--format", "json")
    summary = json.loads(result.output)
    assert [r["created"] for r in summary["runs"]] == ["2030-01-01T00:00:00Z"]


def test_published_results_command(real_run, tmp_path):
    doc = read_document(real_run)
    write_document(doc, storage.store_path(tmp_path, doc))
    out = tmp_path / "README.md"
    result = invoke("report", "--latest", "--root", tmp_path, "--format", "markdown", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# dlbench results")
    assert (tmp_path / "README-throughput.png").exists()


@pytest.mark.parametrize("args, message", [
    (["report"], "RUN.json: name one or more RUN.json files, or pass --latest"),
    (["report", "nope.json"], "nope.json: cannot read result file"),
    (["report", "--latest", "--root", "{tmp}"], "--latest: no stored run documents"),
    (["report", "{tmp}/bad.json"], "bad.json: not a JSON result document"),
    (["report", "{tmp}/list.json"], "list.json: not a dlbench result document"),
    (["report", "{run}", "--out", "{tmp}/report.txt"], "--out: cannot tell the format from the suffix '.txt'"),
    (["report", "{run}", "--out", "{run}", "--format", "json"], "--out: would overwrite an input document"),
])
def test_bad_report_input_exits_2_naming_the_problem(real_run, tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    args = [a.format(tmp=tmp_path, run=real_run) for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message.format(tmp=tmp_path) in result.output
    assert "Traceback" not in result.output


def test_schema_0_document_is_upgraded_on_read(real_run, tmp_path):
    doc = read_document(real_run)
    del doc["schema_version"]
    for row in doc["results"]:
        row["metrics"]["samples_per_second"] = row["metrics"].pop("samples_per_sec")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    upgraded = read_document(path)
    assert upgraded["schema_version"] == 3
    assert all("samples_per_sec" in r["metrics"] and "samples_per_second" not in r["metrics"]
               for r in upgraded["results"])
    row = next(r for r in json.loads(invoke("report", path, "--format", "json").output)["rows"])
    assert row["samples_per_sec"] > 0


def test_newer_schema_is_refused(real_run, tmp_path):
    doc = read_document(real_run)
    doc["schema_version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(cli, ["report", str(path)])
    assert result.exit_code == 2 and "schema_version 99 is newer" in result.output


def test_report_help_imports_neither_matplotlib_nor_a_framework():
    code = ("import sys; from click.testing import CliRunner; from dlbench.cli import reports as cli_reports; "
            "[CliRunner().invoke(c, ['--help']) for c in (cli_reports.report, cli_reports.compare, "
            "cli_reports.history_)]; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_sweep_rows_show_speedup_and_thread_efficiency():
    def row(threads, sps):
        return {"scenario": "s", "backend": "numpy", "status": "ok", "sweep_point": {"threads": threads},
                "metrics": {"samples_per_sec": sps}}

    runs = report.runs_of([{"schema_version": 1, "results": [row(1, 100.0), row(2, 150.0), row(4, 200.0)]}])
    scaled = {e.point["threads"]: (e.speedup, e.thread_efficiency) for e in report.entries(runs)}
    assert scaled == {1: (1.0, 1.0), 2: (1.5, 0.75), 4: (2.0, 0.5)}
    columns, cells = report.table(report.entries(runs))
    names = [c.name for c in columns]
    assert cells[1][names.index("thread eff.")] == "75%" and cells[2][names.index("speedup")] == "2.00×"


def test_a_precision_sweep_shows_each_precision_beside_fp32_with_its_speedup_and_accuracy_cost(tmp_path):
    def row(backend, precision, sps, accuracy, **metrics):
        return {"scenario": "s", "backend": backend, "status": "ok", "precision": precision,
                "sweep_point": {"precision": precision},
                "metrics": {"samples_per_sec": sps, "test_accuracy": accuracy, **metrics}}

    doc = {"schema_version": 1, "results": [row("torch", "bf16", 300.0, 0.95), row("torch", "fp32", 100.0, 0.97),
                                            row("torch", "fp16", 50.0, 0.96, skipped_steps=3)]}
    runs = report.runs_of([doc])
    got = {e.point["precision"]: (e.speedup, e.accuracy_vs_fp32) for e in report.entries(runs)}
    assert got["fp32"] == (1.0, 0.0) and got["bf16"][0] == 3.0 and got["fp16"][0] == 0.5
    assert got["bf16"][1] == pytest.approx(-0.02) and got["fp16"][1] == pytest.approx(-0.01)
    columns, cells = report.table(report.entries(runs))
    names = [c.name for c in columns]
    assert {"precision", "speedup", "acc vs fp32", "skipped steps"} <= set(names)
    by_precision = {c[names.index("precision")]: c for c in cells}
    assert by_precision["bf16"][names.index("speedup")] == "3.00×"
    assert by_precision["bf16"][names.index("acc vs fp32")] == "-0.0200"
    assert by_precision["fp16"][names.index("skipped steps")] == "3"
    path = tmp_path / "run.json"
    write_document(doc, path)
    records = list(csv.DictReader(io.StringIO(invoke("report", path, "--format", "csv", "--no-plots").output)))
    assert {(r["precision"], r["speedup"]) for r in records} == {("fp32", "1.0"), ("bf16", "3.0"), ("fp16", "0.5")}


def test_an_fp32_run_shows_no_precision_column():
    doc = {"schema_version": 1, "results": [{"scenario": "s", "backend": "numpy", "status": "ok",
                                             "precision": "fp32", "metrics": {"samples_per_sec": 1.0}}]}
    columns, _ = report.table(report.entries(report.runs_of([doc])))
    assert "precision" not in [c.name for c in columns]


@pytest.mark.parametrize("fmt, speed", [("table", "12,346"), ("markdown", "12,346"), ("html", "12,346"),
                                        ("csv", "12345.6"), ("json", "12345.6")])
def test_every_format_shows_the_rows_values_and_failures(tmp_path, fmt, speed):
    doc = {"schema_version": 1, "environment": {"hostname": "box"}, "settings": {}, "results": [
        {"scenario": "s", "backend": "numpy", "status": "ok",
         "metrics": {"samples_per_sec": 12345.6, "test_accuracy": 0.9375}},
        {"scenario": "s", "backend": "torch", "status": "failed", "error": "RuntimeError: boom", "metrics": {}}]}
    path = tmp_path / "run.json"
    write_document(doc, path)
    output = invoke("report", path, "--format", fmt, "--no-plots").output
    assert "0.9375" in output and speed in output
    assert "torch" in output and "failed" in output and "RuntimeError: boom" in output


def test_seeds_give_one_row_per_seed_and_the_outcome_distributions(tmp_path):
    from dlbench.cli import main

    result = CliRunner().invoke(main, ["run", "--scenario", "xor-mlp", "--backend", "numpy", "--seeds", "3",
                                       "--seed", "4", "--steps", "5", "--in-process", "--format", "json",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["sweep_point"] for r in doc["results"]] == [{"seed": 4}, {"seed": 5}, {"seed": 6}]
    path = next(tmp_path.glob("*/*.json"))
    markdown = invoke("report", path, "--format", "markdown", "--no-plots").output
    assert "Outcomes over seeds (xor-mlp):" in markdown and "| numpy | 3 |" in markdown


def test_outcomes_test_each_backend_against_the_reference_seeds():
    rows = [{"scenario": "s", "backend": b, "status": "ok", "sweep_point": {"seed": i},
             "metrics": {"test_accuracy": acc, "final_loss": 1.0 - acc}}
            for i in range(6) for b, acc in (("numpy", 0.80 + 0.01 * i), ("torch", 0.80 + 0.01 * i),
                                             ("jax", 0.50 + 0.01 * i))]
    header, cells = report.outcomes(report.entries(report.runs_of([{"schema_version": 1, "results": rows}])))
    by_backend = {c[0]: c for c in cells}
    assert by_backend["numpy"][3] == "-" and float(by_backend["torch"][3]) == 1.0
    assert float(by_backend["jax"][3]) < 0.01  # six seeds apart: the rank test tells
    assert by_backend["torch"][2] == "0.825 [0.8, 0.85]"


def test_a_run_too_short_to_judge_reads_not_judged_in_every_format_never_no(tmp_path):
    """A schema-2 document of `--steps 1` said "no (0/0)"; read today, and in a new one, it is "not judged"."""
    certificate = {"kind": "certificate", "agrees": False, "checkpoints": 0, "checkpoints_agreeing": 0,
                   "free_run_agrees": True}
    rows = [{"scenario": "xor-mlp", "backend": "numpy", "status": "ok", "metrics": {"test_accuracy": 0.5}},
            {"scenario": "xor-mlp", "backend": "torch", "status": "ok", "metrics": {"test_accuracy": 0.5},
             "parity": certificate},
            {"scenario": "xor-mlp", "backend": "jax", "status": "ok", "metrics": {"test_accuracy": 0.5},
             "parity": {"kind": "accuracy-only", "verdict": "not judged", "agrees": None,
                        "reason": "free runs not comparable: dropout masks differ"}}]
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"schema_version": 2, "environment": {}, "settings": {}, "results": rows}))
    outputs = {fmt: invoke("report", path, "--format", fmt, "--no-plots").output
               for fmt in ("table", "markdown", "csv", "html", "json")}
    for fmt in ("markdown", "html"):
        assert "not judged (too short)" in outputs[fmt] and "not judged (free runs not comparable)" in outputs[fmt]
    wide = CliRunner().invoke(cli, ["report", str(path), "--no-plots"], env={"COLUMNS": "200"}).output
    assert "not judged (too short)" in wide and "not judged (free runs not comparable)" in wide
    outputs["table"] = wide
    assert all("no (" not in outputs[fmt] for fmt in ("table", "markdown", "html"))
    records = {r["backend"]: r for r in csv.DictReader(io.StringIO(outputs["csv"]))}
    assert (records["torch"]["verdict"], records["torch"]["agrees"]) == ("not judged", "")
    assert records["torch"]["verdict_reason"] == "too short: no checkpoint"
    assert '"verdict": "not judged"' in outputs["json"]
    assert report.agreement({"backend": "tf", "parity": {"kind": "certificate", "verdict": "disagrees",
                                                         "checkpoints": 8, "checkpoints_agreeing": 1,
                                                         "certificate_verdict": "disagrees"}}) == "no (1/8)"
