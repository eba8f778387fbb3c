"""The precisions a run can ask for, and the one loss-scale schedule of fp16.

* ``fp32``: float32 throughout (the default).
* ``tf32``: float32, with matmuls and convolutions allowed TF32 tensor cores on
  GPUs (XLA's and cuDNN's default); the same as fp32 on a CPU.
* ``bf16``, ``fp16``: **mixed** precision as the frameworks define it (torch
  autocast, Keras ``mixed_bfloat16``/``mixed_float16``, a jmp-style policy in
  JAX): parameters, optimizer state and the update in float32 (master
  weights); every matmul and convolution computed from bfloat16/float16
  operands, accumulating in float32; the numerically sensitive parts (softmax
  and cross-entropy, normalization statistics, the update) in float32.
  bf16 and fp16 products are exact in float32 (8 + 8 and 11 + 11 significant
  bits), so the NumPy reference emulates the policy exactly by rounding the
  operands (``ml_dtypes``) and multiplying in float32.

fp16 trains with **dynamic loss scaling**, the same schedule on every backend
(:data:`LOSS_SCALE`, the semantics of torch's GradScaler and Keras's
LossScaleOptimizer): the loss is multiplied by the scale before the backward
pass and the gradients divided by it after; a step whose gradients hold an
inf or NaN is *skipped* (parameters, optimizer state and step count stay as
they were) and the scale multiplied by ``backoff_factor``; after
``growth_interval`` finite steps in a row it is multiplied by
``growth_factor``. A skipped step is counted: the row's ``skipped_steps`` is
the steps run minus the optimizer steps taken.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
#: the mixed precisions and the dtype their matmuls and convolutions take (every framework spells them so)
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def compute_dtype(precision: str) -> str | None:
    """'bfloat16' or 'float16' for a mixed precision; None for fp32 and tf32."""
    return COMPUTE_DTYPES.get(precision)


def is_mixed(precision: str) -> bool:
    return precision in COMPUTE_DTYPES


def scales_loss(precision: str) -> bool:
    """fp16 needs loss scaling (its smallest normal is 6e-5); bf16 has float32's range and needs none."""
    return precision == "fp16"


@dataclass(frozen=True)
class LossScaleSchedule:
    """Dynamic loss scaling: (scale, finite steps in a row) -> the next pair."""

    initial: float = 2.0 ** 15
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000

    def start(self) -> tuple[float, int]:
        return self.initial, 0

    def next(self, scale: float, good_steps: int, finite: bool) -> tuple[float, int]:
        """After a step whose gradients were ``finite`` (or not): torch's ``_amp_update_scale_``."""
        if not finite:
            return scale * self.backoff_factor, 0
        good_steps += 1
        if good_steps == self.growth_interval:
            return scale * self.growth_factor, 0
        return scale, good_steps


#: the one schedule every backend follows (Keras's initial scale, torch's growth interval)
LOSS_SCALE = LossScaleSchedule()


#: the reference's twins at bf16/fp16 (options of the NumPy backend), beside its float32 ones: storing in
#: bf16/fp16 what the frameworks keep there between layers, every matmul result, or every layer's output after its bias (fused kernels); see the NumPy backend's Arithmetic
STORAGE_TWINS = {"rounded": {"rounding": "results"}, "fused": {"rounding": "outputs"}}
