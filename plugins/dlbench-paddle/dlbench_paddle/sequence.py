"""The Paddle backend's sequence layers on Paddle's own fused kernels.

* Embedding: ``nn.Embedding`` (dense gradient); its weight (vocab, dim) is
  the canonical ``embeddings`` as it is.
* SimpleRNN / LSTM / GRU: ``nn.SimpleRNN`` / ``nn.LSTM`` / ``nn.GRU``
  (batch-major, one layer, zero initial state; ``direction="bidirect"`` for a
  Bidirectional layer, whose output (B, T, 2u) is the spec's ``[h_t, g_t]``,
  and without return_sequences ``[h_T, g_1]``). Conversions:

  - ``weight_ih`` (k*u, F) = canonical ``kernel`` (F, k*u) transposed;
    ``weight_hh`` (k*u, u) = ``recurrent_kernel`` (u, k*u) transposed;
  - LSTM gates i, f, c, o are Keras's: no reordering. Paddle keeps two biases
    (``bias_ih + bias_hh``), the spec one: ``bias_ih`` is the canonical bias and
    ``bias_hh`` stays zero (never given to the optimizer; Paddle's fused
    kernel segfaults without it and its backward needs its gradient, so it
    cannot be left out or frozen). SimpleRNN likewise;
  - GRU: Paddle's gates are r, z, c, Keras's z, r, h: the first two gate blocks
    swap places. Paddle's candidate ``tanh(W_c x + b_ic + r * (U_c h + b_hc))``
    is Keras's ``reset_after=True``, and ``h' = z h + (1 - z) c`` is the
    spec's, so the canonical bias (2, 3u) is ``bias_ih`` (row 0) and
    ``bias_hh`` (row 1), both trained.
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

from dlbench.network.sequence import DIRECTIONS, GRU, LSTM, Bidirectional, Embedding, SimpleRNN

FUSED = {SimpleRNN: nn.SimpleRNN, LSTM: nn.LSTM, GRU: nn.GRU}


class Recurrent(nn.Layer):
    """One (possibly bidirectional) recurrent layer on Paddle's fused RNN."""

    def __init__(self, layer, features: int):
        super().__init__()
        self.bidirectional = isinstance(layer, Bidirectional)
        self.cell = layer.layer if self.bidirectional else layer
        self.units = self.cell.units
        direction = "bidirect" if self.bidirectional else "forward"
        self.rnn = FUSED[type(self.cell)](features, self.units, direction=direction)
        if not isinstance(self.cell, GRU):
            for suffix in self._suffixes():
                getattr(self.rnn, f"bias_hh_l0{suffix}").set_value(paddle.zeros([self.cell.gates * self.units]))

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def direction_tensors(self, suffix: str) -> dict[str, list]:
        rnn = self.rnn
        bias = [getattr(rnn, f"bias_ih_l0{suffix}")]
        if isinstance(self.cell, GRU):
            bias.append(getattr(rnn, f"bias_hh_l0{suffix}"))
        return {"kernel": [getattr(rnn, f"weight_ih_l0{suffix}")],
                "recurrent_kernel": [getattr(rnn, f"weight_hh_l0{suffix}")], "bias": bias}

    def forward(self, x):
        out, _ = self.rnn(x)
        if self.cell.return_sequences:
            return out
        if not self.bidirectional:
            return out[:, -1]
        return paddle.concat([out[:, -1, :self.units], out[:, 0, self.units:]], axis=-1)


def sequence_modules(layer, in_shape) -> list:
    """The Paddle layer computing one sequence layer (it holds the parameters)."""
    if isinstance(layer, Embedding):
        return [nn.Embedding(layer.input_dim, layer.output_dim)]
    return [Recurrent(layer, in_shape[-1])]


def sequence_tensors(holder, layer) -> dict[str, list]:
    """One sequence layer's parameters by canonical name, each the list of Paddle tensors it is made of."""
    if isinstance(layer, Embedding):
        return {"embeddings": [holder.weight]}
    if isinstance(layer, Bidirectional):
        return {f"{direction}.{name}": tensors for direction, suffix in zip(DIRECTIONS, holder._suffixes())
                for name, tensors in holder.direction_tensors(suffix).items()}
    return holder.direction_tensors("")


def _gru_swap(value: np.ndarray, units: int) -> np.ndarray:
    """The first two gate blocks (``units`` each along the last axis) swapped: z, r <-> r, z."""
    return np.concatenate([value[..., units:2 * units], value[..., :units], value[..., 2 * units:]], axis=-1)


def from_canonical(layer, name: str, value: np.ndarray) -> list[np.ndarray]:
    """A canonical array as the arrays of the Paddle tensors it is made of."""
    if isinstance(layer, Bidirectional):
        return from_canonical(*layer.part(name), value)
    if isinstance(layer, Embedding):
        return [value]
    if isinstance(layer, GRU):
        value = _gru_swap(value, layer.units)
        if name == "bias":
            return [value[0], value[1]]
    return [value if name == "bias" else value.T]


def to_canonical(layer, name: str, arrays: list[np.ndarray]) -> np.ndarray:
    """The inverse of :func:`from_canonical`."""
    if isinstance(layer, Bidirectional):
        return to_canonical(*layer.part(name), arrays)
    if isinstance(layer, Embedding):
        return arrays[0]
    value = np.stack(arrays) if name == "bias" and isinstance(layer, GRU) else arrays[0]
    value = value if name == "bias" else value.T
    return _gru_swap(value, layer.units) if isinstance(layer, GRU) else value
