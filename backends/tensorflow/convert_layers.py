"""Keras layers -> spec layers and canonical weights, for the graph reader
(:mod:`dlbench_backends.tensorflow.convert_graph`); the conventions are in
:mod:`dlbench_backends.tensorflow.convert`.

:func:`spec_layers` reads one layer's configuration (``get_config()``) on its
input shape and returns its spec layers (a Dense or convolution with a
leaky_relu or elu is two: the linear layer and the activation with Keras's
slope); :func:`layer_weights` gives their weights, Keras's own being
canonical but for MultiHeadAttention's ``(d, H, K)`` kernels, which are
reshaped to the flat ``(d, H*K)``, and a Bidirectional's, named
``forward.<name>`` and ``backward.<name>``. A setting the spec
cannot express raises an ``InputError`` whose message says what is wrong and
whose ``field`` says what would do.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dlbench.errors import InputError
from dlbench.network import (GRU, LSTM, Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D,
                          Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAveragePool1D, GlobalAveragePool2D,
                          GlobalMaxPool1D, GlobalMaxPool2D, LayerNormalization, MaxPool1D, MaxPool2D, SelfAttention,
                          SimpleRNN)
from dlbench.network.sequence import Bidirectional

#: Keras activation names -> the spec's (``gelu`` is Keras's exact form, ``approximate=False``)
ACTIVATIONS = {"linear": "linear", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
               "gelu": "gelu_erf", "silu": "silu", "swish": "silu", "elu": "elu", "leaky_relu": "leaky_relu"}
#: ``keras.activations.leaky_relu``'s own slope, which a Dense(activation="leaky_relu") uses
KERAS_LEAKY_SLOPE = 0.2
POOLS = {"MaxPooling1D": MaxPool1D, "MaxPooling2D": MaxPool2D, "AveragePooling1D": AveragePool1D,
         "AveragePooling2D": AveragePool2D}
GLOBAL_POOLS = {"GlobalAveragePooling1D": GlobalAveragePool1D, "GlobalAveragePooling2D": GlobalAveragePool2D,
                "GlobalMaxPooling1D": GlobalMaxPool1D, "GlobalMaxPooling2D": GlobalMaxPool2D}
RNNS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
SUPPORTED = ("InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Conv1D", "Conv2D", *POOLS,
             *GLOBAL_POOLS, "Flatten", "Dropout", "BatchNormalization", "LayerNormalization", "Embedding", *RNNS,
             "Bidirectional (merge_mode='concat')",
             "MultiHeadAttention (self-attention)", "Add (x + f(x))", "nested Sequential")
NONE_FIELDS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
               "bias_constraint", "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
               "recurrent_regularizer", "recurrent_constraint", "embeddings_regularizer", "embeddings_constraint",
               "quantization_config", "lora_rank", "noise_shape", "renorm_clipping")


def check_settings(config: dict) -> None:
    """Settings no spec layer has: they must be off."""
    for key in NONE_FIELDS:
        if config.get(key) not in (None, 0):
            raise InputError(f"{key}={config[key]!r} has no counterpart in a dlbench spec", field=f"{key}=None")
    dtype = config.get("dtype")
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32"):
        raise InputError(f"dtype policy {policy!r}", field="float32")
    if config.get("data_format", "channels_last") != "channels_last":
        raise InputError(f"data_format={config['data_format']!r}", field="channels_last")


def activation(config: dict) -> str:
    """The spec's name of a layer's Keras activation."""
    act = config.get("activation", "linear")
    act = act if isinstance(act, str) else getattr(act, "__name__", repr(act))
    if act not in ACTIVATIONS:
        raise InputError(f"activation {act!r}", field="activation one of " + ", ".join(ACTIVATIONS))
    return ACTIVATIONS[act]


def activated(layer, config: dict) -> list:
    """``layer`` with its activation; a leaky_relu (Keras's slope 0.2, the spec's 0.01) or elu after it, linear."""
    act = activation(config)
    if act not in ("leaky_relu", "elu"):
        return [replace(layer, activation=act)]
    alpha = KERAS_LEAKY_SLOPE if act == "leaky_relu" else 1.0
    return [layer, Activation(act, alpha=alpha)]


def spec_layers(layer, shape: tuple | None) -> list:
    """The spec layers of one Keras layer on an input of ``shape`` (None: unknown, settings checked only)."""
    kind, config = type(layer).__name__, layer.get_config()
    if type(layer).__module__.split(".")[0] != "keras":
        raise InputError("a custom layer: its own call() is code, not a Keras layer dlbench can read", field="")
    if kind not in SUPPORTED and kind not in ("MultiHeadAttention", "Add", "Bidirectional"):
        raise InputError(f"{kind} layers cannot be read", field="")
    check_settings(config)
    if kind == "Dense":
        return activated(Dense(config["units"], use_bias=bool(config.get("use_bias", True))), config)
    if kind in ("Conv1D", "Conv2D"):
        return activated(conv(kind, config), config)
    if kind in POOLS:
        return [pool(kind, config)]
    if kind in GLOBAL_POOLS:
        return global_pool(kind, config, shape)
    if kind in RNNS:
        return [recurrent(kind, config)]
    if kind == "Bidirectional":
        return [bidirectional(layer, config)]
    if kind == "MultiHeadAttention":
        return [attention(config)]
    return [other(kind, config)]


def conv(kind: str, config: dict):
    if any(d != 1 for d in config.get("dilation_rate", (1,))) or config.get("groups", 1) != 1:
        raise InputError(f"dilation_rate={config.get('dilation_rate')}, groups={config.get('groups')}",
                         field="dilation_rate=1, groups=1")
    if config["padding"] not in ("valid", "same"):
        raise InputError(f"padding={config['padding']!r}", field="padding 'valid' or 'same'")
    cls = Conv1D if kind == "Conv1D" else Conv2D
    return cls(config["filters"], kernel_size=tuple(config["kernel_size"]), strides=tuple(config["strides"]),
               padding=config["padding"], use_bias=bool(config.get("use_bias", True)))


def pool(kind: str, config: dict):
    if config.get("padding", "valid") != "valid":
        raise InputError(f"padding={config['padding']!r} (dlbench pools do not pad)", field="padding='valid'")
    strides = config.get("strides")
    return POOLS[kind](pool_size=tuple(config["pool_size"]), strides=None if strides is None else tuple(strides))


def global_pool(kind: str, config: dict, shape: tuple | None) -> list:
    """Each Keras global pooling is the spec's."""
    if config.get("keepdims"):
        raise InputError("keepdims=True", field="keepdims=False")
    return [GLOBAL_POOLS[kind]()]


def recurrent(kind: str, config: dict):
    if config.get("return_state") or config.get("go_backwards") or config.get("stateful"):
        raise InputError("return_state, go_backwards or stateful", field="a stateless forward layer")
    if config.get("dropout") or config.get("recurrent_dropout"):
        raise InputError(f"dropout={config.get('dropout')}, recurrent_dropout={config.get('recurrent_dropout')} "
                         "(dropout inside the recurrence)", field="dropout=0, recurrent_dropout=0 (a Dropout layer)")
    if config.get("activation") != "tanh" or config.get("recurrent_activation", "sigmoid") != "sigmoid" \
            or not config.get("use_bias", True) or (kind == "GRU" and not config.get("reset_after", True)):
        raise InputError("an activation other than tanh/sigmoid, use_bias=False or reset_after=False",
                         field="activation='tanh', recurrent_activation='sigmoid', use_bias=True, reset_after=True")
    return RNNS[kind](config["units"], return_sequences=bool(config.get("return_sequences")))


def bidirectional(layer, config: dict):
    """``Bidirectional(rnn)``, outputs concatenated forward first (``merge_mode="concat"``), the backward layer
    the forward one's mirror (``go_backwards``, Keras's default ``backward_layer``)."""
    if config.get("merge_mode") != "concat":
        raise InputError(f"merge_mode={config.get('merge_mode')!r}", field="merge_mode='concat'")
    forward, backward = layer.forward_layer, layer.backward_layer
    kinds = (type(forward).__name__, type(backward).__name__)
    if kinds[0] not in RNNS or kinds[1] != kinds[0]:
        raise InputError(f"a Bidirectional of {kinds[0]} and {kinds[1]}", field="Bidirectional(LSTM|GRU|SimpleRNN)")
    ours, theirs = forward.get_config(), backward.get_config()
    spec = recurrent(kinds[0], ours)
    mirrored = {**theirs, "go_backwards": False, "name": ours["name"]}
    if recurrent(kinds[1], mirrored) != spec or not theirs.get("go_backwards"):
        raise InputError("a backward layer that is not the forward one's mirror", field="Bidirectional(rnn)")
    return Bidirectional(spec)


def attention(config: dict):
    value_dim = config.get("value_dim") or config["key_dim"]
    axes = config.get("attention_axes")
    if config.get("dropout") or value_dim != config["key_dim"] or not config.get("use_bias", True) \
            or config.get("output_shape") is not None or axes not in (None, (1,), [1]) \
            or config.get("use_gate") or config.get("sliding_window") is not None:
        raise InputError(f"dropout={config.get('dropout')}, value_dim={config.get('value_dim')}, use_bias="
                         f"{config.get('use_bias')}, output_shape, attention_axes={axes}, use_gate or "
                         "sliding_window (the spec's attention has no dropout, value_dim = key_dim, biases, "
                         "attends over time)", field="MultiHeadAttention(num_heads, key_dim) without dropout")
    return SelfAttention(config["num_heads"], config["key_dim"])


def other(kind: str, config: dict):
    if kind == "Flatten":
        return Flatten()
    if kind == "Dropout":
        return Dropout(float(config["rate"]))
    if kind == "BatchNormalization":
        if config.get("axis") not in (-1, [-1]) or not (config.get("center") and config.get("scale")) \
                or config.get("renorm") or config.get("synchronized"):
            raise InputError("a BatchNormalization other than over the last axis with center and scale",
                             field="axis=-1, center=True, scale=True, renorm=False, synchronized=False")
        return BatchNormalization(momentum=float(config["momentum"]), epsilon=float(config["epsilon"]))
    if kind == "LayerNormalization":
        if config.get("axis") not in (-1, [-1]) or not (config.get("center") and config.get("scale")) \
                or config.get("rms_scaling"):
            raise InputError("a LayerNormalization other than over the last axis with center and scale",
                             field="axis=-1, center=True, scale=True, rms_scaling=False")
        return LayerNormalization(epsilon=float(config["epsilon"]))
    if kind == "Embedding":
        if config.get("mask_zero"):
            raise InputError("mask_zero=True (masks the layers after it)", field="mask_zero=False")
        return Embedding(config["input_dim"], config["output_dim"])
    if kind in ("ReLU", "LeakyReLU"):
        if config.get("max_value") is not None or config.get("threshold"):
            raise InputError("a ReLU with max_value or threshold", field="ReLU(), ReLU(negative_slope=a), LeakyReLU(a)")
        slope = float(config.get("negative_slope") or 0.0)
        return Activation("leaky_relu", alpha=slope) if kind == "LeakyReLU" or slope else Activation("relu")
    if kind == "ELU":
        return Activation("elu", alpha=float(config["alpha"]))
    if kind == "Softmax":
        if config.get("axis", -1) not in (-1, [-1]):
            raise InputError(f"softmax over axis {config['axis']}", field="axis=-1")
        return Activation("softmax")
    act = activation(config)
    return Activation(act, alpha=KERAS_LEAKY_SLOPE if act == "leaky_relu" else None)


RECURRENT_WEIGHTS = ("kernel", "recurrent_kernel", "bias")


def layer_weights(layer, specs: list) -> list:
    """The canonical weights of each of ``specs`` (the spec layers of ``layer``)."""
    arrays = [np.asarray(w, np.float32) for w in layer.get_weights()]
    found = []
    for spec in specs:
        if isinstance(spec, SelfAttention):
            found.append(attention_weights(arrays))
            continue
        if isinstance(spec, Bidirectional):
            half = len(arrays) // 2
            names = RECURRENT_WEIGHTS
            found.append({f"{d}.{n}": a for d, part in (("forward", arrays[:half]), ("backward", arrays[half:]))
                          for n, a in zip(names, part)})
            continue
        names = {Dense: ("kernel", "bias"), Conv1D: ("kernel", "bias"), Conv2D: ("kernel", "bias"),
                 BatchNormalization: ("gamma", "beta", "moving_mean", "moving_variance"),
                 LayerNormalization: ("gamma", "beta"), Embedding: ("embeddings",),
                 SimpleRNN: ("kernel", "recurrent_kernel", "bias"), LSTM: ("kernel", "recurrent_kernel", "bias"),
                 GRU: ("kernel", "recurrent_kernel", "bias")}.get(type(spec), ())
        found.append(dict(zip(names, arrays)))
    return found


def attention_weights(arrays: list) -> dict:
    """Keras's query/key/value kernels (d, H, K), biases (H, K), output kernel (H, K, d): flat, head-major."""
    found = {}
    for k, part in enumerate(("query", "key", "value")):
        kernel, bias = arrays[2 * k], arrays[2 * k + 1]
        found[f"{part}_kernel"] = kernel.reshape(kernel.shape[0], -1)
        found[f"{part}_bias"] = bias.reshape(-1)
    output = arrays[6]
    found["output_kernel"] = output.reshape(-1, output.shape[-1])
    found["output_bias"] = arrays[7]
    return found
