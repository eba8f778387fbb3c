"""Data parallelism on TensorFlow's own engine: ``tf.distribute``, one process
driving every replica of its host.

On one host a ``MirroredStrategy`` over N logical CPU devices (made by
:func:`configure` before TensorFlow starts) or the first N GPUs; on several
hosts a ``MultiWorkerMirroredStrategy`` with one worker per host, from the
``TF_CONFIG`` that :func:`configure` writes. What a replica computes in a
step is in :mod:`~dlbench_backends.tensorflow.trainer`.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from dlbench.plugin.distributed import replica_slice
from dlbench_backends.tensorflow.core import framework

tf, _ = framework()

#: the engine's name, as :attr:`TensorflowBackend.data_parallel_engine` gives it
ENGINE = "tf.distribute.MirroredStrategy"


def configure(data_parallel, threads: int) -> None:
    """What :meth:`TensorflowBackend.configure_data_parallel` does (see there), before TensorFlow starts."""
    replicas = data_parallel.local_replicas
    if data_parallel.multi_host:
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [data_parallel.address(node) for node in range(data_parallel.nodes)]},
            "task": {"type": "worker", "index": data_parallel.node_rank}})
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        tf.config.threading.set_intra_op_parallelism_threads(replicas * threads)
        tf.config.threading.set_inter_op_parallelism_threads(replicas)
    except RuntimeError as exc:  # TF already started in this process: its devices are fixed
        found = len(tf.config.list_logical_devices("CPU"))
        if found < replicas:
            raise RuntimeError(f"TensorFlow already started with {found} CPU device(s); {replicas} replicas "
                               "need their logical CPU devices made before it starts") from exc


def replica_devices(device: str, replicas: int) -> list[str]:
    """The devices of ``replicas`` replicas: the first GPUs, or the logical CPU
    devices that :meth:`TensorflowBackend.configure_data_parallel` made."""
    kind = "GPU" if device == "gpu" else "CPU"
    found = [d.name for d in tf.config.list_logical_devices(kind)]
    if len(found) < replicas:
        made_by = ("" if kind == "GPU" else
                   " (TensorflowBackend.configure_data_parallel makes them, before TensorFlow starts)")
        raise RuntimeError(f"{replicas} data-parallel replicas need {replicas} {kind} devices; TensorFlow sees "
                           f"{len(found)}{made_by}")
    return found[:replicas]


@functools.cache
def multi_worker_strategy():
    """The process's MultiWorkerMirroredStrategy: one worker per host, from the
    TF_CONFIG that :meth:`TensorflowBackend.configure_data_parallel` wrote
    (its local replicas: every GPU of the host, or its one CPU device),
    all-reducing with collective ops over gRPC (RING on CPUs, NCCL on GPUs)."""
    return tf.distribute.MultiWorkerMirroredStrategy()


@functools.cache
def mirrored_strategy(device: str, replicas: int):
    """The process's one MirroredStrategy over ``replicas`` replicas.

    On GPUs it all-reduces with TF's default, collective ops (NCCL). Those
    number their collectives from the same keys in every MirroredStrategy
    (group 1, instances from 100), so a second strategy's all-reduces would
    collide with the first's in TF's collective executor ("Shape mismatch in
    the collective instance 100" when the certificate builds its second
    trainer); sharing one, every new trace takes fresh keys. On logical CPU
    devices, which share the host's memory, it reduces on the first device
    and hands every replica that one sum (``ReductionToOneDevice``: no copy,
    and the same bits everywhere): TF's default there, a RING of collective
    ops, costs more than the step on a small network (digits-mlp at 2
    replicas of 1 thread, on a busy 2-core machine: about 120k samples/s with
    RING, 170k reduced to one device, 150k in one process).
    """
    devices = replica_devices(device, replicas)
    cross_device_ops = tf.distribute.ReductionToOneDevice() if device != "gpu" else None
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def collective(strategy) -> str:
    """How the strategy all-reduces: its cross-device ops (ReductionToOneDevice
    on CPUs, see :func:`mirrored_strategy`; on GPUs TF's pick, CollectiveAllReduce
    with NCCL), read from its private attributes: TensorFlow reports it nowhere else."""
    extended = strategy.extended
    ops = getattr(extended, "_cross_device_ops", None)
    if ops is None:
        return "unknown"
    implementation = getattr(getattr(extended, "_communication_options", None), "implementation", None)
    if type(ops).__name__ == "CollectiveAllReduce" and implementation is not None:
        return f"CollectiveAllReduce ({implementation.name})"
    return type(ops).__name__


def replica_parts(indices: np.ndarray, replicas: int) -> np.ndarray:
    """(replicas, steps, batch / replicas): replica r's columns of a window are ``parts[r]``."""
    return np.stack([replica_slice(indices, r, replicas) for r in range(replicas)])


def info(trainer) -> dict:
    """``row["distributed"]``'s engine facts for a data-parallel trainer."""
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy: named as users create it
    engine = "tf.distribute.MultiWorkerMirroredStrategy" if trainer.multi_host else ENGINE
    return {"engine": engine, "collective": collective(trainer.strategy), "world_size": trainer.replicas}
