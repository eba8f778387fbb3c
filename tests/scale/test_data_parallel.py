"""Data-parallel training (``--data-parallel N``): the core's rules (slices,
what may be asked), the rows, the report's scaling columns, and end to end:
every framework's engine with two replicas agrees with the one-process
reference at the global batch, and deliberately wrong engines do not."""

from __future__ import annotations

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.errors import InputError
from dlbench.plugin.manager import get_plugins
from dlbench.report.table import Run, entries, table
from dlbench.parity import verdict as parity
from dlbench.plugin.distributed import DataParallel, check_divides, check_replicas, distributed_row, replica_slice
from dlbench.run.settings import RunRequest, RunSettings
from dlbench.run.isolation import run_isolated
from dlbench.run.row import annotate

import data_parallel_mutants


def test_replicas_take_equal_consecutive_slices_that_cover_the_global_batch_once():
    indices = np.arange(24).reshape(2, 12)
    parts = [replica_slice(indices, r, 3) for r in range(3)]
    assert all(p.shape == (2, 4) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), indices)


def test_weak_scaling_multiplies_the_global_batch_and_strong_keeps_it():
    assert DataParallel(4, "strong").global_batch(64) == 64
    assert DataParallel(4, "weak").global_batch(64) == 256
    assert DataParallel(1, "weak").global_batch(64) == 64


def test_replicas_must_divide_every_batch_of_the_plan():
    check_divides(2, 64, 1438, False, "s", "f")  # 1438 = 22 * 64 + 30: the last batch splits too
    with pytest.raises(InputError, match="do not divide the global batch of 33"):
        check_divides(2, 33, 1438, False, "s", "f")
    with pytest.raises(InputError, match="last batch of each epoch .21 of 13077"):
        check_divides(2, 32, 13077, False, "s", "f")
    check_divides(2, 32, 13077, True, "s", "f")  # drop_last: no partial batch


def test_replicas_of_threads_must_fit_the_cores_on_a_cpu_only():
    check_replicas(2, 1, "cpu", cores=2, field="f")
    with pytest.raises(InputError, match="need 4 CPU cores; this machine has 2: at most 1 replica"):
        check_replicas(2, 2, "cpu", cores=2, field="f")
    check_replicas(8, 1, "gpu", cores=2, field="f")  # a GPU replica needs a GPU, which the worker checks


def test_threads_default_to_the_cores_shared_out_among_the_most_replicas(monkeypatch):
    from dlbench.measure import environment

    monkeypatch.setattr(environment, "available_cores", lambda: 2)
    plugins = get_plugins()
    settings = RunSettings.from_options(plugins, scenarios=["digits-mlp"], backends="numpy",
                                        sweep=["data_parallel=1,2"])
    assert settings.threads == 1
    assert [job.request.data_parallel.replicas for job in settings.jobs()] == [1, 2]
    assert RunSettings.from_options(plugins, scenarios=["digits-mlp"], backends="numpy").threads == 2
    with pytest.raises(InputError, match="both choose the replicas"):
        RunSettings.from_options(plugins, scenarios=["digits-mlp"], backends="numpy", data_parallel=2,
                                 sweep=["data_parallel=1,2"])


def test_a_slurm_allocation_of_several_nodes_gives_the_hosts_the_rank_and_a_port_of_its_job(monkeypatch):
    from dlbench.scale.cluster import Hosts, resolve

    from dlbench.scale.cluster import import_submitit

    try:
        import_submitit()
    except InputError:
        pytest.skip("submitit is not installed")
    env = {"SLURM_JOB_ID": "1234", "SLURM_JOB_NUM_NODES": "3", "SLURM_JOB_NODELIST": "gpu[07-08],cpu1",
           "SLURM_NODEID": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # submitit reads os.environ
    assert resolve(None, None, None, env) == Hosts(("gpu07", "gpu08", "cpu1"), 1, 21234)
    assert resolve(None, None, None, {"SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "a"}) == Hosts()
    assert resolve("a,b", 1, 30000).job_port(3) == 30006  # each job one port per host


def test_the_reference_row_says_it_is_one_process_and_an_engine_row_what_its_trainer_says():
    from dlbench.plugin.distributed import REFERENCE_INFO

    reference = distributed_row(REFERENCE_INFO, 2, 1, "strong", False)
    assert reference["world_size"] == 1 and reference["engine"].startswith("single process")
    engine = distributed_row({"engine": "E", "collective": "gloo", "world_size": 2,
                              "communication_seconds_per_step": 0.001}, 2, 1, "weak", True)
    assert engine == {"engine": "E", "world_size": 2, "collective": "gloo", "threads_per_replica": 1,
                      "scaling": "weak", "batchnorm": "synchronized", "communication_seconds_per_step": 0.001}


def test_a_backend_without_an_engine_is_an_unavailable_row_not_a_silent_single_process_one():
    from dlbench.run.worker import data_parallel_unavailable

    class Plain(type(get_plugins().backend("numpy"))):
        name = "plain"

    request = RunRequest(scenario="digits-mlp", backend="plain", data_parallel=DataParallel(2))
    assert "has no data-parallel engine" in data_parallel_unavailable(request, Plain(), "cpu", None)
    reference = get_plugins().backend(parity.REFERENCE_BACKEND)
    request = RunRequest(scenario="s", backend="numpy", data_parallel=DataParallel(2))
    assert data_parallel_unavailable(request, reference, "cpu", None) is None


def test_repeats_give_the_per_replica_share_of_the_median_not_of_the_first_repeat():
    from dlbench.run.row import combine_repeats

    rows = [{"status": "ok", "distributed": {"world_size": 2},
             "metrics": {"samples_per_sec": sps, "samples_per_sec_per_replica": sps / 2}} for sps in (100, 300, 200)]
    assert combine_repeats(rows)["metrics"]["samples_per_sec_per_replica"] == 100  # median 200, two replicas


def test_a_data_parallel_rows_peak_share_is_of_every_replicas_ceiling(monkeypatch):
    from dlbench.run import suite
    from dlbench.run.settings import Job

    def execute(request):
        return {"status": "ok", "distributed": {"world_size": request.data_parallel.replicas},
                "metrics": {"samples_per_sec": 10.0, "gflops_per_sec": 150.0}}

    monkeypatch.setattr(suite, "execute", execute)
    runs = suite.Suite([], {}, None, in_process=True, peak_gflops={"fp32": 100.0})
    two = runs.run_job(Job(RunRequest(scenario="s", backend="b", data_parallel=DataParallel(2))))
    assert two["metrics"]["peak_fraction"] == pytest.approx(0.75)  # 150 of 2 x 100, not 150%
    one = runs.run_job(Job(RunRequest(scenario="s", backend="b")))
    assert one["metrics"]["peak_fraction"] == pytest.approx(1.5)


def sweep_document(speeds: dict) -> dict:
    """A data_parallel=1,2 sweep's rows: backend -> (samples/s at 1, at 2)."""
    rows = []
    for backend, pair in speeds.items():
        for replicas, sps in zip((1, 2), pair):
            row = {"scenario": "s", "backend": backend, "status": "ok", "sweep_point": {"data_parallel": replicas},
                   "metrics": {"samples_per_sec": sps, "samples_per_sec_per_replica": sps / replicas}}
            if replicas > 1:
                row["distributed"] = {"engine": "E", "world_size": 1 if backend == "numpy" else 2,
                                      "communication_seconds_per_step": 0.002}
            rows.append(row)
    return {"results": rows, "environment": {}, "settings": {}}


def test_scaling_efficiency_is_the_speedup_per_replica_and_the_reference_has_none():
    found = {(e.backend, e.point["data_parallel"]): e
             for e in entries([Run("r", sweep_document({"numpy": (100, 101), "torch": (100, 150)}))])}
    assert found["torch", 2].scaling_efficiency == pytest.approx(0.75)
    assert found["torch", 1].scaling_efficiency == pytest.approx(1.0)
    assert found["numpy", 2].scaling_efficiency is None
    columns, cells = table([found["torch", 2]])
    row = dict(zip([c.name for c in columns], cells[0]))
    assert row["replicas"] == "2" and row["scaling eff."] == "75%" and row["comm ms/step"] == "2.00"


def test_every_report_format_carries_the_scaling_efficiency_and_a_scaling_plot(tmp_path):
    import json

    from dlbench.report import plots, render

    runs = [Run("r", sweep_document({"numpy": (100, 101), "torch": (100, 150), "jax": (100, 190)}))]
    records = {(r["backend"], r["replicas"]): r for r in json.loads(render.render_json(runs))["rows"]}
    assert records["jax", 2]["scaling_efficiency"] == pytest.approx(0.95)
    assert records["numpy", 1]["scaling_efficiency"] is None
    header, *lines = render.render_csv(runs).splitlines()
    assert "scaling_efficiency" in header and "replicas" in header
    markdown = render.render_markdown(runs)
    assert "scaling eff." in markdown and "95%" in markdown
    assert "one thread each is the honest test" in markdown
    assert "honest test" not in render.render_markdown([Run("r", {"results": [], "environment": {}, "settings": {}})])
    figures = plots.figures(runs)["s"]
    assert any(key == "s-data-parallel" for key, _, _ in figures)


# ------------------------------------------------------------------ end to end
@pytest.fixture
def mutants(monkeypatch):
    from pathlib import Path

    from dlbench.plugin import manager

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    monkeypatch.setenv("DLBENCH_PLUGINS", "data_parallel_mutants")
    manager.get_plugins.cache_clear()
    yield
    manager.get_plugins.cache_clear()


def two_replica_request(scenario: str, backend: str, parity_dir, steps: int, **hosts) -> RunRequest:
    # windows of 5 steps: checkpoints are window starts, so eight of them spread over the 40 steps
    return RunRequest(scenario=scenario, backend=backend, overrides={"max_steps": steps}, window_steps=5,
                      parity_dir=str(parity_dir), threads=1, data_parallel=DataParallel(2, **hosts))


def run_cell(scenario: str, backends: list[str], tmp_path, steps: int = 40) -> dict:
    """Rows of two-replica runs of ``backends`` (the reference first), each in
    its isolated worker (torchrun for torch), judged as a run judges them."""
    rows = [run_isolated(two_replica_request(scenario, b, tmp_path, steps), timeout=300) for b in ["numpy", *backends]]
    annotate(rows)
    return {r["backend"]: r for r in rows}


def engines() -> list[str]:
    return [b for b in ("torch", "tensorflow", "jax") if require_backend(b)]


def assert_engine_agrees(row: dict, world_size: int = 2) -> None:
    assert row["status"] == "ok", row.get("error")
    assert row["distributed"]["world_size"] == world_size and row["distributed"]["engine"], row["distributed"]
    assert row["parity"]["kind"] == "certificate", row["metrics"].get("certificate_error")
    assert row["parity"]["agrees"], (row["backend"], row["parity"])


@pytest.mark.slow
def test_every_engine_agrees_with_the_one_process_reference_and_every_wrong_engine_disagrees(tmp_path, mutants):
    # digits-mlp trains with SGD: a gradient summed over the replicas is a doubled step
    rows = run_cell("digits-mlp", [*engines(), *(m.name for m in data_parallel_mutants.MUTANTS)], tmp_path)
    assert rows["numpy"]["distributed"]["world_size"] == 1
    for backend in engines():
        assert_engine_agrees(rows[backend])
    for mutant in data_parallel_mutants.MUTANTS:
        row = rows[mutant.name]
        assert row["status"] == "ok" and row["parity"]["kind"] == "certificate", (mutant.name, row.get("error"))
        assert not row["parity"]["agrees"], (mutant.name, row["parity"])
        assert row["parity"]["checkpoints_agreeing"] <= row["parity"]["checkpoints"] // 2, row["parity"]


@pytest.mark.slow
def test_every_engine_agrees_on_a_convolutional_network_with_adam(tmp_path):
    rows = run_cell("digits-cnn", engines(), tmp_path)
    for backend in engines():
        assert_engine_agrees(rows[backend])


@pytest.mark.slow
def test_two_hosts_on_localhost_form_one_engine_and_each_keeps_its_rows(tmp_path):
    """Two "hosts" (two runners on this machine, as two nodes would run
    them), one replica each: each job's workers meet on its port, and both
    hosts' rows agree with their own copy of the reference."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    hosts = ["localhost", "localhost"]
    rows = {0: [], 1: []}
    for node in rows:
        (tmp_path / str(node)).mkdir()
    with ThreadPoolExecutor(2) as pool:
        for backend in ["numpy", *engines()]:
            with socket.socket() as probe:  # a port free now, for this job's rendezvous
                probe.bind(("localhost", 0))
                port = probe.getsockname()[1]
            requests = [two_replica_request("digits-mlp", backend, tmp_path / str(node), 20, hosts=tuple(hosts),
                                            node_rank=node, port=port) for node in (0, 1)]
            for node, row in enumerate(pool.map(lambda r: run_isolated(r, timeout=300), requests)):
                rows[node].append(row)
    for node in (0, 1):
        annotate(rows[node])
        for row in rows[node][1:]:
            assert_engine_agrees(row)
