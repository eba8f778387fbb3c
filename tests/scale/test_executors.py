"""--executor slurm, run through submitit's local fallback (there is no Slurm
here): the document of a local run; jobs that die or run out of time as rows;
the reference first; rows from several machines, in the document and the report."""

import contextlib
import copy
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
from dlbench.plugin.manager import get_plugins
from dlbench.report import render
from dlbench.report.table import runs_of
from dlbench.results.store import machine_id
from dlbench.scale.cluster import import_submitit
from dlbench.run.executors import CellJob, Finished, job_failed_row
from dlbench.run.settings import Job, RunRequest
from dlbench.run.row import this_machine
from dlbench.run.suite import Suite

TESTS = Path(__file__).parents[1]

#: test-only backends that do to their cluster job what a crash or a scheduler does
JOB_FAULTS = '''
import os, signal, time

import dlbench
from dlbench_backends.numpy.trainer import NumpyTrainer
from fault_plugins import backend


class JobKillingTrainer(NumpyTrainer):
    """Kills the job's own process (its worker's parent): an OOM killer, a node going down."""

    def train(self, indices):
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)


class TimeLimitTrainer(NumpyTrainer):
    """Sends its job the signal a scheduler sends as the time limit nears, then trains on and on."""

    def train(self, indices):
        os.kill(os.getppid(), signal.SIGUSR2)
        time.sleep(60)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(backend("jobkill", JobKillingTrainer))
    registry.add(backend("timelimit", TimeLimitTrainer))
'''


@pytest.fixture
def job_faults(tmp_path, monkeypatch):
    """The fault backends registered here and in every job and worker process."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "job_fault_plugins.py").write_text(JOB_FAULTS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}:{folder}")
    monkeypatch.setenv("DLBENCH_PLUGINS", "fault_plugins,job_fault_plugins")
    get_plugins.cache_clear()
    yield
    get_plugins.cache_clear()


def run(out: Path, *args) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["run", "--format", "json", "--out", str(out), *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def shape(document: dict) -> list[tuple]:
    """What must not differ between a local run and one through an executor (timings may)."""
    return [(r["scenario"], r["backend"], r.get("sweep_point"), r["status"], (r.get("parity") or {}).get("kind"),
             (r.get("parity") or {}).get("agrees"), sorted(r), sorted(r["metrics"])) for r in document["results"]]


def submissions(folder: Path) -> list[tuple[str, float, float]]:
    """(backend, submitted at, result written at) of every job the executor left in ``folder``."""
    import_submitit()  # as dlbench imports it: without its logging set-up, which closes pytest's handlers
    from submitit.core.utils import DelayedSubmission

    found = []
    for submitted in folder.glob("*_submitted.pkl"):
        job = DelayedSubmission.load(submitted).args[0]
        result = submitted.with_name(submitted.name.replace("_submitted.pkl", "_0_result.pkl"))
        found.append((job.request.backend, submitted.stat().st_mtime, result.stat().st_mtime))
    return found


@pytest.mark.slow
def test_a_suite_through_submitit_gives_the_document_of_a_local_run(tmp_path):
    args = ["--scenario", "xor-mlp", "--backend", "numpy,torch", "--steps", "20", "--sweep", "seed=0,1"]
    local_code, local = run(tmp_path / "local", *args)
    code, cluster = run(tmp_path / "cluster", *args, "--executor", "slurm")
    assert (code, local_code) == (0, 0)
    assert shape(cluster) == shape(local)
    assert [r["backend"] for r in cluster["results"]] == ["numpy", "torch", "numpy", "torch"]
    assert all(r["metrics"]["certificate"]["agrees"] for r in cluster["results"] if r["backend"] == "torch")
    env = cluster["environment"]
    assert all(r["machine"] == {"hostname": env["hostname"], "id": machine_id(env)} for r in cluster["results"])
    assert "machines" not in cluster
    assert cluster["executor"]["cluster"] == "local" and not cluster["executor"]["parallel"]
    assert cluster["settings"]["executor"] == "slurm" and cluster["settings"]["slurm_time"] == 60
    folder = Path(cluster["executor"]["folder"])
    jobs = submissions(folder / "jobs")
    # the reference's jobs all ended before the first other job was submitted, and no two jobs overlapped
    assert max(end for backend, _, end in jobs if backend == "numpy") <= min(
        start for backend, start, _ in jobs if backend != "numpy")
    spans = sorted((start, end) for _, start, end in jobs)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert not (folder / "parity").exists() and not (folder / "data").exists()


@pytest.mark.slow
def test_jobs_that_die_or_run_out_of_time_become_rows_and_the_others_are_kept(tmp_path, job_faults, monkeypatch):
    import_submitit()
    from submitit.core.core import Job as SubmititJob

    # how long submitit waits for a dead job's result to appear on a slow shared file system
    monkeypatch.setattr(SubmititJob, "_results_timeout_s", 1)
    code, doc = run(tmp_path, "--scenario", "xor-mlp", "--steps", "20", "--timeout", "3", "--executor", "slurm",
                    "--backend", "numpy,jobkill,timelimit,hang,raise")
    assert code == 1
    rows = {r["backend"]: r for r in doc["results"]}
    assert list(rows) == ["numpy", "jobkill", "timelimit", "hang", "raise"]
    assert rows["numpy"]["status"] == "ok"
    killed = rows["jobkill"]
    assert killed["status"] == "failed" and "ended without a row (state FINISHED)" in killed["error"]
    assert "has not produced any output" in killed["error"]
    limit = rows["timelimit"]
    assert limit["status"] == "timeout" and "ran past its time limit (6 min, --slurm-time)" in limit["error"]
    assert "timed-out and not checkpointable" in limit["error"]
    assert rows["hang"]["status"] == "timeout" and rows["hang"]["error"] == "no result after 3 s"
    assert rows["raise"]["status"] == "failed" and "simulated failure while building" in rows["raise"]["error"]


def wait_for_the_second_job(proc: subprocess.Popen, out: Path):
    """(the document, the processes under the run) once the first row is in and the next job's
    controller, job process and worker have started."""
    import psutil

    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        written = [p for p in out.glob("*/*.json") if p.stat().st_size and json.loads(p.read_text())["results"]]
        spawned = psutil.Process(proc.pid).children(recursive=True)
        if written and len(spawned) >= 3:
            return written[0], spawned
    raise AssertionError("the second job did not start")


@pytest.mark.slow
def test_ctrl_c_cancels_the_running_job_and_leaves_no_process_behind(tmp_path):
    import psutil

    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "fault_plugins"}
    command = [sys.executable, "-m", "dlbench.cli", "run", "--executor", "slurm", "--scenario", "xor-mlp",
               "--steps", "20", "--backend", "numpy,hang,diverge", "--format", "json", "--out", str(tmp_path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path, spawned = wait_for_the_second_job(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert [(r["backend"], r["status"]) for r in json.loads(path.read_text())["results"]] == [
        ("numpy", "ok"), ("hang", "interrupted"), ("diverge", "interrupted")]
    _, alive = psutil.wait_procs(spawned, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "a job outlived its run"


@pytest.mark.slow
def test_a_sigkilled_run_leaves_no_local_job_running(tmp_path):
    """SIGKILL gives dlbench no chance to cancel: the local fallback's job
    sees its submitter gone and ends, and its worker with it."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "fault_plugins"}
    command = [sys.executable, "-m", "dlbench.cli", "run", "--executor", "slurm", "--scenario", "xor-mlp",
               "--steps", "20", "--backend", "numpy,hang", "--format", "json", "--out", str(tmp_path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, spawned = wait_for_the_second_job(proc, tmp_path)
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(spawned, timeout=20)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for orphan in alive:  # this test's own processes, by pid
        orphan.kill()
    assert not alive, f"jobs outlived their SIGKILLed run: {[p.cmdline() for p in alive]}"


class FakeExecutor:
    """An executor whose jobs end in a chosen order (and, at ``stop``, Ctrl-C)."""

    def __init__(self, tmp_path: Path, finished: list[Finished], stop: bool = False):
        self.tmp_path, self.cells, self.stop, self.closed = tmp_path, finished, stop, False

    @contextlib.contextmanager
    def shared_folders(self):
        yield str(self.tmp_path / "parity"), str(self.tmp_path / "data")

    def start(self) -> dict:
        return {"name": "fake"}

    def finished(self, suite, home):
        try:
            yield from self.cells
            if self.stop:
                raise KeyboardInterrupt
        finally:
            self.closed = True


def cell(backend: str, seed: int) -> Job:
    return Job(RunRequest(scenario="xor-mlp", name="xor-mlp", backend=backend), {"seed": seed})


def finished_row(index: int, job: Job, machine: dict) -> Finished:
    row = {"scenario": "xor-mlp", "backend": job.request.backend, "status": "ok", "metrics": {},
           "sweep_point": job.sweep_point, "machine": machine}
    return Finished(index, row, None if machine["id"] == "home-00000000" else {"hostname": machine["hostname"]})


HOME = {"hostname": "home", "id": "home-00000000"}
NODE = {"hostname": "node7", "id": "node7-12345678"}


def suite_of(jobs, executor) -> Suite:
    document = {"environment": {"hostname": "home"}, "results": []}
    return Suite(jobs, document, None, executor=executor)


def test_rows_are_filed_in_the_order_of_a_local_run_with_each_machine_s_environment(tmp_path, monkeypatch):
    monkeypatch.setattr("dlbench.run.suite.machine_id", lambda env: "home-00000000")
    jobs = [cell("numpy", 0), cell("torch", 0), cell("numpy", 1), cell("torch", 1)]
    ends = [finished_row(i, jobs[i], machine) for i, machine in ((2, HOME), (0, HOME), (3, NODE), (1, HOME))]
    seen = []
    suite = suite_of(jobs, FakeExecutor(tmp_path, ends))
    suite.on_row = lambda row: seen.append((row["backend"], row["sweep_point"]["seed"]))
    document = suite.run()
    assert [(r["backend"], r["sweep_point"]["seed"]) for r in document["results"]] == [
        ("numpy", 0), ("torch", 0), ("numpy", 1), ("torch", 1)]
    assert seen == [("numpy", 1), ("numpy", 0), ("torch", 1), ("torch", 0)]
    assert document["machines"] == {NODE["id"]: {"hostname": "node7"}}
    assert document["executor"] == {"name": "fake"}


def test_ctrl_c_while_waiting_cancels_the_jobs_and_marks_the_unfinished_interrupted(tmp_path, monkeypatch):
    monkeypatch.setattr("dlbench.run.suite.machine_id", lambda env: "home-00000000")
    jobs = [cell("numpy", 0), cell("torch", 0), cell("numpy", 1), cell("torch", 1)]
    executor = FakeExecutor(tmp_path, [finished_row(2, jobs[2], HOME)], stop=True)
    suite = suite_of(jobs, executor)
    with pytest.raises(KeyboardInterrupt):
        suite.run()
    assert executor.closed
    assert [(r["backend"], r["status"]) for r in suite.document["results"]] == [
        ("numpy", "interrupted"), ("torch", "interrupted"), ("numpy", "ok"), ("torch", "interrupted")]
    assert suite.document["results"][0]["sweep_point"] == {"seed": 0}


@pytest.mark.parametrize("state, message, status, says", [
    ("TIMEOUT", "Job 7 has not produced any output (state: TIMEOUT)", "timeout", "ran past its time limit"),
    ("CANCELLED by 1000", "Job 7 has not produced any output", "failed", "ended without a row (state CANCELLED"),
    ("PREEMPTED", "Job 7 has not produced any output", "failed", "(state PREEMPTED)"),
    ("FAILED", "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent "
               "call last):\n  File x\nMemoryError: out of memory\n----------------------\nYou can check full logs "
               "with 'job.stderr(0)'\n  - /jobs/7_0_log.err\n  - /jobs/7_0_log.out",
     "failed", "MemoryError: out of memory (log: /jobs/7_0_log.err)"),
], ids=["timeout", "cancelled", "pre-empted", "raised"])
def test_the_job_s_state_and_exception_become_the_row_s_status_and_reason(state, message, status, says):
    row = job_failed_row(cell("torch", 3), "slurm job 7", state, RuntimeError(message), 30)
    assert row["status"] == status and says in row["error"] and row["error"].startswith("slurm job 7 ")
    assert row["sweep_point"] == {"seed": 3} and row["backend"] == "torch"


@pytest.mark.slow
def test_a_job_on_another_machine_records_its_environment_and_no_share_of_this_one_s_peak(tmp_path):
    job = Job(RunRequest(scenario="xor-mlp", name="xor-mlp", backend="numpy", overrides={"max_steps": 5}))
    arguments = dict(repeat=1, timeout=None, peak_gflops={"fp32": 100.0}, parity_dir="", data_dir=str(tmp_path))
    here, environment = CellJob(**arguments, home=this_machine()["id"])(job)
    assert environment is None and here["machine"] == this_machine() and "peak_fraction" in here["metrics"]
    there, environment = CellJob(**arguments, home="elsewhere-00000000")(job)
    assert there["status"] == "ok" and "peak_fraction" not in there["metrics"]
    assert environment["hostname"] == this_machine()["hostname"] and "blas" in environment


def two_machine_document() -> dict:
    def row(backend, machine, speed):
        return {"scenario": "xor-mlp", "backend": backend, "status": "ok", "mode": "train", "machine": machine,
                "metrics": {"samples_per_sec": speed, "test_accuracy": 0.9}}

    home = {"hostname": "home", "cpu": "CPU A", "logical_cores": 2}
    home_id = machine_id(home)
    return {"schema_version": 2, "created": "2026-12-04T10:00:00Z", "command": ["dlbench", "run"],
            "environment": home, "settings": {}, "machines": {NODE["id"]: {"hostname": "node7", "cpu": "CPU B"}},
            "results": [row("numpy", {"hostname": "home", "id": home_id}, 100.0),
                        row("torch", {"hostname": "home", "id": home_id}, 200.0),
                        row("numpy", NODE, 50.0), row("torch", NODE, 25.0)]}


def test_the_report_of_rows_from_two_machines_has_a_heading_and_tables_per_machine():
    doc = two_machine_document()
    runs = runs_of([doc])
    home_id = machine_id(doc["environment"])
    markdown = render.render(runs, "markdown", with_plots=False)
    assert markdown.count("### xor-mlp") == 2 and "\n## Environment" not in markdown
    assert markdown.index(f"## Machine home ({home_id})") < markdown.index(f"## Machine node7 ({NODE['id']})")
    assert "| CPU | CPU B |" in markdown
    html = render.render(runs, "html", with_plots=False)
    assert f"<h2>Machine node7 ({NODE['id']})</h2>" in html and html.count("<h3>xor-mlp</h3>") == 2
    records = render.tidy_records(runs)
    assert [(r["host"], r["machine"], r["backend"], r["vs_numpy"]) for r in records] == [
        ("home", home_id, "numpy", 1.0), ("home", home_id, "torch", 2.0),
        ("node7", NODE["id"], "numpy", 1.0), ("node7", NODE["id"], "torch", 0.5)]
    assert render.render(runs, "csv").splitlines()[0].startswith("run,created,host,machine,")
    assert set(json.loads(render.render(runs, "json"))["machines"]) == {home_id, NODE["id"]}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render.rich_report(runs))
    assert f"Machine node7 ({NODE['id']})" in console.export_text()


def test_a_report_of_one_machine_is_the_one_it_was_before_rows_said_their_machine():
    doc = two_machine_document()
    doc["results"] = doc["results"][:2]
    del doc["machines"]
    bare = copy.deepcopy(doc)
    for row in bare["results"]:
        del row["machine"]
    for fmt in ("markdown", "csv", "json", "html"):
        assert render.render(runs_of([doc]), fmt, with_plots=False) == render.render(runs_of([bare]), fmt,
                                                                                     with_plots=False)
    assert "Machine" not in render.render(runs_of([doc]), "markdown", with_plots=False)


def test_list_and_help_do_not_import_submitit():
    code = ("import sys; from click.testing import CliRunner; from dlbench.cli import main; "
            "assert CliRunner().invoke(main, ['list']).exit_code == 0; "
            "assert CliRunner().invoke(main, ['run', '--help']).exit_code == 0; print('submitit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_importing_submitit_leaves_the_logging_handlers_of_the_process_open():
    """submitit sets its logging up with dictConfig, which closes every handler
    a process has (absl's closed pytest's own capture file through it)."""
    code = ("import logging\n"
            "closed = []\n"
            "class Handler(logging.Handler):\n"
            "    def close(self):\n"
            "        closed.append(self)\n"
            "        super().close()\n"
            "logging.getLogger('mine').addHandler(Handler())\n"
            "from dlbench.scale.cluster import import_submitit\n"
            "import_submitit()\n"
            "import os\n"
            "print(len(closed), os.environ.get('SUBMITIT_LOG_LEVEL'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["0", "None"], result.stderr  # none closed; the jobs still log
