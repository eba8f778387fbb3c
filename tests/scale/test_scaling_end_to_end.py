"""Weak and strong scaling end to end: ``dlbench run --sweep data_parallel=1,2
--scaling weak|strong``, as a user runs it, on real engines whose trainers
also say what they were handed (``scaling_spies``), and the published row
checked against what the workers trained:

* the row's global batch (``metrics.batch_size``) is the scenario's batch
  times the replicas under weak scaling and the scenario's batch under
  strong scaling, at the reference too (one process at the global batch);
* the engine was handed steps of exactly that global batch, so each of its
  ``world_size`` replicas trained ``global / N`` samples a step: the
  scenario's batch (weak) or its N-th part (strong);
* samples/s counts those samples: the overall rate times the steady time is
  the samples of every step after the first (timed apart as compile time),
  and per replica is the N-th part of it;
* the report's scaling efficiency is (samples/s at N / samples/s at 1) / N.

One engine (JAX, the quickest to start) in the fast suite; the others
(torch's DDP under torchrun, TF's MirroredStrategy) in the slow one.
"""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from backend_helpers import require_backend
from dlbench.cli import main
from dlbench.plugin import manager
from dlbench.report import table as report, render
from dlbench.results.document import read_document

BATCH, STEPS = 8, 12


@pytest.fixture
def spies(monkeypatch):
    """The spies registered (here and in the workers); the machine's matmul peak not measured (it is not
    what these tests check, and measuring it starts every framework)."""
    from dlbench.measure import peak

    monkeypatch.setattr(peak, "peaks_for_run", lambda environment, threads, dtype="float32", device="cpu": {})
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # the workers import the spies too
    monkeypatch.setenv("DLBENCH_PLUGINS", "scaling_spies")
    manager.get_plugins.cache_clear()
    yield
    manager.get_plugins.cache_clear()


def run_sweep(tmp_path, backends: list[str], scaling: str) -> dict:
    """The stored document of a two-point data-parallel sweep of xor-mlp."""
    result = CliRunner().invoke(main, ["run", "-s", "xor-mlp", "-b", ",".join(backends), "--sweep",
                                       "data_parallel=1,2", "--scaling", scaling, "--batch-size", str(BATCH),
                                       "--steps", str(STEPS), "--threads", "1", "--format", "json",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return read_document(next(tmp_path.glob("*/*.json")))


def assert_trained_at_the_published_batch(row: dict, replicas: int, scaling: str) -> None:
    m, d = row["metrics"], row.get("distributed") or {}
    assert row["status"] == "ok", row.get("error")
    global_batch = BATCH * replicas if scaling == "weak" else BATCH
    assert m["batch_size"] == global_batch, (row["backend"], replicas, m["batch_size"])
    assert m["steps"] == STEPS
    steady_seconds = m["train_seconds"] - m["compile_seconds"]
    assert m["samples_per_sec_overall"] * steady_seconds == pytest.approx((STEPS - 1) * global_batch, rel=1e-9)
    if replicas == 1:
        return
    world = d["world_size"]
    assert m["samples_per_sec_per_replica"] == pytest.approx(m["samples_per_sec"] / world, rel=1e-12)
    if row["backend"] == "numpy":  # the reference: one process at the global batch
        assert world == 1
        return
    assert world == replicas and d["scaling"] == scaling
    assert d["trained_batches"] == [global_batch] and d["trained_steps"] == STEPS
    assert d["trained_samples"] == STEPS * global_batch
    assert global_batch // world == (BATCH if scaling == "weak" else BATCH // replicas)


def assert_sweep_consistent(document: dict, scaling: str) -> None:
    rows = {(r["backend"], r["sweep_point"]["data_parallel"]): r for r in document["results"]}
    for (backend, replicas), row in rows.items():
        assert_trained_at_the_published_batch(row, replicas, scaling)
    records = json.loads(render.render_json(report.runs_of([document])))["rows"]
    for record in records:
        if record["backend"] == "numpy" or record["replicas"] != 2:
            continue
        one, two = rows[record["backend"], 1]["metrics"], rows[record["backend"], 2]["metrics"]
        assert record["scaling_efficiency"] == pytest.approx(two["samples_per_sec"] / one["samples_per_sec"] / 2,
                                                             rel=1e-12)
        assert math.isfinite(record["scaling_efficiency"])


@pytest.mark.parametrize("scaling", ["weak", "strong"])
def test_a_scaling_sweep_publishes_the_batch_its_replicas_trained(tmp_path, spies, scaling):
    """Weak scaling with the reference and the certificate (the reference and the cell at the global batch);
    strong scaling without (its reference is a plain one-process run, certified in test_data_parallel)."""
    require_backend("jax")
    document = run_sweep(tmp_path, ["numpy", "spy-jax"] if scaling == "weak" else ["spy-jax"], scaling)
    assert_sweep_consistent(document, scaling)
    if scaling == "weak":
        row = next(r for r in document["results"] if r["backend"] == "spy-jax" and r["sweep_point"]["data_parallel"] == 2)
        assert row["parity"]["kind"] == "certificate" and row["parity"]["agrees"], row["parity"]


@pytest.mark.slow
@pytest.mark.parametrize("scaling", ["weak", "strong"])
def test_every_other_engine_publishes_the_batch_its_replicas_trained(tmp_path, spies, scaling):
    engines = [f"spy-{b}" for b in ("torch", "tensorflow") if require_backend(b)]
    document = run_sweep(tmp_path, ["numpy", *engines], scaling)
    assert_sweep_consistent(document, scaling)
    for row in document["results"]:
        if row["backend"] != "numpy" and row["sweep_point"]["data_parallel"] == 2:
            assert row["parity"]["agrees"], (row["backend"], row["parity"])
