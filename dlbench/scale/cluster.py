"""The options of running on a cluster, checked before anything runs (no
submitit import unless they ask for it; :mod:`dlbench.run.executors` does
the submitting): ``--executor`` and its Slurm resources, and the hosts of a
multi-host data-parallel run.

Multi-host data parallelism. The same ``dlbench run`` runs on every host (by hand, ``pdsh``, or ``srun``
in a Slurm allocation), each with the same settings, so each derives the same
jobs in the same order. For every data-parallel job the workers of all hosts
join one engine: torch's rendezvous store at ``hosts[0]:port``,
``jax.distributed.initialize`` with that coordinator, or TF's
``MultiWorkerMirroredStrategy`` with a ``TF_CONFIG`` listing ``host:port+i``
for host ``i``. Job ``j`` takes the ports from ``base + j * hosts``, so that
consecutive jobs never wait for a port the last one held. Every host runs
the NumPy reference too (each certifies its replicas against its own copy)
and keeps its own result document, its rows as its first replica measured them.

Where the hosts come from: ``--hosts A,B --node-rank I`` (and
``--coordinator-port``), or, inside a Slurm allocation of several nodes,
Slurm's own variables (``SLURM_JOB_NODELIST`` parsed by submitit,
``SLURM_NODEID``; the base port from ``SLURM_JOB_ID``, so that two jobs on a
node never collide).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
from dataclasses import dataclass

from dlbench.errors import InputError, MissingDependency, one_of
from dlbench.network import check_positive_int

EXECUTORS = ("local", "slurm")
INSTALL = 'pip install "dlbench[cluster]"'
DEFAULT_MINUTES = 60  # a job's time limit when there is no --timeout to derive it from
#: a job's time beyond its repeats' --timeout: its start, the framework imports, and the warning
#: submitit asks for before the limit (Slurm signals 90 s ahead, a quarter of a shorter limit; the local fallback 30 s)
MARGIN_SECONDS = 300
SUBMITIT_LOG_VARIABLE = "SUBMITIT_LOG_LEVEL"
SLURM_OPTIONS = ("--slurm-partition", "--slurm-gpus-per-job", "--slurm-time")


def slurm_available() -> bool:
    """Whether this machine can submit to Slurm, judged as submitit judges it
    (``SlurmExecutor.affinity``: an ``srun`` on the PATH)."""
    return shutil.which("srun") is not None


def check_executor(executor: str, *, partition: str | None, gpus_per_job: int | None, minutes: int | None,
                   timeout: float | None, repeat: int, in_process: bool) -> int | None:
    """The options of ``--executor``, checked before anything runs; the job
    time limit in minutes for ``slurm`` (given, or derived), None for ``local``."""
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; {one_of(EXECUTORS)}", field="--executor")
    given = {name: value for name, value in zip(SLURM_OPTIONS, (partition, gpus_per_job, minutes))
             if value is not None}
    if executor == "local":
        if given:
            name = next(iter(given))
            raise InputError(f"only goes with --executor slurm (this run's executor is local); add --executor slurm "
                             f"or drop {name}", field=name)
        return None
    import_submitit()
    if in_process:
        raise InputError("--in-process runs every job in this process, --executor slurm each in a job of its own; "
                         "use one", field="--executor")
    for name, value in given.items():
        if name != "--slurm-partition":
            check_positive_int(value, name)
    if partition is not None and not partition.strip():
        raise InputError("expected a partition name, got an empty one", field="--slurm-partition")
    asks_slurm = [name for name in SLURM_OPTIONS[:2] if name in given]
    if asks_slurm and not slurm_available():
        raise InputError(f"there is no Slurm on this machine (no srun on the PATH), so --executor slurm runs the "
                         f"jobs as local processes, which have no partitions or GPUs to ask for; drop {asks_slurm[0]}",
                         field=asks_slurm[0])
    return minutes if minutes is not None else job_minutes(timeout, repeat)


def job_minutes(timeout: float | None, repeat: int) -> int:
    """A job's time limit: its repeats' ``--timeout`` each, and a margin; else an hour."""
    if timeout is None:
        return DEFAULT_MINUTES
    return math.ceil((repeat * timeout + MARGIN_SECONDS) / 60)


def import_submitit(needed_for: str = "--executor slurm"):
    """submitit, or the one line that says how to install it. Imported without
    its logging set-up (``SUBMITIT_LOG_LEVEL=NOCONFIG``): that is a
    ``logging.config.dictConfig``, which closes every handler the process
    already has (a notebook's, absl's, pytest's capture). Its jobs, which do
    not inherit the setting, log as submitit sets them up."""
    given = os.environ.get(SUBMITIT_LOG_VARIABLE)
    os.environ.setdefault(SUBMITIT_LOG_VARIABLE, "NOCONFIG")
    try:
        import submitit
    except ImportError:
        raise MissingDependency(f"{needed_for} needs submitit, which is not installed; run: {INSTALL}",
                                field="--executor") from None
    finally:
        if given is None:
            os.environ.pop(SUBMITIT_LOG_VARIABLE, None)
    return submitit


DEFAULT_PORT = 29400  # where two multi-host runs at once must be told apart with --coordinator-port
SLURM_PORT_BASE = SLURM_PORT_SPAN = 20000  # the base port inside Slurm: 20000 + job id modulo 20000
FIELD = "--hosts"


@dataclass(frozen=True)
class Hosts:
    """The hosts of a run, this one's index among them, and the first port."""

    names: tuple[str, ...] = ()
    node_rank: int = 0
    port: int = DEFAULT_PORT

    @property
    def count(self) -> int:
        return max(1, len(self.names))

    def job_port(self, job_index: int) -> int:
        """The first port of job ``job_index`` (each job takes one per host)."""
        return self.port + job_index * self.count


def resolve(hosts: str | None, node_rank: int | None, port: int | None, env=os.environ) -> Hosts:
    """The run's hosts from the options, else from a Slurm allocation of
    several nodes, else this host alone."""
    if hosts:
        names = tuple(h.strip() for h in hosts.split(",") if h.strip())
        found = Hosts(names, _node_rank(names, node_rank), _port(port, DEFAULT_PORT))
        _check_reachable(names)
        return found
    if node_rank is not None or port is not None:
        raise InputError("--node-rank and --coordinator-port need --hosts (or a Slurm allocation of several nodes)",
                         field=FIELD)
    if int(env.get("SLURM_JOB_NUM_NODES", "1") or 1) > 1 and "SLURM_JOB_NODELIST" in env:
        return from_slurm(env)
    return Hosts()


def from_slurm(env=os.environ) -> Hosts:
    """The hosts of the Slurm allocation this runs in (``srun dlbench run ...`` runs it once per node)."""
    import_submitit("reading the hosts of a Slurm allocation")
    from submitit.slurm.slurm import SlurmJobEnvironment

    slurm = SlurmJobEnvironment()
    port = SLURM_PORT_BASE + int(env.get("SLURM_JOB_ID", "0")) % SLURM_PORT_SPAN
    return Hosts(tuple(slurm.hostnames), slurm.node, port)


def _check_reachable(names: tuple[str, ...]) -> None:
    """The first host's coordinator listens on the address its name resolves to
    here, and only there (:func:`dlbench.plugin.distributed.bind_address`): a
    loopback address (Debian's /etc/hosts maps a machine's own name to
    127.0.1.1) would be out of the other hosts' reach, unless every host is this machine."""
    import ipaddress
    import socket

    try:
        loopback = [ipaddress.ip_address(socket.gethostbyname(name)).is_loopback for name in names]
    except OSError:
        return  # a name this host cannot resolve: the engines say so, naming it
    if loopback[0] and not all(loopback):
        raise InputError(f"{names[0]} resolves to {socket.gethostbyname(names[0])} here, a loopback address the "
                         "other hosts cannot reach, and the coordinator listens there only; name the hosts by "
                         "addresses (or names) of the interface they reach each other by", field=FIELD)


def _node_rank(names: tuple[str, ...], node_rank: int | None) -> int:
    if len(names) < 2:
        raise InputError(f"names {len(names)} host; a multi-host run needs two or more, e.g. "
                         "--hosts node1,node2", field=FIELD)
    if node_rank is None:
        here = [i for i, name in enumerate(names) if name == platform.node()]
        if len(here) != 1:
            raise InputError(f"cannot tell which of {', '.join(names)} this host ({platform.node()}) is; "
                             f"say it with --node-rank 0..{len(names) - 1}", field="--node-rank")
        return here[0]
    if not 0 <= node_rank < len(names):
        raise InputError(f"{node_rank} is not one of the {len(names)} hosts' ranks 0..{len(names) - 1}",
                         field="--node-rank")
    return node_rank


def _port(port: int | None, default: int) -> int:
    if port is None:
        return default
    if not 1024 <= port <= 65535:
        raise InputError(f"must be a port 1024..65535, got {port}", field="--coordinator-port")
    return port


def check_spread(hosts: Hosts, replica_counts: list[int]) -> None:
    """On several hosts every replica count must spread evenly over them."""
    if hosts.count == 1:
        return
    for replicas in replica_counts:
        if replicas % hosts.count:
            raise InputError(f"{replicas} replicas do not spread evenly over {hosts.count} hosts; use a multiple "
                             f"of {hosts.count}", field="--data-parallel")
