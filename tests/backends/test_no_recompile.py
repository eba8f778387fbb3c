"""The compile-once contract, under every backend: a warm ``predict`` or
``train`` call (same batch size, other rows, other window lengths, after
training moved the weights) traces and compiles nothing, and where the first
call compiled, a warm call costs a small fraction of it.

A backend that retraces on every call (a new ``tf.function`` or ``jax.jit``
per call, a shape that changes per window) still gives the right logits and
losses, so no agreement test sees it; the core times its first call as
compile time and every other call as steady state, so the published latency
and samples/s would carry a compile each. What is counted, per framework:

* TensorFlow: graphs traced (every ``tf.function`` trace, Keras's included,
  builds one through ``func_graph_from_py_func``);
* JAX: jaxprs traced (``/jax/core/compile/jaxpr_trace_duration`` events of
  ``jax.monitoring``: every ``jit`` cache miss, compiled or found in the
  persistent cache);
* torch: frames dynamo compiled (none without the ``compile`` option);
* NumPy: nothing to compile.

The timing check is a ratio with a wide margin (compiling backends measure
100x to 10000x here), not a timing target; it only applies where the first
call compiled something, since an eager first call is barely dearer than the next.
"""

import contextlib
import statistics
import time

import numpy as np
import pytest

from backend_helpers import toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.network.init import initial_weights
from dlbench.plugin.testing.networks import BUILD_CASES

SPEC = BUILD_CASES["tanh-adam"]
DATA = toy_data(input_shape=(5,), n_classes=3, n_train=43)
BATCH = 8
#: a warm call costs at most this share of a first call that compiled
WARM_SHARE = 0.1
#: options that compile more than the defaults: XLA for TensorFlow, inductor for torch
COMPILING_OPTIONS = {"tensorflow": {"jit_compile": True}, "torch": {"compile": True}}


@contextlib.contextmanager
def counting_compilations(name: str):
    """Yields a function giving the traces/compilations of framework ``name`` since the block began."""
    if name == "tensorflow":
        from tensorflow.python.framework import func_graph

        traced, original = [0], func_graph.func_graph_from_py_func

        def counted(*args, **kwargs):
            traced[0] += 1
            return original(*args, **kwargs)

        func_graph.func_graph_from_py_func = counted
        try:
            yield lambda: traced[0]
        finally:
            func_graph.func_graph_from_py_func = original
    elif name == "jax":
        import jax.monitoring

        traced = [0]

        def listener(event: str, duration: float, **kwargs):
            traced[0] += event == "/jax/core/compile/jaxpr_trace_duration"

        jax.monitoring.register_event_duration_secs_listener(listener)
        try:
            yield lambda: traced[0]
        finally:
            jax.monitoring.unregister_event_duration_listener(listener)
    elif name == "torch":
        from torch._dynamo.utils import counters

        before = counters["frames"]["ok"]
        yield lambda: counters["frames"]["ok"] - before
    else:
        yield lambda: 0


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def built(backend, extra: dict | None = None):
    trainer = backend.build(SPEC, initial_weights(SPEC, 0), TrainerOptions(extra=extra or {}))
    trainer.place_data(DATA)
    return trainer


def rows(k: int) -> np.ndarray:
    return (np.arange(BATCH) + k * BATCH) % len(DATA.x_test)


def window(steps: int, k: int) -> np.ndarray:
    return (np.arange(steps * BATCH).reshape(steps, BATCH) + k * BATCH) % len(DATA.x_train)


def assert_warm_calls_compile_nothing(name: str, first_call, warm_calls) -> int:
    """Time the first call and the warm ones, and check the contract; returns the first call's compilations."""
    with counting_compilations(name) as compiled:
        first = seconds(first_call)
        after_first = compiled()
        warm = [seconds(call) for call in warm_calls]
        assert compiled() == after_first, f"{name}: {compiled() - after_first} traces in {len(warm)} warm calls"
    if after_first:
        assert statistics.median(warm) <= WARM_SHARE * first, (name, first, warm)
    return after_first


def predict_calls(trainer) -> tuple:
    """(the first call, warm calls): other rows, and after a training step moved the weights."""
    warm = [lambda k=k: trainer.predict(rows(k)) for k in range(1, 6)]
    return (lambda: trainer.predict(rows(0))), warm


def train_calls(trainer) -> tuple:
    """(the first call, warm calls): windows of other rows and other lengths at the same batch size."""
    warm = [lambda k=k, steps=steps: trainer.train(window(steps, k)) for k, steps in enumerate((3, 1, 5, 2, 3), 1)]
    return (lambda: trainer.train(window(3, 0))), warm


def test_warm_predict_calls_compile_nothing_and_cost_a_fraction_of_the_first(backend):
    assert_warm_calls_compile_nothing(backend.name, *predict_calls(built(backend)))


def test_warm_training_windows_compile_nothing_and_cost_a_fraction_of_the_first(backend):
    assert_warm_calls_compile_nothing(backend.name, *train_calls(built(backend)))


def test_predicting_after_training_compiles_nothing_new(backend):
    trainer = built(backend)
    trainer.predict(rows(0))
    trainer.train(window(2, 0))
    with counting_compilations(backend.name) as compiled:
        trainer.train(window(2, 1))
        trainer.predict(rows(1))
        trainer.predict(rows(2))
        assert compiled() == 0, f"{backend.name}: {compiled()} traces after the first calls"


def test_the_first_call_of_a_compiling_backend_is_counted(backend):
    """The counters see compilation at all: a compiled backend's first calls trace something."""
    with counting_compilations(backend.name) as compiled:
        trainer = built(backend)
        trainer.predict(rows(0))
        trainer.train(window(2, 0))
        count = compiled()
    assert count > 0 if backend.name in ("tensorflow", "jax") else count == 0, (backend.name, count)


@pytest.mark.slow
@pytest.mark.parametrize("calls", [predict_calls, train_calls], ids=["predict", "train"])
def test_warm_calls_compile_nothing_with_the_compiling_options(backend, calls):
    if backend.name not in COMPILING_OPTIONS:
        pytest.skip(f"{backend.name} has no compiling option")
    options = COMPILING_OPTIONS[backend.name]
    assert assert_warm_calls_compile_nothing(backend.name, *calls(built(backend, options))) > 0, \
        f"{backend.name}: the first call with {options} compiled nothing"
