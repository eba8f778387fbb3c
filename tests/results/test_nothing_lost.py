"""Nothing a user ran is lost: concurrent runs into one folder, termination."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.results import store
from dlbench.results.document import write_document


def run_command(out, *extra):
    """A run whose first row takes seconds: long enough for the others to pick their names meanwhile."""
    return [sys.executable, "-m", "dlbench.cli", "run", "--scenario", "digits-mlp", "--backend", "numpy",
            "--steps", "1500", "--threads", "1", "--in-process", "--format", "json", "--out", str(out), *extra]


def test_concurrent_runs_into_one_folder_keep_every_document(tmp_path):
    procs = [subprocess.Popen(run_command(tmp_path, "--seed", str(seed)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in range(3)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, [err for _, err in outputs]
    documents = sorted(tmp_path.glob("*/*.json"))
    assert len(documents) == 3
    seeds = sorted(json.loads(p.read_text())["settings"]["overrides"]["seed"] for p in documents)
    assert seeds == [0, 1, 2]
    numbers = sorted(int(p.name[:4]) for p in documents)
    assert numbers == [1, 2, 3]


def test_a_reserved_name_is_never_handed_out_twice_and_readers_skip_it(tmp_path):
    doc = {"environment": {"hostname": "h", "git_commit": "abc"}, "created": "2026-12-02T10:00:00Z"}
    first, second = store.store_path(tmp_path, doc), store.store_path(tmp_path, doc)
    assert first != second and first.exists() and second.exists()
    assert store.stored_runs(tmp_path) == []  # both still empty: no run has written yet


HALF_ROW = {"schema_version": 1, "environment": {}, "settings": {}, "results": [{"x": 1}]}


def command_on(kind, path):
    return {"report": ["report", str(path)], "compare": ["compare", str(path), str(path)],
            "history": ["history", "--root", str(path.parent.parent)], "resume": ["run", "--resume", str(path)]}[kind]


@pytest.mark.parametrize("kind", ["report", "compare", "history", "resume"])
@pytest.mark.parametrize("document, message", [
    (HALF_ROW, "results[0].scenario: missing; every row has scenario, backend, status"),
    ({**HALF_ROW, "results": [{"scenario": "s", "backend": "b", "status": "fine"}]},
     "results[0].status: unknown 'fine'; expected one of ok, failed"),
    ({**HALF_ROW, "results": [{"scenario": "s", "backend": "b", "status": "ok", "metrics": [1]}]},
     "results[0].metrics: expected an object, got list"),
    ({**HALF_ROW, "environment": "x", "results": []}, "environment: expected an object, got str"),
], ids=["missing field", "unknown status", "metrics not an object", "environment not an object"])
def test_malformed_documents_are_refused_on_read_by_every_command(tmp_path, kind, document, message):
    path = tmp_path / "machine" / "0001_abc_20261202T100000Z.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    result = CliRunner().invoke(main, command_on(kind, path))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_scenario_file_that_changes_during_a_run_is_not_trained_silently(tmp_path):
    from dlbench.run.worker import RunRequest, execute
    from dlbench.scenario import resolve_scenario, shipped_scenario_dir

    path = tmp_path / "mine.toml"
    path.write_text((shipped_scenario_dir() / "xor-mlp.toml").read_text())
    digest = resolve_scenario(str(path)).digest
    request = RunRequest(scenario=str(path), name="mine", backend="numpy", overrides={"max_steps": 2},
                         scenario_digest=digest)
    assert execute(request)["status"] == "ok"
    path.write_text(path.read_text() + "\n# edited after the run began\n")
    row = execute(request)
    assert row["status"] == "failed" and "changed after the run began" in row["error"]
    path.unlink()
    row = execute(request)
    assert row["status"] == "failed" and "can no longer be read" in row["error"]


def test_every_job_of_a_run_carries_its_scenario_digest(tmp_path):
    path = tmp_path / "mine.toml"
    from dlbench.scenario import shipped_scenario_dir

    path.write_text((shipped_scenario_dir() / "xor-mlp.toml").read_text())
    result = CliRunner().invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--steps", "2",
                                       "--in-process", "--format", "json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)["settings"]
    assert settings["scenario_digests"]["xor-mlp"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize("failures, exit_code", [(1, 0), (99, 1)], ids=["disk full for a moment", "disk full"])
def test_a_full_disk_while_writing_the_document_loses_no_row(tmp_path, monkeypatch, failures, exit_code):
    """The first write (the empty document) fails; with the disk full for good
    the rows come out on standard output and the exit code says so."""
    import errno

    from dlbench.run import suite

    real_write, calls = suite.write_document, []

    def write_document(document, path):
        calls.append(path)
        if len(calls) <= failures:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(document, path)

    monkeypatch.setattr(suite, "write_document", write_document)
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--steps", "3", "--in-process", "--format",
                                       "table", "--out", str(tmp_path)])
    assert result.exit_code == exit_code, result.output
    assert "cannot write" in result.output and "No space left on device" in result.output
    if failures == 1:  # a later save succeeded: the stored document has every row
        (stored,) = tmp_path.glob("*/*.json")
        assert len(json.loads(stored.read_text())["results"]) == 2
    else:
        printed = result.output[result.output.index("{"):result.output.rindex("}") + 1]
        assert [r["status"] for r in json.loads(printed)["results"]] == ["ok", "ok"]
        assert "it was printed on standard output instead" in result.output


def test_a_write_that_fails_halfway_leaves_the_previous_document_whole(tmp_path):
    from dlbench.results.document import write_document

    path = tmp_path / "run.json"
    write_document({"results": [], "note": "first"}, path)
    half = {"results": [], "big": "x" * 1_000_000, "late": object()}  # json.dump fails after writing "big"
    with pytest.raises(TypeError):
        write_document(half, path)
    assert json.loads(path.read_text()) == {"results": [], "note": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind


def test_a_written_document_is_readable_like_any_file_the_user_creates(tmp_path):
    """The temporary file behind the atomic write is owner-only (0o600); the
    document must get what a plain open() gives under the user's umask."""
    import os

    old = os.umask(0o022)
    try:
        write_document({"results": []}, tmp_path / "run.json")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644
