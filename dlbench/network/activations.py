"""The activations of the spec: names, formulas, slopes at 0 and defaults,
pinned once for every backend (``f'`` is what backpropagation uses, at 0 too).

* ``relu`` ``max(x, 0)``, ``f'(0) = 0``; ``sigmoid``, ``tanh``; ``softmax``
  over the last axis; ``linear`` the identity.
* ``leaky_relu`` (``alpha``): ``x`` for ``x > 0``, ``alpha x`` otherwise, and
  ``f'(0) = alpha`` (as torch's and TensorFlow's kernels; ``jax.nn.leaky_relu``
  tests ``x >= 0`` and has slope 1 at 0). The spec's default ``alpha`` is
  **0.01**: Maas, Hannun & Ng 2013 (who introduced it), PyTorch's
  ``nn.LeakyReLU`` and ``jax.nn.leaky_relu``. Keras differs:
  ``keras.layers.LeakyReLU`` defaults to 0.3 and
  ``keras.activations.leaky_relu`` to 0.2; a reader of a Keras model writes its
  slope out.
* ``elu`` (``alpha``, default 1.0 everywhere): ``x`` for ``x > 0``, ``alpha
  (exp(x) - 1)`` otherwise, ``f'(x <= 0) = alpha exp(x)`` (Clevert, Unterthiner
  & Hochreiter 2016; torch's ``nn.ELU``, ``keras.activations.elu``,
  ``jax.nn.elu``).
* ``silu``: ``x sigmoid(x)`` (Elfwing, Uchibe & Doya 2018; swish with
  beta = 1, Ramachandran et al. 2017; torch ``nn.SiLU``, Keras ``silu``,
  ``jax.nn.silu``).
* GELU (Hendrycks & Gimpel 2016) in both of its forms, named unambiguously:
  ``gelu_erf``, the exact ``0.5 x (1 + erf(x / sqrt(2)))`` (the default of
  torch's ``nn.GELU()``, ``approximate="none"``, and of Keras's
  ``gelu``, ``approximate=False``; BERT's), and ``gelu_tanh``, the
  approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (GPT-2's;
  ``approximate="tanh"`` in torch, ``approximate=True`` in Keras and JAX, where
  it is ``jax.nn.gelu``'s default). The plain name ``gelu`` is
  ``gelu_tanh``: it meant that before both forms existed, and scenario files
  written then keep their meaning. The two forms differ by up to about 5e-4.

Only an ``activation`` layer takes ``alpha`` (a ``dense`` or convolution with
``activation = "leaky_relu"`` or ``"elu"`` has the default); ``alpha`` is a
non-negative number, refused for an activation without one.
"""

from __future__ import annotations

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "gelu_tanh", "gelu_erf", "leaky_relu", "elu",
               "silu")
#: the activations that take a parameter ``alpha``, with the spec's default for it
ACTIVATION_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def layer_activation(layer) -> str | None:
    return getattr(layer, "activation", None)


def activation_alpha(layer) -> float | None:
    """The ``alpha`` of a layer's activation (an ``activation`` layer's own, else
    the spec's default for a leaky_relu or elu), None for the others."""
    alpha = getattr(layer, "alpha", None)
    return ACTIVATION_ALPHA.get(layer_activation(layer)) if alpha is None else alpha
