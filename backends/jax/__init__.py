"""The JAX backend: a pure function of the parameters, differentiated by
``jax.value_and_grad`` and compiled by XLA, a whole window of steps per call.

The modules, the same as every backend's: ``network`` (the forward function
built from the spec; JAX's layouts are the canonical ones), ``losses`` (from
the logits), ``optim`` (the canonical updates in ``jax.numpy``), ``precision`` (the
explicit mixed-precision policy and fp16's loss scale), ``inference`` (the
jitted forward pass), ``distributed`` (the Mesh, its all-reduce, several
hosts), ``trainer`` (the jitted window loop), with one API in its functional
form (``docs/backends/module-api.md``), and ``kernels``: the convolution and max-pool
gradients written by hand for XLA:CPU. Only this file is imported to list the
backend: JAX is imported by ``build`` (and by the methods that need it).

Options (``TrainerOptions.extra``):

* ``scan`` (bool, default True): False runs one jitted step per row instead
  (same compiled step, one dispatch per step), for comparison;
* ``chunk_steps`` (int, default 256): the most steps one compiled call runs;
* ``custom_vjp`` (true, false or "auto", the default: true on CPU): the
  conv / max-pool gradients of :mod:`~dlbench_backends.jax.kernels`; false
  uses JAX's own rules.

Precision (:mod:`~dlbench_backends.jax.precision`): "fp32" passes
``Precision.HIGHEST`` to every matmul and convolution (true fp32 on GPUs too),
"tf32" XLA's default (TF32 on Ampere and newer); "bf16" and "fp16" cast every
matmul and convolution operand to bfloat16/float16 with float32 results (no
autocast in JAX: an explicit policy), fp16 with dynamic loss scaling.
Determinism: compiled with ``xla_gpu_deterministic_ops`` (the per-jit form of
``XLA_FLAGS=--xla_gpu_deterministic_ops=true``); XLA on CPU is deterministic.
Threads: XLA's CPU thread pool has ``PJRT_NPROC`` threads (else ``NPROC``,
else the CPUs this process may run on), read when JAX starts its backends;
``configure_threads`` sets ``PJRT_NPROC`` if they are not started yet and
returns the pool size that applies. Devices: "cpu" or the first "gpu" device.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions
from dlbench.plugin.helpers import xla_flags
from dlbench.network import ModelSpec
from dlbench.network.checks import check_choice

THREAD_ENV = ("PJRT_NPROC", "NPROC")  # what XLA's DefaultThreadPoolSize() reads


def backends_started() -> bool:
    """Whether JAX has created its devices (after which thread settings are fixed)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        return True


def xla_cpu_threads() -> int:
    """The size of XLA's CPU thread pool, computed the way XLA computes it."""
    for name in THREAD_ENV:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return max(int(value), 1)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    distributions = ("jax", "jaxlib")
    pip_install = 'pip install "dlbench[jax]"'
    devices = ("cpu", "gpu")
    precisions = ("fp32", "tf32", "bf16", "fp16")
    modes = ("train", "inference")
    description = "jax.value_and_grad + XLA, a window of steps in one jitted lax loop"
    order = 3
    data_parallel_engine = "jax.sharding (Mesh + shard_map)"
    option_defaults = {"scan": True, "chunk_steps": 256, "custom_vjp": "auto"}
    option_choices = {"custom_vjp": (True, False, "auto")}
    option_minimums = {"chunk_steps": 1}

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        env = {**super().thread_environment(threads, device), "XLA_FLAGS": xla_flags(threads),
               "PJRT_NPROC": str(threads),  # sizes XLA's CPU thread pool
               "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # GPU memory taken as needed: peak memory stays honest
        if device == "cpu":
            env["JAX_PLATFORMS"] = "cpu"
        return env

    def worker_environment(self, threads: int, device: str, replicas: int = 1) -> dict[str, str]:
        """N replicas on a CPU are N of XLA's host devices, sharing one thread
        pool of N x ``threads`` threads."""
        env = self.thread_environment(threads * replicas, device)
        if replicas > 1 and device == "cpu":
            env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={replicas}"
        return env

    def configure_data_parallel(self, data_parallel, threads: int) -> None:
        """On several hosts, one process per host joins the others through
        ``jax.distributed.initialize`` at the coordinator (host 0); on CPUs the
        cross-process all-reduce is gloo's. ``jax.devices()`` is then every
        host's devices, and one program runs over all of them. The
        coordination service (unauthenticated) listens on host 0's address
        only, not on every interface as it does by default."""
        if not data_parallel.multi_host:
            return
        from dlbench_backends.jax import distributed

        distributed.configure(data_parallel)

    def configure_threads(self, threads: int) -> int:
        if not backends_started():
            os.environ["PJRT_NPROC"] = str(threads)
        return xla_cpu_threads()

    def precision_unavailable(self, precision: str, device: str, spec=None) -> str | None:
        """What XLA cannot compute here: attention in float16 where its batched
        dot has no float16 kernel accumulating in float32 (XLA:CPU), found by trying it."""
        from dlbench.network import SelfAttention
        from dlbench.network.transformer import nested_layers

        reason = super().precision_unavailable(precision, device, spec)
        if reason or precision != "fp16" or spec is None \
                or not any(isinstance(layer, SelfAttention) for layer in nested_layers(spec.layers)):
            return reason
        from dlbench_backends.jax.precision import attention_unavailable

        return attention_unavailable(device, "float16")

    def gpu_name(self) -> str | None:
        import jax

        try:
            return jax.devices("gpu")[0].device_kind
        except RuntimeError:
            return None

    def matmul(self, n: int, dtype: str = "float32", device: str = "cpu"):
        """On a GPU: random operands (a matrix of ones runs faster than real
        data there); float32 at HIGHEST precision (true fp32), "tfloat32" at
        XLA's DEFAULT (TF32 tensor cores), bf16/fp16 at DEFAULT."""
        import jax
        import jax.numpy as jnp

        if device == "gpu":
            return _gpu_matmul(n, dtype)
        if dtype == "tfloat32":  # no TF32 on a CPU
            return None
        a = jnp.ones((n, n), dtype)
        product = jax.jit(lambda x: jnp.dot(x, x, precision=jax.lax.Precision.HIGHEST))
        return lambda: product(a).block_until_ready()

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        import jax

        from dlbench_backends.jax.trainer import JaxTrainer

        check_choice(options.precision, self.precisions, "precision")
        options = replace(options, extra=self.check_options(options.extra))
        try:
            devices = jax.devices(options.device)
        except RuntimeError as exc:
            raise RuntimeError(f"jax sees no {options.device} device: {exc}") from None
        replicas = options.data_parallel.replicas
        if len(devices) < replicas:
            raise RuntimeError(f"{replicas} replicas need {replicas} {options.device} devices; jax sees "
                               f"{len(devices)}")
        return JaxTrainer(spec, weights, options, devices[:replicas])


def _gpu_matmul(n: int, dtype: str):
    """A function multiplying two n x n ``dtype`` matrices on the first GPU and
    waiting for the result; None where JAX sees no GPU."""
    import jax
    import jax.numpy as jnp

    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        return None
    precision = jax.lax.Precision.HIGHEST if dtype == "float32" else jax.lax.Precision.DEFAULT
    operand = "float32" if dtype == "tfloat32" else dtype
    a = jax.device_put(jax.random.normal(jax.random.key(0), (n, n), operand), gpu)
    product = jax.jit(lambda x: jnp.dot(x, x, precision=precision))
    return lambda: product(a).block_until_ready()


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(JaxBackend)
