"""A Keras Sequential or functional model read as a chain of spec layers.

A functional model is a graph of nodes (a layer or an operation such as
``x + y`` called on Keras tensors); the nodes are taken from the output back
to the input (``_keras_history``) and walked inputs first. Each tensor of the
model is a :class:`KTensor`; only the *head* (the last result of the chain)
may be read by the next layer, except by an ``Add`` (a layer, or ``+``) of
the head and an earlier head, which turns the layers since it into a
``residual`` block. A layer called at several nodes is applied at each when
it has no weights; with weights it ties them, which a spec cannot express.
Every node that cannot be read is recorded with its name and the walk goes on
(shapes after it unknown), so one error lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.errors import InputError
from dlbench.network import Residual, SelfAttention
from dlbench_backends.tensorflow import convert_layers as cl


@dataclass(eq=False)
class KTensor:
    """A tensor of the model: its shape without the batch axis (None once a part could not be read)."""

    shape: tuple | None


def graph_nodes(model) -> list:
    """(operation, node) of every node from the input to the output, inputs first."""
    order, seen = [], set()

    def visit(tensor):
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.arguments.keras_tensors:
            visit(parent)
        order.append((operation, node))

    visit(model.outputs[0])
    return order


@dataclass
class ChainReader:
    """Reads nodes (or a Sequential's layers) into ``layers`` [(spec layer, weights)] and ``problems``."""

    keras: object
    x: KTensor

    def __post_init__(self):
        self.layers, self.problems, self.history, self.values = [], [], [(self.x, 0)], {}
        self.head, self.index, self.calls = self.x, 0, {}

    def problem(self, name: str, kind: str, message: str, supported) -> None:
        self.problems.append((f"layer {self.index} ({name!r}, {kind}): {message}", tuple(supported)))
        self.head = KTensor(None)

    def read_layer(self, layer, value=None) -> KTensor:
        """One layer applied to the head (a nested Sequential: each of its layers)."""
        if isinstance(layer, self.keras.Sequential):
            for inner in layer.layers:
                value = self.read_layer(inner, value)
            return value
        kind = type(layer).__name__
        if kind == "InputLayer":
            return self.head
        try:
            if value is not None and value is not self.head:
                raise InputError("reads an earlier result, not the last one: the graph branches",
                                 field="a chain, residual adds x + f(x)")
            self.push(layer, cl.spec_layers(layer, self.head.shape))
        except InputError as exc:
            self.problem(layer.name, kind, exc.message, [exc.field] if exc.field else cl.SUPPORTED)
        self.index += 1
        return self.head

    def push(self, layer, specs: list) -> None:
        if self.head.shape is None or self.problems:
            self.head = KTensor(None)
            return
        shape = self.head.shape
        for spec in specs:
            shape = spec.output_shape(shape)
        self.layers.extend(zip(specs, cl.layer_weights(layer, specs)))
        self.head = KTensor(tuple(shape))
        self.history.append((self.head, len(self.layers)))

    def read_node(self, operation, node) -> None:
        """One node of a functional graph: the tensor it makes becomes ``values[its output]``."""
        inputs = [self.values.get(id(t)) for t in node.arguments.keras_tensors]
        kind, name = type(operation).__name__, operation.name
        if kind == "InputLayer":
            value = self.x if not self.values else KTensor(None)
            if self.values:
                self.problem(name, kind, "a second input; a spec has one", ["a model of one input"])
        elif kind == "Add" and len(inputs) == 2:
            value = self.add(name, inputs)
            self.index += 1
        elif kind == "MultiHeadAttention":
            value = self.attention(operation, node, inputs)
        elif isinstance(operation, self.keras.Model) and not isinstance(operation, self.keras.Sequential):
            self.problem(name, kind, "a nested functional model", ["its layers in the outer model"])
            value = self.head
        elif len(inputs) != 1 or not isinstance(operation, self.keras.layers.Layer):
            self.problem(name, kind, f"an operation on {len(inputs)} tensors", cl.SUPPORTED)
            value = self.head
        else:
            value = self.called(operation, node, inputs[0])
        for tensor in node.output_tensors:
            self.values[id(tensor)] = value

    def called(self, layer, node, value) -> KTensor:
        """A layer called on ``value``: a second call of a layer with weights ties them."""
        first = self.calls.setdefault(id(layer), node)
        if first is not node and layer.weights:
            self.problem(layer.name, type(layer).__name__, "the layer is called at two places: its weights are "
                         "shared (tied), which a spec cannot express", ["a layer with weights called once"])
            self.index += 1
            return self.head
        extra = {k: v for k, v in node.arguments.kwargs.items() if v is not None and k not in ("training", "mask")}
        if extra:
            self.problem(layer.name, type(layer).__name__, f"called with {', '.join(extra)}", ["layer(x) alone"])
            self.index += 1
            return self.head
        return self.read_layer(layer, value)

    def add(self, name: str, inputs: list) -> KTensor:
        """``x + f(x)``: the layers since ``x`` become one residual block."""
        a, b = inputs
        other = b if a is self.head else a if b is self.head else None
        start = next((pos for value, pos in self.history if value is other), None)
        if self.problems:
            return self.head
        if other is None or start is None or start >= len(self.layers) or other.shape != self.head.shape:
            self.problem(name, "Add", "an addition that is not x + f(x) (x an earlier result of the chain, f(x) "
                         "of its shape)", ["residual adds x + f(x)"])
            return self.head
        inner = self.layers[start:]
        weights = {f"{j}.{key}": w for j, (_, ws) in enumerate(inner) for key, w in ws.items()}
        del self.layers[start:]
        self.history = [(value, pos) for value, pos in self.history if pos <= start]
        self.layers.append((Residual(tuple(layer for layer, _ in inner)), weights))
        self.head = KTensor(other.shape)
        self.history.append((self.head, len(self.layers)))
        return self.head

    def attention(self, layer, node, inputs) -> KTensor:
        """``mha(x, x)`` (or ``(x, x, x)``): self-attention, causal with ``use_causal_mask=True``."""
        kwargs = node.arguments.kwargs
        if len(set(map(id, inputs))) != 1 or kwargs.get("attention_mask") is not None \
                or kwargs.get("return_attention_scores") or kwargs.get("query_mask") is not None:
            self.problem(layer.name, "MultiHeadAttention", "attention other than self-attention mha(x, x) (a "
                         "second sequence, an attention_mask or returned scores)", ["mha(x, x, use_causal_mask=...)"])
            self.index += 1
            return self.head
        before = len(self.layers)
        value = self.read_layer(layer, inputs[0])
        if kwargs.get("use_causal_mask") and len(self.layers) > before:
            spec, weights = self.layers[-1]
            self.layers[-1] = (SelfAttention(spec.num_heads, spec.key_dim, causal=True), weights)
        return value
