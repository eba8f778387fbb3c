"""The module API every built-in backend package keeps (docs/backends/module-api.md),
as Keras 3 keeps its backends alike: each module defines the API's names with
the API's parameters (checked with ``inspect``), and where it is cheap, behaves
as the API says: canonical weights go through a network unchanged, an
optimizer's slots load back as they came out, a loss scaler's state round
trips and it skips on an overflow.

JAX keeps no state in its objects (the jitted loop carries it): its optimizer and
loss scaler are the API's functional form, the same names and leading
parameters, with what a stateful object would keep passed last and returned."""

import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import dlbench_backends
from backend_helpers import require_backend, toy_data
from dlbench.network import (SGD, Adadelta, Adam, AdamW, BatchNormalization, Conv2D, CosineDecay, Dense, Flatten,
                             RMSprop, Sequential, WarmupLinear)
from dlbench.network.init import initial_weights
from dlbench.network.precision import LOSS_SCALE
from dlbench.plugin.backend import TrainerOptions, slot_names

BUILT_IN = sorted(p.parent.name for p in Path(dlbench_backends.__file__).parent.glob("*/__init__.py"))
#: the backends whose optimizer and loss scaler take the API's functional form
FUNCTIONAL = {"jax"}
#: per module, each function's leading parameters (any further ones have defaults)
FUNCTIONS = {
    "network": {"build_network": ("spec", "weights"), "to_canonical": ("spec", "network"),
                "from_canonical": ("spec", "network", "weights")},
    "optim": {"build_optimizer": ("config", "params")},
    "inference": {"predict": ("trainer", "indices")},
}
#: where the functional form differs: its optimizer holds no parameters
FUNCTIONAL_FUNCTIONS = {"optim": {"build_optimizer": ("config",)}}
DISTRIBUTED = {"info": ("trainer",)}
#: the methods of build_optimizer's object and of precision.LossScaler: stateful form, functional form
OPTIMIZER = {"update": ("grads",), "slots": (), "load_slots": ("slots", "step")}
FUNCTIONAL_OPTIMIZER = {"update": ("grads", "params", "state"), "slots": ("state",),
                        "load_slots": ("slots", "step"), "init": ("params",)}
SCALER = {"scale": ("loss",), "unscale": ("grads",), "update": ("overflow",), "state": (), "load": ("state",)}
FUNCTIONAL_SCALER = {"scale": ("loss", "carried"), "unscale": ("grads", "carried"),
                     "update": ("overflow", "carried"), "state": ("carried",), "load": ("state",)}

CNN = (Sequential([Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), BatchNormalization(),
                   Flatten(), Dense(4, "softmax")]).compile("categorical_crossentropy", Adam(0.01)))
#: every optimizer class, each slot it can keep, and the options its update reads before the step
OPTIMIZERS = {"adam": Adam(0.01), "sgd-momentum": SGD(0.05, 0.9),
              "sgd-nesterov-decay": SGD(0.05, 0.9, nesterov=True, weight_decay=0.01),
              "adamw-cosine": AdamW(0.01, schedule=CosineDecay(10)),
              "rmsprop-centered-momentum-clipped": RMSprop(0.01, momentum=0.5, centered=True, clip_global_norm=1.0),
              "adadelta-warmup-clipped": Adadelta(1.0, clip_value=0.5, schedule=WarmupLinear(2, 10))}


def module(name: str, part: str):
    require_backend(name)
    return importlib.import_module(f"dlbench_backends.{name}.{part}")


def signature_problem(function, expected: tuple[str, ...], exact: bool = False) -> str | None:
    """Why ``function``'s parameters are not ``expected`` followed by parameters with
    defaults (``exact``: nothing more); None when they are."""
    parameters = list(inspect.signature(function).parameters.values())
    names = tuple(p.name for p in parameters[:len(expected)])
    extra = parameters[len(expected):]
    if names != expected:
        return f"takes {names}, the API says {expected}"
    if exact and extra or any(p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                              for p in extra):
        return f"has further parameters without defaults: {[p.name for p in extra]}"
    return None


def test_the_signature_check_sees_a_parameter_out_of_place():
    def good(spec, weights, device="cpu"):
        pass

    def bad(weights, spec):
        pass

    def needs_more(spec, weights, device):
        pass

    assert signature_problem(good, ("spec", "weights")) is None
    assert signature_problem(bad, ("spec", "weights")) == "takes ('weights', 'spec'), the API says ('spec', 'weights')"
    assert "without defaults" in signature_problem(needs_more, ("spec", "weights"))
    assert signature_problem(good, ("spec", "weights", "device"), exact=True) is None


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_module_function_takes_the_api_s_parameters(name):
    for part, functions in FUNCTIONS.items():
        found = module(name, part)
        if name in FUNCTIONAL:
            functions = {**functions, **FUNCTIONAL_FUNCTIONS.get(part, {})}
        for function, expected in functions.items():
            problem = signature_problem(getattr(found, function), expected)
            assert problem is None, f"dlbench_backends.{name}.{part}.{function} {problem}"


@pytest.mark.parametrize("name", [name for name in BUILT_IN if name != "numpy"])
def test_every_data_parallel_engine_names_itself_as_its_backend_does(name):
    backend = require_backend(name)
    distributed = module(name, "distributed")
    assert distributed.ENGINE == backend.data_parallel_engine
    assert signature_problem(distributed.info, DISTRIBUTED["info"]) is None


def trained_trainer(backend, optimizer: str, steps: int):
    """A trainer of a small MLP with ``optimizer``, after ``steps`` steps."""
    spec = Sequential([Dense(6, "tanh", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", OPTIMIZERS[optimizer])
    trainer = backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    trainer.place_data(toy_data(input_shape=(5,), n_classes=3, n_train=16))
    if steps:
        trainer.train(np.arange(8 * steps).reshape(steps, 8))
    return spec, trainer


def on_host(value) -> np.ndarray:
    """A copy of a backend's array (NumPy, torch, TF or JAX) in host memory."""
    return np.array(value.numpy() if hasattr(value, "numpy") else value)


def host(slots: dict) -> dict:
    return {name: [on_host(v) for v in (values if isinstance(values, list) else [values])]
            for name, values in slots.items()}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name", BUILT_IN)
def test_an_optimizer_s_slots_load_back_as_they_came_out(name, optimizer):
    backend = require_backend(name)
    spec, trained = trained_trainer(backend, optimizer, steps=1)
    _, fresh = trained_trainer(backend, optimizer, steps=0)
    methods = FUNCTIONAL_OPTIMIZER if name in FUNCTIONAL else OPTIMIZER
    for method, expected in methods.items():
        problem = signature_problem(getattr(fresh.optimizer, method), expected, exact=name in FUNCTIONAL)
        assert problem is None, f"{name}'s optimizer.{method} {problem}"
    if name in FUNCTIONAL:
        state = trained.carry[2]
        out = trained.optimizer.slots(state)
        back = fresh.optimizer.slots(fresh.optimizer.load_slots(out, 1))
    else:
        out = trained.optimizer.slots()
        fresh.optimizer.load_slots(out, 1)
        back = fresh.optimizer.slots()
    assert set(out) == set(slot_names(spec.optimizer))
    out, back = host(out), host(back)
    assert all(np.any(v != 0) for values in out.values() for v in values), "one step leaves every slot non-zero"
    assert all(np.array_equal(a, b) for name in out for a, b in zip(out[name], back[name], strict=True))


@pytest.mark.parametrize("name", BUILT_IN)
def test_canonical_weights_go_through_a_network_unchanged(name):
    network = module(name, "network")
    weights, other = initial_weights(CNN, 0), initial_weights(CNN, 1)
    built = network.build_network(CNN, weights)
    assert_same(network.to_canonical(CNN, built), weights)
    loaded = network.from_canonical(CNN, built, other)
    assert_same(network.to_canonical(CNN, loaded), other)


def assert_same(got, expected):
    assert [sorted(layer) for layer in got] == [sorted(layer) for layer in expected]
    for got_layer, layer in zip(got, expected):
        for key, value in layer.items():
            assert got_layer[key].dtype == np.float32 and np.array_equal(got_layer[key], value), key


def gradients(name: str, values: list[float]):
    """``values`` as the gradients the backend's loss scaler takes."""
    if name == "numpy":
        return np.array(values, np.float32)
    if name == "torch":
        import torch
        return [torch.tensor(values, dtype=torch.float32)]
    if name == "tensorflow":
        from dlbench_backends.tensorflow import framework
        return [framework()[0].constant(values, dtype="float32")]
    import jax.numpy as jnp
    return [jnp.asarray(values, jnp.float32)]


def one_scaled_step(name: str, state: tuple[float, int], grads):
    """(scale(3.0), the unscaled gradients, overflow, the state after update) of a
    loss scaler loaded with ``state``, in the API's stateful or functional form."""
    scaler_module = module(name, "precision")
    scaler = scaler_module.LossScaler()
    methods = FUNCTIONAL_SCALER if name in FUNCTIONAL else SCALER
    for method, expected in methods.items():
        problem = signature_problem(getattr(scaler, method), expected, exact=True)
        assert problem is None, f"{name}'s LossScaler.{method} {problem}"
    if name in FUNCTIONAL:
        carried = scaler.load(state)
        assert scaler.state(carried) == state
        unscaled, overflow = scaler.unscale(grads, carried)
        return scaler.scale(3.0, carried), unscaled, bool(overflow), scaler.state(scaler.update(overflow, carried))
    scaler.load(state)
    assert scaler.state() == state
    scaled = scaler.scale(3.0)
    unscaled, overflow = scaler.unscale(grads)
    scaler.update(overflow)
    return scaled, unscaled, bool(overflow), scaler.state()


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_loss_scaler_round_trips_its_state_unscales_and_skips_on_an_overflow(name):
    scaled, unscaled, overflow, after = one_scaled_step(name, (1024.0, 7), gradients(name, [2048.0, -512.0]))
    assert float(scaled) == 3072.0 and not overflow and after == (1024.0, 8)
    assert np.array_equal(np.concatenate([np.ravel(on_host(g)) for g in
                                          (unscaled if isinstance(unscaled, list) else [unscaled])]), [2.0, -0.5])
    _, _, overflow, after = one_scaled_step(name, (1024.0, 7), gradients(name, [np.inf, 1.0]))
    assert overflow and after == (1024.0 * LOSS_SCALE.backoff_factor, 0)
    _, _, _, after = one_scaled_step(name, (1024.0, LOSS_SCALE.growth_interval - 1), gradients(name, [1.0, 1.0]))
    assert after == (1024.0 * LOSS_SCALE.growth_factor, 0)
