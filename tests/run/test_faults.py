"""A failing backend becomes a row with a status and a reason; the other rows survive."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]


def run_dlbench(tmp_path, *args, timeout=180):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "fault_plugins"}
    return subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--out", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_hang_crash_kill_raise_and_divergence_become_rows(tmp_path):
    out = run_dlbench(tmp_path, "--scenario", "xor-mlp", "--steps", "20", "--timeout", "10",
                      "--backend", "numpy,hang,exit,killed,diverge,raise", "--format", "json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    rows = {r["backend"]: r for r in doc["results"]}
    assert rows["numpy"]["status"] == "ok"
    assert rows["hang"]["status"] == "timeout" and "no result after 10 s" in rows["hang"]["error"]
    assert rows["exit"]["status"] == "failed"
    assert "exited with code 3" in rows["exit"]["error"] and "about to exit" in rows["exit"]["error"]
    assert rows["killed"]["status"] == "failed" and "killed by signal SIGKILL" in rows["killed"]["error"]
    assert rows["diverge"]["status"] == "diverged" and "at step 10" in rows["diverge"]["error"]
    assert rows["raise"]["status"] == "failed"
    assert "RuntimeError: simulated failure while building" in rows["raise"]["error"]
    saved = json.loads(next(tmp_path.glob("*/*.json")).read_text())
    assert [r["status"] for r in saved["results"]] == [r["status"] for r in doc["results"]]


@pytest.mark.slow
@pytest.mark.parametrize("garbage, message", [("text", "is not a row: Expecting value"),
                                              ("json", "result.json: result.scenario: missing; every row has scenario, backend, status")])
def test_a_worker_that_writes_garbage_to_its_result_file_is_a_failed_row(tmp_path, monkeypatch, garbage, message):
    monkeypatch.setenv("GARBAGE", garbage)
    out = run_dlbench(tmp_path, "--scenario", "xor-mlp", "--steps", "5", "--backend", "numpy,garbage",
                      "--format", "json")
    assert out.returncode == 1, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)["results"]}
    assert rows["numpy"]["status"] == "ok"
    assert rows["garbage"]["status"] == "failed" and message in rows["garbage"]["error"], rows["garbage"]


@pytest.mark.slow
def test_out_of_memory_under_an_address_space_limit_is_a_row(tmp_path):
    out = run_dlbench(tmp_path, "--scenario", "xor-mlp", "--steps", "5", "--max-memory", "2048",
                      "--backend", "numpy,hog", "--format", "json")
    assert out.returncode == 1, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)["results"]}
    assert rows["numpy"]["status"] == "ok"
    assert rows["hog"]["status"] == "failed" and "MemoryError" in rows["hog"]["error"]


@pytest.mark.parametrize("threads", [1, 2])
def test_worker_thread_settings_reach_numpy_blas(tmp_path, threads):
    """The runner's thread environment, not the one this test process inherited
    (conftest sets every pool to 1), decides the worker's BLAS threads."""
    code = ("from threadpoolctl import threadpool_info; import numpy; "
            "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))")
    from dlbench.plugin.manager import get_plugins

    inherited = {**os.environ, "OMP_NUM_THREADS": "7", "OPENBLAS_NUM_THREADS": "7", "MKL_NUM_THREADS": "7"}
    env = {**inherited, **get_plugins().backend("numpy").thread_environment(threads, "cpu")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == str(threads), out.stderr


def test_plugin_breaking_the_contract_is_reported_by_name_at_start_up(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "broken_plugins"}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "plugin 'broken_plugins' registered <class 'object'> as a backend" in out.stderr
    assert "Traceback" not in out.stderr and not list(tmp_path.iterdir())


def test_plugin_raising_at_import_is_skipped_with_a_warning_and_the_run_goes_on(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "DLBENCH_PLUGINS": "raising_plugin"}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--backend", "numpy", "--steps", "3",
                          "--in-process", "--format", "json", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "plugin 'raising_plugin' failed to load and is skipped: ImportError: simulated broken plugin" in out.stderr
    assert all(r["status"] == "ok" for r in json.loads(out.stdout)["results"])
