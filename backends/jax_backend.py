"""The JAX backend: a pure function of the parameters, differentiated by
``jax.value_and_grad`` and compiled by XLA, a whole window of steps per call.

The parameters are a pytree (per spec layer a dict ``{"kernel", "bias"}``,
``{}`` for layers without parameters) of float32 arrays in the canonical
layout, which is JAX's: a Dense layer is ``z = x @ W + b`` with ``W`` (in, out),
so weights go in and come out unchanged. Losses are computed from the logits:

    categorical_crossentropy: mean(logsumexp(z) - z[y])
    binary_crossentropy:      mean(max(z, 0) - z t + log(1 + exp(-|z|)))
    mse:                      mean((f(z) - t)^2)

and the optimizers are written in ``jax.numpy`` exactly as :mod:`dlbench.spec`
states them (optax's sgd/adam compute the same maths, but the backend then
needs only ``jax``):

    sgd:  v <- momentum v + g;  W <- W - lr v
    adam: m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
          W <- W - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

with ``1 - b^t`` evaluated as ``-expm1(t log b)`` so that float32 keeps the
accuracy NumPy's float64 scalars have (``1 - 0.999`` in float32 is 1e-5 off).

Speed: ``train`` runs a window in ONE compiled call, a ``lax.fori_loop``
whose trip count is a runtime argument, over an index buffer of a fixed
``chunk_steps`` rows (the window's rows, zero-padded); each step gathers its
batch with ``jnp.take`` from the training set, which lives on the device.
The carried (params, optimizer state) is donated, so updates happen in place;
the per-step losses go into a device buffer read once per call. Because no
shape depends on the window length, XLA compiles once per batch size (on the
first step the runner times as compile time), not once per distinct window
length (a ``lax.scan`` of the exact length recompiles, ~0.4 s each on CPU,
inside the steady-state timing). Longer windows run as several calls.

Options (``TrainerOptions.extra``):

* ``scan`` (bool, default True): False runs one jitted step per row instead
  (same compiled step, one dispatch per step), for comparison;
* ``chunk_steps`` (int, default 256): the most steps one compiled call runs.

Precision: "fp32" passes ``Precision.HIGHEST`` to every matmul (true fp32
on GPUs too), "tf32" XLA's default (TF32 on Ampere and newer).
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
from dlbench.backend import Backend, Trainer, TrainerOptions, loss_targets
from dlbench.datasets import Dataset
from dlbench.errors import InputError, one_of
from dlbench.spec import Activation, Dense, ModelSpec, check_positive_int

DEFAULT_OPTIONS = {"scan": True, "chunk_steps": 256}
THREAD_ENV = ("PJRT_NPROC", "NPROC")  # what XLA's DefaultThreadPoolSize() reads


@functools.cache
def _jax():
    import jax
    import jax.numpy  # noqa: F401

    return jax


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
    check_positive_int(options["chunk_steps"], "backend_options.chunk_steps")
    return options


# ------------------------------------------------------------------ the network
def activation(name: str):
    jax = _jax()
    return {"linear": lambda x: x, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
            "tanh": jax.numpy.tanh, "softmax": lambda x: jax.nn.softmax(x, axis=-1)}[name]


def check_supported(spec: ModelSpec) -> None:
    for i, layer in enumerate(spec.layers):
        if not isinstance(layer, (Dense, Activation)):
            raise InputError(f"the jax backend does not support {layer.type!r} layers yet", field=f"layers[{i}]")


def make_logits(spec: ModelSpec, precision):
    """logits(params, x): the layers of ``spec.logit_layers()``."""
    jnp = _jax().numpy
    layers = [(isinstance(layer, Dense), activation(layer.activation)) for layer in spec.logit_layers()]

    def logits(params, x):
        for (dense, f), p in zip(layers, params):
            if dense:
                x = jnp.dot(x, p["kernel"], precision=precision) + p["bias"]
            x = f(x)
        return x

    return logits


def categorical_crossentropy(z, labels, f):
    jax = _jax()
    picked = jax.numpy.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    return jax.numpy.mean(jax.nn.logsumexp(z, axis=-1) - picked)


def binary_crossentropy(z, targets, f):
    jnp = _jax().numpy
    return jnp.mean(jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z))))


def mse(z, targets, f):
    jnp = _jax().numpy
    return jnp.mean(jnp.square(f(z) - targets))


LOSSES = {f.__name__: f for f in (categorical_crossentropy, binary_crossentropy, mse)}


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


OPTIMIZERS = {"sgd": SGDRule, "adam": AdamRule}


# ------------------------------------------------------------------- trainer
def make_functions(spec: ModelSpec, optimizer, precision, compiler_options):
    """The jitted window loop, single step and evaluation for one network."""
    jax = _jax()
    jnp, lax = jax.numpy, jax.lax
    logits = make_logits(spec, precision)
    loss, output = LOSSES[spec.loss], activation(spec.output_activation)
    grad_fn = jax.value_and_grad(lambda params, x, t: loss(logits(params, x), t, output))
    jit = functools.partial(jax.jit, **({"compiler_options": compiler_options} if compiler_options else {}))

    def step(carry, x_train, t_train, rows):
        params, opt_state = carry
        value, grads = grad_fn(params, jnp.take(x_train, rows, axis=0, mode="clip"),
                               jnp.take(t_train, rows, axis=0, mode="clip"))
        return optimizer.update(params, grads, opt_state), value

    def window(carry, x_train, t_train, rows, n):
        def body(i, state):
            carry, losses = state
            carry, value = step(carry, x_train, t_train, rows[i])
            return carry, losses.at[i].set(value)
        return lax.fori_loop(0, n, body, (carry, jnp.zeros(rows.shape[0], jnp.float32)))

    def single(carry, losses, x_train, t_train, rows, i):
        carry, value = step(carry, x_train, t_train, rows[i])
        return carry, losses.at[i].set(value)

    def evaluate(params, x, t, labels):
        z = logits(params, x)
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
                                                                    compiler_options)
        # a private copy: on CPU device_put may alias host memory, and the
        # carried parameters are donated (updated in place)
        params = [{k: np.array(v, np.float32) for k, v in layer.items()} for layer in weights]
        self.carry = jax.device_put((params, self.optimizer.init(params)), device)

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
        loss, correct = self._evaluate(self.carry[0], self.x_test, self.t_test, self.y_test)
        return float(loss), int(correct) / self.n_test

    def weights(self):
        return [{k: np.array(v, dtype=np.float32) for k, v in layer.items()} for layer in self.carry[0]]


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    distributions = ("jax",)
    pip_install = 'pip install "dlbench[jax]"'
    devices = ("cpu", "gpu")
    description = "jax.value_and_grad + XLA, a window of steps in one jitted lax loop"

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
