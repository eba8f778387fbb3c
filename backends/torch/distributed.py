"""Data parallelism on torch's own engine: ``torch.distributed`` with
``DistributedDataParallel``, one process per replica.

The worker runs under :mod:`~dlbench_backends.torch.launch`
(``TorchBackend.launch_command``), which starts one process per replica as
torchrun does, with its ``RANK``, ``WORLD_SIZE`` and the rendezvous
address: on one host a store on a free port of 127.0.0.1 (never a fixed
29500, so two runs can coexist, and never on every interface); the process group is gloo on a CPU and NCCL on GPUs. DDP broadcasts rank 0's
parameters when it wraps the model, all-reduces the gradients during
``backward`` (summed, divided by the world size: equal slices of the global
batch make that the global batch's mean gradient), and broadcasts rank 0's
buffers (BatchNorm's moving statistics) before every forward pass. Batch
statistics are each replica's own; torch's ``SyncBatchNorm`` synchronizes
them on GPUs only.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import nn

#: the engine's name, as :attr:`TorchBackend.data_parallel_engine` gives it
ENGINE = "torch.distributed DDP"


def rank() -> int:
    """This replica's global rank (torchrun's RANK): which slice of each batch it takes."""
    return int(os.environ.get("RANK", "0"))


def replica_seed(seed: int, rank: int) -> int:
    """The seed of replica ``rank``'s dropout generator: ``SeedSequence([seed,
    rank])``'s first word, so the replicas draw independent masks that the run's
    seed still decides."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0])


def start(device: torch.device, replicas: int) -> None:
    """Join the launch's process group (once per process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != replicas:
        raise RuntimeError(f"{replicas} torch replicas run as {replicas} processes launched by torchrun "
                           f"(dlbench's isolated runs do this; not --in-process); this process has WORLD_SIZE {world}")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)


def wrap(model: nn.Module, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """``model`` under DDP (rank 0's parameters broadcast to every replica)."""
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def local_device(device: torch.device) -> torch.device:
    """A replica's device: its own GPU (LOCAL_RANK), or the CPU."""
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if device.type == "cuda" else device


def mean_over_replicas(values: torch.Tensor) -> torch.Tensor:
    """The replicas' values (each its slice's mean loss) averaged: the global batch's mean."""
    dist.all_reduce(values)
    return values / dist.get_world_size()


def info(trainer) -> dict:
    """``row["distributed"]``'s engine facts for a data-parallel trainer, with
    DDP's own measure of the time its backward all-reduces took (sampled by
    DDP every 100 steps)."""
    facts = {"engine": ENGINE, "collective": dist.get_backend(), "world_size": dist.get_world_size()}
    comm_ns = trainer.ddp._get_ddp_logging_data().get("avg_backward_comm_time")
    if comm_ns:
        facts["communication_seconds_per_step"] = comm_ns / 1e9
    return facts
