"""The newer optimizers, schedules and clipping pinned against each framework's
own stock implementation: torch.optim.RMSprop / AdamW / SGD(nesterov,
weight_decay) / Adadelta with torch.optim.lr_scheduler.* and
torch.nn.utils.clip_grad_norm_ / clip_grad_value_; keras.optimizers.* with
keras.optimizers.schedules.* and global_clipnorm / clipvalue; optax's
rmsprop / adamw / sgd / adadelta with its schedules and clip_by_global_norm.

torch and Keras train a stock network built from the core's initial weights on
the core's batches, and must give the backend's losses and weights to float32
rounding. optax's rules are run on the JAX backend's own rule inputs (random
gradients, 6 steps). Where a framework's convention differs from the spec's,
the pin says by how much and why:

* Keras puts Adam's and RMSprop's epsilon elsewhere: the Keras pins run at
  epsilon 1e-12, where the two placements differ by less than float32 rounding; at epsilon 1e-3 Keras's RMSprop
  (``sqrt(s + eps)``) is the spec's with epsilon moved inside the root, which
  the certificate's mutant of that slip computes, and differs from the spec by
  far more than rounding (:func:`test_keras_rmsprop_puts_epsilon_inside_the_root`).
* Keras keeps the learning rate inside SGD's and RMSprop's momentum buffer
  (``m <- momentum*m - lr*g; W <- W + m``): the spec's (torch's) form at a
  constant rate, not under a schedule (SGD(0.5, 0.9) under a staircase
  schedule: the fourth loss 1.3% off), so the Keras schedule pins use SGD
  without momentum and Adam.
* Keras's and optax's global-norm clipping divide by ``max(||g||, c)`` where
  torch and the spec divide by ``||g|| + 1e-6``: a relative difference of
  1e-6/||g|| on a clipped step, inside these tolerances at ||g|| ~ 1.
"""

import math

import numpy as np
import pytest

from backend_helpers import require_backend, toy_data
from dlbench.data.batches import BatchPlan
from dlbench.network import (SGD, Adadelta, Adam, AdamW, CosineDecay, Dense, ExponentialDecay, RMSprop, Sequential,
                             StepDecay, WarmupCosine, WarmupLinear)
from dlbench.network.init import initial_weights
from dlbench.plugin.backend import TrainerOptions

STEPS = 6


def _spec(optimizer):
    return Sequential([Dense(8, "tanh", input_shape=(5,)), Dense(3, "softmax")]).compile(
        "categorical_crossentropy", optimizer)


def _core_run(backend_name: str, spec):
    """(the backend's losses, its weights after them, the batches, the data, the initial weights)."""
    data = toy_data(input_shape=spec.input_shape, n_classes=3, n_train=24)
    weights = initial_weights(spec, 0)
    plan = BatchPlan(len(data.x_train), 8, epochs=10, seed=0, max_steps=STEPS)
    batches = [rows for window in plan.windows(STEPS) for rows in window.indices]
    trainer = require_backend(backend_name).build(spec, weights, TrainerOptions())
    trainer.place_data(data)
    losses = np.concatenate([trainer.train(window.indices) for window in plan.windows(STEPS)])
    return losses, trainer.weights(), batches, data, weights


def _assert_same(stock_losses, stock_weights, losses, weights):
    np.testing.assert_allclose(stock_losses, losses, rtol=2e-6, atol=1e-7, err_msg="losses")
    for i, (stock, core) in enumerate(zip(stock_weights, weights, strict=True)):
        for name in core:
            np.testing.assert_allclose(stock[name], core[name], rtol=1e-5, atol=2e-6, err_msg=f"layer {i} {name}")


# ------------------------------------------------------------------------ torch
def _hugging_face_warmup(warmup: int, total: int, cosine: bool):
    """Hugging Face's get_{cosine,linear}_schedule_with_warmup lambdas (transformers' optimization.py)."""
    def factor(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress))) if cosine else max(0.0, 1.0 - progress)
    return factor


def _torch_cases():
    import torch
    from torch.optim import lr_scheduler as sched

    clip_norm = lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.3)  # noqa: E731
    clip_value = lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.02)  # noqa: E731
    return {  # spec optimizer, stock optimizer of the parameters, its scheduler, its clipping
        "rmsprop-centered-momentum": (
            RMSprop(0.01, rho=0.8, epsilon=1e-3, momentum=0.5, centered=True, weight_decay=0.01),
            lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=1e-3, momentum=0.5, centered=True,
                                           weight_decay=0.01), None, None),
        "adamw": (AdamW(0.01, epsilon=1e-3, weight_decay=0.1),
                  lambda ps: torch.optim.AdamW(ps, lr=0.01, eps=1e-3, weight_decay=0.1), None, None),
        "sgd-nesterov-l2": (SGD(0.1, 0.9, nesterov=True, weight_decay=0.01),
                            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                            None, None),
        "adadelta-l2": (Adadelta(1.0, rho=0.9, epsilon=1e-6, weight_decay=0.01),
                        lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.01), None, None),
        "adam-l2-step-lr": (Adam(0.01, epsilon=1e-3, weight_decay=0.05, schedule=StepDecay(2, 0.5)),
                            lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-3, weight_decay=0.05),
                            lambda o: sched.StepLR(o, step_size=2, gamma=0.5), None),
        "sgd-exponential-lr-clip-norm": (SGD(0.5, 0.9, clip_global_norm=0.3, schedule=ExponentialDecay(0.7)),
                                         lambda ps: torch.optim.SGD(ps, lr=0.5, momentum=0.9),
                                         lambda o: sched.ExponentialLR(o, gamma=0.7), clip_norm),
        "sgd-cosine-annealing-clip-value": (SGD(0.5, schedule=CosineDecay(5, alpha=0.1), clip_value=0.02),
                                            lambda ps: torch.optim.SGD(ps, lr=0.5),
                                            lambda o: sched.CosineAnnealingLR(o, T_max=5, eta_min=0.05), clip_value),
        "adamw-warmup-cosine": (AdamW(0.02, epsilon=1e-3, schedule=WarmupCosine(2, 6)),
                                lambda ps: torch.optim.AdamW(ps, lr=0.02, eps=1e-3, weight_decay=0.01),
                                lambda o: sched.LambdaLR(o, _hugging_face_warmup(2, 6, cosine=True)), None),
        "adadelta-warmup-linear": (Adadelta(1.0, schedule=WarmupLinear(2, 6)),
                                   lambda ps: torch.optim.Adadelta(ps, lr=1.0),
                                   lambda o: sched.LambdaLR(o, _hugging_face_warmup(2, 6, cosine=False)), None),
    }


TORCH_CASES = ["rmsprop-centered-momentum", "adamw", "sgd-nesterov-l2", "adadelta-l2", "adam-l2-step-lr",
               "sgd-exponential-lr-clip-norm", "sgd-cosine-annealing-clip-value", "adamw-warmup-cosine",
               "adadelta-warmup-linear"]


@pytest.mark.parametrize("case", TORCH_CASES)
def test_torch_stock_optimizers_train_as_the_torch_backend(case):
    require_backend("torch")
    import torch
    from torch import nn
    from torch.nn import functional as F

    optimizer, make_stock, make_scheduler, clip = _torch_cases()[case]
    spec = _spec(optimizer)
    losses, trained, batches, data, weights = _core_run("torch", spec)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    for module, w in zip((model[0], model[2]), weights):
        module.weight.data, module.bias.data = torch.from_numpy(w["kernel"].T.copy()), torch.from_numpy(w["bias"])
    stock = make_stock(model.parameters())
    scheduler = make_scheduler(stock) if make_scheduler else None
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train).long()
    stock_losses = []
    for rows in batches:
        stock.zero_grad()
        loss = F.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        if clip:
            clip(model.parameters())
        stock.step()
        if scheduler:
            scheduler.step()
        stock_losses.append(loss.item())
    stock_weights = [{"kernel": m.weight.detach().numpy().T, "bias": m.bias.detach().numpy()}
                     for m in (model[0], model[2])]
    _assert_same(stock_losses, stock_weights, losses, trained)


# ------------------------------------------------------------------------ Keras
def _keras_cases():
    import keras
    from keras.optimizers import schedules

    return {  # spec optimizer, stock Keras optimizer
        "rmsprop-centered-momentum-eps-tiny": (
            RMSprop(0.01, rho=0.8, epsilon=1e-12, momentum=0.5, centered=True),
            lambda: keras.optimizers.RMSprop(0.01, rho=0.8, epsilon=1e-12, momentum=0.5, centered=True)),
        "adamw-eps-tiny": (AdamW(0.01, epsilon=1e-12, weight_decay=0.1),
                           lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1, epsilon=1e-12)),
        "sgd-nesterov": (SGD(0.1, 0.9, nesterov=True), lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)),
        "adadelta": (Adadelta(1.0, rho=0.9, epsilon=1e-6),
                     lambda: keras.optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-6)),
        "sgd-staircase-global-clipnorm": (
            SGD(0.5, clip_global_norm=0.3, schedule=StepDecay(2, 0.5)),
            lambda: keras.optimizers.SGD(schedules.ExponentialDecay(0.5, decay_steps=2, decay_rate=0.5, staircase=True),
                                         global_clipnorm=0.3)),
        "sgd-exponential-clipvalue": (
            SGD(0.5, clip_value=0.02, schedule=ExponentialDecay(0.7)),
            lambda: keras.optimizers.SGD(schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.7),
                                         clipvalue=0.02)),
        "adam-eps-tiny-warmup-cosine": (
            Adam(0.02, epsilon=1e-12, schedule=WarmupCosine(2, 6, alpha=0.1)),
            lambda: keras.optimizers.Adam(schedules.CosineDecay(0.0, decay_steps=4, alpha=0.1, warmup_target=0.02,
                                                                warmup_steps=2), epsilon=1e-12)),
    }


def _keras_run(spec, weights, data, batches, stock):
    """Losses and weights of the stock Keras network trained by ``stock`` on ``batches``."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(3)])
    for layer, w in zip(model.layers, weights):
        layer.set_weights([w["kernel"], w["bias"]])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for rows in batches:
        with tf.GradientTape() as tape:
            loss = loss_fn(data.y_train[rows], model(data.x_train[rows]))
        stock.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        losses.append(float(loss))
    return losses, [{"kernel": layer.kernel.numpy(), "bias": layer.bias.numpy()} for layer in model.layers]


@pytest.mark.parametrize("case", ["rmsprop-centered-momentum-eps-tiny", "adamw-eps-tiny", "sgd-nesterov", "adadelta",
                                  "sgd-staircase-global-clipnorm", "sgd-exponential-clipvalue",
                                  "adam-eps-tiny-warmup-cosine"])
def test_keras_stock_optimizers_train_as_the_tensorflow_backend(case):
    require_backend("tensorflow")
    optimizer, make_stock = _keras_cases()[case]
    spec = _spec(optimizer)
    losses, trained, batches, data, weights = _core_run("tensorflow", spec)
    _assert_same(*_keras_run(spec, weights, data, batches, make_stock()), losses, trained)


def test_keras_rmsprop_puts_epsilon_inside_the_root():
    """At epsilon 1e-3 Keras's RMSprop trains as the NumPy reference with epsilon
    inside the root (the certificate's mutant), not as the spec's."""
    require_backend("tensorflow")
    import keras

    from mutant_plugins import RmspropEpsilonInsideTheRoot

    spec = _spec(RMSprop(0.05, rho=0.8, epsilon=1e-3))
    _, spec_weights, batches, data, weights = _core_run("numpy", spec)
    inside = RmspropEpsilonInsideTheRoot().build(spec, weights, TrainerOptions())
    inside.place_data(data)
    inside_losses = inside.train(np.array(batches))
    stock_losses, stock_weights = _keras_run(spec, weights, data, batches, keras.optimizers.RMSprop(
        0.05, rho=0.8, epsilon=1e-3))
    _assert_same(stock_losses, stock_weights, inside_losses, inside.weights())
    assert np.abs(stock_weights[0]["kernel"] - spec_weights[0]["kernel"]).max() > 1e-3


# ------------------------------------------------------------------------ optax
def _optax_cases():
    import optax

    return {  # spec optimizer, the same in optax
        "rmsprop-centered-momentum": (
            RMSprop(0.01, rho=0.8, epsilon=1e-3, momentum=0.5, centered=True),
            optax.rmsprop(0.01, decay=0.8, eps=1e-3, eps_in_sqrt=False, centered=True, momentum=0.5)),
        "adamw": (AdamW(0.01, epsilon=1e-3, weight_decay=0.1), optax.adamw(0.01, eps=1e-3, weight_decay=0.1)),
        "sgd-nesterov-l2": (SGD(0.1, 0.9, nesterov=True, weight_decay=0.01),
                            optax.chain(optax.add_decayed_weights(0.01), optax.sgd(0.1, 0.9, nesterov=True))),
        "adadelta": (Adadelta(1.0, rho=0.9, epsilon=1e-6), optax.adadelta(1.0, rho=0.9, eps=1e-6)),
        "sgd-staircase-clip-norm": (
            SGD(0.5, 0.9, clip_global_norm=2.0, schedule=StepDecay(2, 0.5)),
            optax.chain(optax.clip_by_global_norm(2.0),
                        optax.sgd(optax.exponential_decay(0.5, 2, 0.5, staircase=True), 0.9))),
        "sgd-cosine-clip-value": (SGD(0.5, clip_value=0.5, schedule=CosineDecay(4, 0.1)),
                                  optax.chain(optax.clip(0.5), optax.sgd(optax.cosine_decay_schedule(0.5, 4, 0.1)))),
        "adamw-warmup-cosine": (
            AdamW(0.02, epsilon=1e-3, weight_decay=0.1, schedule=WarmupCosine(2, 6, 0.1)),
            optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.02, 2, 6, 0.002), eps=1e-3, weight_decay=0.1)),
        "adam-warmup-linear": (
            Adam(0.02, epsilon=1e-3, schedule=WarmupLinear(2, 6, 0.1)),
            optax.adam(optax.join_schedules([optax.linear_schedule(0.0, 0.02, 2),
                                             optax.linear_schedule(0.02, 0.002, 4)], [2]), eps=1e-3)),
    }


@pytest.mark.parametrize("case", ["rmsprop-centered-momentum", "adamw", "sgd-nesterov-l2", "adadelta",
                                  "sgd-staircase-clip-norm", "sgd-cosine-clip-value", "adamw-warmup-cosine",
                                  "adam-warmup-linear"])
def test_optax_rules_equal_the_jax_backend_rules(case):
    require_backend("jax")
    import jax
    import optax

    from dlbench_backends.jax.optim import build_optimizer

    optimizer, reference = _optax_cases()[case]
    rng = np.random.default_rng(0)
    params = [{"kernel": rng.standard_normal((4, 3)).astype(np.float32), "bias": np.zeros(3, np.float32)}]
    grads = [[{"kernel": rng.standard_normal((4, 3)).astype(np.float32),
               "bias": rng.standard_normal(3).astype(np.float32)}] for _ in range(STEPS)]
    theirs, state = jax.device_put(params), reference.init(jax.device_put(params))
    rule = build_optimizer(optimizer)
    ours, our_state = jax.device_put(params), jax.device_put(rule.init(params))
    for g in grads:
        updates, state = reference.update(g, state, theirs)
        theirs = optax.apply_updates(theirs, updates)
        ours, our_state = rule.update(jax.device_put(g), ours, our_state)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(ours[0][name], theirs[0][name], rtol=1e-5, atol=1e-6, err_msg=name)
