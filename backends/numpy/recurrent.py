"""The NumPy backend's recurrent layers, from scratch: forward pass and
backpropagation through time (BPTT).

Notation: input x_t (B, F) for t = 1..T, state h_t (B, u), kernel W (F, k u),
recurrent kernel U (u, k u), gates side by side along the last axis (Keras's
layout and orders, see :mod:`dlbench.network.sequence`); sigma(a) = 1 / (1 + e^-a),
computed as (1 + tanh(a / 2)) / 2, which never overflows.

Every layer works the same way:

1. The input projections of all timesteps at once, one BLAS matmul:
   X W + b, time-major (T, B, k u).
2. Forward, a loop over timesteps (the recurrence needs h_{t-1}): one matmul
   h_{t-1} U and the gate maths, vectorised over the batch; what backward
   needs (gate values, states) goes into buffers of (T, B, ...) allocated
   once per call, never per timestep.
3. Backward, the loop in reverse: from dE/dh_t (from the output, plus what
   step t + 1 sent back) the gradient of the gates' pre-activations
   dE/da_t goes into a (T, B, k u) buffer, and dE/dh_{t-1} = dE/da_t U^T
   (plus the direct paths of the LSTM's cell and the GRU's interpolation).
4. The parameter gradients, summed over time and batch, are three matmuls
   over all timesteps at once:
   dE/dW = X^T dA,  dE/dU = H_{t-1}^T dA_rec,  dE/db = sum dA,
   and dE/dX = dA W^T (when a layer before is trained).

The cells (``*`` elementwise; with return_sequences the output is every h_t)::

    SimpleRNN  h_t = tanh(a_t),  a_t = x_t W + h_{t-1} U + b
               da_t = dh_t * (1 - h_t^2)
    LSTM       [a_i a_f a_c a_o] = x_t W + h_{t-1} U + b
               i, f, o = sigma(a_i, a_f, a_o);  g = tanh(a_c)
               c_t = f * c_{t-1} + i * g;       h_t = o * tanh(c_t)
               dc_t = dc_t(from t+1) + dh_t * o * (1 - tanh(c_t)^2)
               da_i = dc_t g i(1-i);  da_f = dc_t c_{t-1} f(1-f);
               da_c = dc_t i (1-g^2); da_o = dh_t tanh(c_t) o(1-o)
               dc_{t-1} = dc_t * f
    GRU        [x_z x_r x_h] = x_t W + b_0;  [h_z h_r h_h] = h_{t-1} U + b_1
               z = sigma(x_z + h_z);  r = sigma(x_r + h_r)
               n = tanh(x_h + r * h_h);  h_t = n + z * (h_{t-1} - n)
               da_z = dh_t (h_{t-1} - n) z(1-z);  da_n = dh_t (1-z) (1-n^2)
               da_r = da_n h_h r(1-r)
               input side [da_z da_r da_n], recurrent side [da_z da_r da_n r]
               dh_{t-1} = dh_t z + [recurrent side] U^T
"""

from __future__ import annotations

import numpy as np

from dlbench.network.sequence import DIRECTIONS, GRU, LSTM
from dlbench.network.transformer import inner_parameters
from dlbench_backends.numpy.precision import PLAIN, Arithmetic


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """sigma(a) in place, as (1 + tanh(a / 2)) / 2."""
    a *= 0.5
    np.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a


class RecurrentLayer:
    """SimpleRNN, LSTM or GRU on (B, T, F) inputs; see the module notes."""

    def __init__(self, spec, params: dict, grads: dict, input_grad: bool = True, arith: Arithmetic = PLAIN):
        self.spec, self.units, self.gru = spec, spec.units, isinstance(spec, GRU)
        self.cell = "gru" if self.gru else "lstm" if isinstance(spec, LSTM) else "rnn"
        self.params, self.grads, self.input_grad, self.arith = params, grads, input_grad, arith

    # ------------------------------------------------------------ forward
    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        p, u = self.params, self.units
        self.x = x.transpose(1, 0, 2)  # time-major (T, B, F), a view
        steps, batch = self.x.shape[:2]
        bias = p["bias"][0] if self.gru else p["bias"]
        self.a = self.arith.matmul(self.x, p["kernel"])  # (T, B, k u): x_t W, then + h_{t-1} U
        self.a += bias
        self.h = np.zeros((steps + 1, batch, u), x.dtype)  # h_0 = 0, then every h_t
        if self.cell == "lstm":
            self.c = np.zeros_like(self.h)
            self.tanh_c = np.empty((steps, batch, u), x.dtype)
        if self.gru:
            self.hw = np.empty_like(self.a)  # h_{t-1} U + b_1, whose h part sits inside the reset product
        step = getattr(self, f"_{self.cell}_forward")
        for t in range(steps):
            step(t)
        # copies: the next layers may work in place, and backward needs the states
        return np.ascontiguousarray(self.h[1:].transpose(1, 0, 2)) if self.spec.return_sequences \
            else self.h[steps].copy()

    def _recurrent(self, t: int, out: np.ndarray) -> None:
        """out = h_{t-1} U (the step's one matmul)."""
        self.arith.matmul(self.h[t], self.params["recurrent_kernel"], out=out)

    def _rnn_forward(self, t: int) -> None:
        a = self.a[t]
        a += self._step_product(t)
        np.tanh(a, out=self.h[t + 1])

    def _step_product(self, t: int) -> np.ndarray:
        buffer = self._scratch(self.a.shape[1:])
        self._recurrent(t, buffer)
        return buffer

    def _scratch(self, shape) -> np.ndarray:
        """One scratch buffer per layer, reused by every timestep of every call of this shape."""
        if getattr(self, "_buffer", None) is None or self._buffer.shape != shape or \
                self._buffer.dtype != self.a.dtype:
            self._buffer = np.empty(shape, self.a.dtype)
        return self._buffer

    def _lstm_forward(self, t: int) -> None:
        u, a = self.units, self.a[t]
        a += self._step_product(t)
        sigmoid_(a[:, :2 * u])  # i, f
        np.tanh(a[:, 2 * u:3 * u], out=a[:, 2 * u:3 * u])  # g
        sigmoid_(a[:, 3 * u:])  # o
        i, f, g, o = a[:, :u], a[:, u:2 * u], a[:, 2 * u:3 * u], a[:, 3 * u:]
        c = self.c[t + 1]
        np.multiply(f, self.c[t], out=c)
        buffer = self._buffer[:, :u]
        np.multiply(i, g, out=buffer)
        c += buffer
        np.tanh(c, out=self.tanh_c[t])
        np.multiply(o, self.tanh_c[t], out=self.h[t + 1])

    def _gru_forward(self, t: int) -> None:
        u, a, hw = self.units, self.a[t], self.hw[t]
        self._recurrent(t, hw)
        hw += self.params["bias"][1]
        a[:, :2 * u] += hw[:, :2 * u]
        sigmoid_(a[:, :2 * u])  # z, r
        z, r, n = a[:, :u], a[:, u:2 * u], a[:, 2 * u:]
        buffer = self._scratch(self.a.shape[1:])[:, :u]
        np.multiply(r, hw[:, 2 * u:], out=buffer)
        n += buffer
        np.tanh(n, out=n)
        h = self.h[t + 1]
        np.subtract(self.h[t], n, out=h)  # h_t = n + z (h_{t-1} - n)
        h *= z
        h += n

    # ----------------------------------------------------------- backward
    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        steps, batch, u = self.h.shape[0] - 1, self.h.shape[1], self.units
        self.dy = dy.transpose(1, 0, 2) if self.spec.return_sequences else None
        self.da = np.empty_like(self.a)  # dE/da_t, input side
        self.da_rec = np.empty_like(self.a) if self.gru else self.da  # recurrent side
        self.dh = np.zeros((batch, u), self.a.dtype)
        self.dh_step = np.empty_like(self.dh)
        self.tmp = np.empty_like(self.dh)  # elementwise scratch of every timestep
        if not self.spec.return_sequences:
            self.dh += dy
        if self.cell == "lstm":
            self.dc = np.zeros_like(self.dh)
        step = getattr(self, f"_{self.cell}_backward")
        for t in reversed(range(steps)):
            if self.dy is not None:
                self.dh += self.dy[t]
            step(t)
        return self._parameter_gradients(steps, batch)

    def _send_back(self, t: int, direct: np.ndarray | None = None) -> None:
        """dE/dh_{t-1} = da_rec_t U^T (+ the direct path), into self.dh."""
        self.arith.matmul(self.da_rec[t], self.params["recurrent_kernel"].T, out=self.dh_step)
        if direct is None:
            self.dh[...] = self.dh_step
        else:
            np.add(direct, self.dh_step, out=self.dh)

    def _rnn_backward(self, t: int) -> None:
        h, da = self.h[t + 1], self.da[t]
        np.multiply(h, h, out=da)
        np.subtract(1.0, da, out=da)
        da *= self.dh
        self._send_back(t)

    def _lstm_backward(self, t: int) -> None:
        u, gates, da, dc = self.units, self.a[t], self.da[t], self.dc
        i, f, g, o = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:3 * u], gates[:, 3 * u:]
        tanh_c, dh = self.tanh_c[t], self.dh
        d_i, d_f, d_g, d_o = da[:, :u], da[:, u:2 * u], da[:, 2 * u:3 * u], da[:, 3 * u:]
        np.multiply(dh, tanh_c, out=d_o)  # dE/do, then times o(1 - o)
        np.multiply(tanh_c, tanh_c, out=d_i)  # scratch: dc += dh o (1 - tanh(c)^2)
        np.subtract(1.0, d_i, out=d_i)
        d_i *= o
        d_i *= dh
        dc += d_i
        np.multiply(dc, g, out=d_i)
        np.multiply(dc, self.c[t], out=d_f)
        np.multiply(dc, i, out=d_g)
        dc *= f  # dc_{t-1}
        tmp = self.tmp
        for gate, value in ((d_i, i), (d_f, f), (d_o, o)):
            gate *= value
            np.subtract(1.0, value, out=tmp)
            gate *= tmp
        np.multiply(g, g, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        d_g *= tmp
        self._send_back(t)

    def _gru_backward(self, t: int) -> None:
        u, gates, da, rec, dh = self.units, self.a[t], self.da[t], self.da_rec[t], self.dh
        z, r, n, hh = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:], self.hw[t][:, 2 * u:]
        d_z, d_r, d_n = da[:, :u], da[:, u:2 * u], da[:, 2 * u:]
        tmp = self.tmp
        np.subtract(self.h[t], n, out=d_z)
        d_z *= dh
        d_z *= z
        np.subtract(1.0, z, out=tmp)
        d_z *= tmp
        np.multiply(tmp, dh, out=d_n)  # (1 - z) dh
        np.multiply(n, n, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        d_n *= tmp
        np.multiply(d_n, hh, out=d_r)
        d_r *= r
        np.subtract(1.0, r, out=tmp)
        d_r *= tmp
        rec[:, :2 * u] = da[:, :2 * u]
        np.multiply(d_n, r, out=rec[:, 2 * u:])
        np.multiply(dh, z, out=tmp)
        self._send_back(t, direct=tmp)

    def _parameter_gradients(self, steps: int, batch: int) -> np.ndarray | None:
        """dE/dW, dE/dU, dE/db over every timestep at once; dE/dx if needed."""
        flat = (steps * batch, -1)
        x, da, da_rec, h = (v.reshape(flat) for v in (self.x, self.da, self.da_rec, self.h[:steps]))
        g, arith = self.grads, self.arith
        g["kernel"][...] = arith.matmul(x.T, da)
        g["recurrent_kernel"][...] = arith.matmul(h.T, da_rec)
        if self.gru:
            g["bias"][0] = arith.bias_grad(da)
            g["bias"][1] = arith.bias_grad(da_rec)
        else:
            g["bias"][...] = arith.bias_grad(da)
        if not self.input_grad:
            return None
        dx = arith.matmul(self.da, self.params["kernel"].T)  # (T, B, F)
        return dx.transpose(1, 0, 2)


class BidirectionalLayer:
    """A recurrent layer forward over time and a second one (parameters
    ``"backward.<name>"``) over the reversed sequence; outputs concatenated,
    forward first, the backward sequence flipped back so that step t holds
    the state after reading x_T .. x_t (see :mod:`dlbench.network.sequence`).
    Backward: each direction gets its half of dE/dy (flipped for the backward
    one), and dE/dx is the forward dE/dx plus the backward one flipped back."""

    def __init__(self, spec, params: dict, grads: dict, input_grad: bool = True, arith: Arithmetic = PLAIN):
        self.units, self.sequences = spec.units, spec.layer.return_sequences
        self.directions = [RecurrentLayer(spec.layer, inner_parameters(params, d), inner_parameters(grads, d),
                                          input_grad, arith) for d in DIRECTIONS]

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        forward, backward = self.directions
        ahead = forward.forward(x, training)
        behind = backward.forward(np.ascontiguousarray(x[:, ::-1]), training)
        return np.concatenate([ahead, behind[:, ::-1] if self.sequences else behind], axis=-1)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        forward, backward = self.directions
        d_behind = dy[..., self.units:]
        dx = forward.backward(np.ascontiguousarray(dy[..., :self.units]))
        dx_behind = backward.backward(np.ascontiguousarray(d_behind[:, ::-1] if self.sequences else d_behind))
        return None if dx is None else dx + dx_behind[:, ::-1]
