"""What the engines are handed: the data-parallel plan (:class:`DataParallel`)
of a single-host run, of a multi-host one (``--hosts``, ``--node-rank``,
``--coordinator-port``) and of one derived from a Slurm allocation, down to
the replicas per host, the coordinator's ``host:port``, each host's own
address, the rendezvous bind address and torch's launcher arguments. No
framework is imported and nothing is started, so each test takes milliseconds."""

from __future__ import annotations

import sys

import pytest

from dlbench.errors import InputError
from dlbench.plugin.manager import get_plugins
from dlbench.measure import environment
from dlbench.plugin.distributed import LOOPBACK, DataParallel, bind_address, check_replicas, local_address
from dlbench.run.settings import RunRequest, RunSettings


def test_the_default_plan_is_one_strong_process_on_this_host():
    plan = DataParallel()
    assert (plan.replicas, plan.scaling, plan.sync_batchnorm, plan.hosts, plan.node_rank, plan.port) == (
        1, "strong", False, (), 0, 0)
    assert (plan.active, plan.nodes, plan.multi_host, plan.local_replicas) == (False, 1, False, 1)
    assert plan.global_batch(64) == 64


def test_a_request_without_data_parallel_options_hands_the_engines_the_default_plan():
    assert RunRequest(scenario="s", name="s", backend="numpy").data_parallel == DataParallel()


@pytest.mark.parametrize("replicas, active", [(1, False), (2, True), (8, True)])
def test_data_parallelism_is_active_from_two_replicas(replicas, active):
    assert DataParallel(replicas).active is active


def test_on_one_host_every_replica_is_local_and_the_coordinator_listens_on_loopback():
    plan = DataParallel(4, "weak", True)
    assert (plan.nodes, plan.multi_host, plan.local_replicas, plan.global_batch(16)) == (1, False, 4, 64)
    assert bind_address(plan) == LOOPBACK == local_address(plan) == "127.0.0.1"


@pytest.mark.parametrize("hosts, replicas, local", [(("a", "b"), 4, 2), (("a", "b", "c"), 6, 2),
                                                    (("a", "b"), 2, 1)])
def test_on_several_hosts_the_replicas_are_spread_evenly(hosts, replicas, local):
    plan = DataParallel(replicas, hosts=hosts, node_rank=1, port=29400)
    assert (plan.nodes, plan.multi_host, plan.local_replicas, plan.active) == (len(hosts), True, local, True)


def test_the_coordinator_is_the_first_host_at_the_jobs_port_whichever_host_this_is():
    for rank in (0, 1, 2):
        plan = DataParallel(6, hosts=("gpu07", "gpu08", "cpu1"), node_rank=rank, port=21234)
        assert plan.coordinator == "gpu07:21234"


def test_each_host_has_its_own_port_counted_from_the_jobs_first():
    plan = DataParallel(6, hosts=("gpu07", "gpu08", "cpu1"), node_rank=2, port=21234)
    assert [plan.address(node) for node in range(plan.nodes)] == ["gpu07:21234", "gpu08:21235", "cpu1:21236"]


def test_on_several_hosts_the_coordinator_binds_to_host_zero_and_replicas_talk_from_their_own_host():
    plan = DataParallel(4, hosts=("127.0.0.2", "127.0.0.3"), node_rank=1, port=30000)
    assert bind_address(plan) == "127.0.0.2"
    assert local_address(plan) == "127.0.0.3"
    assert local_address(DataParallel(4, hosts=("127.0.0.2", "127.0.0.3"), node_rank=0)) == "127.0.0.2"


def plans(monkeypatch, **options) -> list[DataParallel]:
    monkeypatch.setattr(environment, "available_cores", lambda: 8)
    settings = RunSettings.from_options(get_plugins(), scenarios=["synthetic-fcn"], backends="numpy,torch",
                                        batch_size=96, **options)  # drop_last: 96 splits in 2, 4 and 6
    return [job.request.data_parallel for job in settings.jobs()]


def test_hosts_node_rank_and_port_options_reach_every_jobs_plan_with_a_port_block_per_job(monkeypatch):
    found = plans(monkeypatch, data_parallel=4, hosts="localhost,localhost", node_rank=1, coordinator_port=30000)
    assert [(p.replicas, p.hosts, p.node_rank, p.port, p.local_replicas) for p in found] == [
        (4, ("localhost", "localhost"), 1, 30000, 2), (4, ("localhost", "localhost"), 1, 30002, 2)]
    assert [p.coordinator for p in found] == ["localhost:30000", "localhost:30002"]
    assert [p.address(1) for p in found] == ["localhost:30001", "localhost:30003"]


def test_a_single_host_run_hands_every_job_no_hosts_and_no_port(monkeypatch):
    found = plans(monkeypatch, data_parallel=2)
    assert [(p.replicas, p.hosts, p.node_rank, p.port, p.nodes, p.local_replicas) for p in found] == [
        (2, (), 0, 0, 1, 2)] * 2


def test_a_slurm_allocation_becomes_each_jobs_plan(monkeypatch):
    from dlbench.scale.cluster import import_submitit

    try:
        import_submitit()
    except InputError:
        pytest.skip("submitit is not installed")
    env = {"SLURM_JOB_ID": "1234", "SLURM_JOB_NUM_NODES": "3", "SLURM_JOB_NODELIST": "gpu[07-08],cpu1",
           "SLURM_NODEID": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = plans(monkeypatch, data_parallel=6)
    assert [(p.hosts, p.node_rank, p.port, p.nodes, p.local_replicas) for p in found] == [
        (("gpu07", "gpu08", "cpu1"), 1, 21234, 3, 2), (("gpu07", "gpu08", "cpu1"), 1, 21237, 3, 2)]
    assert found[1].coordinator == "gpu07:21237"
    assert [found[1].address(n) for n in range(3)] == ["gpu07:21237", "gpu08:21238", "cpu1:21239"]


def test_torchs_launcher_is_handed_this_hosts_replicas_the_host_count_and_rank_and_the_coordinator():
    torch = get_plugins().backend("torch")
    plan = DataParallel(4, hosts=("127.0.0.2", "127.0.0.3"), node_rank=1, port=30000)
    argv = torch.launch_command(plan)
    assert argv[:3] == [sys.executable, "-m", "dlbench_backends.torch.launch"]
    assert argv[3:9] == ["2", "2", "1", "127.0.0.2", "127.0.0.2", "30000"]
    single = torch.launch_command(DataParallel(2))
    assert single[3:9] == ["2", "1", "0", "127.0.0.1", "127.0.0.1", "0"]


@pytest.mark.parametrize("replicas, threads, cores, message", [
    (4, 3, 8, "4 replicas of 3 thread(s) need 12 CPU cores; this machine has 8: at most 2 replica(s) of 3 thread(s)"),
    (2, 3, 2, "2 replicas of 3 thread(s) need 6 CPU cores; this machine has 2: at most 1 replica(s) of 3 thread(s)"),
])
def test_too_many_replicas_for_the_cores_name_the_most_that_fit(replicas, threads, cores, message):
    with pytest.raises(InputError) as caught:
        check_replicas(replicas, threads, "cpu", cores, "--data-parallel")
    assert message in str(caught.value)
    check_replicas(2, 4, "cpu", 8, "--data-parallel")  # exactly the cores: fits


def test_replicas_that_do_not_divide_a_batch_are_refused_with_the_batch_and_the_way_out():
    from dlbench.plugin.distributed import check_divides

    with pytest.raises(InputError) as caught:
        check_divides(4, 30, 1000, False, "s.toml", "--data-parallel")
    assert str(caught.value) == ("s.toml: --data-parallel: 4 replicas do not divide the global batch of 30 samples; "
                                 "use a batch size that is a multiple of 4")
    with pytest.raises(InputError) as caught:
        check_divides(4, 32, 1438, False, "s.toml", "--data-parallel")
    assert str(caught.value) == ("s.toml: --data-parallel: 4 replicas do not divide the last batch of each epoch "
                                 "(30 of 1438 samples at batch 32); set train.drop_last = true or choose a batch "
                                 "size whose remainder is a multiple of 4")


def test_a_row_without_a_trainer_or_its_batchnorm_word_gets_the_cores_settings():
    from dlbench.plugin.distributed import distributed_row

    assert distributed_row(None, 2, 3, "weak", False) == {
        "engine": None, "world_size": 2, "collective": None, "threads_per_replica": 3, "scaling": "weak",
        "batchnorm": "per-replica"}
    assert distributed_row({"engine": "E"}, 4, 1, "strong", True)["batchnorm"] == "synchronized"
    assert distributed_row({"engine": "E"}, 4, 1, "strong", True, batchnorm=False)["batchnorm"] is None
