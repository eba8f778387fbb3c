"""Keras 3 models -> dlbench specs (``dlbench.from_keras``, ``dlbench.benchmark(keras_model)``).

A ``Sequential``, or a functional model that is a chain (one input, each
layer fed by the previous one's output, one output), of the layers dlbench
knows; nested Sequentials are read as their layers. Each layer's
configuration (``get_config()``) becomes the spec layer's fields, and
anything the spec cannot express (a regularizer, dilation, "causal" or
pooling "same" padding, another activation, mixed precision) is refused
with the layer's index, name and what is supported. The compiled loss and
optimizer are read the same way (``loss=`` / ``optimizer=`` override them).

Conventions are Keras's already: channels-last, canonical kernel layouts,
BatchNormalization's momentum is the weight of the old statistics. Two
differences are the spec's, and documented there: cross-entropy is computed
from logits (Keras clips probabilities), and Adam's epsilon is added after
the bias correction (Keras adds it to the uncorrected root), so ``epsilon``
is taken as it is. The learning rate, which Keras keeps in float32, is read
back as the decimal the user wrote (``dlbench.spec.imported.literal``).

Only the model's own ``keras`` module is used (whatever its backend): layer
configurations and ``get_weights()`` are framework-free.
"""

from __future__ import annotations

import sys

from dlbench.errors import InputError, one_of
from dlbench.spec import (SGD, Activation, Adam, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D,
                          Dense, Dropout, Flatten, MaxPool1D, MaxPool2D, ModelSpec, make_optimizer)
from dlbench.spec.imported import LOGIT_OUTPUTS, ImportedModel, literal, unsupported

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
SUPPORTED = ("InputLayer", "Dense", "Activation", "ReLU", "Softmax", "Conv1D", "Conv2D", "MaxPooling1D",
             "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "Flatten", "Dropout", "BatchNormalization")
LOSSES = {"binary_crossentropy": "binary_crossentropy", "categorical_crossentropy": "categorical_crossentropy",
          "sparse_categorical_crossentropy": "categorical_crossentropy", "mse": "mse",
          "mean_squared_error": "mse"}
NONE_FIELDS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
               "bias_constraint", "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
               "quantization_config", "lora_rank", "noise_shape", "renorm_clipping")


def reads(model) -> bool:
    """Whether ``model`` is a Keras model (never imports Keras: an object of
    a module nobody imported cannot be one)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


def import_model(model, *, input_shape=None, loss=None, optimizer=None) -> ImportedModel:
    """The spec and canonical weights of ``model``; see the module notes."""
    keras = sys.modules["keras"]
    where = f"Keras model {model.name!r}"
    try:
        layers = chain(keras, model)
        shape = model_input_shape(model, input_shape)
        specs = [spec_layer(layer, i) for i, layer in enumerate(layers)]
        weights = [layer_weights(layer, s) for layer, s in zip(layers, specs)]
        loss_name, output = keras_loss(loss if loss is not None else getattr(model, "loss", None))
        chosen = keras_optimizer(keras, optimizer if optimizer is not None else getattr(model, "optimizer", None))
        if output:
            specs, weights = [*specs, Activation(output)], [*weights, {}]
        spec = ModelSpec(shape, tuple(specs), loss_name, chosen)
    except InputError as exc:
        raise exc.within(source=where) from None
    kind = "Sequential" if isinstance(model, keras.Sequential) else "functional model"
    return ImportedModel(spec, weights, f"keras-{model.name}",
                         f"Keras {kind} {model.name!r} ({len(layers)} layers)")


def chain(keras, model) -> list:
    """The model's layers in order, InputLayers left out; an error unless they form a chain."""
    if isinstance(model, keras.Sequential):
        found = []
        for layer in model.layers:
            found += chain(keras, layer) if isinstance(layer, keras.Sequential) else [layer]
        return [layer for layer in found if type(layer).__name__ != "InputLayer"]
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise InputError(f"a subclassed Keras model ({type(model).__name__} with its own call()) cannot be read; "
                         "expected a Sequential or a functional model that is a chain of layers", field="model")
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; expected a chain with "
                         "one of each", field="model")
    found, previous = [], inputs[0]
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            fed = layer.input
        except (AttributeError, ValueError):
            fed = None
        if fed is not previous:
            raise unsupported(len(found), f"{layer.name!r}, {type(layer).__name__}", "the model is not a chain: "
                              "this layer is not fed by the previous layer's output alone",
                              ["Sequential models", "functional chains"])
        found.append(layer)
        previous = layer.output
    if previous is not outputs[0]:
        raise InputError("the model's output is not its last layer's; expected a chain", field="model")
    return found


def model_input_shape(model, given) -> tuple:
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        shape = None
    if shape is None:
        if given is None:
            raise InputError("the model has no input shape yet; start it with keras.Input(shape=...) or pass "
                             "input_shape=", field="input_shape")
        model.build((None, *given))
        return tuple(given)
    return tuple(shape[1:])


def _check(config: dict, index: int, name: str) -> None:
    """Settings no spec layer has: they must be off."""
    for key in NONE_FIELDS:
        if config.get(key) not in (None, 0):
            raise unsupported(index, name, f"{key}={config[key]!r} has no counterpart in a dlbench spec",
                              [f"{key}=None"])
    dtype = config.get("dtype")
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32"):
        raise unsupported(index, name, f"dtype policy {policy!r}", ["float32"])
    if config.get("data_format", "channels_last") != "channels_last":
        raise unsupported(index, name, f"data_format={config['data_format']!r}", ["channels_last"])


def _activation(config: dict, index: int, name: str) -> str:
    act = config.get("activation", "linear")
    act = act if isinstance(act, str) else getattr(act, "__name__", repr(act))
    if act not in ACTIVATIONS:
        raise unsupported(index, name, f"activation {act!r}", ACTIVATIONS)
    return act


def spec_layer(layer, index: int):
    """The spec layer of one Keras layer."""
    kind, config = type(layer).__name__, layer.get_config()
    name = f"{layer.name!r}, {kind}"
    if kind not in SUPPORTED:
        raise unsupported(index, name, f"{kind} layers cannot be read", SUPPORTED)
    _check(config, index, name)
    if kind in ("Dense", "Conv1D", "Conv2D") and not config.get("use_bias", True):
        raise unsupported(index, name, "use_bias=False (every dlbench Dense and Conv has a bias)", ["use_bias=True"])
    if kind == "Dense":
        return Dense(config["units"], activation=_activation(config, index, name))
    if kind in ("Conv1D", "Conv2D"):
        return _conv(kind, config, index, name)
    if kind.endswith(("Pooling1D", "Pooling2D")):
        return _pool(kind, config, index, name)
    return _other(kind, config, index, name)


def _conv(kind: str, config: dict, index: int, name: str):
    if any(d != 1 for d in config.get("dilation_rate", (1,))) or config.get("groups", 1) != 1:
        raise unsupported(index, name, f"dilation_rate={config.get('dilation_rate')}, groups={config.get('groups')}",
                          ["dilation_rate=1", "groups=1"])
    if config["padding"] not in ("valid", "same"):
        raise unsupported(index, name, f"padding={config['padding']!r}", ["'valid'", "'same'"])
    cls = Conv1D if kind == "Conv1D" else Conv2D
    return cls(config["filters"], kernel_size=tuple(config["kernel_size"]), strides=tuple(config["strides"]),
               padding=config["padding"], activation=_activation(config, index, name))


def _pool(kind: str, config: dict, index: int, name: str):
    if config.get("padding", "valid") != "valid":
        raise unsupported(index, name, f"padding={config['padding']!r} (dlbench pools do not pad)", ["'valid'"])
    cls = {"MaxPooling1D": MaxPool1D, "MaxPooling2D": MaxPool2D, "AveragePooling1D": AveragePool1D,
           "AveragePooling2D": AveragePool2D}[kind]
    strides = config.get("strides")
    return cls(pool_size=tuple(config["pool_size"]), strides=None if strides is None else tuple(strides))


def _other(kind: str, config: dict, index: int, name: str):
    if kind == "Flatten":
        return Flatten()
    if kind == "Dropout":
        return Dropout(float(config["rate"]))
    if kind == "BatchNormalization":
        if config.get("axis") not in (-1, [-1]) or not (config.get("center") and config.get("scale")) \
                or config.get("renorm") or config.get("synchronized"):
            raise unsupported(index, name, "a BatchNormalization other than over the last axis with center and "
                              "scale", ["axis=-1, center=True, scale=True, renorm=False, synchronized=False"])
        return BatchNormalization(momentum=float(config["momentum"]), epsilon=float(config["epsilon"]))
    if kind == "ReLU":
        if config.get("max_value") is not None or config.get("negative_slope") or config.get("threshold"):
            raise unsupported(index, name, "a ReLU with max_value, negative_slope or threshold", ["ReLU()"])
        return Activation("relu")
    if kind == "Softmax":
        if config.get("axis", -1) not in (-1, [-1]):
            raise unsupported(index, name, f"softmax over axis {config['axis']}", ["axis=-1"])
        return Activation("softmax")
    return Activation(_activation(config, index, name))


def layer_weights(layer, spec) -> dict:
    """One layer's weights in the canonical layout (Keras's are canonical)."""
    import numpy as np

    arrays = [np.asarray(w, np.float32) for w in layer.get_weights()]
    names = {Dense: ("kernel", "bias"), Conv1D: ("kernel", "bias"), Conv2D: ("kernel", "bias"),
             BatchNormalization: ("gamma", "beta", "moving_mean", "moving_variance")}.get(type(spec), ())
    return dict(zip(names, arrays))


def keras_loss(loss) -> tuple[str, str | None]:
    """(the spec's loss, the output activation a logits loss implies or None)."""
    if loss is None:
        raise InputError("the model is not compiled: compile it with a loss and an optimizer, or pass loss= and "
                         "optimizer=", field="loss")
    if isinstance(loss, str):
        config = {"name": loss}
    elif hasattr(loss, "get_config"):
        config = loss.get_config()
    else:
        config = {"name": getattr(loss, "__name__", repr(loss))}
    name = config.get("name")
    if name not in LOSSES:
        raise InputError(f"loss {name!r} cannot be read; {one_of(LOSSES)}", field="loss")
    for key, default in (("label_smoothing", 0.0), ("reduction", "sum_over_batch_size"), ("ignore_class", None),
                         ("axis", -1)):
        if config.get(key, default) != default:
            raise InputError(f"loss {name!r} with {key}={config[key]!r}; expected {key}={default!r}", field="loss")
    spec_loss = LOSSES[name]
    return spec_loss, LOGIT_OUTPUTS.get(spec_loss) if config.get("from_logits") else None


def keras_optimizer(keras, optimizer):
    """The spec's Adam or SGD of a Keras optimizer (or a dlbench optimizer, name or table)."""
    if optimizer is None:
        raise InputError("the model is not compiled: compile it with a loss and an optimizer, or pass loss= and "
                         "optimizer=", field="optimizer")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return make_optimizer(optimizer)
    kind, config = type(optimizer).__name__, optimizer.get_config()
    if kind not in ("Adam", "SGD"):
        raise InputError(f"optimizer {kind} cannot be read; expected one of Adam, SGD", field="optimizer")
    if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
        raise InputError("a learning-rate schedule cannot be read; expected a constant learning_rate",
                         field="optimizer")
    for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "gradient_accumulation_steps",
                "loss_scale_factor", "use_ema", "amsgrad", "nesterov"):
        if config.get(key):
            raise InputError(f"{kind} with {key}={config[key]!r} has no counterpart in a dlbench optimizer",
                             field="optimizer")
    lr = literal(config["learning_rate"])  # a float32 variable; the others are the Python floats given
    if kind == "SGD":
        return SGD(learning_rate=lr, momentum=float(config["momentum"]))
    return Adam(learning_rate=lr, beta_1=float(config["beta_1"]), beta_2=float(config["beta_2"]),
                epsilon=float(config["epsilon"]))
