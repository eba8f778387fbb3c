"""The template's trainer: a stack of dense layers and activations, trained by
hand-written backpropagation, in float32, as the contract says
(:mod:`dlbench.plugin.backend`): the loss from the logits ``z`` (the last
layer's activation ``f`` is the loss's), gradients averaged over the batch,
the spec's SGD and Adam updates (:mod:`dlbench.network.model`)."""

from __future__ import annotations

import math

import numpy as np

from dlbench.network import activation_alpha
from dlbench.plugin.backend import Trainer
from dlbench.plugin.helpers import evaluation_score, loss_targets

_erf = np.frompyfunc(math.erf, 1, 1)
_GELU_C = math.sqrt(2 / math.pi)


def activate(name: str, x: np.ndarray, alpha: float | None) -> np.ndarray:
    """f(x) for every activation of the spec (:mod:`dlbench.network.activations`)."""
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if name == "elu":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if name == "silu":
        return x * activate("sigmoid", x, None)
    if name == "gelu_erf":
        return (0.5 * x * (1 + _erf(x / math.sqrt(2)).astype(np.float64))).astype(x.dtype)
    if name in ("gelu", "gelu_tanh"):
        return 0.5 * x * (1 + np.tanh(_GELU_C * (x + 0.044715 * x ** 3)))
    return x  # linear


def activation_gradient(name: str, x: np.ndarray, y: np.ndarray, g: np.ndarray, alpha: float | None) -> np.ndarray:
    """dE/dx from dE/dy = ``g``, with y = f(x); the slopes at 0 are the spec's."""
    if name == "relu":
        return g * (x > 0)
    if name == "sigmoid":
        return g * y * (1 - y)
    if name == "tanh":
        return g * (1 - y * y)
    if name == "softmax":
        return y * (g - (g * y).sum(axis=-1, keepdims=True))
    if name == "leaky_relu":
        return g * np.where(x > 0, 1, alpha)
    if name == "elu":
        return g * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0)))
    if name == "silu":
        s = activate("sigmoid", x, None)
        return g * s * (1 + x * (1 - s))
    if name == "gelu_erf":
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (0.5 * (1 + _erf(x / math.sqrt(2)).astype(np.float64)) + x * pdf).astype(x.dtype)
    if name in ("gelu", "gelu_tanh"):
        t = np.tanh(_GELU_C * (x + 0.044715 * x ** 3))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * x * x))
    return g  # linear


class Layer:
    """One spec layer: a dense layer ``z = x W + b`` followed by its
    activation, or an activation alone (no parameters)."""

    def __init__(self, spec_layer, weights: dict):
        if spec_layer.type not in ("dense", "activation"):
            raise NotImplementedError(f"the template backend cannot build {spec_layer.type!r} layers")
        self.activation = spec_layer.activation
        self.alpha = activation_alpha(spec_layer)  # leaky_relu's and elu's, else None
        self.params = {name: np.array(value, np.float32) for name, value in weights.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.z = x @ self.params["kernel"] + self.params.get("bias", 0) if "kernel" in self.params else x
        self.y = activate(self.activation, self.z, self.alpha)
        return self.y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, dict]:
        """(dE/dx, {parameter: dE/dparameter})."""
        dz = activation_gradient(self.activation, self.z, self.y, g, self.alpha)
        if "kernel" not in self.params:
            return dz, {}
        grads = {"kernel": self.x.T @ dz, **({"bias": dz.sum(axis=0)} if "bias" in self.params else {})}
        return dz @ self.params["kernel"].T, grads


#: the losses :func:`loss_and_gradient` computes (their options at their defaults: no label smoothing)
LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse")


def loss_and_gradient(spec, z: np.ndarray, t: np.ndarray, alpha: float | None) -> tuple[float, np.ndarray]:
    """The spec's loss of logits ``z`` against targets ``t`` (float64, so a small
    cross-entropy keeps its digits) and dE/dz averaged over the batch."""
    z64, n = z.astype(np.float64), len(z)
    if spec.loss == "categorical_crossentropy":
        shifted = z64 - z64.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        loss = float(np.mean(log_sum - shifted[np.arange(n), t]))
        dz = np.exp(shifted - log_sum[:, None])
        dz[np.arange(n), t] -= 1
        return loss, (dz / n).astype(np.float32)
    if spec.loss == "binary_crossentropy":
        loss = float(np.mean(np.maximum(z64, 0) - z64 * t + np.log1p(np.exp(-np.abs(z64)))))
        return loss, ((activate("sigmoid", z64, None) - t) / n).astype(np.float32)
    y = activate(spec.output_activation, z64, alpha)  # mse on f(z)
    loss = float(np.mean((y - t) ** 2))
    dz = activation_gradient(spec.output_activation, z64, y, 2 * (y - t) / y.size, alpha)
    return loss, dz.astype(np.float32)


class Optimizer:
    """The spec's SGD (``v <- momentum v + g; W <- W - lr v``) and Adam (epsilon after bias correction)."""

    def __init__(self, config, params: list[dict]):
        self.config, self.params, self.step = config, params, 0
        self.m = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]
        self.v = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]

    def update(self, grads: list[dict]) -> None:
        c, self.step = self.config, self.step + 1
        for params, grad, m, v in zip(self.params, grads, self.m, self.v):
            for name, g in grad.items():
                if c.name == "sgd":
                    m[name] = c.momentum * m[name] + g
                    params[name] -= np.float32(c.learning_rate) * m[name]
                    continue
                m[name] = c.beta_1 * m[name] + (1 - c.beta_1) * g
                v[name] = c.beta_2 * v[name] + (1 - c.beta_2) * g * g
                m_hat = m[name] / (1 - c.beta_1 ** self.step)
                v_hat = v[name] / (1 - c.beta_2 ** self.step)
                params[name] -= (c.learning_rate * m_hat / (np.sqrt(v_hat) + c.epsilon)).astype(np.float32)


class TemplateTrainer(Trainer):
    def __init__(self, spec, weights, options):
        self.spec, self.device_name = spec, "cpu"
        self.keys = [list(layer) for layer in weights]  # the canonical names, in the caller's order
        self.layers = [Layer(layer, w) for layer, w in zip(spec.logit_layers(), weights)]
        if len(spec.input_shape) != 1:
            raise NotImplementedError(f"the template backend trains flat (features,) inputs only, "
                                      f"not {spec.input_shape}")
        if spec.loss not in LOSSES or any(spec.loss_kwargs.values()):  # never another loss computed instead
            raise NotImplementedError(f"the template backend computes {', '.join(LOSSES)} without options only, "
                                      f"not {spec.loss} {spec.loss_kwargs}")
        extras = {k: v for k, v in vars(spec.optimizer).items()
                  if k in ("nesterov", "weight_decay", "clip_global_norm", "clip_value", "schedule") and v}
        if spec.optimizer.name not in ("sgd", "adam") or extras:  # never another update computed instead
            raise NotImplementedError(f"the template backend updates with plain sgd and adam only, not "
                                      f"{spec.optimizer.name} {extras or ''}".rstrip())
        self.optimizer = Optimizer(spec.optimizer, [layer.params for layer in self.layers])

    def place_data(self, data) -> None:
        self.x, self.t = data.x_train.astype(np.float32), loss_targets(self.spec, data.y_train)
        self.x_test, self.y_test = data.x_test.astype(np.float32), data.y_test

    def logits(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train(self, indices: np.ndarray) -> np.ndarray:
        losses = np.empty(len(indices), np.float32)
        for i, rows in enumerate(indices):
            losses[i], g = loss_and_gradient(self.spec, self.logits(self.x[rows]), self.t[rows], self.spec.output_alpha)
            grads = []
            for layer in reversed(self.layers):
                g, layer_grads = layer.backward(g)
                grads.append(layer_grads)
            self.optimizer.update(grads[::-1])
        return losses

    def evaluate(self) -> tuple[float, float]:
        z = self.logits(self.x_test)
        loss, _ = loss_and_gradient(self.spec, z, loss_targets(self.spec, self.y_test), self.spec.output_alpha)
        return loss, evaluation_score(activate(self.spec.output_activation, z, self.spec.output_alpha), self.y_test)

    def weights(self) -> list[dict]:
        layers = [layer.params for layer in self.layers] + [{}] * (len(self.keys) - len(self.layers))
        return [{name: params[name].copy() for name in keys} for params, keys in zip(layers, self.keys)]
