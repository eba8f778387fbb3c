import json
import re

import click
import pytest
from click.testing import CliRunner

from dlbench.cli import reports as cli_reports

from dlbench.report import history
from dlbench.results import store as storage
from dlbench.cli import InputErrorGroup
from dlbench.results.document import write_document


@click.group(cls=InputErrorGroup)
def cli():
    """The history and report commands under the same error handling as ``dlbench``."""


cli.add_command(cli_reports.history_)
cli.add_command(cli_reports.report)

ENV = {"hostname": "bench box/1", "cpu": "AMD EPYC 9654", "logical_cores": 2, "git_commit": "abc123-dirty"}


def document(created: str, speed: float, env=None, accuracy=0.9) -> dict:
    rows = [{"scenario": s, "backend": b, "status": "ok", "metrics": {"samples_per_sec": speed * k,
                                                                      "test_accuracy": accuracy}}
            for s in ("xor-mlp", "digits-mlp") for b, k in (("numpy", 1), ("torch", 2))]
    rows.append({**rows[0], "sweep_point": {"batch_size": 8}})  # sweeps stay out of the history
    return {"schema_version": 1, "created": created, "environment": env or ENV, "settings": {}, "results": rows}


def store(root, doc):
    path = storage.store_path(root, doc)
    write_document(doc, path)
    return path


def test_machine_id_is_a_stable_safe_slug_that_tells_machines_apart():
    first = storage.machine_id(ENV)
    assert first == storage.machine_id(dict(ENV)) and re.fullmatch(r"bench_box_1-[0-9a-f]{8}", first)
    assert storage.machine_id({**ENV, "cpu": "Intel Xeon"}) != first
    assert storage.machine_id({**ENV, "logical_cores": 64}) != first
    assert re.fullmatch(r"unknown-[0-9a-f]{8}", storage.machine_id({}))


def test_runs_are_stored_numbered_per_machine(tmp_path):
    first = store(tmp_path, document("2026-11-28T16:00:00Z", 100))
    second = store(tmp_path, document("2026-11-28T17:30:05Z", 100))
    other = store(tmp_path, document("2026-11-28T18:00:00Z", 100, env={"hostname": "gpu"}))
    assert first.parent == second.parent == tmp_path / storage.machine_id(ENV)
    assert first.name == "0001_abc123-dirty_20261128T160000Z.json"
    assert second.name == "0002_abc123-dirty_20261128T173005Z.json"
    assert other.parent.name.startswith("gpu-") and other.name == "0001_nocommit_20261128T180000Z.json"


def test_history_lists_runs_oldest_first(tmp_path):
    store(tmp_path, document("2026-11-28T12:00:00Z", 300))
    store(tmp_path, document("2026-11-28T10:00:00Z", 100))  # stored later, created earlier
    legacy = tmp_path / "runs" / "run-20261128T110000Z.json"  # the old results/runs layout
    legacy.parent.mkdir()
    write_document(document("2026-11-28T11:00:00Z", 200), legacy)
    result = CliRunner().invoke(cli, ["history", "--root", str(tmp_path), "--scenario", "xor-mlp",
                                      "--backend", "numpy", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["value"] for r in records] == [100, 200, 300]
    assert history.latest(tmp_path).name.endswith("20261128T120000Z.json")


def test_history_table_shows_each_backend_per_stored_run(tmp_path):
    store(tmp_path, document("2026-11-28T10:00:00Z", 1000))
    store(tmp_path, document("2026-11-28T11:00:00Z", 1500))
    result = CliRunner().invoke(cli, ["history", "--root", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "xor-mlp: samples_per_sec" in result.output and "digits-mlp: samples_per_sec" in result.output
    for value in ("1,000", "2,000", "1,500", "3,000"):
        assert value in result.output


def test_history_of_another_metric_as_csv(tmp_path):
    store(tmp_path, document("2026-11-28T10:00:00Z", 1000, accuracy=0.75))
    result = CliRunner().invoke(cli, ["history", "--root", str(tmp_path), "--metric", "test_accuracy",
                                      "--format", "csv"])
    lines = result.output.splitlines()
    assert lines[0].startswith("path,number,created,commit,machine,scenario,backend,status,metric,value")
    assert len(lines) == 1 + 4 and all(line.endswith(",test_accuracy,0.75") for line in lines[1:])


def test_report_latest_uses_the_newest_run(tmp_path):
    store(tmp_path, document("2026-11-28T10:00:00Z", 1000))
    store(tmp_path, document("2026-11-28T11:00:00Z", 4321))
    result = CliRunner().invoke(cli, ["report", "--latest", "--root", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "4321" in result.output and ",1000" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--metric", "speed"],
     "--metric: no stored run has metric 'speed'; expected one of samples_per_sec, test_accuracy"),
    (["--scenario", "nope"], "--scenario: no stored run has 'nope'; expected one of digits-mlp, xor-mlp"),
    (["--backend", "caffe"], "--backend: no stored run has 'caffe'; expected one of numpy, torch"),
    (["--machine", "elsewhere"], "no stored run documents for machine 'elsewhere'"),
])
def test_bad_history_filters_exit_2(tmp_path, args, message):
    store(tmp_path, document("2026-11-28T10:00:00Z", 1000))
    result = CliRunner().invoke(cli, ["history", "--root", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_history_skips_unreadable_files_with_a_warning(tmp_path):
    store(tmp_path, document("2026-11-28T10:00:00Z", 1000))
    broken = tmp_path / "runs" / "run-20261128T110000Z.json"
    broken.parent.mkdir()
    broken.write_text("{half a file")
    result = CliRunner().invoke(cli, ["history", "--root", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0
    assert "warning: skipped" in result.stderr and str(broken) in result.stderr
    assert len(json.loads(result.stdout)) == 4
