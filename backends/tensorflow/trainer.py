"""The TensorFlow backend's trainer: one ``tf.function`` call per window.

Speed: the training data lives on the device; ``train(indices)`` makes ONE
call of a ``tf.function`` whose graph loops over the rows of ``indices``
(``tf.while_loop``), gathers each batch by index with ``tf.gather``, and
writes each step's loss into a ``TensorArray``. The input signature
(indices ``(None, None)`` int64, step count int32) makes it one trace
whatever the window length or batch size, and the only host round trip per
window is reading the stacked losses (which also waits for the device).
Without XLA a step costs about half a microsecond per graph op in TF's
executor, which dominates for tiny networks at batch size 1; ``jit_compile``
fuses them (about 10x faster on the 2-10-1 XOR net, somewhat slower than
oneDNN on the 64-256-256-10 MLP on CPU).

Mixed precision: see :mod:`~dlbench_backends.tensorflow.precision`.

Data parallel (``options.data_parallel.active``): the variables (the
network's, the optimizer's slots and step, fp16's loss scale) are made in a
``tf.distribute.MirroredStrategy``'s scope, as MirroredVariables: one copy per
replica, with Keras's default aggregation NONE, under which an assignment in
a replica writes that replica's own copy. A step, inside the same one-call
window graph, is ``strategy.run`` of the replica step: replica ``r`` gathers
its slice of the global batch (``replica_slice(indices, r, N)``, the core's
split), takes :func:`~dlbench_backends.tensorflow.losses.replica_loss` (its
share of the global batch mean), all-reduces the gradients with a SUM (the
gradient of the global mean) and applies the canonical update to its own
copies. Every replica applies the same update to the same all-reduced
gradient (the all-reduce hands every replica the same bits), so the copies
stay bit-identical without a broadcast; the step's loss is the replicas'
SUM (the global mean). Not under XLA (refused at build): XLA compiles for one
device, and the window's graph spans the replicas'. fp16's loss scale works the same way: an inf in any
replica's gradient is in the sum, so every replica skips the step alike.

BatchNormalization's moving statistics are not trained, and their copies are
updated by each replica from its own batch statistics. Synchronized
(``sync_batchnorm``), those are the global batch's, the same on every replica,
so the copies stay identical. Per replica (the default), each copy follows its
own slices and they part; everything read in cross-replica context
(``weights()``, ``state()``, ``evaluate()``, ``predict()``) reads the first
replica's copy, so the moving statistics are those of replica 0's slices (what
DDP's rank-0 buffer broadcast gives too), and ``load_state`` writes every copy.
Dropout: every replica's Keras seed generator starts from the same seed, and
each replica folds its ``replica_id_in_sync_group`` into the seed it draws
(:class:`~dlbench_backends.tensorflow.network.ReplicaDropout`), so the
replicas draw their own masks, as DDP's ranks do.
"""

from __future__ import annotations

import functools

import numpy as np

from dlbench.data.base import Dataset
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState
from dlbench.plugin.helpers import evaluation_score, input_dtype, loss_targets, padded_chunks
from dlbench.network import ModelSpec, is_trained
from dlbench.network.precision import LOSS_SCALE, scales_loss
from dlbench_backends.tensorflow import distributed, inference
from dlbench_backends.tensorflow.core import framework
from dlbench_backends.tensorflow.distributed import mirrored_strategy, multi_worker_strategy, replica_parts
from dlbench_backends.tensorflow.losses import bound_loss, replica_loss
from dlbench_backends.tensorflow.network import build_network, from_canonical, keras_activation, to_canonical
from dlbench_backends.tensorflow.optim import build_optimizer
from dlbench_backends.tensorflow.precision import LossScaler
from dlbench_backends.tensorflow.sequence import dense_gradients

tf, keras = framework()

#: steps per XLA call: windows are cut into chunks padded to this many rows.
XLA_CHUNK_STEPS = 64


class TensorflowTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions, device_name: str):
        self.spec = spec
        self.jit_compile = options.extra["jit_compile"]  # filled by TensorflowBackend.build
        self.device = "/GPU:0" if options.device == "gpu" else "/CPU:0"
        self.device_name = device_name
        data_parallel = options.data_parallel
        self.replicas = data_parallel.replicas
        #: the first global replica id of this host's replicas (0 but on the later hosts of a multi-host run)
        self.first_replica = data_parallel.node_rank * data_parallel.local_replicas
        self.multi_host = data_parallel.multi_host
        self.strategy = (None if not data_parallel.active else multi_worker_strategy() if data_parallel.multi_host
                         else mirrored_strategy(options.device, self.replicas))
        synchronized = self.strategy is not None and options.data_parallel.sync_batchnorm
        with self._variable_scope():
            self.network = build_network(spec, weights, options.seed, options.precision, synchronized)
            self.model, self.params = self.network
            #: (spec layer index, parameter name) of each trained variable, in the order of self.variables
            self.trained = [(i, name) for i, layer in enumerate(self.params) for name in layer
                            if is_trained(name)]
            self.variables = [self.params[i][name] for i, name in self.trained]
            self.optimizer = build_optimizer(spec.optimizer, self.variables)
            self.scaler = LossScaler() if scales_loss(options.precision) else None
        self.output = keras.activations.get(keras_activation(spec.output_activation, spec.output_alpha))
        self.loss = functools.partial(bound_loss(spec), output=self.output)  # the batch mean
        #: what a step differentiates: the batch mean, or a replica's share of the global batch's mean
        self.train_loss = self.loss if self.strategy is None else functools.partial(
            replica_loss(spec.loss, self.replicas, **spec.loss_kwargs), output=self.output)
        self._window = self._evaluate = self.predictor = None

    def _variable_scope(self):
        """Where the variables are made: the device, or the strategy's scope (mirrored on every replica)."""
        return tf.device(self.device) if self.strategy is None else self.strategy.scope()

    def _to_device(self, array: np.ndarray):
        with tf.device(self.device):
            return tf.identity(tf.convert_to_tensor(array))

    def place_data(self, data: Dataset) -> None:
        x_dtype = input_dtype(self.spec)  # token ids stay integers
        x_train = self._for_replicas(self._to_device(np.ascontiguousarray(data.x_train, x_dtype)))
        t_train = self._for_replicas(self._to_device(loss_targets(self.spec, data.y_train)))
        x_test = self._to_device(np.ascontiguousarray(data.x_test, x_dtype))
        t_test = self._to_device(loss_targets(self.spec, data.y_test))
        self.y_test = np.asarray(data.y_test)
        self._window = self._window_function(x_train, t_train)
        self._evaluate = tf.function(lambda: self._loss_and_outputs(x_test, t_test), jit_compile=self.jit_compile)
        self.x_test = x_test  # for predict (see :mod:`~dlbench_backends.tensorflow.inference`)

    def _for_replicas(self, tensor):
        """The training data each replica gathers from, by replica: one copy per
        GPU; the logical CPU devices share the host's memory, so their replicas
        read the one tensor. Without a strategy, the tensor itself."""
        if self.strategy is None:
            return tensor
        devices = self.strategy.extended.worker_devices
        if not self.device.startswith("/GPU"):
            return [tensor] * len(devices)
        copies = []
        for device in devices:
            with tf.device(device):
                copies.append(tf.identity(tensor))
        return copies

    def _step(self, x, targets):
        with tf.GradientTape() as tape:
            loss = self.train_loss(self.model(x, training=True), targets)
            scaled = loss if self.scaler is None else self.scaler.scale(loss)
        grads = self._all_reduce(dense_gradients(tape.gradient(scaled, self.variables)))
        if self.scaler is None:
            self.optimizer.update(grads)
        else:
            self._scaled_update(grads)
        return loss

    def _scaled_update(self, grads) -> None:
        """fp16: unscale ``grads`` and update with them unless one overflowed
        (``tf.cond``: the step count too is left alone); then move the scale."""
        grads, overflow = self.scaler.unscale(grads)

        def apply():
            self.optimizer.update(grads)
            return tf.constant(True)

        tf.cond(overflow, lambda: tf.constant(False), apply)
        self.scaler.update(overflow)

    def _all_reduce(self, grads):
        """A replica's gradients summed over the replicas (the global batch
        mean's gradient, the same on every replica); without a strategy, as they are."""
        if self.strategy is None:
            return grads
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def _window_function(self, x_train, t_train):
        """One graph for a whole window: loop over the first ``steps`` rows of
        ``indices``, take each row's step, record its loss. ``indices`` is
        (steps, batch), or under a strategy (replicas, steps, batch / replicas)
        (:func:`replica_parts`)."""
        take_step = (self._gathered_step(x_train, t_train) if self.strategy is None
                     else self._replicated_step(x_train, t_train))

        def window(indices, steps):
            def body(i, losses):
                return i + 1, losses.write(i, take_step(indices, i))

            losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[-2], element_shape=())
            _, losses = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), losses),
                                      parallel_iterations=1)
            return losses.stack()

        rank = 2 if self.strategy is None else 3
        signature = [tf.TensorSpec([None] * rank, tf.int64), tf.TensorSpec([], tf.int32)]
        return tf.function(window, input_signature=signature, jit_compile=self.jit_compile)

    def _gathered_step(self, x_train, t_train):
        """Row ``i``'s step: gather its batch, take a step, give its loss."""
        def take_step(indices, i):
            rows = indices[i]
            return self._step(tf.gather(x_train, rows), tf.gather(t_train, rows))
        return take_step

    def _replicated_step(self, x_train, t_train):
        """Row ``i``'s step on every replica (``strategy.run``): replica r gathers
        its slice ``parts[r, i]`` from its copy of the data and takes a step;
        the loss is the replicas' shares summed (the global batch mean)."""
        def replica_step(parts, i):
            r = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
            rows, local = parts[r, i], r - self.first_replica  # the slice by global id, the data copy by local
            return self._step(tf.gather(x_train[local], rows), tf.gather(t_train[local], rows))

        def take_step(parts, i):
            shares = self.strategy.run(replica_step, args=(parts, i))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None)
        return take_step

    def _loss_and_outputs(self, x, targets):
        z = tf.cast(self.model(x, training=False), tf.float32)
        return self.loss(z, targets), self.output(z)

    def _chunks(self, indices: np.ndarray):
        """(rows, steps) per call: the whole window in graph mode; under XLA,
        which compiles per input shape, chunks padded to XLA_CHUNK_STEPS rows
        so that there is one compile per batch size whatever the window length."""
        if not self.jit_compile:
            return [(indices, len(indices))]
        return padded_chunks(indices, XLA_CHUNK_STEPS, np.int64)

    def train(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        if self.strategy is not None:  # never under XLA (refused at build): the whole window in one call
            return self._window(replica_parts(indices, self.replicas), np.int32(len(indices))).numpy()
        with tf.device(self.device):
            calls = [(self._window(rows, np.int32(steps)), steps) for rows, steps in self._chunks(indices)]
        return np.concatenate([losses.numpy()[:steps] for losses, steps in calls])

    def evaluate(self) -> tuple[float, float]:
        with tf.device(self.device):
            loss, outputs = self._evaluate()
        return float(loss.numpy()), evaluation_score(outputs.numpy(), self.y_test)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def peak_device_bytes(self) -> int | None:
        """TF's peak GPU memory in use since the process started
        (``get_memory_info``; each run is a fresh worker); None on a CPU."""
        if not self.device.startswith("/GPU"):
            return None
        tf, _ = framework()
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]

    def distributed(self) -> dict | None:
        return None if self.strategy is None else distributed.info(self)

    def weights(self):
        return to_canonical(self.spec, self.network)

    def state(self) -> TrainingState:
        # Keras's layouts are the canonical ones and the slots are in the parameters' shapes: no conversion
        slots = [{name: {} for name in layer if is_trained(name)} for layer in self.params]
        for slot, variables in self.optimizer.slots().items():
            for (i, name), variable in zip(self.trained, variables):
                slots[i][name][slot] = variable.numpy().copy()
        return TrainingState(self.weights(), slots, int(self.optimizer.t.numpy()),
                             None if self.scaler is None else self.scaler.state())

    def load_state(self, state: TrainingState) -> None:
        from_canonical(self.spec, self.network, state.weights)
        self.optimizer.load_slots({slot: [state.slots[i][name][slot] for i, name in self.trained]
                                   for slot in self.optimizer.slots()}, state.step)
        if self.scaler is not None:
            self.scaler.load(state.loss_scale or LOSS_SCALE.start())
