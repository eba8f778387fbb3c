"""The TensorFlow backend: Keras 3 layers on TensorFlow, trained by a
hand-written ``tf.function`` that runs a whole window of steps in one call.

The modules, the same as every backend's: ``network`` (the
``keras.Sequential`` of the spec's layers; Keras's layouts are the canonical
ones), ``losses`` (from the logits), ``optim`` (the canonical updates in TF
ops), ``precision`` (Keras's mixed dtype policies, fp16's loss scale in TF
ops), ``inference`` (one tf.function), ``distributed`` (tf.distribute's
strategies), ``trainer`` (the window's graph), with one API
(``docs/backends/module-api.md``), and ``core``, where TensorFlow and Keras
are imported; TensorFlow's own gradients serve
every layer, so there is no ``kernels`` module. Only this file (and ``core``)
is imported to list the backend: TensorFlow and Keras are imported by
:func:`~dlbench_backends.tensorflow.core.framework`, on first use.

Keras's own training machinery is not used: ``fit``
costs about three times a plain step, Keras's Adam adds epsilon to the
uncorrected ``sqrt(v)`` ("epsilon hat") and Keras's SGD momentum has another
form. Instead, one step is

    z = model(X);  E = loss(z, t);  g = dE/dW (tf.GradientTape);  W <- update(W, g)

Settings: precision ``fp32`` disables TensorFloat-32 (matmuls and
convolutions), ``tf32`` enables it; ``deterministic`` calls
``tf.config.experimental.enable_op_determinism()``. Both are process-wide in
TensorFlow (and determinism cannot be switched off again), which is why the
runner gives each run its own process.

Extra options (``TrainerOptions.extra``):

* ``jit_compile`` (bool, default False): XLA-compile the window function
  (``tf.function(jit_compile=True)``). XLA compiles once per input shape, so
  under XLA a window is run in chunks of ``XLA_CHUNK_STEPS`` rows (the last
  padded, the loop stopping at the real step count): one compile per batch
  size, whatever the window lengths. Not with ``deterministic`` for networks
  with max pooling: XLA has no deterministic max-pooling gradient. It also
  XLA-compiles the inference function (see :mod:`~dlbench_backends.tensorflow.inference`).
  Not with ``--data-parallel``: XLA compiles for one device, and cannot reach
  the variables a MirroredStrategy keeps on the other replicas' devices.

Data parallel (``--data-parallel N``): one process drives N replicas with
``tf.distribute.MirroredStrategy``; on a CPU they are N logical CPU devices
made by :meth:`TensorflowBackend.configure_data_parallel` (sharing TF's one
intra-op pool of N times the per-replica threads), on a GPU the first N GPUs.
What a replica computes is in :mod:`~dlbench_backends.tensorflow.trainer`.
"""

from __future__ import annotations

import os
from dataclasses import replace

import dlbench
from dlbench.errors import InputError
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions
from dlbench.plugin.helpers import xla_flags
from dlbench.network import GlobalMaxPool1D, GlobalMaxPool2D, MaxPool1D, MaxPool2D, ModelSpec
from dlbench.network.transformer import nested_layers
from dlbench.network.checks import check_choice
from dlbench_backends.tensorflow.core import framework


class TensorflowBackend(Backend):
    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow", "tensorflow-cpu", "keras")
    pip_install = 'pip install "dlbench[tensorflow]"'
    devices = ("cpu", "gpu")
    precisions = ("fp32", "tf32", "bf16", "fp16")
    modes = ("train", "inference")
    description = "Keras 3 layers on TensorFlow; a tf.function runs a window of steps in one graph"
    order = 2
    option_defaults = {"jit_compile": False}
    data_parallel_engine = "tf.distribute.MirroredStrategy"

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        return {**super().thread_environment(threads, device), "TF_NUM_INTRAOP_THREADS": str(threads),
                "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "XLA_FLAGS": xla_flags(threads)}  # jit_compile=true runs on XLA's CPU backend

    def configure_threads(self, threads: int) -> int:
        tf, _ = framework()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already started in this process: its pools are fixed
            return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or threads
        return tf.config.threading.get_intra_op_parallelism_threads() or threads

    def configure_data_parallel(self, data_parallel, threads: int) -> None:
        """``replicas`` logical CPU devices for the strategy's replicas, TF's
        intra-op pool (which every CPU device of a process shares) sized to
        ``replicas * threads``, and ``replicas`` inter-op threads, so that the
        replicas' ops run side by side (with one, TF's executor runs them one
        after the other). All are fixed when TensorFlow starts, so this must
        run before anything initialises it; a GPU run's replicas are its first
        GPUs (chosen at build), and the logical CPU devices stay unused.
        On several hosts each host is a worker of a MultiWorkerMirroredStrategy,
        whose cluster (every host's ``host:port``) and task this writes into
        ``TF_CONFIG``, which TF reads when the strategy starts."""
        from dlbench_backends.tensorflow import distributed

        distributed.configure(data_parallel, threads)

    def data_parallel_unavailable(self, data_parallel, device: str, spec=None) -> str | None:
        """A MultiWorkerMirroredStrategy worker has one replica per CPU (every GPU on a GPU host)."""
        if data_parallel.multi_host and device == "cpu" and data_parallel.local_replicas > 1:
            return (f"TensorFlow's MultiWorkerMirroredStrategy runs one replica per CPU host; "
                    f"{data_parallel.local_replicas} per host were asked")
        return super().data_parallel_unavailable(data_parallel, device, spec)

    def gpu_name(self) -> str | None:
        tf, _ = framework()
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)

    def matmul(self, n: int, dtype: str = "float32", device: str = "cpu"):
        """On a GPU on the first one, TF32 allowed for "tfloat32" only. Reading
        a value waits for the result: the whole product on a CPU, one element
        of it on a GPU (copying the whole to the host would be timed too)."""
        tf, _ = framework()
        if device == "gpu" and not tf.config.list_physical_devices("GPU") or dtype == "tfloat32" and device != "gpu":
            return None
        tf.config.experimental.enable_tensor_float_32_execution(dtype == "tfloat32")
        with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
            a = tf.ones((n, n), tf.float32 if dtype == "tfloat32" else getattr(tf, dtype))

        def product():
            with tf.device(a.device):
                c = tf.matmul(a, a)
                return c[0, 0].numpy() if device == "gpu" else c.numpy()

        return product

    def reads_model(self, model) -> bool:
        from dlbench_backends.tensorflow import convert

        return convert.reads(model)

    def import_model(self, model, *, input_shape=None, loss=None, optimizer=None):
        """A Keras model (any Keras backend) as a spec; see :mod:`dlbench_backends.tensorflow.convert`."""
        from dlbench_backends.tensorflow import convert

        return convert.import_model(model, input_shape=input_shape, loss=loss, optimizer=optimizer)

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        extra = self.check_options(options.extra)
        check_choice(options.precision, self.precisions, "precision")
        if options.deterministic and extra["jit_compile"] and any(
                isinstance(layer, (MaxPool1D, MaxPool2D, GlobalMaxPool1D, GlobalMaxPool2D))  # max-pools, all
                for layer in nested_layers(spec.layers)):
            raise InputError("TensorFlow's XLA has no deterministic max-pooling gradient; "
                             "use jit_compile or deterministic, not both, for this network",
                             field="--backend-option")
        if options.data_parallel.active and extra["jit_compile"]:
            raise InputError("TensorFlow's XLA compiles for one device, and a MirroredStrategy's replicas are "
                             f"{options.data_parallel.replicas}; use jit_compile or --data-parallel, not both",
                             field="--backend-option")
        tf, _ = framework()
        device_name = "cpu"
        if options.device == "gpu":
            device_name = self.gpu_name()
            if device_name is None:
                raise RuntimeError("no GPU visible to TensorFlow")
        tf.config.experimental.enable_tensor_float_32_execution(options.precision == "tf32")
        if options.deterministic:
            tf.config.experimental.enable_op_determinism()
        from dlbench_backends.tensorflow.trainer import TensorflowTrainer

        return TensorflowTrainer(spec, weights, replace(options, extra=extra), device_name)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TensorflowBackend)
