"""Nothing lost: Ctrl-C, a killed runner and --resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from dlbench.cli import main

TESTS = Path(__file__).parents[1]


def start_run(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "fault_plugins"}
    return subprocess.Popen([sys.executable, "-m", "dlbench.cli", "run", "--out", str(tmp_path),
                             "--scenario", "xor-mlp", "--steps", "20", "--backend", "numpy,hang,diverge", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(tmp_path, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in tmp_path.glob("*/*.json"):
            if path.stat().st_size == 0:  # reserved by the run, not written yet
                continue
            doc = json.loads(path.read_text())
            if len(doc["results"]) >= n:
                return path
        time.sleep(0.2)
    raise AssertionError("the run wrote no finished row in time")


def wait_for_worker(proc, timeout=120) -> list[int]:
    """The pids of the runner's worker processes, once one has started (a
    fixed sleep promises nothing on a busy machine: the runner may still be
    between jobs, or starting the worker)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        workers = []
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "dlbench.run.worker" in child.cmdline():
                    workers.append(child.pid)
            except psutil.Error:  # gone meanwhile
                continue
        if workers:
            return workers
        time.sleep(0.1)
    raise AssertionError("the run started no worker in time")


@pytest.mark.slow
def test_ctrl_c_keeps_finished_rows_marks_the_rest_interrupted_and_exits_130(tmp_path):
    proc = start_run(tmp_path)
    path = wait_for_rows(tmp_path, 1)
    wait_for_worker(proc)  # the hanging worker is running now
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    doc = json.loads(path.read_text())
    assert [(r["backend"], r["status"]) for r in doc["results"]] == [
        ("numpy", "ok"), ("hang", "interrupted"), ("diverge", "interrupted")]
    assert "interrupted" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c_and_exits_143(tmp_path):
    proc = start_run(tmp_path)
    path = wait_for_rows(tmp_path, 1)
    worker_pids = wait_for_worker(proc)  # the hanging worker is running now
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    doc = json.loads(path.read_text())
    assert [(r["backend"], r["status"]) for r in doc["results"]] == [
        ("numpy", "ok"), ("hang", "interrupted"), ("diverge", "interrupted")]
    assert doc["results"][1]["error"] == "terminated (SIGTERM)"
    assert "terminated" in stderr and "Traceback" not in stderr
    assert worker_pids and not alive(worker_pids)


def alive(pids) -> list[int]:
    """The processes among ``pids`` still running (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.mark.slow
def test_killed_runner_leaves_a_valid_document_and_no_orphan_worker(tmp_path):
    proc = start_run(tmp_path)
    path = wait_for_rows(tmp_path, 1)
    worker_pids = wait_for_worker(proc)
    proc.kill()
    proc.wait(timeout=30)
    doc = json.loads(path.read_text())
    assert [(r["backend"], r["status"]) for r in doc["results"]] == [("numpy", "ok")]
    assert not list(tmp_path.glob("*/.*"))  # no temporary file left behind
    deadline = time.time() + 10  # PR_SET_PDEATHSIG delivers SIGKILL to the worker when the runner dies
    while alive(worker_pids) and time.time() < deadline:
        time.sleep(0.1)
    orphans = alive(worker_pids)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "the worker outlived its runner"


def test_resume_runs_only_missing_and_interrupted_jobs(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["run", "--backend", "numpy", "--steps", "10", "--format", "json",
                                 "--out", str(tmp_path), "--in-process"])
    assert first.exit_code == 0, first.output
    path = next(tmp_path.glob("*/*.json"))
    doc = json.loads(path.read_text())
    kept = next(r for r in doc["results"] if r["scenario"] == "xor-mlp")
    doc["results"] = [{**kept}, {"scenario": "digits-mlp", "backend": "numpy", "status": "interrupted",
                                 "error": "interrupted by the user", "metrics": {}}]
    path.write_text(json.dumps(doc))
    resumed = runner.invoke(main, ["run", "--resume", str(path), "--format", "json"])
    assert resumed.exit_code == 0, resumed.output
    doc = json.loads(path.read_text())
    assert [(r["scenario"], r["status"]) for r in doc["results"]] == [("xor-mlp", "ok"), ("digits-mlp", "ok")]
    assert doc["results"][0] == kept
    assert doc["results"][1]["metrics"]["steps"] == 10


def test_resume_refuses_other_run_options(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("{}")
    result = CliRunner().invoke(main, ["run", "--resume", str(path), "--epochs", "3"])
    assert result.exit_code == 2
    assert "--resume takes its settings from the document; drop --epochs" in result.output
