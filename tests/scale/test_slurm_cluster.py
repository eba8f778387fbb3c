"""--executor slurm against a real one-node Slurm: Debian's munge, slurmctld
and slurmd (``.ci/run`` installs them), started here for this machine alone
(a private munge socket and key, a slurm.conf for localhost on free ports,
accounting off as on a fresh cluster). Skipped, with the reason, where they
are not installed or cannot start (they need root).

A suite fanned out as a job array gives ok rows that agree; a job cancelled
with scancel and a job stopped by its time limit each become a row that says
so, and the others are kept; and the run says once what Slurm without
accounting means instead of submitit's "Bypassing sacct error" at every poll."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parents[1]
SBIN = os.pathsep.join(["/usr/sbin", "/sbin"])
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "scancel", "squeue", "sinfo")
START_SECONDS = 60

HANGING = '''
import dlbench
from fault_plugins import HangingTrainer, backend


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(backend("cancelled", HangingTrainer))
    registry.add(backend("overtime", HangingTrainer))
'''


def program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path, node: str) -> str:
    return f"""ClusterName=dlbenchtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def start(command: list[str], folder: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode:
        logs = " | ".join(p.read_text()[-400:] for p in folder.glob("*.log"))
        pytest.skip(f"{Path(command[0]).name} did not start (exit {done.returncode}): {done.stderr.strip()} {logs}")


def stop(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().split()[0]), 15)
    except (OSError, ValueError, IndexError):
        pass


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm on this machine (SLURM_CONF set for this module's runs)."""
    missing = [name for name in PROGRAMS if program(name) is None]
    if missing:
        pytest.skip(f"Slurm is not installed here (no {', '.join(missing)}; .ci/run installs Debian's "
                    "slurmctld, slurmd and munge)")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs as root, and these tests are not")
    folder = tmp_path_factory.mktemp("slurm")
    folder.chmod(0o755)
    for name in ("state", "spool"):
        (folder / name).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    node = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, node))
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        start([program("munged"), "--force", f"--socket={folder}/munge.socket", f"--key-file={key}",
               f"--log-file={folder}/munged.log", f"--pid-file={folder}/munged.pid",
               f"--seed-file={folder}/munged.seed"], folder)
        start([program("slurmctld"), "-f", str(conf)], folder)
        start([program("slurmd"), "-f", str(conf), "-N", node], folder)
        wait_idle(folder)
        yield folder
    finally:
        drain()
        for daemon in ("slurmd", "slurmctld", "munged"):
            stop(folder / f"{daemon}.pid")
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved


def drain() -> None:
    """Cancel this cluster's jobs and wait for them to end, so that no job step outlives its daemons."""
    subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "--noheader"], capture_output=True, text=True, timeout=30)
        if queue.returncode or not queue.stdout.strip():
            return
        time.sleep(0.5)


def wait_idle(folder: Path) -> None:
    deadline = time.time() + START_SECONDS
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "--noheader", "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    logs = " | ".join(p.read_text()[-400:] for p in folder.glob("slurm*.log"))
    pytest.skip(f"the one-node Slurm did not become idle in {START_SECONDS} s (sinfo: {state!r}): {logs}")


def dlbench_run(out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dlbench.cli", "run", "--executor", "slurm", "--format", "json",
                             "--out", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or os.environ.copy())


def arrays() -> dict[str, list[dict]]:
    """The controller's dlbench array tasks, by array job id."""
    lines = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True).stdout
    found: dict[str, list[dict]] = {}
    for line in lines.splitlines():
        fields = dict(t.split("=", 1) for t in line.split() if "=" in t)
        if fields.get("JobName") == "dlbench" and fields.get("ArrayTaskId", "").isdigit():
            found.setdefault(fields["ArrayJobId"], []).append(fields)
    return found


def test_a_suite_fanned_out_as_a_job_array_gives_ok_agreeing_rows(slurm, tmp_path):
    before = set(arrays())
    proc = dlbench_run(tmp_path, "--scenario", "xor-mlp", "--backend", "numpy,torch", "--steps", "20",
                       "--threads", "1", "--sweep", "seed=0,1")  # one CPU a job: the two of an array run at once
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert [(r["backend"], r["status"]) for r in doc["results"]] == [("numpy", "ok"), ("torch", "ok")] * 2
    assert all(r["parity"]["agrees"] for r in doc["results"] if r["backend"] == "torch")
    assert doc["executor"]["cluster"] == "slurm" and doc["executor"]["parallel"]
    new = {k: v for k, v in arrays().items() if k not in before}
    assert sorted(len(tasks) for tasks in new.values()) == [2, 2]  # the references' array, then the others'
    assert all(t["JobState"] == "COMPLETED" for tasks in new.values() for t in tasks)
    # accounting is off: said once, in words, instead of submitit's warning at every poll
    assert err.count("Slurm accounting is off on this cluster") == 1 and "Bypassing sacct error" not in err
    assert "Slurm accounting is off" in doc["executor"]["job_states"]


def test_a_cancelled_job_and_a_job_past_its_time_limit_become_rows_and_the_others_are_kept(slurm, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hanging_plugins.py").write_text(HANGING)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(plugins)]),
           "DLBENCH_PLUGINS": "fault_plugins,hanging_plugins"}
    before = set(arrays())
    proc = dlbench_run(tmp_path / "out", "--scenario", "xor-mlp", "--steps", "20", "--slurm-time", "1",
                       "--threads", "1", "--backend", "numpy,cancelled,overtime", env=env)
    cancelled = wait_for_running_array(before, proc)
    subprocess.run(["scancel", cancelled], check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    rows = {r["backend"]: r for r in json.loads(out)["results"]}
    assert list(rows) == ["numpy", "cancelled", "overtime"]
    assert rows["numpy"]["status"] == "ok"
    assert rows["cancelled"]["status"] == "failed" and "state CANCELLED" in rows["cancelled"]["error"], rows
    assert rows["cancelled"]["error"].startswith(f"slurm job {cancelled} ended without a row")
    overtime = rows["overtime"]
    assert overtime["status"] == "timeout" and "ran past its time limit (1 min, --slurm-time)" in overtime["error"]


def wait_for_running_array(before: set, proc: subprocess.Popen) -> str:
    """The id (ARRAY_TASK) of the first task of the run's array of two, once both are running."""
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        for array, tasks in arrays().items():
            if array not in before and len(tasks) == 2 and all(t["JobState"] == "RUNNING" for t in tasks):
                return f"{array}_{min(int(t['ArrayTaskId']) for t in tasks)}"
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"the array of two hanging jobs did not start: {proc.communicate()}")
