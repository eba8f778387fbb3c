"""The NumPy backend's activations, written from scratch: each maps dE/dy to
dE/dx = f'(x) * dE/dy (softmax: s * (g - sum(g*s))), with the conventions of
:mod:`dlbench.network.activations`:

* GELU, tanh form (``gelu``, ``gelu_tanh``): y = x (1 + tanh(u)) / 2 with
  u = c (x + a x^3), c = sqrt(2/pi), a = 0.044715;
  dy/dx = (1 + t) / 2 + x (1 - t^2) c (1 + 3 a x^2) / 2.
* GELU, erf form (``gelu_erf``): y = x Phi(x), Phi(x) = (1 + erf(x / sqrt(2))) / 2
  (SciPy's erf); dy/dx = Phi(x) + x exp(-x^2 / 2) / sqrt(2 pi).
* leaky_relu: y = x (x > 0), alpha x (else); dy/dx = 1 or alpha (alpha at 0).
* elu: y = x (x > 0), alpha expm1(x) (else); dy/dx = 1 or y + alpha (= alpha e^x).
* silu: y = x s, s = sigmoid(x); dy/dx = s (1 + x (1 - s)).
"""

from __future__ import annotations

import numpy as np

from dlbench.network.activations import ACTIVATION_ALPHA

GELU_C, GELU_A = np.sqrt(2.0 / np.pi), 0.044715
SQRT_HALF, INV_SQRT_2PI = float(np.sqrt(0.5)), float(1.0 / np.sqrt(2.0 * np.pi))  # weak scalars: x's dtype

#: the activations that write their output into their input, and those whose backward reads their output
WRITES_INPUT = {"relu", "sigmoid", "tanh", "softmax", "gelu", "gelu_tanh"}
KEEPS_OUTPUT = {"relu", "sigmoid", "tanh", "softmax"}


class ActivationLayer:
    """y = f(x) elementwise; forward and backward work in place."""

    params: dict = {}
    grads: dict = {}

    def __init__(self, name: str, alpha: float | None = None):
        self.name, self.alpha = name, ACTIVATION_ALPHA.get(name) if alpha is None else alpha
        self.y = None
        # forward(x, training) and backward(dy) are the activation's own methods, bound
        # once: no dispatch per call (a batch-1 prediction is a few microseconds)
        self.forward = getattr(self, f"_{name}_forward")
        self.backward = getattr(self, f"_{name}_backward")

    def copy_input(self) -> None:
        """Work on a copy of the input: the activation before keeps it for its backward pass."""
        forward = self.forward
        self.forward = lambda x, training=True: forward(x.copy(), training)

    def _linear_forward(self, x, training=True):
        return x

    def _linear_backward(self, dy):
        return dy

    def _relu_forward(self, x, training=True):
        self.y = np.maximum(x, 0, out=x)
        return self.y

    def _relu_backward(self, dy):
        dy *= self.y > 0
        return dy

    def _sigmoid_forward(self, x, training=True):
        # 0.5 * (1 + tanh(x / 2)): the logistic function without overflow in exp.
        x *= 0.5
        y = np.tanh(x, out=x)
        y += 1.0
        y *= 0.5
        self.y = y
        return y

    def _sigmoid_backward(self, dy):
        dy *= self.y
        dy *= 1.0 - self.y
        return dy

    def _tanh_forward(self, x, training=True):
        self.y = np.tanh(x, out=x)
        return self.y

    def _tanh_backward(self, dy):
        dy *= 1.0 - self.y * self.y
        return dy

    def _gelu_forward(self, x, training=True):
        self.x = x.copy()
        u = x * x
        u *= GELU_A
        u += 1.0
        u *= x
        u *= GELU_C
        self.t = np.tanh(u, out=u)
        y = np.add(self.t, 1.0, out=x)
        y *= self.x
        y *= 0.5
        return y

    def _gelu_backward(self, dy):
        x, t = self.x, self.t
        slope = (1.0 - t * t) * x * GELU_C * (1.0 + 3.0 * GELU_A * x * x)
        slope += 1.0 + t
        slope *= 0.5
        dy *= slope
        return dy

    _gelu_tanh_forward, _gelu_tanh_backward = _gelu_forward, _gelu_backward

    # The activations below never write into their input: a layer before may still hold it
    # for its own backward pass (a max-pool compares its input with its output).
    def _gelu_erf_forward(self, x, training=True):
        from scipy.special import erf  # imported on first use: listing backends stays instant

        self.x = x
        self.phi = erf(x * SQRT_HALF)
        self.phi += 1.0
        self.phi *= 0.5
        return x * self.phi

    def _gelu_erf_backward(self, dy):
        x = self.x
        slope = np.exp(-0.5 * x * x)
        slope *= x
        slope *= INV_SQRT_2PI
        slope += self.phi
        dy *= slope
        return dy

    def _leaky_relu_forward(self, x, training=True):
        self.negative = x <= 0
        return np.multiply(x, self.alpha, out=x.copy(), where=self.negative)

    def _leaky_relu_backward(self, dy):
        np.multiply(dy, self.alpha, out=dy, where=self.negative)
        return dy

    def _elu_forward(self, x, training=True):
        self.negative = x <= 0
        y = np.expm1(x, out=x.copy(), where=self.negative)
        np.multiply(y, self.alpha, out=y, where=self.negative)
        self.slope = y + self.alpha  # alpha e^x where x <= 0 (its own array: y may be overwritten after)
        return y

    def _elu_backward(self, dy):
        np.multiply(dy, self.slope, out=dy, where=self.negative)
        return dy

    def _silu_forward(self, x, training=True):
        self.x = x
        self.s = self._sigmoid_forward(x.copy())
        return x * self.s

    def _silu_backward(self, dy):
        s = self.s
        slope = 1.0 - s
        slope *= self.x
        slope += 1.0
        slope *= s
        dy *= slope
        return dy

    def _softmax_forward(self, x, training=True):
        x -= x.max(axis=-1, keepdims=True)
        y = np.exp(x, out=x)
        y /= y.sum(axis=-1, keepdims=True)
        self.y = y
        return y

    def _softmax_backward(self, dy):
        s = self.y
        return s * (dy - np.sum(dy * s, axis=-1, keepdims=True))
