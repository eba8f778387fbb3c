"""Nothing lost, round three: one writer per result document, no write over a
document or an input, every document checked field by field on read, reports
that open no file a document names, and stop signals that cannot cut a save short."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.errors import ERROR_CHARS, InputError
from dlbench.results import fields
from dlbench.results.document import read_document, write_document
from dlbench.results.files import write_file
from dlbench.results.lock import DocumentLock, lock_path
from test_interrupts import start_run, wait_for_rows, wait_for_worker

TESTS = Path(__file__).parents[1]


def dlbench(*args) -> list[str]:
    return [sys.executable, "-m", "dlbench.cli", *args]


def fault_env() -> dict:
    """This process's environment (its private peak cache included) with the test-only faulty backends."""
    return {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "fault_plugins"}


def statuses(path) -> list[str]:
    return [r["status"] for r in json.loads(Path(path).read_text())["results"]]


def stored_copy(real_run, folder: Path, change=None, name="0001_abc_20261201T000000Z.json") -> Path:
    """A copy of the session's real run (changed by ``change``), stored as a run's document is."""
    document = json.loads(real_run.read_text())
    if change:
        change(document)
    path = folder / "machine" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def interrupt_first_row(document):
    document["results"][0].update(status="interrupted", error="interrupted by the user", metrics={})


@pytest.fixture
def started():
    """Processes a test starts; any still running when it ends (a failed test) are killed."""
    procs = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ------------------------------------------------------------------ one writer
@pytest.mark.slow
def test_a_document_being_written_has_one_writer_and_two_resumes_at_once_run_once(tmp_path, started):
    first = start_run(tmp_path)
    started.append(first)
    path = wait_for_rows(tmp_path, 1)
    wait_for_worker(first)
    before = path.read_bytes()
    second = subprocess.run(dlbench("run", "--resume", str(path), "--format", "json"), env=fault_env(),
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 2, second.stderr
    assert f"{path}: --resume: is being written by another dlbench run (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr and path.read_bytes() == before
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert first.returncode == 143
    assert statuses(path) == ["ok", "interrupted", "interrupted"] and not lock_path(path).exists()

    started += [subprocess.Popen(dlbench("run", "--resume", str(path), "--format", "json"), env=fault_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    resumes = started[1:]
    deadline = time.time() + 90
    while all(p.poll() is None for p in resumes) and time.time() < deadline:
        time.sleep(0.1)
    refused = next((p for p in resumes if p.poll() is not None), None)
    assert refused is not None, "both resumes are running the missing cell"
    running = next(p for p in resumes if p is not refused)
    _, stderr = refused.communicate()
    assert refused.returncode == 2 and f"is being written by another dlbench run (pid {running.pid})" in stderr
    wait_for_worker(running)
    running.send_signal(signal.SIGTERM)
    running.communicate(timeout=60)
    assert running.returncode == 143
    assert statuses(path) == ["ok", "interrupted", "interrupted"] and not lock_path(path).exists()


def test_a_lock_left_behind_by_a_dead_run_is_taken_over(real_run, tmp_path):
    path = stored_copy(real_run, tmp_path, interrupt_first_row)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_path(path).write_text(dead.stdout)  # what a SIGKILLed run leaves: the file, no lock on it
    result = CliRunner().invoke(main, ["run", "--resume", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert statuses(path) == ["ok", "ok"] and not lock_path(path).exists()


def test_a_lock_is_exclusive_within_one_process_too(tmp_path):
    document = tmp_path / "run.json"
    with pytest.raises(InputError, match="run.json: cannot read result file: No such file"):
        DocumentLock(document).acquire()
    assert not lock_path(document).exists()
    document.write_text("{}")
    with DocumentLock(document):
        assert lock_path(document).read_text() == f"{os.getpid()}\n"
        with pytest.raises(InputError, match=rf"another dlbench run \(pid {os.getpid()}\)"):
            DocumentLock(document).acquire()
    with DocumentLock(document):  # let go: free again
        pass


# ------------------------------------------------------------------ guarded writes
@pytest.mark.parametrize("target, message", [
    ("another stored document", "is a dlbench result document; dlbench never replaces one"),
    ("a hard link to the input", "would overwrite an input document"),
    ("a symbolic link to the input", "would overwrite an input document"),
    ("a FIFO", "is not a regular file"),
])
def test_report_out_never_replaces_a_result_document_or_its_input(real_run, tmp_path, target, message):
    run = stored_copy(real_run, tmp_path)
    other = stored_copy(real_run, tmp_path, name="0002_abc_20261201T000001Z.json")
    out = other if target == "another stored document" else tmp_path / "report.md"
    make = {"a hard link to the input": lambda: os.link(run, out), "a FIFO": lambda: os.mkfifo(out),
            "a symbolic link to the input": lambda: os.symlink(run, out)}.get(target)
    if make:
        make()
    before = run.read_bytes(), other.read_bytes()
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{out}: --out: {message}" in result.output and "Traceback" not in result.output
    assert (run.read_bytes(), other.read_bytes()) == before
    assert not list(tmp_path.glob("*.png"))  # refused before any plot is drawn


def test_results_report_never_replaces_its_own_document_through_a_hard_link(real_run, tmp_path):
    import dlbench

    run = stored_copy(real_run, tmp_path)
    os.link(run, tmp_path / "report.csv")
    before = run.read_bytes()
    with pytest.raises(InputError, match="would overwrite an input document"):
        dlbench.load(run).report(tmp_path / "report.csv")
    assert run.read_bytes() == before
    assert dlbench.load(run).report(tmp_path / "fresh.csv").read_text().startswith("run,")


def test_a_guarded_write_is_atomic_and_replaces_an_ordinary_file(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("an older report")
    write_file(path, "the new report")
    assert path.read_text() == "the new report" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


# ------------------------------------------------------------------ reports read only the document
def test_a_report_opens_no_file_the_document_names(real_run, tmp_path):
    secret = tmp_path / "secret.toml"
    secret.write_text('description = "SECRET from a file the document names"\n')

    def point_at_secret(document):
        settings = document["settings"]
        settings["scenarios"] = {name: str(secret) for name in settings["scenarios"]}
        settings["scenario_descriptions"] = {"xor-mlp": "as the run recorded it"}  # digits-mlp: an older document

    path = stored_copy(real_run, tmp_path, point_at_secret)
    result = CliRunner().invoke(main, ["report", str(path), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "SECRET" not in result.output and "as the run recorded it" in result.output
    shipped = read_document(real_run)["settings"]["scenario_descriptions"]["digits-mlp"]
    assert shipped and shipped in result.output  # a document without the record: the shipped scenario's


# ------------------------------------------------------------------ every document checked on read
def change(where: str, value):
    """A function that sets ``where`` (a dotted path, numbers index lists) in a document to ``value``."""
    def changed(document):
        *parents, last = where.split(".")
        node = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return changed


BAD_FIELDS = [
    ("settings.scenarios", ["xor-mlp"], "settings.scenarios: expected an object of scenario names to shipped "
                                        "names or .toml files, got ['xor-mlp']"),
    ("results.0.metrics.samples_per_sec", "fast",
     "results[0].metrics.samples_per_sec: expected a finite number or null, got 'fast'"),
    ("settings.repeat", "2", "settings.repeat: expected a positive integer, got '2'"),
    ("settings.threads", 0, "settings.threads: expected a positive integer, got 0"),
    ("settings.overrides", {"lr": 1}, "settings.overrides.lr: unknown key; expected one of epochs, max_steps"),
    ("environment.gpus", "none", "environment.gpus: expected a list of strings or null, got 'none'"),
    ("results.0.parity", {"agrees": "yes"}, "results[0].parity.agrees: expected true or false or null, got 'yes'"),
    ("results.0.metrics.loss_history", [0.5, "low"],
     "results[0].metrics.loss_history[1]: expected a finite number or null, got 'low'"),
    ("command", "dlbench run", "command: expected a list of strings (the command's words), got 'dlbench run'"),
]


@pytest.mark.parametrize("fmt", ["markdown", "html", "csv"])
@pytest.mark.parametrize("where, value, message", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_a_report_of_a_document_with_a_wrong_field_is_one_line_naming_it(real_run, tmp_path, fmt, where, value,
                                                                          message):
    path = stored_copy(real_run, tmp_path, change(where, value))
    result = CliRunner().invoke(main, ["report", str(path), "--format", fmt])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"dlbench: error: {path}: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("where, value, message", [
    *BAD_FIELDS[2:5],
    ("settings.scenarios", {"xor-mlp": "/dev/null"}, "settings.scenarios.xor-mlp: cannot resume: /dev/null is not "
                                                     "a regular file"),
    ("settings.shiny", True, "settings: cannot resume: the document's settings have unknown setting 'shiny'"),
], ids=["repeat a string", "zero threads", "an unknown override", "a scenario that is a device", "an unknown setting"])
def test_resume_of_a_hand_edited_document_is_refused_before_anything_is_written(real_run, tmp_path, where, value,
                                                                                message):
    def edited(document):
        interrupt_first_row(document)
        change(where, value)(document)

    path = stored_copy(real_run, tmp_path, edited)
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["run", "--resume", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert path.read_bytes() == before and not lock_path(path).exists()


def test_the_declared_settings_are_the_run_settings_and_their_choices_the_runs():
    from dlbench.run import checks
    from dlbench.run.settings import RunSettings
    from dlbench.network.precision import PRECISIONS

    stored = RunSettings(scenarios={}, backends=[], overrides={}).to_document()  # what a document holds
    assert set(fields.SETTINGS.declared) == set(stored)
    assert set(fields.SWEEP.declared) == set(checks.SWEEP_KEYS)
    assert (fields.DEVICES, fields.MODES, set(fields.PRECISIONS)) == (checks.DEVICES, checks.MODES,
                                                                      set(PRECISIONS))


def test_a_run_records_its_scenario_descriptions(real_run):
    descriptions = read_document(real_run)["settings"]["scenario_descriptions"]
    assert descriptions["xor-mlp"].startswith("The seed's Keras example")


# ------------------------------------------------------------------ stop signals
@pytest.fixture
def three_jobs(tmp_path):
    """Three quick in-process jobs and their stored, empty document."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.run.settings import RunSettings
    from dlbench.run.suite import Suite

    settings = RunSettings.from_options(get_plugins(), scenarios=["xor-mlp"], backends="numpy", steps=2,
                                        in_process=True, sweep=["seed=0,1,2"])
    path = tmp_path / "run.json"
    return Suite(settings.jobs(), new_document(), path, in_process=True), path


def new_document() -> dict:
    """A run's empty document (without the environment, whose peaks a run measures first)."""
    return {"schema_version": 2, "environment": {}, "settings": {}, "results": []}


def test_a_ctrl_c_between_jobs_still_marks_every_unfinished_job(three_jobs):
    """Where the interrupt test was flaky: the signal came while the runner
    printed the finished row, outside the job, and the rest went unmarked."""
    suite, path = three_jobs

    def interrupted_while_printing(row):
        raise KeyboardInterrupt

    suite.on_row = interrupted_while_printing
    with pytest.raises(KeyboardInterrupt):
        suite.run()
    assert statuses(path) == ["ok", "interrupted", "interrupted"]


def test_a_ctrl_c_while_a_row_is_saved_waits_for_the_save(three_jobs, monkeypatch):
    from dlbench.run import suite as suites

    suite, path = three_jobs
    real_write = suites.write_document

    def write_while_interrupted(document, target):
        if len(document["results"]) == 1 and document["results"][0]["status"] == "ok":
            os.kill(os.getpid(), signal.SIGINT)  # handled before the next line, as a real Ctrl-C is
        real_write(document, target)

    monkeypatch.setattr(suites, "write_document", write_while_interrupted)
    with pytest.raises(KeyboardInterrupt):
        suite.run()
    assert statuses(path) == ["ok", "interrupted", "interrupted"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_a_ctrl_c_while_a_worker_starts_leaves_no_worker_running(tmp_path, monkeypatch):
    """The other half of the flaky interrupt test: a signal that landed while
    the worker was being started left a worker the runner did not know of,
    killed only later, by PR_SET_PDEATHSIG, once the runner had exited."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.run import isolation, suite as suites
    from dlbench.run.settings import RunSettings

    monkeypatch.setenv("DLBENCH_PLUGINS", "fault_plugins")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    get_plugins.cache_clear()
    settings = RunSettings.from_options(get_plugins(), scenarios=["xor-mlp"], backends="hang", steps=2)
    path = tmp_path / "run.json"
    started, real_popen = [], subprocess.Popen

    def popen_then_ctrl_c(command, **options):
        proc = real_popen(command, **options)
        if "dlbench.run.worker" in command:
            started.append(proc)
            os.kill(os.getpid(), signal.SIGINT)  # handled before this returns, as a Ctrl-C can be
        return proc

    monkeypatch.setattr(isolation.subprocess, "Popen", popen_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            suites.Suite(settings.jobs(), new_document(), path).run()
        (worker,) = started
        assert worker.poll() is not None, "the worker is still running"
        assert statuses(path) == ["interrupted"]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        get_plugins.cache_clear()


@pytest.mark.slow
def test_a_second_ctrl_c_while_the_run_stops_is_ignored(tmp_path, started):
    proc = start_run(tmp_path)
    started.append(proc)
    path = wait_for_rows(tmp_path, 1)
    wait_for_worker(proc)
    proc.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:  # a second Ctrl-C 50 ms later, and more
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted; finished rows kept in" in stderr
    assert statuses(path) == ["ok", "interrupted", "interrupted"]


# ------------------------------------------------------------------ error texts capped
@pytest.mark.slow
def test_a_worker_writing_megabytes_on_one_line_leaves_a_capped_error(tmp_path):
    env = {**fault_env(), "FAULT_STDERR_LINE": str(5 * 2**20)}
    out = subprocess.run(dlbench("run", "--out", str(tmp_path), "--scenario", "xor-mlp", "--steps", "5",
                                 "--backend", "exit"), env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1, out.stderr
    (row,) = read_document(next(tmp_path.glob("*/*.json")))["results"]
    assert row["status"] == "failed" and "exited with code 3" in row["error"] and "characters cut" in row["error"]
    assert len(row["error"]) <= ERROR_CHARS + 100
    assert len(out.stdout) + len(out.stderr) < 20_000  # the terminal gets no megabytes either


def test_an_inference_entry_of_the_wrong_type_is_refused_on_read():
    from dlbench.results.schema import checked_document

    entry = {"batch_size": 1, "calls": 3, "latency_ms": {"p50": 1, "p90": 1, "p99": 1, "mean": 1},
             "samples_per_sec": "fast"}
    row = {"scenario": "s", "backend": "b", "status": "ok", "mode": "inference", "metrics": {"inference": [entry]}}
    with pytest.raises(InputError, match=r"results\[0\]\.metrics\.inference\[0\]\.samples_per_sec: expected a "
                                         "finite number or null, got 'fast'"):
        checked_document({"schema_version": 2, "results": [row]}, "run.json")
