"""Where the distributed engines listen, read from the kernel while they run
(issue 34, case 4): a single-host data-parallel run listens on loopback
only; a run over several hosts only on the address of ``--hosts``, tried
across two network namespaces joined by a veth pair (a real, non-loopback
interface; skipped, with the reason, where namespaces cannot be made).

The engines are the real ones: torch's TCPStore and gloo started by the
backend's own launch command, JAX's coordination service started by the
backend's ``configure_data_parallel``. TensorFlow's single-host strategy
listens on nothing; its multi-host gRPC servers listen on every interface
(TensorFlow has no bind address), as the README says."""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from backend_helpers import require_backend

pytestmark = pytest.mark.slow

HOSTS = ("10.213.77.1", "10.213.77.2")
PORT = 29611
WAIT_SECONDS = 120

TORCH_REPLICA = """
import os, sys, time
from pathlib import Path
import torch, torch.distributed as dist
folder = Path(sys.argv[1])
dist.init_process_group("gloo")
total = torch.ones(1)
dist.all_reduce(total)
(folder / f"ready-{dist.get_rank()}").write_text(str(total.item()))
deadline = time.time() + 120
while not (folder / "done").exists() and time.time() < deadline:
    time.sleep(0.1)
dist.barrier()
dist.destroy_process_group()
"""


def listening(tcp_tables: list[str]) -> set[tuple[str, int]]:
    """(address, port) of every LISTEN socket in /proc/net/tcp and tcp6 texts."""
    found = set()
    for text in tcp_tables:
        for line in text.splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            if len(raw) == 4:
                ip = ipaddress.IPv4Address(raw[::-1])
            else:  # IPv6: four 32-bit words, each in host (little-endian) order
                ip = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                ip = ip.ipv4_mapped or ip  # ::ffff:a.b.c.d listens on a.b.c.d only
            ip = str(ip)
            found.add((ip, int(port, 16)))
    return found


def tree_listening(pid: int) -> set[tuple[str, int]]:
    """The LISTEN sockets of process ``pid`` and its descendants."""
    import psutil

    found = set()
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            found |= {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("tcp") if c.status == "LISTEN"}
        except psutil.Error:
            continue
    return found


def wait_for(paths: list[Path], procs: list[subprocess.Popen]) -> None:
    deadline = time.time() + WAIT_SECONDS
    while not all(p.exists() for p in paths):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        assert not failed and time.time() < deadline, [p.communicate(timeout=5) for p in procs]
        time.sleep(0.2)


def test_a_single_host_torch_run_listens_on_loopback_only(tmp_path):
    require_backend("torch")
    from dlbench.plugin.distributed import DataParallel
    from dlbench_backends.torch import TorchBackend

    script = tmp_path / "replica.py"
    script.write_text(TORCH_REPLICA)
    command = TorchBackend().launch_command(DataParallel(replicas=2))
    proc = subprocess.Popen([*command, str(script), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for([tmp_path / "ready-0", tmp_path / "ready-1"], [proc])
        sockets = tree_listening(proc.pid)
    finally:
        (tmp_path / "done").write_text("")
        out, err = finish(proc)
    assert proc.returncode == 0, err
    assert sockets, "the rendezvous store must be listening while the replicas run"
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
    assert (tmp_path / "ready-1").read_text() == "2.0"  # the two replicas did all-reduce


# ------------------------------------------------------------- several hosts
def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair, HOSTS[i] in namespace i."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to make network namespaces with")
    tag = uuid.uuid4().hex[:6]
    spaces, links = [f"dlb{tag}a", f"dlb{tag}b"], [f"vd{tag}a", f"vd{tag}b"]
    made = sh("ip", "netns", "add", spaces[0])
    if made.returncode:
        pytest.skip(f"cannot make a network namespace here (needs root or CAP_NET_ADMIN): {made.stderr.strip()}")
    try:
        steps = [("ip", "netns", "add", spaces[1]),
                 ("ip", "link", "add", links[0], "type", "veth", "peer", "name", links[1])]
        for space, link, host in zip(spaces, links, HOSTS):
            steps += [("ip", "link", "set", link, "netns", space),
                      ("ip", "-n", space, "addr", "add", f"{host}/24", "dev", link),
                      ("ip", "-n", space, "link", "set", link, "up"),
                      ("ip", "-n", space, "link", "set", "lo", "up")]
        for step in steps:
            done = sh(*step)
            if done.returncode:
                pytest.skip(f"cannot join two network namespaces by a veth pair: {' '.join(step)}: "
                            f"{done.stderr.strip()}")
        yield spaces
    finally:
        for space in spaces:
            sh("ip", "netns", "del", space)


def in_namespace(space: str, code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(["ip", "netns", "exec", space, sys.executable, "-c", textwrap.dedent(code), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def namespace_listening(space: str) -> set[tuple[str, int]]:
    tables = [sh("ip", "netns", "exec", space, "cat", f"/proc/net/{name}").stdout for name in ("tcp", "tcp6")]
    return listening(tables)


def finish(proc: subprocess.Popen, timeout: float = WAIT_SECONDS) -> tuple:
    """What ``proc`` wrote, once it ended; killed (with its group's processes) if it has not in ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        return proc.communicate()


def run_on_two_hosts(spaces, code: str, folder: Path, ready: list[Path]) -> list[set]:
    procs = [in_namespace(space, code, str(rank), str(folder)) for rank, space in enumerate(spaces)]
    try:
        wait_for(ready, procs)
        sockets = [namespace_listening(space) for space in spaces]
    finally:
        (folder / "done").write_text("")
        outputs = [finish(p) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return sockets


TORCH_HOST = f"""
import os, sys
from dlbench.plugin.distributed import DataParallel
from dlbench_backends.torch import TorchBackend
rank, folder = int(sys.argv[1]), sys.argv[2]
command = TorchBackend().launch_command(DataParallel(replicas=2, hosts={HOSTS!r}, node_rank=rank, port={PORT}))
os.execv(command[0], [*command, os.path.join(folder, "replica.py"), folder])
"""


def test_torch_on_two_hosts_listens_on_the_hosts_addresses_only(two_hosts, tmp_path):
    require_backend("torch")
    (tmp_path / "replica.py").write_text(TORCH_REPLICA)
    sockets = run_on_two_hosts(two_hosts, TORCH_HOST, tmp_path, [tmp_path / "ready-0", tmp_path / "ready-1"])
    assert (HOSTS[0], PORT) in sockets[0]  # host 0 holds the store, at the coordinator's address
    for host, found in zip(HOSTS, sockets):
        assert found and {ip for ip, _ in found} == {host}, found  # gloo too: only this host's interface
    assert (tmp_path / "ready-1").read_text() == "2.0"


JAX_HOST = f"""
import sys, time
from pathlib import Path
from dlbench.plugin.distributed import DataParallel
from dlbench_backends.jax import JaxBackend
rank, folder = int(sys.argv[1]), Path(sys.argv[2])
JaxBackend().configure_data_parallel(DataParallel(replicas=2, hosts={HOSTS!r}, node_rank=rank, port={PORT}), 1)
(folder / f"ready-{{rank}}").write_text("")
deadline = time.time() + 120
while not (folder / "done").exists() and time.time() < deadline:
    time.sleep(0.1)
import jax
jax.distributed.shutdown()
"""


def test_jax_s_coordinator_on_two_hosts_listens_on_host_0_s_address_only(two_hosts, tmp_path):
    require_backend("jax")
    sockets = run_on_two_hosts(two_hosts, JAX_HOST, tmp_path, [tmp_path / "ready-0", tmp_path / "ready-1"])
    assert sockets[0] == {(HOSTS[0], PORT)}, sockets[0]
    assert not sockets[1], sockets[1]


def test_hosts_whose_first_resolves_to_loopback_here_are_refused_unless_all_are_this_machine():
    from dlbench.errors import InputError
    from dlbench.scale.cluster import resolve

    assert resolve("localhost,127.0.0.1", 0, None).names == ("localhost", "127.0.0.1")  # every host is this one
    with pytest.raises(InputError, match="--hosts: localhost resolves to 127.0.0.1 here, a loopback address the "
                                         "other hosts cannot reach"):
        resolve(f"localhost,{HOSTS[1]}", 0, None)


def quiet_peaks(cache: Path) -> None:
    """Peaks in a private cache, so that the runs measure none (each would take seconds per framework)."""
    import psutil

    from dlbench.plugin.manager import get_plugins
    from dlbench.measure import environment, peak

    os.environ["DLBENCH_CACHE"], saved = str(cache), os.environ.get("DLBENCH_CACHE")
    try:
        machine = {"cpu": environment.cpu_model(), "logical_cores": psutil.cpu_count(logical=True)}
        peak.save(machine, 1, {name: 100.0 for name in peak.measurable_backends(get_plugins())}, load=0.0)
    finally:
        if saved is None:
            os.environ.pop("DLBENCH_CACHE")
        else:
            os.environ["DLBENCH_CACHE"] = saved


def test_a_torch_run_over_two_hosts_gives_agreeing_rows_on_each(two_hosts, tmp_path):
    """``dlbench run --hosts`` as a user runs it on two hosts: one replica each,
    their engine formed over the veth pair; each host's rows agree with its reference."""
    require_backend("torch")
    quiet_peaks(tmp_path / "cache")
    env = {**os.environ, "DLBENCH_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen(["ip", "netns", "exec", space, sys.executable, "-m", "dlbench.cli", "run",
                               "--scenario", "digits-mlp", "--backend", "numpy,torch", "--steps", "20",
                               "--threads", "1", "--data-parallel", "2", "--hosts", ",".join(HOSTS),
                               "--node-rank", str(rank), "--coordinator-port", str(PORT + 100),
                               "--format", "json", "--out", str(tmp_path / f"host{rank}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank, space in enumerate(two_hosts)]
    outputs = [finish(proc, 600) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        rows = {r["backend"]: r for r in json.loads(out)["results"]}
        assert rows["numpy"]["status"] == "ok" and rows["torch"]["status"] == "ok", rows["torch"].get("error")
        assert rows["torch"]["distributed"]["world_size"] == 2 and rows["torch"]["parity"]["agrees"]
