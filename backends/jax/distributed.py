"""Data parallelism on JAX's own engine: one program over a ``Mesh`` of the
replicas' devices (``jax.sharding``), the window loop under ``jax.shard_map``
(:mod:`~dlbench_backends.jax.trainer`), the gradients averaged by
``lax.pmean`` over the mesh axis :data:`REPLICA_AXIS`; on several hosts one
process per host, joined by ``jax.distributed`` (:func:`configure`).
"""

from __future__ import annotations

import os

import jax
from jax import lax

from dlbench.plugin.distributed import bind_address

#: the engine's name, as :attr:`JaxBackend.data_parallel_engine` gives it
ENGINE = "jax.sharding (Mesh + shard_map)"

REPLICA_AXIS = "replica"


def replica_mean(value, stats, grads):
    """The data-parallel means of one step's loss, moving statistics and
    gradients over the replicas (``lax.pmean``, an all-reduce: equal slices
    make the mean of the replicas' batch means the global batch's). The
    shard_map runs without JAX's replication typing (``check_vma=False``), so
    each replica's gradients are its own slice's until averaged here; with
    that typing autodiff would sum them itself, which the hand-written
    convolution gradients (custom_vjp) cannot take part in."""
    return lax.pmean((value, stats, grads), REPLICA_AXIS)


def configure(data_parallel) -> None:
    """Join the other hosts' processes, as :meth:`JaxBackend.configure_data_parallel` says."""
    if "gpu" not in os.environ.get("JAX_PLATFORMS", "gpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(data_parallel.coordinator, num_processes=data_parallel.nodes,
                               process_id=data_parallel.node_rank,
                               coordinator_bind_address=f"{bind_address(data_parallel)}:{data_parallel.port}")


def info(trainer) -> dict:
    """``row["distributed"]``'s engine facts for a data-parallel trainer: the
    all-reduce of the compiled program is NCCL on GPUs; on CPUs in-process, or
    gloo between the processes of several hosts."""
    collective = ("NCCL" if trainer.device.platform == "gpu" else
                  "gloo" if jax.process_count() > 1 else "in-process")
    return {"engine": ENGINE, "collective": collective, "world_size": trainer.mesh.size}
