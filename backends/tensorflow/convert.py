"""Keras 3 models -> dlbench specs (``dlbench.from_keras``, ``dlbench.benchmark(keras_model)``).

A ``Sequential`` or a functional model (see
:mod:`dlbench_backends.tensorflow.convert_graph`): a chain of the layers
dlbench knows, nested Sequentials read as their layers, every call of a
weightless layer, and residual adds ``x + f(x)`` (an ``Add()`` layer or
``+``) as the spec's ``residual`` blocks. Each layer's configuration
(``get_config()``) becomes the spec layer's fields; every layer or setting
the spec cannot express (a regularizer, dilation, "causal" or pooling "same"
padding, another activation, mixed precision, a custom layer, a second input
or a branch) is listed in one InputError, each with its index, name, class,
why and what is supported. The compiled loss and optimizer are read the same
way (``loss=`` / ``optimizer=`` override them).

Conventions are Keras's already: channels-last, canonical kernel layouts
(Embedding ``(vocab, dim)``; LSTM/GRU/SimpleRNN kernels ``(in, k*u)``,
gates i, f, c, o and z, r, h, the GRU's bias ``(2, 3u)`` with
``reset_after=True``), BatchNormalization's momentum is the weight of the
old statistics, LayerNormalization's epsilon is kept (Keras's default 1e-3).
MultiHeadAttention called as self-attention (``mha(x, x)``, causal with
``use_causal_mask=True``, no dropout, ``value_dim = key_dim``) holds its
kernels as ``(d, H, K)`` and ``(H, K, d)``: reshaped to the spec's flat,
head-major ``(d, H*K)`` and ``(H*K, d)``. Global average and max poolings
are the spec's (``keepdims=False``); the spec's max pooling sends a tied
maximum's gradient to the first maximum, TensorFlow's ``reduce_max`` splits
it between the ties (equal only without ties, as with float inputs).
``Bidirectional(LSTM|GRU|SimpleRNN)`` with ``merge_mode="concat"`` and the
default mirrored backward layer is the spec's ``bidirectional``: Keras's
forward then backward weights are ``forward.<name>`` and
``backward.<name>``. ``use_bias=False`` on a Dense or convolution is the
spec's. Activations: Keras's ``gelu`` is the exact (erf) form
(``approximate=False``), the spec's ``gelu_erf`` (the tanh form cannot be
named in a Keras config); ``silu`` / ``swish`` are ``silu``; ``elu`` and an
``ELU(alpha)`` layer are ``elu``; ``LeakyReLU(negative_slope)`` (default
0.3) and ``ReLU(negative_slope=a)`` are ``leaky_relu`` with that slope, and
the activation ``"leaky_relu"`` (``Dense(activation="leaky_relu")``, an
``Activation`` layer) has Keras's function default, slope 0.2: a linear
Dense (or convolution) then ``Activation("leaky_relu", alpha=0.2)``, as the
spec's own default slope is 0.01. Two differences are
the spec's, and documented there: cross-entropy is computed from logits
(Keras clips probabilities), and Adam's epsilon is added after the bias
correction (Keras adds it to the uncorrected root), so ``epsilon`` is taken
as it is. The learning rate, which Keras keeps in float32, is read back as
the decimal the user wrote (``dlbench.network.imported.literal``).

Only the model's own ``keras`` module is used (whatever its backend): layer
configurations and ``get_weights()`` are framework-free.
"""

from __future__ import annotations

import sys

from dlbench.errors import InputError, one_of
from dlbench.network import Activation, ModelSpec
from dlbench.network.imported import LOGIT_OUTPUTS, ImportedModel, all_problems
from dlbench_backends.tensorflow.convert_optimizer import keras_optimizer

LOSSES = {"binary_crossentropy": "binary_crossentropy", "categorical_crossentropy": "categorical_crossentropy",
          "sparse_categorical_crossentropy": "categorical_crossentropy", "mse": "mse",
          "mean_squared_error": "mse", "mae": "mae", "mean_absolute_error": "mae", "huber": "huber",
          "huber_loss": "huber"}


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
        shape = model_input_shape(model, input_shape)
        reader = read_chain(keras, model, shape)
        if reader.problems:
            from dlbench_backends.tensorflow.convert_layers import SUPPORTED

            raise all_problems(reader.problems, SUPPORTED)
        specs, weights = [layer for layer, _ in reader.layers], [w for _, w in reader.layers]
        loss_name, output = keras_loss(loss if loss is not None else getattr(model, "loss", None))
        chosen = keras_optimizer(keras, optimizer if optimizer is not None else getattr(model, "optimizer", None))
        if output:
            specs, weights = [*specs, Activation(output)], [*weights, {}]
        spec = ModelSpec(shape, tuple(specs), loss_name, chosen)
    except InputError as exc:
        raise exc.within(source=where) from None
    kind = "Sequential" if isinstance(model, keras.Sequential) else "functional model"
    return ImportedModel(spec, weights, f"keras-{model.name}",
                         f"Keras {kind} {model.name!r} ({len(spec.layers)} layers)")


def read_chain(keras, model, shape: tuple):
    """The model's layers as a chain (see convert_graph); a subclassed model cannot be read."""
    from dlbench_backends.tensorflow.convert_graph import ChainReader, KTensor, graph_nodes

    reader = ChainReader(keras, KTensor(shape))
    if isinstance(model, keras.Sequential):
        reader.read_layer(model)
        return reader
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise InputError(f"a subclassed Keras model ({type(model).__name__} with its own call()) cannot be read; "
                         "expected a Sequential or a functional model", field="model")
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; a spec has one of each",
                         field="model")
    for operation, node in graph_nodes(model):
        try:
            reader.read_node(operation, node)
        except Exception as exc:  # a node no rule foresaw: named, never a traceback
            from dlbench_backends.tensorflow.convert_layers import SUPPORTED

            reader.problem(operation.name, type(operation).__name__, f"cannot be read ({type(exc).__name__}: {exc})",
                           SUPPORTED)
            for tensor in node.output_tensors:
                reader.values[id(tensor)] = reader.head
    if not reader.problems and reader.values.get(id(outputs[0])) is not reader.head:
        reader.problems.append(("the model's output is not the chain's last result", ("one output",)))
    return reader


def model_input_shape(model, given) -> tuple:
    """One sample's shape: the model's, or ``given`` for a model never built or built for any length."""
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
    shape = tuple(shape[1:])
    if None in shape:
        if given is None or len(tuple(given)) != len(shape):
            raise InputError(f"the model takes samples of any size {shape}; pass input_shape= the size to train "
                             "on", field="input_shape")
        return tuple(given)
    return shape


def keras_loss(loss) -> tuple[str | dict, str | None]:
    """(the spec's loss, a name or a table with its options, and the output activation a logits loss
    implies or None). Keras's label smoothing and Huber's delta are the spec's (the same definitions)."""
    if loss is None:
        raise InputError("the model is not compiled: compile it with a loss and an optimizer, or pass loss= and "
                         "optimizer=", field="loss")
    if isinstance(loss, dict):
        return loss, None  # a dlbench loss table: ModelSpec checks it
    if isinstance(loss, str):
        config = {"name": loss}
    elif hasattr(loss, "get_config"):
        config = {**loss.get_config(), **getattr(loss, "_fn_kwargs", {})}  # Huber keeps its delta in _fn_kwargs
    else:
        config = {"name": getattr(loss, "__name__", repr(loss))}
    name = config.get("name")
    if name not in LOSSES:
        raise InputError(f"loss {name!r} cannot be read; {one_of(LOSSES)}", field="loss")
    for key, default in (("reduction", "sum_over_batch_size"), ("ignore_class", None), ("axis", -1)):
        if config.get(key, default) != default:
            raise InputError(f"loss {name!r} with {key}={config[key]!r}; expected {key}={default!r}", field="loss")
    spec_loss = LOSSES[name]
    options = {"delta": float(config.get("delta", 1.0))} if spec_loss == "huber" else {}
    if config.get("label_smoothing"):
        if spec_loss != "categorical_crossentropy":
            raise InputError(f"loss {name!r} with label_smoothing={config['label_smoothing']!r}; dlbench smooths "
                             "the labels of categorical_crossentropy only", field="loss")
        options["label_smoothing"] = float(config["label_smoothing"])
    output = LOGIT_OUTPUTS.get(spec_loss) if config.get("from_logits") else None
    return ({"name": spec_loss, **options} if options else spec_loss), output

