"""The JAX backend: a pure function of the parameters, differentiated by
``jax.value_and_grad`` and compiled by XLA, a whole window of steps per call.

State: the trained parameters are a pytree (per spec layer a dict, e.g.
``{"kernel", "bias"}`` or ``{"gamma", "beta"}``, ``{}`` for layers without
parameters) of float32 arrays; BatchNormalization's ``moving_mean`` and
``moving_variance`` live in a second pytree of the same structure (the
"stats"), which the forward pass returns updated in training mode and
which is never differentiated nor given to the optimizer. ``weights()``
merges the two back in the layer's original key order.

Layouts: the canonical ones are JAX's own, so weights go in and come out
unchanged. Activations stay channels-last, (batch, length, channels) and
(batch, height, width, channels); convolutions are ``lax.conv_general_dilated``
with dimension numbers ("NWC", "WIO", "NWC") / ("NHWC", "HWIO", "NHWC"), the
kernel (k, C, F) / (kh, kw, C, F) as is, padding given as explicit
(before, after) pairs from :func:`dlbench.spec.layers.conv_output_length` (TF's
"same" puts the odd element after, which an explicit pair states for every
stride and kernel size; an integer p is (p, p)). Pooling is
``lax.reduce_window`` (max / sum divided by the window size), "VALID".
Flatten is a reshape of the channels-last array: the canonical order.

Gradients (option ``custom_vjp``, on CPU by default): XLA:CPU runs a
convolution on its Eigen kernels only in the form above (batch first,
features last, kernel (..., in, out)). JAX's transpose rules for the
gradients emit batch/feature-swapped dimension numbers, which XLA:CPU
rewrites into that form in the entry computation only: inside the
window's while loop they ran as naive loops, 9-13x slower per step on the
shipped CNNs. So the conv's VJP is written as two more convolutions in that
form with explicit transposes (see :func:`make_conv`), and the max-pool's
(whose select_and_scatter XLA:CPU expands into a slow scatter) as strided
pads of where(first maximum, g, 0) (see :func:`make_max_pool`); both equal
JAX's own gradients, first-maximum tie rule included. On GPUs JAX's rules
are kept: XLA maps them to cuDNN's backward kernels.

Training vs inference: ``train`` runs the forward pass in training mode
(BatchNormalization normalizes with the batch mean and biased variance and
updates ``moving = moving * momentum + batch * (1 - momentum)``; Dropout
keeps where ``uniform >= rate`` and scales by ``1 / (1 - rate)``),
``evaluate`` in inference mode (moving statistics; Dropout is the identity).
Dropout masks come from ``fold_in(fold_in(key(seed), step), layer index)``,
with ``seed = TrainerOptions.seed`` and the global step carried in the loop:
the same seed gives the same masks whatever the windows or chunks.

Losses are computed from the logits:

    categorical_crossentropy: mean(logsumexp(z) - z[y])
    binary_crossentropy:      mean(max(z, 0) - z t + log(1 + exp(-|z|)))
    mse:                      mean((f(z) - t)^2)

and the optimizers are written in ``jax.numpy`` exactly as :mod:`dlbench.spec`
states them (optax's sgd/adam compute the same maths, but the backend then
needs only ``jax``):

    sgd:  v <- momentum v + g;  W <- W - lr v
    adam: m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
          W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

with ``1 - b^t`` evaluated as ``-expm1(t log b)`` (``log b`` taken in float64)
so that float32 keeps the accuracy NumPy's float64 scalars have
(``1 - 0.999`` in float32 is 1e-5 off).

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

Options (``TrainerOptions.extra``):

* ``scan`` (bool, default True): False runs one jitted step per row instead
  (same compiled step, one dispatch per step), for comparison;
* ``chunk_steps`` (int, default 256): the most steps one compiled call runs;
* ``custom_vjp`` (true, false or "auto", the default: true on CPU): the
  conv / max-pool gradients above; false uses JAX's own rules.

Precision: "fp32" passes ``Precision.HIGHEST`` to every matmul and
convolution (true fp32 on GPUs too), "tf32" XLA's default (TF32 on Ampere
and newer).
Determinism: compiled with ``xla_gpu_deterministic_ops`` (the per-jit form of
``XLA_FLAGS=--xla_gpu_deterministic_ops=true``); XLA on CPU is deterministic.
Threads: XLA's CPU thread pool has ``PJRT_NPROC`` threads (else ``NPROC``,
else the CPUs this process may run on), read when JAX starts its backends;
``configure_threads`` sets ``PJRT_NPROC`` if they are not started yet and
returns the pool size that applies. Devices: "cpu" or the first "gpu" device.
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions, TrainingState, loss_targets, slot_names
from dlbench.data.base import Dataset
from dlbench.errors import InputError, one_of
from dlbench_backends.jax.network import LOSSES, _jax, activation, check_supported, make_forward, split_weights
from dlbench.spec import ModelSpec, check_positive_int

DEFAULT_OPTIONS = {"scan": True, "chunk_steps": 256, "custom_vjp": "auto"}
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


def parse_options(extra: dict) -> dict:
    options = dict(DEFAULT_OPTIONS)
    for key, value in extra.items():
        if key not in DEFAULT_OPTIONS:
            raise InputError(f"unknown option {key!r}; {one_of(DEFAULT_OPTIONS)}", field=f"backend_options.{key}")
        options[key] = value
    if not isinstance(options["scan"], bool):
        raise InputError(f"must be true or false, got {options['scan']!r}", field="backend_options.scan")
    if not isinstance(options["custom_vjp"], bool) and options["custom_vjp"] != "auto":
        raise InputError(f"must be true, false or \"auto\", got {options['custom_vjp']!r}",
                         field="backend_options.custom_vjp")
    check_positive_int(options["chunk_steps"], "backend_options.chunk_steps")
    return options


# ---------------------------------------------------------------- optimizers
def zeros_like(params):
    """Host zeros shaped like ``params`` (initial optimizer state; separate
    buffers, since donated arguments must not share one)."""
    return [{k: np.zeros(v.shape, np.float32) for k, v in layer.items()} for layer in params]


class SGDRule:
    """v <- momentum v + g;  W <- W - lr v   (no state when momentum is 0)."""

    def __init__(self, config):
        self.lr, self.momentum = config.learning_rate, config.momentum

    def init(self, params):
        return zeros_like(params) if self.momentum else ()

    def update(self, params, grads, state):
        tree = _jax().tree
        if self.momentum:
            state = tree.map(lambda v, g: self.momentum * v + g, state, grads)
            grads = state
        return tree.map(lambda w, d: w - d * self.lr, params, grads), state

    def slots(self, state):
        """The state as {slot name: params-shaped tree} (see TrainingState)."""
        return {"velocity": state} if self.momentum else {}

    def from_slots(self, slots, step):
        return slots["velocity"] if self.momentum else ()


class AdamRule:
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, config):
        self.c = config
        with np.errstate(divide="ignore"):  # log(0) = -inf gives 1 - 0^t = 1
            # in float64 first: float32(0.999) alone is 1.3e-5 off in 1 - b
            self.log_b1, self.log_b2 = np.log([config.beta_1, config.beta_2]).astype(np.float32)

    def init(self, params):
        return zeros_like(params), zeros_like(params), np.zeros((), np.int32)

    def update(self, params, grads, state):
        jax, c = _jax(), self.c
        jnp, tree = jax.numpy, jax.tree
        m, v, t = state
        t = t + 1
        tf = t.astype(jnp.float32)
        step_size = c.learning_rate / -jnp.expm1(tf * self.log_b1)
        inv_sqrt_correction = 1.0 / jnp.sqrt(-jnp.expm1(tf * self.log_b2))
        m = tree.map(lambda m, g: m * c.beta_1 + g * (1.0 - c.beta_1), m, grads)
        v = tree.map(lambda v, g: v * c.beta_2 + (g * g) * (1.0 - c.beta_2), v, grads)
        params = tree.map(lambda w, m, v: w - (m / (jnp.sqrt(v) * inv_sqrt_correction + c.epsilon)) * step_size,
                          params, m, v)
        return params, (m, v, t)

    def slots(self, state):
        return {"m": state[0], "v": state[1]}

    def from_slots(self, slots, step):
        return slots["m"], slots["v"], np.asarray(step, np.int32)


OPTIMIZERS = {"sgd": SGDRule, "adam": AdamRule}


# ------------------------------------------------------------------- trainer
def make_functions(spec: ModelSpec, optimizer, precision, compiler_options, seed: int = 0, custom_vjp: bool = True):
    """The jitted window loop, single step and evaluation for one network.

    The carry is ``(params, stats, opt_state, step)``: trained parameters,
    moving statistics (updated by the forward pass in training mode, never
    by the optimizer), optimizer state, and the global step (dropout keys)."""
    jax = _jax()
    jnp, lax = jax.numpy, jax.lax
    forward = make_forward(spec, precision, seed, custom_vjp)
    loss, output = LOSSES[spec.loss], activation(spec.output_activation)

    def objective(params, stats, x, t, step):
        z, stats = forward(params, stats, x, True, step)
        return loss(z, t, output), stats

    grad_fn = jax.value_and_grad(objective, has_aux=True)
    jit = functools.partial(jax.jit, **({"compiler_options": compiler_options} if compiler_options else {}))

    def step_fn(carry, x_train, t_train, rows):
        params, stats, opt_state, step = carry
        (value, stats), grads = grad_fn(params, stats, jnp.take(x_train, rows, axis=0, mode="clip"),
                                        jnp.take(t_train, rows, axis=0, mode="clip"), step)
        params, opt_state = optimizer.update(params, grads, opt_state)
        return (params, stats, opt_state, step + 1), value

    def window(carry, x_train, t_train, rows, n):
        def body(i, state):
            carry, losses = state
            carry, value = step_fn(carry, x_train, t_train, rows[i])
            return carry, losses.at[i].set(value)
        return lax.fori_loop(0, n, body, (carry, jnp.zeros(rows.shape[0], jnp.float32)))

    def single(carry, losses, x_train, t_train, rows, i):
        carry, value = step_fn(carry, x_train, t_train, rows[i])
        return carry, losses.at[i].set(value)

    def evaluate(params, stats, x, t, labels):
        z, _ = forward(params, stats, x, False)
        out = output(z)
        predicted = out[:, 0] > 0.5 if out.shape[1] == 1 else jnp.argmax(out, axis=1)
        return loss(z, t, output), jnp.sum(predicted == labels)

    return (jit(window, donate_argnums=0), jit(single, donate_argnums=(0, 1)), jit(evaluate))


class JaxTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions, device):
        jax = _jax()
        check_supported(spec)
        extra = parse_options(options.extra)
        self.scan, self.chunk = extra["scan"], extra["chunk_steps"]
        # the conv / max-pool gradients written for XLA:CPU's Eigen kernels on
        # CPU; on GPUs JAX's own rules, which XLA maps to cuDNN's backward kernels
        self.custom_vjp = device.platform == "cpu" if extra["custom_vjp"] == "auto" else extra["custom_vjp"]
        self.device = device
        self.device_name = "cpu" if device.platform == "cpu" else device.device_kind
        precisions = {"fp32": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.DEFAULT}
        if options.precision not in precisions:
            raise InputError(f"unknown {options.precision!r}; {one_of(precisions)}", field="precision")
        precision = precisions[options.precision]
        compiler_options = {"xla_gpu_deterministic_ops": True} if options.deterministic else None
        self.spec = spec
        self.optimizer = OPTIMIZERS[spec.optimizer.name](spec.optimizer)
        self._window, self._single, self._evaluate = make_functions(spec, self.optimizer, precision,
                                                                    compiler_options, options.seed, self.custom_vjp)
        # private copies: on CPU device_put may alias host memory, and the
        # carry is donated (updated in place)
        self._names = [list(layer) for layer in weights]
        params, stats = split_weights(weights)
        self.carry = jax.device_put((params, stats, self.optimizer.init(params), np.zeros((), np.int32)), device)

    def _put(self, array: np.ndarray, dtype):
        return _jax().device_put(np.ascontiguousarray(array, dtype), self.device)

    def place_data(self, data: Dataset) -> None:
        targets = loss_targets(self.spec, data.y_train)
        test_targets = loss_targets(self.spec, data.y_test)
        target_dtype = np.int32 if targets.dtype.kind == "i" else np.float32
        self.x_train, self.t_train = self._put(data.x_train, np.float32), self._put(targets, target_dtype)
        self.x_test, self.t_test = self._put(data.x_test, np.float32), self._put(test_targets, target_dtype)
        self.y_test = self._put(data.y_test, np.int32)
        self.n_test = len(data.y_test)

    def _rows(self, chunk: np.ndarray) -> np.ndarray:
        """The chunk's indices, zero-padded to (chunk_steps, batch) int32. Given
        to the jitted call as a host array: jit copies it to the device of the
        other arguments for a few microseconds, jax.device_put takes ~40."""
        rows = np.zeros((self.chunk, chunk.shape[1]), np.int32)
        rows[: len(chunk)] = chunk
        return rows

    def _run(self, rows: np.ndarray, n: int):
        if self.scan:
            self.carry, losses = self._window(self.carry, self.x_train, self.t_train, rows, n)
            return losses
        rows, losses = self._put(rows, np.int32), self._put(np.zeros(self.chunk), np.float32)
        for i in range(n):
            self.carry, losses = self._single(self.carry, losses, self.x_train, self.t_train, rows, i)
        return losses

    def train(self, indices: np.ndarray) -> np.ndarray:
        # Dispatch every chunk (asynchronously), then read the losses: reading
        # the last chunk's losses waits for the device to finish.
        if len(indices) == 0:
            return np.empty(0, np.float32)
        pending = []
        for start in range(0, len(indices), self.chunk):
            chunk = indices[start:start + self.chunk]
            pending.append((self._run(self._rows(chunk), len(chunk)), len(chunk)))
        return np.concatenate([np.asarray(losses)[:n] for losses, n in pending])

    def evaluate(self) -> tuple[float, float]:
        params, stats = self.carry[:2]
        loss, correct = self._evaluate(params, stats, self.x_test, self.t_test, self.y_test)
        return float(loss), int(correct) / self.n_test

    def weights(self):
        params, stats = self.carry[:2]
        return [{k: np.array({**p, **s}[k], dtype=np.float32) for k in names}
                for names, p, s in zip(self._names, params, stats)]

    def state(self) -> TrainingState:
        params, _, opt_state, step = self.carry
        slots = self.optimizer.slots(opt_state)
        return TrainingState(self.weights(),
                             [{p: {name: np.array(tree[i][p], dtype=np.float32) for name, tree in slots.items()}
                               for p in layer} for i, layer in enumerate(params)],
                             int(step))

    def load_state(self, state: TrainingState) -> None:
        # canonical layouts are JAX's own: only split, copy and place
        params, stats = split_weights(state.weights)
        slots = {name: [{p: np.array(state.slots[i][p][name], np.float32) for p in layer}
                        for i, layer in enumerate(params)]
                 for name in slot_names(self.spec.optimizer)}
        opt_state = self.optimizer.from_slots(slots, state.step)
        self.carry = _jax().device_put((params, stats, opt_state, np.asarray(state.step, np.int32)), self.device)


def xla_flags(threads: int) -> str:
    """The user's XLA_FLAGS plus XLA's CPU thread-pool switch for ``threads``."""
    own = "--xla_cpu_multi_thread_eigen=" + ("true" if threads > 1 else "false")
    return " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), own]))


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    distributions = ("jax", "jaxlib")
    pip_install = 'pip install "dlbench[jax]"'
    devices = ("cpu", "gpu")
    description = "jax.value_and_grad + XLA, a window of steps in one jitted lax loop"
    option_defaults = DEFAULT_OPTIONS

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        env = {**super().thread_environment(threads, device), "XLA_FLAGS": xla_flags(threads),
               "PJRT_NPROC": str(threads),  # sizes XLA's CPU thread pool
               "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # GPU memory taken as needed: peak memory stays honest
        if device == "cpu":
            env["JAX_PLATFORMS"] = "cpu"
        return env

    def configure_threads(self, threads: int) -> int:
        if not backends_started():
            os.environ["PJRT_NPROC"] = str(threads)
        return xla_cpu_threads()

    def gpu_name(self) -> str | None:
        try:
            return _jax().devices("gpu")[0].device_kind
        except RuntimeError:
            return None

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        jax = _jax()
        try:
            device = jax.devices(options.device)[0]
        except RuntimeError as exc:
            raise RuntimeError(f"jax sees no {options.device} device: {exc}") from None
        return JaxTrainer(spec, weights, options, device)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(JaxBackend)
