"""The JAX backend's recurrent layers (SimpleRNN, LSTM, GRU) in ``lax.scan``.

The input projection of every timestep at once, ``x W + b`` (batch, time,
k*u), one matmul; then ``lax.scan`` over the time axis (time-major), the
carry ``h`` (the LSTM's ``(c, h)``, in that order, as flax's LSTMCell keeps
it), each step one matmul ``h U`` and the gate maths of
:mod:`dlbench.network.sequence` (LSTM gates i, f, c, o; GRU z, r, h with the
recurrent bias inside the reset product). The output is every ``h_t`` with
``return_sequences``, else the last. Gradients are JAX's own (through the scan).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlbench.network.sequence import GRU, LSTM, SimpleRNN


def _simple_rnn_step(p, precision, units):
    def step(h, xw):
        h = jnp.tanh(xw + precision.dot(h, p["recurrent_kernel"]))
        return h, h
    return step


def _lstm_step(p, precision, units):
    def step(carry, xw):
        c, h = carry
        z = xw + precision.dot(h, p["recurrent_kernel"])
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h
    return step


def _gru_step(p, precision, units):
    def step(h, xw):
        hw = precision.dot(h, p["recurrent_kernel"]) + p["bias"][1]
        xz, xr, xh = jnp.split(xw, 3, axis=-1)
        hz, hr, hh = jnp.split(hw, 3, axis=-1)
        z, r = jax.nn.sigmoid(xz + hz), jax.nn.sigmoid(xr + hr)
        h = z * h + (1.0 - z) * jnp.tanh(xh + r * hh)
        return h, h
    return step


STEPS = {SimpleRNN: _simple_rnn_step, LSTM: _lstm_step, GRU: _gru_step}


def recurrent_layer(layer, in_shape, precision, custom_vjp: bool = True):
    """lax.scan over time of the layer's cell (see the module notes)."""
    make_step, units = STEPS[type(layer)], layer.units

    def apply(p, s, x, training, key):
        input_bias = p["bias"][0] if isinstance(layer, GRU) else p["bias"]
        xw = precision.dot(x, p["kernel"]) + input_bias  # (B, T, k*u)
        h0 = jnp.zeros((x.shape[0], units), x.dtype)
        carry = (h0, h0) if isinstance(layer, LSTM) else h0
        _, hs = lax.scan(make_step(p, precision, units), carry, jnp.swapaxes(xw, 0, 1))
        return (jnp.swapaxes(hs, 0, 1) if layer.return_sequences else hs[-1]), s
    return apply
