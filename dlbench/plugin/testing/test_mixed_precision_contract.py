"""The mixed-precision contract (:mod:`dlbench.network.precision`), run under every
backend (``conftest.py``):

* bf16 and fp16 really round: a backend's logits move away from its own fp32
  logits by what the NumPy reference's emulation of that precision moves
  (within a factor of two either way), which a backend computing in float32
  (no move) or in the other half type (bf16's rounding is about four times
  fp16's here) fails;
* fp16's dynamic loss scaling follows the core's schedule: a step whose scaled
  gradients overflow is skipped (parameters, optimizer state and step count
  unchanged) and the scale halves; after ``growth_interval`` finite steps the
  scale doubles; the scale travels with the training state.
"""

import dataclasses

import numpy as np
import pytest

from dlbench.plugin.testing.helpers import require_precision, toy_data
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.network import (Adadelta, Adam, AdamW, Conv2D, Dense, ExponentialDecay, Flatten, MaxPool2D, RMSprop,
                             Sequential, StepDecay, WarmupCosine)
from dlbench.network.init import initial_weights
from dlbench.network.precision import LOSS_SCALE

SPEC = Sequential([Conv2D(8, 3, padding="same", activation="relu", input_shape=(6, 6, 2)), MaxPool2D(2), Flatten(),
                   Dense(16, "relu"), Dense(3, "softmax")]).compile("categorical_crossentropy", Adam(0.01))
DATA = toy_data(input_shape=(6, 6, 2), n_classes=3, n_train=40)
ROWS = np.arange(16)


def trainer(backend, precision: str, spec=SPEC):
    require_precision(backend, precision)
    built = backend.build(spec, initial_weights(spec, 0), TrainerOptions(precision=precision))
    built.place_data(DATA)
    return built


def rounding_of(backend, precision: str) -> float:
    """How far ``precision`` moves the backend's logits from its fp32 logits (relative to their size)."""
    z32 = np.asarray(trainer(backend, "fp32").predict(ROWS), np.float64)
    z = np.asarray(trainer(backend, precision).predict(ROWS), np.float64)
    return float(np.abs(z - z32).max() / np.abs(z32).max())


def rounds_like_the_reference(backend, precision: str) -> bool:
    emulated = rounding_of(get_plugins().backend("numpy"), precision)
    return 0.5 * emulated <= rounding_of(backend, precision) <= 2.0 * emulated


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_rounds_the_logits_as_much_as_the_reference_emulates(backend, precision):
    assert rounds_like_the_reference(backend, precision), (backend.name, precision, rounding_of(backend, precision))


def test_fp32_and_tf32_logits_are_the_same_on_a_cpu(backend):
    assert rounding_of(backend, "tf32") < 1e-5


def _one_step(trainer_, state):
    trainer_.load_state(state)
    losses = trainer_.train(ROWS[:8].reshape(1, 8))
    return losses, trainer_.state()


#: the newer optimizers' slots, clipping and schedules, skipped alike (torch's foreach updates restore theirs)
SKIPPED_OPTIMIZERS = {"adam": Adam(0.01),
                      "rmsprop": RMSprop(0.01, momentum=0.5, centered=True, clip_global_norm=1.0,
                                         schedule=WarmupCosine(2, 10)),
                      "adadelta": Adadelta(1.0, weight_decay=0.01, clip_value=0.5, schedule=ExponentialDecay(0.9)),
                      "adamw": AdamW(0.01, schedule=StepDecay(1, 0.5))}


@pytest.mark.parametrize("optimizer", list(SKIPPED_OPTIMIZERS))
def test_fp16_skips_a_step_whose_scaled_gradients_overflow(backend, optimizer):
    fp16 = trainer(backend, "fp16", dataclasses.replace(SPEC, optimizer=SKIPPED_OPTIMIZERS[optimizer]))
    fp16.train(ROWS[:8].reshape(1, 8))  # one ordinary step first: Adam's slots hold something
    start = fp16.state()
    assert start.step == 1 and start.loss_scale == (LOSS_SCALE.initial, 1)
    start.loss_scale = (2.0 ** 100, 7)  # scaled gradients far beyond float16's 65504
    losses, after = _one_step(fp16, start.copy())
    assert np.all(np.isfinite(losses))  # the loss itself is reported unscaled
    assert after.step == start.step
    assert after.loss_scale == (2.0 ** 99, 0)
    for got, was in zip(after.weights, start.weights):
        for name in was:
            np.testing.assert_array_equal(got[name], was[name], err_msg=name)
    for got, was in zip(after.slots, start.slots):
        for param in was:
            for slot in was[param]:
                np.testing.assert_array_equal(got[param][slot], was[param][slot], err_msg=f"{param} {slot}")


def test_fp16_grows_the_scale_after_the_growth_interval_of_finite_steps(backend):
    fp16 = trainer(backend, "fp16")
    start = fp16.state()
    start.loss_scale = (1024.0, LOSS_SCALE.growth_interval - 1)
    _, after = _one_step(fp16, start.copy())
    assert after.step == start.step + 1
    assert after.loss_scale == (1024.0 * LOSS_SCALE.growth_factor, 0)
    start.loss_scale = (1024.0, 5)
    _, after = _one_step(fp16, start.copy())
    assert after.loss_scale == (1024.0, 6)


def test_bf16_has_no_loss_scale_and_fp16_starts_at_the_core_schedule(backend):
    assert trainer(backend, "bf16").state().loss_scale is None
    assert trainer(backend, "fp32").state().loss_scale is None
    assert trainer(backend, "fp16").state().loss_scale == LOSS_SCALE.start()
