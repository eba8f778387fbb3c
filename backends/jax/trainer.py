"""The JAX backend's trainer: the jitted window loop.

Speed: ``train`` runs a window in ONE compiled call, a ``lax.fori_loop``
whose trip count is a runtime argument, over an index buffer of a fixed
``chunk_steps`` rows (the window's rows, zero-padded); each step gathers its
batch with ``jnp.take`` from the training set, which lives on the device.
The carry (params, stats, optimizer state, step) is donated, so updates
happen in place; the per-step losses go into a device buffer read once per
call. Because no shape depends on the window length, XLA compiles once per
batch size (on the first step the runner times as compile time), not once
per distinct window length (a ``lax.scan`` of the exact length recompiles,
~0.4 s each on CPU, inside the steady-state timing). Longer windows run as
several calls.

Precision: a :class:`~dlbench_backends.jax.precision.Policy` that every layer's
matmuls and convolutions go through (bf16/fp16: operands cast, float32
results). fp16 scales the loss in the step itself, on the core's schedule
(:data:`dlbench.network.precision.LOSS_SCALE`): the gradient of ``scale * loss``
is divided by the scale, and where any element is inf/NaN the new parameters
and optimizer state are discarded (``jnp.where``) and the scale backs off.
The carry then holds ``(scale, finite steps in a row, skipped steps)``; a
skipped step still advances the carry's step count (dropout keys), and the
training state's step is the steps run minus the skipped ones.

Data parallelism (``--data-parallel N``): one program over a ``Mesh`` of N
devices (on a CPU, XLA's host devices from
``--xla_force_host_platform_device_count``), the window loop under
``jax.shard_map``: the training set, parameters and optimizer state are
replicated (``P()``), each step's global batch of indices is split over the
mesh axis ``"replica"`` (``P(None, "replica")``: replica r takes the r-th
equal slice, as the core's ``replica_slice``), each replica takes the mean
loss of its slice and ``lax.pmean`` averages the gradients (an all-reduce;
equal slices make it the global batch's mean). Moving statistics are
averaged over the replicas too; BatchNorm's batch statistics are each
replica's own, or with ``sync_batchnorm`` averaged over the mesh inside the
layer (the global batch's).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dlbench.data.base import Dataset
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState, slot_names
from dlbench.plugin.helpers import is_regression, loss_targets, padded_chunks, r_squared
from dlbench.network import ModelSpec
from dlbench.network.sequence import takes_tokens
from dlbench_backends.jax import distributed, inference
from dlbench_backends.jax.distributed import REPLICA_AXIS, replica_mean
from dlbench_backends.jax.losses import bound_loss
from dlbench_backends.jax.network import activation, build_network, check_supported, from_canonical, to_canonical
from dlbench_backends.jax.optim import build_optimizer
from dlbench_backends.jax.precision import LossScaler, Policy, initial_scaler


def make_functions(spec: ModelSpec, forward, optimizer, compiler_options, mesh=None):
    """The jitted window loop, single step and evaluation for one network's
    ``forward`` (:func:`~dlbench_backends.jax.network.build_forward`).

    The carry is ``(params, stats, opt_state, step, scaler)``: trained
    parameters, moving statistics (updated by the forward pass in training
    mode, never by the optimizer), optimizer state, the global step (dropout
    keys), and fp16's loss-scale state (``()`` at any other precision).
    With a ``mesh`` the window loop runs data-parallel over its replica axis."""
    axis = None if mesh is None else REPLICA_AXIS
    across = (lambda value, stats, grads: (value, stats, grads)) if mesh is None else replica_mean
    loss, output = bound_loss(spec), activation(spec.output_activation, spec.output_alpha)

    def objective(params, stats, x, t, step):
        z, stats = forward(params, stats, x, True, step)
        return loss(z, t, output), stats

    loss_scaler = LossScaler()

    def scaled_objective(params, stats, x, t, step, scaler):
        value, stats = objective(params, stats, x, t, step)
        return loss_scaler.scale(value, scaler), (value, stats)

    grad_fn = jax.value_and_grad(objective, has_aux=True)
    scaled_grad_fn = jax.value_and_grad(scaled_objective, has_aux=True)
    jit = functools.partial(jax.jit, **({"compiler_options": compiler_options} if compiler_options else {}))

    def step_fn(carry, x_train, t_train, rows):
        params, stats, opt_state, step, scaler = carry
        x, t = jnp.take(x_train, rows, axis=0, mode="clip"), jnp.take(t_train, rows, axis=0, mode="clip")
        if not scaler:
            (value, stats), grads = grad_fn(params, stats, x, t, step)
            value, stats, grads = across(value, stats, grads)
            params, opt_state = optimizer.update(grads, params, opt_state)
            return (params, stats, opt_state, step + 1, scaler), value
        (_, (value, stats)), grads = scaled_grad_fn(params, stats, x, t, step, scaler)
        value, stats, grads = across(value, stats, grads)
        grads, overflow = loss_scaler.unscale(grads, scaler)
        updated = optimizer.update(grads, params, opt_state)
        params, opt_state = jax.tree.map(lambda new, old: jnp.where(overflow, old, new), updated, (params, opt_state))
        return (params, stats, opt_state, step + 1, loss_scaler.update(overflow, scaler)), value

    def window(carry, x_train, t_train, rows, n):
        def body(i, state):
            carry, losses = state
            carry, value = step_fn(carry, x_train, t_train, rows[i])
            return carry, losses.at[i].set(value)
        return lax.fori_loop(0, n, body, (carry, jnp.zeros(rows.shape[0], jnp.float32)))

    def single(carry, losses, x_train, t_train, rows, i):
        carry, value = step_fn(carry, x_train, t_train, rows[i])
        return carry, losses.at[i].set(value)

    if mesh is not None:
        # rows (chunk, batch): each replica its slice of every batch; all else replicated
        window = jax.shard_map(window, mesh=mesh, in_specs=(P(), P(), P(), P(None, axis), P()),
                               out_specs=(P(), P()), check_vma=False)
        single = jax.shard_map(single, mesh=mesh, in_specs=(P(), P(), P(), P(), P(None, axis), P()),
                               out_specs=(P(), P()), check_vma=False)
    return (jit(window, donate_argnums=0), jit(single, donate_argnums=(0, 1)),
            jit(evaluation(forward, loss, output)))


def evaluation(forward, loss, output):
    """evaluate(params, stats, x, t, labels) -> (loss, correct count), in inference mode;
    for float labels (regression targets) (loss, outputs), for R^2 on the host."""
    def evaluate(params, stats, x, t, labels):
        z, _ = forward(params, stats, x, False)
        out = output(z)
        if jnp.issubdtype(labels.dtype, jnp.floating):  # static: the dtype is known when tracing
            return loss(z, t, output), out
        predicted = out[..., 0] > 0.5 if out.shape[-1] == 1 else jnp.argmax(out, axis=-1)
        return loss(z, t, output), jnp.sum(predicted == labels)
    return evaluate


class JaxTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions, devices):
        check_supported(spec)
        device = devices[0]
        data_parallel = options.data_parallel
        # where arrays live: the device, or replicated over the data-parallel mesh
        self.mesh = Mesh(np.array(devices), (REPLICA_AXIS,)) if data_parallel.active else None
        self.placement = device if self.mesh is None else NamedSharding(self.mesh, P())
        extra = options.extra  # filled by JaxBackend.build
        self.scan, self.chunk = extra["scan"], extra["chunk_steps"]
        # the conv / max-pool gradients written for XLA:CPU's Eigen kernels on
        # CPU; on GPUs JAX's own rules, which XLA maps to cuDNN's backward kernels
        self.custom_vjp = device.platform == "cpu" if extra["custom_vjp"] == "auto" else extra["custom_vjp"]
        self.device = device
        self.device_name = "cpu" if device.platform == "cpu" else device.device_kind
        compiler_options = {"xla_gpu_deterministic_ops": True} if options.deterministic else None
        self.spec = spec
        # what the inference function is built with (see :mod:`~dlbench_backends.jax.inference`)
        self.precision, self.compiler_options, self.seed = Policy(options.precision), compiler_options, options.seed
        self.predictor = None
        self.optimizer = build_optimizer(spec.optimizer)
        axis = None if self.mesh is None else REPLICA_AXIS
        # private copies: on CPU device_put may alias host memory, and the
        # carry is donated (updated in place)
        self.network = build_network(spec, weights, self.precision, options.seed, self.custom_vjp,
                                     axis if data_parallel.sync_batchnorm else None, dropout_axis=axis)
        self._window, self._single, self._evaluate = make_functions(
            spec, self.network.forward, self.optimizer, compiler_options, self.mesh)
        params, stats = self.network.params, self.network.stats
        self.carry = jax.device_put((params, stats, self.optimizer.init(params), np.zeros((), np.int32),
                                     initial_scaler(options.precision)), self.placement)
        self.network = self.network._replace(params=[], stats=[])  # the carry holds them from now on

    def _put(self, array: np.ndarray, dtype):
        return jax.device_put(np.ascontiguousarray(array, dtype), self.placement)

    def peak_device_bytes(self) -> int | None:
        """XLA's peak bytes in use on this trainer's (first) device, from
        ``memory_stats()``: since the process started (JAX cannot reset it; each
        run is a fresh worker); None on a CPU, whose device keeps no statistics.
        Over several processes the trainer's first device may be another
        process's, whose statistics this one cannot read: its own first is used."""
        device = self.device
        if device.process_index != jax.process_index():
            device = jax.local_devices(backend=device.platform)[0]
        stats = device.memory_stats()
        return stats.get("peak_bytes_in_use") if stats else None

    def distributed(self) -> dict | None:
        return None if self.mesh is None else distributed.info(self)

    def place_data(self, data: Dataset) -> None:
        targets = loss_targets(self.spec, data.y_train)
        test_targets = loss_targets(self.spec, data.y_test)
        target_dtype = np.int32 if targets.dtype.kind == "i" else np.float32
        x_dtype = np.int32 if takes_tokens(self.spec) else np.float32  # token ids stay integers
        self.x_train, self.t_train = self._put(data.x_train, x_dtype), self._put(targets, target_dtype)
        self.x_test, self.t_test = self._put(data.x_test, x_dtype), self._put(test_targets, target_dtype)
        self.y_test = self.t_test if is_regression(data.y_test) else self._put(data.y_test, np.int32)
        self.n_test = data.y_test.size  # tokens, for labels per timestep

    def _run(self, rows: np.ndarray, n: int):
        """One chunk: ``rows`` (chunk_steps, batch) int32, zero-padded, of which the
        first ``n`` run. Given to the jitted call as a host array: jit copies it to
        the device of the other arguments for a few microseconds, jax.device_put
        takes ~40."""
        if self.scan:
            self.carry, losses = self._window(self.carry, self.x_train, self.t_train, rows, n)
            return losses
        # one device: placed there; a mesh: shared out over it by the shard_map
        rows = self._put(rows, np.int32) if self.mesh is None else np.asarray(rows, np.int32)
        losses = self._put(np.zeros(self.chunk), np.float32)
        for i in range(n):
            self.carry, losses = self._single(self.carry, losses, self.x_train, self.t_train, rows, i)
        return losses

    def train(self, indices: np.ndarray) -> np.ndarray:
        # Dispatch every chunk (asynchronously), then read the losses: reading
        # the last chunk's losses waits for the device to finish.
        if len(indices) == 0:
            return np.empty(0, np.float32)
        pending = [(self._run(rows, n), n) for rows, n in padded_chunks(indices, self.chunk, np.int32)]
        return np.concatenate([np.asarray(losses)[:n] for losses, n in pending])

    def evaluate(self) -> tuple[float, float]:
        params, stats = self.carry[:2]
        loss, score = self._evaluate(params, stats, self.x_test, self.t_test, self.y_test)
        if is_regression(self.y_test):
            return float(loss), r_squared(np.asarray(score), np.asarray(self.t_test))
        return float(loss), int(score) / self.n_test

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        params, stats = self.carry[:2]
        return to_canonical(self.spec, self.network._replace(params=params, stats=stats))

    def state(self) -> TrainingState:
        params, _, opt_state, step, scaler = self.carry
        slots = self.optimizer.slots(opt_state)
        skipped = int(scaler[2]) if scaler else 0
        return TrainingState(self.weights(),
                             [{p: {name: np.array(tree[i][p], dtype=np.float32) for name, tree in slots.items()}
                               for p in layer} for i, layer in enumerate(params)],
                             int(step) - skipped, LossScaler().state(scaler) if scaler else None)

    def load_state(self, state: TrainingState) -> None:
        # canonical layouts are JAX's own: only split, copy and place
        _, params, stats = from_canonical(self.spec, self.network, state.weights)
        slots = {name: [{p: np.array(state.slots[i][p][name], np.float32) for p in layer}
                        for i, layer in enumerate(params)]
                 for name in slot_names(self.spec.optimizer)}
        opt_state = self.optimizer.load_slots(slots, state.step)
        scaler = initial_scaler(self.precision.name)
        if scaler and state.loss_scale is not None:
            scaler = LossScaler().load(state.loss_scale)
        self.carry = jax.device_put((params, stats, opt_state, np.asarray(state.step, np.int32), scaler),
                                    self.placement)
