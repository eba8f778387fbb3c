"""PaddlePaddle as a dlbench backend, shipped as its own distribution
(``pip install ./plugins/dlbench-paddle``) and registered through the
``dlbench.backends`` entry point like the built-ins. It uses only dlbench's
public contract (:mod:`dlbench.plugin.backend`, :mod:`dlbench.plugin.helpers`,
:mod:`dlbench.network`), never another backend's modules.

The modules, as every backend's: ``network`` (``paddle.nn`` layers in NHWC,
Paddle's layouts to and from the canonical ones), ``sequence`` (embedding and
the fused ``nn.SimpleRNN/LSTM/GRU``), ``transformer``, ``losses``, ``optim``
(``paddle.optimizer``'s Adam, Momentum and SGD), ``precision`` (what Paddle
cannot compute on a CPU), ``inference`` (predict) and ``trainer``.
Only this file is imported to list the backend: paddle is imported by
``build`` and the methods that need the framework.

What it does not do, each an "unavailable" row saying why: bf16 and fp16 (no
CPU kernels, see :mod:`~dlbench_paddle.precision`), GPUs (not tested here:
the plugin declares the CPU only) and data parallelism (no engine wired up).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import dlbench
from dlbench.errors import InputError
from dlbench.network import ModelSpec
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions


class PaddleBackend(Backend):
    name = "paddle"
    module = "paddle"
    distributions = ("paddlepaddle",)
    pip_install = "pip install ./plugins/dlbench-paddle"
    devices = ("cpu",)
    precisions = ("fp32", "tf32")
    modes = ("train", "inference")
    description = "PaddlePaddle: dygraph paddle.nn layers, paddle.optimizer's Adam/Momentum/SGD; option to_static"
    option_defaults = {"to_static": False}

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        """Paddle's CPU kernels (oneDNN, MKL) size their pools from OMP_NUM_THREADS when
        paddle starts; its glog banner about OpenBLAS and OMP threads is silenced."""
        return {**super().thread_environment(threads, device), "GLOG_minloglevel": "2"}

    def configure_threads(self, threads: int) -> int:
        """Paddle has no public thread switch; its math library's count is set through
        ``paddle.base.core.set_num_threads`` (the env vars are already in place)."""
        paddle = load_paddle()
        paddle.base.core.set_num_threads(threads)
        return threads

    def precision_unavailable(self, precision: str, device: str, spec: ModelSpec | None = None) -> str | None:
        """Besides the precisions it lists: bf16/fp16 are said with Paddle's own
        refusal (:func:`~dlbench_paddle.precision.mixed_unavailable`)."""
        if precision in ("bf16", "fp16"):
            from dlbench_paddle.precision import mixed_unavailable

            return mixed_unavailable(precision)
        return super().precision_unavailable(precision, device, spec)

    def matmul(self, n: int, dtype: str = "float32", device: str = "cpu"):
        """Paddle's ``paddle.matmul`` of two n x n matrices (a CPU tensor's result is
        ready when the call returns); None for dtypes Paddle has no CPU kernel for."""
        if device != "cpu" or dtype != "float32":
            return None
        paddle = load_paddle()
        paddle.set_device("cpu")
        a = paddle.ones([n, n], dtype="float32")
        return lambda: paddle.matmul(a, a)

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        """The trainer, its options checked here once (the trainer reads them as given): the CPU only, and
        never a silent float32 run of a precision Paddle does not compute in."""
        load_paddle()
        from dlbench_paddle.trainer import PaddleTrainer

        if options.device != "cpu":
            raise InputError("the paddle backend runs on the CPU only; use device 'cpu'", field="device")
        if options.precision not in self.precisions:
            raise InputError(f"the paddle backend computes in {' or '.join(self.precisions)} only, "
                             f"not {options.precision!r}", field="precision")
        return PaddleTrainer(spec, weights, replace(options, extra=self.check_options(options.extra)))


def load_paddle():
    """``import paddle``, refused in a process that already holds TensorFlow:
    Paddle 3.3.1's libpaddle crashes the whole process there (SIGSEGV while
    paddle/base/core.py loads it; loaded first, both work). A dlbench run keeps
    each backend in a worker of its own, so this is met only in-process."""
    if "paddle" not in sys.modules and "tensorflow" in sys.modules:
        raise RuntimeError("paddle cannot be loaded into a process that already holds TensorFlow (Paddle 3.3.1 "
                           "crashes there); run it in a worker of its own (dlbench run's default isolation), or "
                           "import paddle before tensorflow")
    import paddle

    return paddle


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(PaddleBackend)
