"""The PyTorch backend's mixed precision (:mod:`dlbench.network.precision`).

Forward and loss run under ``torch.autocast`` (training, evaluation and
inference alike). Autocast computes linear, matmul/bmm, convolutions,
``scaled_dot_product_attention`` and the RNN cells' matmuls from bf16/fp16
operands and stores their results in bf16/fp16; the elementwise layers
between them (activations, pooling, BatchNorm's normalisation) follow their
input's dtype; the losses (cross-entropy, binary cross-entropy, mse) and
layer norm are autocast to float32; the parameters, their gradients and the
fused update are float32.

fp16 adds dynamic loss scaling with GradScaler's own primitives on the core's
schedule (:data:`dlbench.network.precision.LOSS_SCALE`): ``(loss * scale)`` is
differentiated, ``torch._amp_foreach_non_finite_check_and_unscale_`` unscales
the gradients and flags an inf/NaN, the fused update skips a flagged step on
the device (:mod:`~dlbench_backends.torch.optim`) and ``torch._amp_update_scale_``
moves the scale; nothing waits for the host.
"""

from __future__ import annotations

import contextlib

import torch

from dlbench.network.precision import LOSS_SCALE

#: the dtype autocast computes matmuls and convolutions in, per mixed precision
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def lstm_unavailable() -> str | None:
    """Why this CPU cannot run torch's LSTM under float16 autocast (oneDNN builds
    no float16 LSTM primitive without fp16 instructions); None when it can."""
    lstm = torch.nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            lstm(torch.zeros(1, 2, 2))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        return f"torch's CPU LSTM has no float16 kernel on this CPU ({first})"
    return None


def autocast(device: torch.device, precision: str):
    """The mixed-precision context of forward passes on ``device`` (none at fp32/tf32)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class LossScaler:
    """fp16's dynamic loss scale on the device, GradScaler's primitives on the
    core's schedule (the module API's loss scaler, ``docs/backends/module-api.md``):
    ``scale(loss)`` multiplies by the scale, ``unscale(grads)`` divides them by
    it in place and returns them with the inf/NaN flag (a 0-d tensor, 1 on an
    overflow) that the fused update skips on, ``update(overflow)`` moves the
    scale; ``skipped`` counts the skipped steps."""

    def __init__(self, device="cpu"):
        scale, good_steps = LOSS_SCALE.start()
        self.factor = torch.full((), scale, dtype=torch.float32, device=device)
        self.good_steps = torch.zeros((), dtype=torch.int32, device=device)
        self.found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self.skipped = torch.zeros((), dtype=torch.float32, device=device)

    def scale(self, loss):
        return loss * self.factor

    def unscale(self, grads):
        self.found_inf.zero_()
        torch._amp_foreach_non_finite_check_and_unscale_(list(grads), self.found_inf, self.factor.reciprocal())
        return grads, self.found_inf

    def update(self, overflow) -> None:
        self.skipped += overflow
        s = LOSS_SCALE
        torch._amp_update_scale_(self.factor, self.good_steps, overflow, s.growth_factor, s.backoff_factor,
                                 s.growth_interval)

    def state(self) -> tuple[float, int]:
        return float(self.factor), int(self.good_steps)

    def load(self, state: tuple[float, int]) -> None:
        self.factor.fill_(state[0])
        self.good_steps.fill_(state[1])
        self.skipped.zero_()
