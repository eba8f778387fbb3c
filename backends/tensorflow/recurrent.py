"""The TensorFlow backend's recurrent layers: Keras's own ``SimpleRNN``,
``LSTM`` and ``GRU``, whose layouts are the canonical ones (kernel (F, k*u),
recurrent_kernel (u, k*u) with the gates in Keras's order, one bias, the
GRU's (2, 3u) with ``reset_after=True``), so the weights are assigned as
they are. Every setting that decides the maths is given explicitly (tanh,
sigmoid gates, the GRU's reset_after); the initializers do not matter (the
core's weights are assigned after building, ``unit_forget_bias`` included).
The variables live on the layer's cell.
"""

from __future__ import annotations

from dlbench.network.sequence import GRU, LSTM, SimpleRNN
from dlbench_backends.tensorflow.core import framework

tf, keras = framework()

ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "bias_initializer": "zeros"}


def recurrent_layer(layer):
    """The Keras layer computing one recurrent spec layer."""
    k = keras.layers
    common = dict(return_sequences=layer.return_sequences, activation="tanh", **ZEROS)
    if isinstance(layer, SimpleRNN):
        return k.SimpleRNN(layer.units, **common)
    if isinstance(layer, LSTM):
        return k.LSTM(layer.units, recurrent_activation="sigmoid", unit_forget_bias=False, **common)
    if isinstance(layer, GRU):
        return k.GRU(layer.units, recurrent_activation="sigmoid", reset_after=True, **common)
    raise NotImplementedError(f"the tensorflow backend cannot build {layer.type!r} layers")
