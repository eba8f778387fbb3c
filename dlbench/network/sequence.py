"""Layer specs of sequence models: token embeddings and recurrent layers.

Shapes exclude the batch axis: a token sequence is ``(length,)`` of integer
ids, a sequence of vectors ``(time, features)``. A ``dense`` layer on a
``(time, features)`` input applies to every timestep (see
:class:`dlbench.network.layers.Dense`), so a language model ends in
``dense(vocab, softmax)`` over every position and its loss is the
categorical cross-entropy of every token (targets ``(batch, time)``).

Canonical parameter layouts (Keras's; every backend converts from them):

* Embedding: ``embeddings`` ``(input_dim, output_dim)``; row ``t`` is token
  ``t``'s vector. Initial values ``U(-0.05, 0.05)``, Keras's default.
* SimpleRNN (``k = 1``), LSTM (``k = 4``), GRU (``k = 3``): ``kernel``
  ``(features, k*units)``, ``recurrent_kernel`` ``(units, k*units)``, the
  gates side by side along the last axis; LSTM gates in the order
  ``i, f, c, o``, GRU gates ``z, r, h``. One ``bias`` ``(k*units,)``, except
  the GRU's ``(2, 3*units)``: row 0 the input-side bias, row 1 the
  recurrent-side bias (Keras's ``reset_after=True``, its default).
  Initial values: glorot-uniform kernels, orthogonal recurrent kernels,
  zero biases but the LSTM's forget gate, whose bias is 1 (Keras's
  ``unit_forget_bias=True``); see :mod:`dlbench.network.init`.

The maths (Keras's, ``sigma`` the logistic sigmoid, ``*`` elementwise, state
``h_0 = c_0 = 0``)::

    SimpleRNN  h_t = tanh(x_t W + h_{t-1} U + b)
    LSTM       [i f c~ o] = x_t W + h_{t-1} U + b
               c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(c~)
               h_t = sigma(o) * tanh(c_t)
    GRU        [xz xr xh] = x_t W + b_0;   [hz hr hh] = h_{t-1} U + b_1
               z = sigma(xz + hz);   r = sigma(xr + hr)
               h~ = tanh(xh + r * hh)
               h_t = z * h_{t-1} + (1 - z) * h~

With ``return_sequences`` the layer outputs every ``h_t`` ``(time, units)``,
otherwise the last one ``(units,)``.

``bidirectional`` (``layer``: a simple_rnn, lstm or gru) is Keras's
``Bidirectional(layer, merge_mode="concat")`` and torch's
``bidirectional=True`` (Schuster & Paliwal 1997): the layer once over
``x_1 .. x_T`` and once, with parameters of its own, over ``x_T .. x_1``;
the outputs concatenated along the features, forward first: with
``return_sequences`` ``[h_t, g_t]`` per timestep ``(time, 2 units)``, ``g_t``
the backward pass's state *at* ``t`` (after reading ``x_T .. x_t``), else
``[h_T, g_1]`` ``(2 units,)``, each direction's final state. The parameters
are the layer's, twice: ``"forward.<name>"`` then ``"backward.<name>"``, each
in the canonical layout above and initialised like it (forward first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlbench.errors import InputError
from dlbench.network.checks import Shape, check_positive_int, format_shape

#: the uniform range of the initial embeddings (Keras's ``RandomUniform(-0.05, 0.05)``).
EMBEDDING_INIT_RANGE = 0.05


@dataclass(frozen=True)
class Embedding:
    """Integer ids ``(length,)`` -> vectors ``(length, output_dim)``: ``y[t] = E[x[t]]``."""

    input_dim: int
    output_dim: int
    input_shape: Shape | None = None
    type: ClassVar[str] = "embedding"

    def __post_init__(self):
        check_positive_int(self.input_dim, "input_dim")
        check_positive_int(self.output_dim, "output_dim")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise InputError(f"embedding needs a 1-D input of token ids (length,), got shape "
                             f"{format_shape(input_shape)}")
        return (input_shape[0], self.output_dim)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"embeddings": (self.input_dim, self.output_dim)}


@dataclass(frozen=True)
class _Recurrent:
    units: int
    return_sequences: bool = False
    input_shape: Shape | None = None
    gates: ClassVar[int] = 1
    type: ClassVar[str] = ""

    def __post_init__(self):
        check_positive_int(self.units, "units")
        if not isinstance(self.return_sequences, bool):
            raise InputError(f"must be true or false, got {self.return_sequences!r}", field="return_sequences")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise InputError(f"{self.type} needs a 2-D input (time, features), got shape "
                             f"{format_shape(input_shape)}; an embedding layer makes one from token ids")
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        width = self.gates * self.units
        return {"kernel": (input_shape[-1], width), "recurrent_kernel": (self.units, width),
                "bias": (width,)}


@dataclass(frozen=True)
class SimpleRNN(_Recurrent):
    """h_t = tanh(x_t W + h_{t-1} U + b)."""

    gates: ClassVar[int] = 1
    type: ClassVar[str] = "simple_rnn"


@dataclass(frozen=True)
class LSTM(_Recurrent):
    """Long short-term memory, gates i, f, c, o (Keras's order and maths)."""

    gates: ClassVar[int] = 4
    type: ClassVar[str] = "lstm"


@dataclass(frozen=True)
class GRU(_Recurrent):
    """Gated recurrent unit with ``reset_after=True`` (Keras's default), gates z, r, h."""

    gates: ClassVar[int] = 3
    type: ClassVar[str] = "gru"

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        shapes = super().param_shapes(input_shape)
        return {**shapes, "bias": (2, 3 * self.units)}


RECURRENT_LAYERS = (SimpleRNN, LSTM, GRU)

#: the two directions of a bidirectional layer, in the order of its outputs and parameters
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class Bidirectional:
    """A recurrent ``layer`` run forward and, with weights of its own, backward
    over time; outputs concatenated (forward first)."""

    layer: SimpleRNN | LSTM | GRU
    input_shape: Shape | None = None
    type: ClassVar[str] = "bidirectional"

    def __post_init__(self):
        if not isinstance(self.layer, RECURRENT_LAYERS):
            raise InputError(f"must be a simple_rnn, lstm or gru layer, got {getattr(self.layer, 'type', self.layer)!r}",
                             field="layer")

    @property
    def units(self) -> int:
        return self.layer.units

    def output_shape(self, input_shape: Shape) -> Shape:
        try:
            out = self.layer.output_shape(input_shape)
        except InputError as exc:
            raise exc.within(field_prefix="layer") from None
        return (*out[:-1], 2 * out[-1])

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {f"{direction}.{name}": shape for direction in DIRECTIONS
                for name, shape in self.layer.param_shapes(input_shape).items()}

    def part(self, name: str):
        """(the wrapped layer, the name of parameter ``name`` there)."""
        return self.layer, name.split(".", 1)[1]


SEQUENCE_LAYERS = (Embedding, *RECURRENT_LAYERS, Bidirectional)


def takes_tokens(spec) -> bool:
    """Whether the model's input is integer token ids (its first layer is an embedding)."""
    return isinstance(spec.layers[0], Embedding)


def sequence_length(spec) -> int | None:
    """Tokens (timesteps) per sample when the input is a sequence (token ids, or
    (time, features) read by a recurrent layer first); None otherwise."""
    first = spec.layers[0]
    if isinstance(first, Embedding) or (isinstance(first, (*RECURRENT_LAYERS, Bidirectional))
                                        and len(spec.input_shape) == 2):
        return spec.input_shape[0]
    return None


def is_sequence_model(spec) -> bool:
    """Whether any layer is a sequence layer (its activations are (time, features))."""
    return any(isinstance(layer, SEQUENCE_LAYERS) for layer in spec.layers)
