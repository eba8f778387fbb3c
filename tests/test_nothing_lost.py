"""Nothing a user ran is lost: concurrent runs into one folder, termination."""

import json
import subprocess
import sys

from dlbench.results import store


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
