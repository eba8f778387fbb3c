"""The PyTorch backend's recurrent layers: SimpleRNN / LSTM / GRU on the kernels behind ``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU`` (``torch.rnn_tanh``, ``torch.lstm``, ``torch.gru``, batch
first, one layer, zero initial state), called by a module of our own that
holds the parameters the way the spec has them: nn.LSTM keeps two biases
(``b_ih + b_hh``), and training both from the canonical one would move
their sum twice as far per step as the canonical update does. So:

- ``weight_ih`` (k*u, F) = canonical ``kernel`` (F, k*u) transposed;
  ``weight_hh`` (k*u, u) = ``recurrent_kernel`` (u, k*u) transposed;
- LSTM, SimpleRNN: ``bias`` (k*u) is the canonical bias, given to the
  kernel as ``b_ih``, with a zero buffer (never trained) as ``b_hh``.
  torch's LSTM gates i, f, g, o are Keras's i, f, c, o: no reordering;
- GRU: torch's gates are r, z, n, Keras's z, r, h: the first two gate
  blocks swap places in every GRU tensor (the swap is its own inverse).
  torch's ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` is Keras's
  ``reset_after=True``, so the canonical bias (2, 3u) is kept as one
  parameter (2, 3u), its row 0 given as ``b_ih`` and its row 1 (the
  recurrent-side bias, inside the reset product for n) as ``b_hh``.

With ``return_sequences`` the layer returns every ``h_t`` (B, T, u),
otherwise ``h_T`` (B, u).
"""

from __future__ import annotations

import torch
from torch import nn

from dlbench.network.sequence import GRU, LSTM, SimpleRNN


def _gru_swap(t: torch.Tensor, units: int) -> torch.Tensor:
    """The first two gate blocks (of ``units`` each along the last axis) swapped: z, r <-> r, z."""
    return torch.cat([t[..., units:2 * units], t[..., :units], t[..., 2 * units:]], dim=-1)


class Recurrent(nn.Module):
    """One recurrent layer (SimpleRNN, LSTM or GRU) on torch's fused kernels."""

    KERNELS = {SimpleRNN: torch.rnn_tanh, LSTM: torch.lstm, GRU: torch.gru}

    def __init__(self, layer, features: int, device):
        super().__init__()
        kw = dict(device=device, dtype=torch.float32)
        width = layer.gates * layer.units
        self.layer, self.units = layer, layer.units
        self.kernel = self.KERNELS[type(layer)]
        self.weight_ih = nn.Parameter(torch.zeros(width, features, **kw))
        self.weight_hh = nn.Parameter(torch.zeros(width, layer.units, **kw))
        self.bias = nn.Parameter(torch.zeros((2, width) if isinstance(layer, GRU) else (width,), **kw))
        self.register_buffer("zero_bias", torch.zeros(width, **kw), persistent=False)

    def kernel_weights(self) -> list:
        """[w_ih, w_hh, b_ih, b_hh] as the fused kernel takes them."""
        if isinstance(self.layer, GRU):
            return [self.weight_ih, self.weight_hh, self.bias[0], self.bias[1]]
        return [self.weight_ih, self.weight_hh, self.bias, self.zero_bias]

    def forward(self, x):
        h0 = x.new_zeros(1, x.shape[0], self.units)
        state = (h0, h0) if isinstance(self.layer, LSTM) else h0
        out = self.kernel(x, state, self.kernel_weights(), True, 1, 0.0, self.training, False, True)[0]
        return out if self.layer.return_sequences else out[:, -1]


def to_torch(layer, name: str, t: torch.Tensor) -> torch.Tensor:
    """A canonical array (host tensor) in torch's layout of parameter ``name``."""
    if isinstance(layer, GRU):
        t = _gru_swap(t, layer.units)
    return t if name == "bias" else t.t()


def to_canonical(layer, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_torch`."""
    t = tensor if name == "bias" else tensor.t()
    return _gru_swap(t, layer.units) if isinstance(layer, GRU) else t


class BidirectionalRecurrent(nn.Module):
    """A bidirectional SimpleRNN, LSTM or GRU on torch's fused kernel with
    ``bidirectional=True``: one call runs both directions, its output (B, T, 2u)
    already the spec's ``[h_t, g_t]`` (the reverse direction's state at t);
    without return_sequences ``[h_T, g_1]``. Each direction's parameters are a
    :class:`Recurrent`'s (``forward``, ``backward``), in the canonical layouts
    and conversions above."""

    def __init__(self, spec, features: int, device):
        super().__init__()
        self.spec, self.units = spec, spec.units
        self.forward_layer = Recurrent(spec.layer, features, device)
        self.backward_layer = Recurrent(spec.layer, features, device)

    def forward(self, x):
        h0 = x.new_zeros(2, x.shape[0], self.units)
        weights = [w for direction in (self.forward_layer, self.backward_layer) for w in direction.kernel_weights()]
        state = (h0, h0) if isinstance(self.spec.layer, LSTM) else h0
        out = self.forward_layer.kernel(x, state, weights, True, 1, 0.0, self.training, True, True)[0]
        if self.spec.layer.return_sequences:
            return out
        return torch.cat([out[:, -1, :self.units], out[:, 0, self.units:]], dim=-1)
