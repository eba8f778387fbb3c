"""The NumPy backend's layers, written from scratch: each has ``forward(x,
training)`` and ``backward(dy) -> dx``, keeps what backward needs, and writes
its parameter gradients into views of the network's flat gradient buffer.
(Every backend keeps the gradients it writes by hand in its ``kernels``
module; this backend writes all of them.)

Dense (input X (batch, in), kernel W (in, out), bias b):
    z = X W + b;   dE/dW = X^T dE/dz;   dE/db = sum_batch dE/dz;   dE/dX = dE/dz W^T

Convolution is a Dense layer over image patches (im2col): the patches of
the padded input are a strided view (``sliding_window_view``), copied once
into a (positions, C*kh*kw) matrix, and one BLAS matmul with the kernel
gives every output; backward is the transposed matmul for dE/dK, and
col2im — adding each kernel offset's patch gradient back in place — for
dE/dX, a loop over the kh*kw offsets, never over samples or pixels.
1-D layers are the 2-D ones with a height of 1.

Activations: :mod:`~dlbench_backends.numpy.activations`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlbench.plugin.helpers import as_2d, padding_pairs_2d, signal_as_image
from dlbench_backends.numpy.precision import PLAIN, Arithmetic



class DenseLayer:
    """z = X W + b; on a sequence X (batch, time, in) the same for every
    timestep, and the gradients sum over batch and time (X as (batch*time, in)).
    Without a ``bias`` among the parameters (``use_bias = false``): z = X W."""

    def __init__(self, params: dict, grads: dict, input_grad: bool = True, arith: Arithmetic = PLAIN):
        self.params, self.grads, self.input_grad, self.arith = params, grads, input_grad, arith
        self.x = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.x = x
        z = self.arith.matmul(x, self.params["kernel"])
        if "bias" in self.params:
            z += self.params["bias"]
        return z

    def backward(self, dz: np.ndarray) -> np.ndarray | None:
        x, dz2 = self.x, dz
        if dz.ndim > 2:  # a sequence: (batch*time, units)
            x, dz2 = x.reshape(-1, x.shape[-1]), dz.reshape(-1, dz.shape[-1])
        self.arith.matmul(x.T, dz2, out=self.grads["kernel"])
        if "bias" in self.grads:
            self.grads["bias"][...] = self.arith.bias_grad(dz2)
        return self.arith.matmul(dz, self.params["kernel"].T) if self.input_grad else None


def _as_2d(x: np.ndarray, ndim: int) -> np.ndarray:
    """(B, L, C) -> (B, 1, L, C) so that 1-D layers reuse the 2-D code."""
    return signal_as_image(x) if ndim == 1 else x


def _windows(x: np.ndarray, size: tuple, strides: tuple) -> np.ndarray:
    """Strided view (B, H', W', C, kh, kw) of every window of x (B, H, W, C)."""
    view = sliding_window_view(x, size, axis=(1, 2))
    return view[:, ::strides[0], ::strides[1]]


def _add_windows(dx: np.ndarray, dwin: np.ndarray, strides: tuple) -> None:
    """col2im: add window gradients dwin (B, H', W', C, kh, kw) back into dx (B, H, W, C)."""
    _, h, w = dwin.shape[:3]
    sh, sw = strides
    for i in range(dwin.shape[4]):
        for j in range(dwin.shape[5]):
            dx[:, i:i + sh * (h - 1) + 1:sh, j:j + sw * (w - 1) + 1:sw] += dwin[..., i, j]


class ConvLayer:
    """Conv1D/Conv2D by im2col and one matmul; kernel (kh, kw, C, F) canonical."""

    def __init__(self, spec, in_shape, params: dict, grads: dict, input_grad: bool = True, arith: Arithmetic = PLAIN):
        self.arith = arith
        self.ndim = spec.ndim
        self.kernel_size, self.strides = as_2d(spec, spec.kernel_size), as_2d(spec, spec.strides)
        height, width = padding_pairs_2d(spec, in_shape)
        self.pad = ((0, 0), height, width, (0, 0))
        self.params, self.grads, self.input_grad = params, grads, input_grad

    def _kernel_matrix(self, kernel: np.ndarray) -> np.ndarray:
        kh, kw, c, f = self.kernel_size + kernel.shape[-2:]
        return kernel.reshape(kh, kw, c, f).transpose(2, 0, 1, 3).reshape(c * kh * kw, f)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = _as_2d(x, self.ndim)
        self.x_shape = x.shape
        xp = np.pad(x, self.pad) if any(map(any, self.pad)) else x
        self.padded_shape = xp.shape
        win = _windows(xp, self.kernel_size, self.strides)  # (B, H', W', C, kh, kw)
        self.out_shape = win.shape[:3]
        self.cols = win.reshape(-1, win.shape[3] * win.shape[4] * win.shape[5])
        z = self.arith.matmul(self.cols, self._kernel_matrix(self.params["kernel"]))
        if "bias" in self.params:
            z += self.params["bias"]
        z = z.reshape(*self.out_shape, -1)
        return z[:, 0] if self.ndim == 1 else z

    def backward(self, dz: np.ndarray) -> np.ndarray | None:
        f = dz.shape[-1]
        dz2 = dz.reshape(-1, f)
        kh, kw = self.kernel_size
        c = self.x_shape[-1]
        dk = self.arith.matmul(self.cols.T, dz2).reshape(c, kh, kw, f).transpose(1, 2, 0, 3)
        self.grads["kernel"][...] = dk.reshape(self.grads["kernel"].shape)
        if "bias" in self.grads:
            self.grads["bias"][...] = self.arith.bias_grad(dz2)
        if not self.input_grad:
            return None
        dcols = self.arith.matmul(dz2, self._kernel_matrix(self.params["kernel"]).T).reshape(
            *self.out_shape, c, kh, kw)
        dxp = np.zeros(self.padded_shape, dz.dtype)
        _add_windows(dxp, dcols, self.strides)
        (_, _), (top, bottom), (left, right), _ = self.pad
        dx = dxp[:, top:dxp.shape[1] - bottom, left:dxp.shape[2] - right]
        return dx[:, 0] if self.ndim == 1 else dx


class PoolLayer:
    """MaxPool/AveragePool 1D/2D over windows of ``pool_size`` every ``strides``.

    Works one window offset at a time: each offset (i, j) is a strided slice
    of the input with the output's shape, so forward is kh*kw elementwise
    maximums (or sums) and backward routes each output's gradient to the first
    offset holding its maximum (or spreads it evenly) — no per-window argmax.
    Where a window's maximum is tied (a constant background: identical input
    patches give identical outputs) the reference routes to the first offset;
    with ``arith.reverse`` (the certificate's other-order twin) to the last,
    as a framework whose kernel rounds the tied values one ulp apart may.
    """

    params: dict = {}
    grads: dict = {}

    def __init__(self, spec, kind: str, arith: Arithmetic = PLAIN):
        self.ndim, self.kind, self.reverse = spec.ndim, kind, arith.reverse
        self.size, self.strides = as_2d(spec, spec.pool_size), as_2d(spec, spec.strides)

    def _slices(self, x: np.ndarray):
        """(offset slice of x, same slice of an array of x's shape) for each window offset."""
        (kh, kw), (sh, sw) = self.size, self.strides
        h = (x.shape[1] - kh) // sh + 1
        w = (x.shape[2] - kw) // sw + 1
        for i in range(kh):
            for j in range(kw):
                yield (slice(None), slice(i, i + sh * (h - 1) + 1, sh), slice(j, j + sw * (w - 1) + 1, sw))

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = _as_2d(x, self.ndim)
        self.x = x
        slices = list(self._slices(x))
        y = x[slices[0]].copy()
        combine = np.maximum if self.kind == "max" else np.add
        for index in slices[1:]:
            combine(y, x[index], out=y)
        if self.kind != "max":
            y /= len(slices)
        else:  # backward compares the input with the maximum: a private copy, since the layer
            self.y = y.copy()  # after (an activation working in place) may overwrite what is returned
        return y[:, 0] if self.ndim == 1 else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = _as_2d(dy, self.ndim)
        dx = np.zeros_like(self.x)
        if self.kind != "max":
            share = dy / (self.size[0] * self.size[1])
            for index in self._slices(self.x):
                dx[index] += share
        else:
            routed = np.zeros(self.y.shape, bool)  # the first maximum of each window takes the gradient
            slices = list(self._slices(self.x))
            for index in reversed(slices) if self.reverse else slices:
                hit = self.x[index] == self.y
                hit &= ~routed
                routed |= hit
                dx[index] += dy * hit
        return dx[:, 0] if self.ndim == 1 else dx


class GlobalPoolLayer:
    """Global average or max pooling, (B, ..., C) -> (B, C), over the positions
    seen as one axis (B, P, C): the mean (its gradient dE/dy / P everywhere), or
    the maximum, whose gradient goes to the first maximum (NumPy's argmax) by one
    put_along_axis; no loop over samples or positions."""

    params: dict = {}
    grads: dict = {}

    def __init__(self, kind: str, arith: Arithmetic = PLAIN):
        self.kind, self.arith = kind, arith

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.shape = x.shape
        positions = x.reshape(len(x), -1, x.shape[-1])
        if self.kind == "average":
            return self.arith.sum(positions, 1) / positions.shape[1]
        self.first = np.argmax(positions, axis=1)[:, None, :]
        return np.take_along_axis(positions, self.first, axis=1)[:, 0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        batch, channels = dy.shape
        count = self.shape[1:-1]
        n = int(np.prod(count))
        if self.kind == "average":
            dx = np.broadcast_to((dy / n)[:, None, :], (batch, n, channels)).copy()
        else:
            dx = np.zeros((batch, n, channels), dy.dtype)
            np.put_along_axis(dx, self.first, dy[:, None, :], axis=1)
        return dx.reshape(self.shape)


class FlattenLayer:
    params: dict = {}
    grads: dict = {}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.shape)


class DropoutLayer:
    """Inverted dropout: keep with probability 1 - rate, scale kept values by 1/(1 - rate)."""

    params: dict = {}
    grads: dict = {}

    def __init__(self, rate: float, rng: np.random.Generator):
        self.rate, self.rng = rate, rng
        self.mask = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self.mask = keep.astype(x.dtype) / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self.mask is None else dy * self.mask


class BatchNormLayer:
    """y = gamma (x - mean) / sqrt(var + eps) + beta over the last axis.

    Training uses the batch mean and biased variance and updates
    moving = momentum * moving + (1 - momentum) * batch; inference uses the
    moving statistics. Backward (N values per channel, x_hat normalized):
    dE/dx = (N dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat)) / (N sqrt(var + eps)),
    with dx_hat = gamma dE/dy.
    """

    def __init__(self, spec, params: dict, grads: dict, state: dict, arith: Arithmetic = PLAIN):
        self.momentum, self.epsilon = spec.momentum, spec.epsilon
        self.params, self.grads, self.state, self.arith = params, grads, state, arith

    def _statistics(self, x: np.ndarray, axes: tuple) -> tuple[np.ndarray, np.ndarray]:
        """The batch mean and biased variance, summed in ``arith``'s order
        (np.mean and np.var's own operations, bit for bit, in the forward one)."""
        n = x.size // x.shape[-1]
        mean = self.arith.sum(x, axes, keepdims=True) / n
        centred = x - mean
        return mean.reshape(x.shape[-1]), self.arith.sum(centred * centred, axes) / n

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        axes = tuple(range(x.ndim - 1))
        if training:
            mean, var = self._statistics(x, axes)
            m = self.momentum
            self.state["moving_mean"] *= m
            self.state["moving_mean"] += (1 - m) * mean
            self.state["moving_variance"] *= m
            self.state["moving_variance"] += (1 - m) * var
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
        self.inv_std = 1.0 / np.sqrt(var + self.epsilon)
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        axes = tuple(range(dy.ndim - 1))
        n = dy.size // dy.shape[-1]
        total = self.arith.sum
        self.grads["gamma"][...] = total(dy * self.x_hat, axes)
        self.grads["beta"][...] = total(dy, axes)
        dx_hat = dy * self.params["gamma"]
        return (n * dx_hat - total(dx_hat, axes) - self.x_hat * total(dx_hat * self.x_hat, axes)) \
            * (self.inv_std / n)
