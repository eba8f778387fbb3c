"""The PyTorch backend: an ``nn.Module``, autograd, and torch.optim's Adam and SGD.

The modules, the same as every backend's: ``network`` (the ``nn.Sequential``
of the spec's layers, torch's layouts to and from the canonical ones),
``losses`` (from the logits), ``optim`` (torch.optim's fused kernels, with
the optimizer state kept per parameter), ``precision`` (autocast and fp16's
loss scale), ``inference`` (eval mode, ``inference_mode``), ``distributed``
(DDP, one process per replica, started by ``launch``), ``trainer`` (windows
of steps), with one API (``docs/backends/module-api.md``);
torch's own gradients serve every layer, so there is no ``kernels`` module.
Only this file is imported to list the backend: torch is imported by
``build`` (and by the methods that need the framework), never before.

Settings: precision "fp32" turns TF32 off for cuBLAS and cuDNN
(``set_float32_matmul_precision("highest")``); "tf32" turns it on ("high").
``deterministic`` calls ``torch.use_deterministic_algorithms`` (and sets
``CUBLAS_WORKSPACE_CONFIG`` for CUDA when unset). ``configure_threads`` calls
``torch.set_num_threads`` (and one inter-op thread where still possible).

Options (``options.extra``):

* ``compile`` (bool, default False): the forward pass and loss go through
  ``torch.compile`` (inductor; AOTAutograd compiles the backward too), once
  per batch shape (``dynamic=False``: the runner times each shape's first
  step as compile time). The optimizer update stays the fused kernel, which
  compiled is slower per call on CPU. Building such a trainer resets
  torch's compiler caches (``torch.compiler.reset()``), so that trainers
  built earlier in the same process do not use up the recompile limit.
  It also compiles the inference forward pass (see
  :mod:`~dlbench_backends.torch.inference`).
"""

from __future__ import annotations

import os
from dataclasses import replace

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions
from dlbench.network import ModelSpec


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    distributions = ("torch",)
    pip_install = 'pip install "dlbench[torch]"'
    devices = ("cpu", "gpu")
    precisions = ("fp32", "tf32", "bf16", "fp16")
    modes = ("train", "inference")
    description = "PyTorch: nn.Module, autograd, torch.optim's fused Adam/SGD; option compile"
    order = 1
    data_parallel_engine = "torch.distributed DDP"
    option_defaults = {"compile": False}
    model_layout = "channels_first"  # nn.Conv2d takes NCHW

    def configure_threads(self, threads: int) -> int:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only possible before the first parallel work
            pass
        return torch.get_num_threads()

    def precision_unavailable(self, precision: str, device: str, spec=None) -> str | None:
        """What torch cannot compute here: an LSTM in float16 where oneDNN has no
        such kernel (CPUs without fp16 instructions), found by trying a tiny one."""
        from dlbench.network import LSTM
        from dlbench.network.transformer import nested_layers

        reason = super().precision_unavailable(precision, device, spec)
        if reason or precision != "fp16" or device != "cpu" or spec is None \
                or not any(isinstance(layer, LSTM) for layer in nested_layers(spec.layers)):
            return reason
        from dlbench_backends.torch.precision import lstm_unavailable

        return lstm_unavailable()

    def launch_command(self, data_parallel) -> list[str] | None:
        """One worker process per replica of this host, started by
        :mod:`~dlbench_backends.torch.launch` (torchrun's variables, see
        :mod:`~dlbench_backends.torch.distributed`) rather than torchrun, whose
        rendezvous stores listen on every interface: here the store listens on
        loopback for one host (a free port), on the address of host 0 for
        several (the job's port; node ranks as dlbench numbers the hosts, so
        global rank 0 is on host 0), and gloo on this host's interface."""
        import sys

        from dlbench.plugin.distributed import bind_address, interface_of, local_address

        bind = bind_address(data_parallel)
        master = bind if not data_parallel.multi_host else data_parallel.hosts[0]
        port = data_parallel.port if data_parallel.multi_host else 0
        interface = interface_of(local_address(data_parallel)) or ""
        return [sys.executable, "-m", "dlbench_backends.torch.launch", str(data_parallel.local_replicas),
                str(data_parallel.nodes), str(data_parallel.node_rank), bind, master, str(port), interface, "--",
                sys.executable]

    def process_rank(self) -> int:
        """torchrun's LOCAL_RANK: the first replica process of each host writes its row."""
        return int(os.environ.get("LOCAL_RANK", "0"))

    def data_parallel_unavailable(self, data_parallel, device: str, spec=None) -> str | None:
        """torch synchronizes BatchNorm statistics (SyncBatchNorm) on GPUs only."""
        from dlbench.network import BatchNormalization
        from dlbench.network.transformer import nested_layers

        if data_parallel.sync_batchnorm and device == "cpu" and spec is not None \
                and any(isinstance(layer, BatchNormalization) for layer in nested_layers(spec.layers)):
            return "torch's SyncBatchNorm runs on GPUs only; on a CPU torch keeps per-replica BatchNorm statistics"
        return super().data_parallel_unavailable(data_parallel, device, spec)

    def gpu_name(self) -> str | None:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    def matmul(self, n: int, dtype: str = "float32", device: str = "cpu"):
        """On a GPU: random operands (a matrix of ones runs faster than real
        data there), TF32 allowed for "tfloat32" only, and each product waited
        for (CUDA runs it asynchronously)."""
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        if device == "gpu":
            return gpu_matmul(n, dtype) if torch.cuda.is_available() else None
        if dtype == "tfloat32":  # no TF32 on a CPU
            return None
        a = torch.ones((n, n), dtype=getattr(torch, dtype))
        return lambda: torch.mm(a, a)

    def reads_model(self, model) -> bool:
        from dlbench_backends.torch import convert

        return convert.reads(model)

    def import_model(self, model, *, input_shape=None, loss=None, optimizer=None):
        """A torch module as a spec; see :mod:`dlbench_backends.torch.convert`."""
        from dlbench_backends.torch import convert

        return convert.import_model(model, input_shape=input_shape, loss=loss, optimizer=optimizer)

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        from dlbench_backends.torch.trainer import TorchTrainer

        return TorchTrainer(spec, weights, replace(options, extra=self.check_options(options.extra)))


def gpu_matmul(n: int, dtype: str):
    """A function multiplying two n x n ``dtype`` matrices on the first GPU and waiting for the result."""
    import torch

    from dlbench_backends.torch.trainer import set_tf32

    set_tf32(dtype == "tfloat32")
    a = torch.randn((n, n), device="cuda").to(torch.float32 if dtype == "tfloat32" else getattr(torch, dtype))

    def product():
        torch.mm(a, a)
        torch.cuda.synchronize()

    return product


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TorchBackend)
