"""Data-parallel training: what the core decides, whatever the engine.

``--data-parallel N`` trains the same network as N replicas on a backend's
own distributed engine (DDP, ``jax.sharding``, ``tf.distribute``); the NumPy
reference stays one process at the global batch. The core still owns the
batch order: each step's global batch is the one a single process takes, and
replica ``r`` of ``N`` takes the ``r``-th of ``N`` equal consecutive slices
(:func:`replica_slice`). With the loss of each replica's slice averaged over
the *global* batch and the gradients summed across replicas (the all-reduce),
N replicas compute the update one process computes, so every data-parallel
row is certified against the single-process reference at the same global
batch (:mod:`dlbench.parity.certificate`).

Scaling: "strong" keeps the scenario's global batch (each replica takes
``batch / N``); "weak" keeps the per-replica batch (the global batch is
``N * batch``). BatchNormalization keeps per-replica batch statistics by
default (what DDP does); ``sync_batchnorm`` computes them over the global
batch, which is what the reference computes.

On a CPU a replica is a process (torch) or a logical device (JAX, TF) with
``threads_per_replica`` threads; N replicas need ``N * threads_per_replica``
cores to be an honest test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlbench.errors import InputError, one_of

if TYPE_CHECKING:
    import numpy as np

SCALINGS = ("strong", "weak")
#: the reference's own ``row["distributed"]``: one process, the global batch
REFERENCE_ENGINE = "single process (the reference, at the global batch)"


@dataclass(frozen=True)
class DataParallel:
    """How many replicas train one network, and how (part of every trainer's
    options). On several hosts (``hosts``, this one ``hosts[node_rank]``) the
    replicas are spread evenly over them, and ``port`` is the job's first
    port: the coordinator listens on ``hosts[0]:port``; engines that need one
    address per host use ``port + node`` on host ``node``."""

    replicas: int = 1
    scaling: str = "strong"
    sync_batchnorm: bool = False
    hosts: tuple[str, ...] = ()
    node_rank: int = 0
    port: int = 0

    @property
    def active(self) -> bool:
        return self.replicas > 1

    @property
    def nodes(self) -> int:
        return max(1, len(self.hosts))

    @property
    def multi_host(self) -> bool:
        return self.nodes > 1

    @property
    def local_replicas(self) -> int:
        """The replicas on this host."""
        return self.replicas // self.nodes

    @property
    def coordinator(self) -> str:
        """``host:port`` of the rendezvous (torchrun) or coordinator (``jax.distributed``)."""
        return f"{self.hosts[0]}:{self.port}"

    def address(self, node: int) -> str:
        """Host ``node``'s own ``host:port`` (a TF_CONFIG cluster entry)."""
        return f"{self.hosts[node]}:{self.port + node}"

    def global_batch(self, batch_size: int) -> int:
        """The global batch of a scenario whose batch size is ``batch_size``."""
        return batch_size * self.replicas if self.scaling == "weak" else batch_size


LOOPBACK = "127.0.0.1"


def bind_address(data_parallel: DataParallel) -> str:
    """Where a run's coordinator (a rendezvous store, a coordination service)
    listens: loopback on one host, so that nothing on the network can reach
    it; on several hosts the address of ``hosts[0]`` only, the interface the
    other hosts reach it by, never every interface. These services are
    unauthenticated (as torch and JAX say of theirs): whoever reaches the
    port can join or disturb the job."""
    if not data_parallel.multi_host:
        return LOOPBACK
    return host_address(data_parallel.hosts[0])


def host_address(host: str) -> str:
    """``host``'s IPv4 address (a name resolved as the engines resolve it)."""
    import socket

    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        raise RuntimeError(f"cannot resolve host {host!r}: {exc}") from None


def interface_of(address: str) -> str | None:
    """The name of this machine's network interface that holds ``address``
    (e.g. "lo" for 127.0.0.1), None where none does."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address == address for a in addresses):
            return name
    return None


def local_address(data_parallel: DataParallel) -> str:
    """The address this host's replicas talk to the others' from: loopback on
    one host, this host's entry of ``hosts`` on several."""
    if not data_parallel.multi_host:
        return LOOPBACK
    return host_address(data_parallel.hosts[data_parallel.node_rank])


def replica_slice(indices: np.ndarray, rank: int, replicas: int) -> np.ndarray:
    """Replica ``rank``'s part of a window's global batches (steps, batch): the
    ``rank``-th of ``replicas`` equal consecutive column blocks."""
    per = indices.shape[1] // replicas
    return indices[:, rank * per:(rank + 1) * per]


def check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise InputError(f"unknown scaling {scaling!r}; {one_of(SCALINGS)}", field="--scaling")


def check_replicas(replicas: int, threads_per_replica: int, device: str, cores: int, field: str) -> None:
    """N replicas of ``threads_per_replica`` threads must fit this machine's cores (on a CPU)."""
    if device != "cpu" or replicas == 1:
        return
    if replicas * threads_per_replica > cores:
        most = max(1, cores // threads_per_replica)
        raise InputError(f"{replicas} replicas of {threads_per_replica} thread(s) need {replicas * threads_per_replica}"
                         f" CPU cores; this machine has {cores}: at most {most} replica(s) of "
                         f"{threads_per_replica} thread(s)", field=field)


def check_divides(replicas: int, batch_size: int, n_train: int, drop_last: bool, where: str, field: str) -> None:
    """Every batch of the plan (the full ones and an epoch's last, partial one)
    must split into ``replicas`` equal slices."""
    if replicas == 1:
        return
    if batch_size % replicas:
        raise InputError(f"{replicas} replicas do not divide the global batch of {batch_size} samples; use a "
                         f"batch size that is a multiple of {replicas}", field=field, source=where)
    rest = n_train % batch_size
    if rest and not drop_last and rest % replicas:
        raise InputError(f"{replicas} replicas do not divide the last batch of each epoch ({rest} of {n_train} "
                         f"samples at batch {batch_size}); set train.drop_last = true or choose a batch size "
                         f"whose remainder is a multiple of {replicas}", field=field, source=where)


REFERENCE_INFO = {"engine": REFERENCE_ENGINE, "collective": None, "world_size": 1,
                  "batchnorm": "over the global batch (one process)"}


def distributed_row(info: dict | None, replicas: int, threads: int, scaling: str, sync_batchnorm: bool,
                    batchnorm: bool = True) -> dict:
    """``row["distributed"]``: what the trainer says of its engine (engine,
    collective, world size, communication time) with the core's settings;
    engine None where no trainer ran; the BatchNorm mode None for a network without BatchNormalization."""
    info = dict(info or {"engine": None})
    return {"engine": info.pop("engine"), "world_size": info.pop("world_size", replicas),
            "collective": info.pop("collective", None), "threads_per_replica": threads, "scaling": scaling,
            "batchnorm": info.pop("batchnorm", "synchronized" if sync_batchnorm else "per-replica") if batchnorm
            else None, **info}
