"""Floating-point operations of one training step, counted from the spec.

Conventions (those of most FLOP counters): a multiply-add is 2 FLOPs; an
elementwise operation is 1 FLOP per element per arithmetic op. For a batch
of ``B`` samples:

* Dense (in -> out): forward ``2*B*in*out`` (matmul) + ``B*out`` (bias);
  backward ``2*B*in*out`` (dE/dW = X^T dE/dz) + ``B*out`` (dE/db) and, except
  for the first layer, ``2*B*in*out`` (dE/dX = dE/dz W^T). On a sequence
  (time, in) it is the same with ``B*time`` rows. Without a bias
  (``use_bias = false``, convolutions too) the two ``B*out`` terms go.
* Embedding (``T`` tokens of ``D`` values): forward 0 (a gather), backward
  ``B*T*D`` (the scatter-add of the gradient rows).
* Recurrent layer (``k`` gates: SimpleRNN 1, LSTM 4, GRU 3; ``F`` input
  features, ``u`` units, ``T`` timesteps), per sample and timestep: forward
  ``2*(F + u)*k*u`` (the two matmuls) + ``k*u`` (bias) + ``e_f*u``;
  backward ``2*F*k*u`` (dE/dW) + ``4*u*k*u`` (dE/dU and dE/dh_{t-1}) +
  ``k*u`` (dE/db) + ``e_b*u`` and, except for the first layer, ``2*F*k*u``
  (dE/dx_t). The elementwise gate maths ``(e_f, e_b)`` per unit: SimpleRNN
  (4, 2) (a tanh); LSTM (24, 20) (three sigmoids and two tanh at 4 / 2 each,
  4 / 10 for the cell and output products); GRU (17, 14) (two sigmoids and
  a tanh, 5 / 8 for the reset product and the interpolation). A
  bidirectional layer: its recurrent layer's count twice (the concatenation
  is free).
* Activation over ``n = B*units`` elements: forward / backward
  relu 1 / 1, sigmoid 4 / 2, tanh 4 / 2, softmax 4 / 4, linear 0 / 0,
  leaky_relu 2 / 2 (compare and scale), elu 3 / 2 (``exp - 1``, scale; ``y +
  alpha``, product), silu 5 / 5 (a sigmoid and a product; ``s (1 + x (1 - s))``
  and the product).
* Loss over the ``B*units`` logits: 4 FLOPs forward, 2 backward per element.
* Conv (kernel ``k`` elements per output channel, i.e. kh*kw*C_in, over
  ``P = B * output positions``): like Dense with ``in = k`` and batch ``P``.
* Pooling with a window of ``w`` elements: forward ``w`` per output element,
  backward ``w``. BatchNormalization: 10 forward + 10 backward per element.
  Dropout: 2 + 1 per element (training). Flatten: 0.
* GELU, tanh form (``gelu``, ``gelu_tanh``): 12 forward, 12 backward per
  element; erf form (``gelu_erf``): 8 forward (scale, erf at 4 like tanh, add,
  two products), 8 backward (``x^2``, scale, exp, two products, add, product).
* LayerNormalization: 10 forward + 10 backward per element, as BatchNormalization.
* SelfAttention on ``(T, d)`` with ``H`` heads of size ``K`` (``I = H*K``),
  ``N = B*T`` positions: the four projections are Dense layers (Q, K, V:
  ``d -> I``; output: ``I -> d``; the Q, K, V input gradients only when not
  the first layer, plus ``2*N*d`` to add the three); the scores
  ``Q K^T`` and ``P V`` are ``2*B*H*T*T*K`` each forward, and each needs two
  such products backward (``dP, dV`` and ``dQ, dK``); scale and softmax
  ``5*B*H*T*T`` forward and backward. A causal mask is counted as the full
  ``T*T`` (what the frameworks compute).
* PositionEmbedding: 1 forward (the add) + 1 backward (the batch sum) per
  element. GlobalAveragePool1D and the other global pools (average or max,
  1-D or 2-D): 1 forward + 1 backward per input element.
* Residual: its inner layers and its shortcut's (never counted as the first
  layer) plus 1 forward (the add) and 1 backward (adding the two gradients)
  per element.
* Update per trained parameter: sgd 2 (``W -= lr*g``), sgd with momentum 4,
  adam 12 (two moment updates, square root, division, bias corrections).

Matmuls dominate every non-trivial network; the elementwise terms keep tiny
networks (batch 1) from reporting zero.
"""

from __future__ import annotations

import math

from dlbench.network import (GLOBAL_POOLS, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D, Dense,
                          Dropout, GlobalAveragePool1D, LayerNormalization, MaxPool1D, MaxPool2D, ModelSpec,
                          PositionEmbedding, Residual, SelfAttention)
from dlbench.network.sequence import GRU, LSTM, RECURRENT_LAYERS, Bidirectional, Embedding, SimpleRNN

ACTIVATION_FLOPS = {"linear": (0, 0), "relu": (1, 1), "sigmoid": (4, 2), "tanh": (4, 2), "softmax": (4, 4),
                    "gelu": (12, 12), "gelu_tanh": (12, 12), "gelu_erf": (8, 8), "leaky_relu": (2, 2),
                    "elu": (3, 2), "silu": (5, 5)}
LOSS_FLOPS_PER_ELEMENT = 6
#: elementwise FLOPs per unit and timestep of a recurrent cell: (forward, backward)
RECURRENT_CELL_FLOPS = {SimpleRNN: (4, 2), LSTM: (24, 20), GRU: (17, 14)}


def update_flops_per_param(spec: ModelSpec) -> int:
    """Elementwise FLOPs of one update per trained value (clipping and weight decay: 2 each)."""
    opt = spec.optimizer
    extra = 2 * sum(1 for value in (opt.clip_global_norm, opt.clip_value, opt.weight_decay) if value)
    if opt.name in ("adam", "adamw"):
        return 12 + extra
    if opt.name == "rmsprop":
        return 7 + 3 * opt.centered + 2 * bool(opt.momentum) + extra
    if opt.name == "adadelta":
        return 14 + extra
    return 2 + 2 * bool(opt.momentum) + 2 * opt.nesterov + extra


def _dense_flops(positions: int, fan_in: int, units: int, first: bool) -> int:
    matmul = 2 * positions * fan_in * units
    return 2 * (matmul + positions * units) + (0 if first else matmul)


def attention_flops(layer: SelfAttention, in_shape, batch: int, first: bool) -> int:
    """One training step of self-attention (see the module notes)."""
    t, d = in_shape
    inner, positions = layer.num_heads * layer.key_dim, batch * t
    projections = 3 * _dense_flops(positions, d, inner, first) + _dense_flops(positions, inner, d, False)
    scores = batch * layer.num_heads * t * t
    products = 2 * scores * layer.key_dim  # one (T, K) x (K, T) or (T, T) x (T, K) product
    return projections + (0 if first else 2 * positions * d) + 6 * products + 2 * 5 * scores


def layer_flops(layer, in_shape, out_shape, batch: int, first: bool) -> int:
    n_out = batch * math.prod(out_shape)
    flops = 0
    if isinstance(layer, Residual):
        chains = [*zip(layer.layers, layer.inner_shapes(in_shape)), *zip(layer.shortcut, layer.shortcut_shapes(in_shape))]
        flops += 2 * n_out + sum(layer_flops(inner, shape_in, shape_out, batch, first=False)
                                 for inner, (shape_in, shape_out) in chains)
    elif isinstance(layer, SelfAttention):
        flops += attention_flops(layer, in_shape, batch, first)
    elif isinstance(layer, LayerNormalization):
        flops += 20 * n_out
    elif isinstance(layer, (PositionEmbedding, GlobalAveragePool1D, *GLOBAL_POOLS)):
        flops += 2 * batch * math.prod(in_shape)
    elif isinstance(layer, (Dense, Conv1D, Conv2D)):
        positions = batch * math.prod(out_shape[:-1])
        fan_in = in_shape[-1] if isinstance(layer, Dense) else math.prod(layer.kernel_size) * in_shape[-1]
        matmul = 2 * positions * fan_in * out_shape[-1]
        bias = n_out if layer.use_bias else 0
        flops += matmul + bias  # forward
        flops += matmul + bias + (0 if first else matmul)  # backward
    elif isinstance(layer, (MaxPool1D, MaxPool2D, AveragePool1D, AveragePool2D)):
        flops += 2 * math.prod(layer.pool_size) * n_out
    elif isinstance(layer, BatchNormalization):
        flops += 20 * n_out
    elif isinstance(layer, Dropout):
        flops += 3 * n_out
    elif isinstance(layer, Embedding):
        flops += n_out
    elif isinstance(layer, RECURRENT_LAYERS):
        flops += recurrent_flops(layer, in_shape, batch, first)
    elif isinstance(layer, Bidirectional):
        flops += 2 * recurrent_flops(layer.layer, in_shape, batch, first)
    if hasattr(layer, "activation"):
        fwd, bwd = ACTIVATION_FLOPS[layer.activation]
        flops += (fwd + bwd) * n_out
    return flops


def recurrent_flops(layer, in_shape, batch: int, first: bool) -> int:
    """Forward and backward FLOPs of a recurrent layer (see the module notes)."""
    (steps, features), u = in_shape, layer.units
    width = layer.gates * u
    fwd_cell, bwd_cell = RECURRENT_CELL_FLOPS[type(layer)]
    forward = 2 * (features + u) * width + width + fwd_cell * u
    backward = 2 * features * width + 4 * u * width + width + bwd_cell * u + (0 if first else 2 * features * width)
    return batch * steps * (forward + backward)


def training_step_flops(spec: ModelSpec, batch_size: int) -> int:
    """FLOPs of one optimizer step (forward, backward, update) at ``batch_size``."""
    total = 0
    for i, (layer, (in_shape, out_shape)) in enumerate(zip(spec.layers, spec.shapes)):
        total += layer_flops(layer, in_shape, out_shape, batch_size, first=i == 0)
    fwd, bwd = ACTIVATION_FLOPS[spec.output_activation]
    total -= (fwd + bwd) * batch_size * math.prod(spec.output_shape)  # fused into the loss
    total += LOSS_FLOPS_PER_ELEMENT * batch_size * math.prod(spec.output_shape)
    total += update_flops_per_param(spec) * spec.n_params
    return total
