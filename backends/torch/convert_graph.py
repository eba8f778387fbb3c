"""A torch module's traced graph read as a chain of spec layers.

The module is traced with ``torch.fx`` (symbolic tracing: every module call,
torch function and tensor method as one node, with the source line that made
it). fx rather than ``torch.export``: export needs a sample input, lowers
modules to aten operators (an ``nn.LSTM`` call becomes dozens of them) and
decomposes what fx keeps as the user wrote it; what fx cannot trace
(control flow on tensor values) is data-dependent, which no spec expresses
either, so it is refused with fx's own reason.

The graph is walked in order. Each tensor of the user's network is a
:class:`~dlbench_backends.torch.convert_layers.Tensor`; only the *head* (the
last result of the chain) may be read by the next layer, except by an
addition ``x + f(x)`` of an earlier head, which turns the layers since it
into a ``residual`` block. Sizes (``x.size(0)``), masks and initial states
made from sizes and constants are computed (the batch size is a
:class:`BatchSize`), so ``x.view(x.size(0), -1)`` and a causal mask built in
``forward`` are understood. Every part that cannot be read is recorded and
the walk goes on (shapes after it unknown), so one error lists them all.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import fx

from dlbench.errors import InputError
from dlbench.network import GRU, LSTM, PositionEmbedding, Residual, SimpleRNN
from dlbench.network.sequence import Bidirectional
from dlbench_backends.torch import convert_layers as cl
from dlbench_backends.torch.convert_calls import (FUNCTION_STEPS, SUPPORTED, BatchSize, Problem, causal_mask,
                                                  torch_function_names)
from dlbench_backends.torch.convert_layers import Step, Tensor

IDENTITY_METHODS = ("contiguous", "clone", "float", "to", "detach")
RECURRENT = (SimpleRNN, LSTM, GRU)


@dataclass(eq=False)
class FinalState:
    """``h_n`` (or an LSTM's ``c_n``) of a recurrent module whose output is ``sequence``."""

    sequence: Tensor
    layers: int
    cell: bool = False


@dataclass(eq=False)
class Unreadable:
    """A result the spec has no use for (attention weights, the indices of a maximum), and what to read instead."""

    what: str
    instead: str = "the first output of nn.MultiheadAttention"


def trace(module):
    """The fx graph of ``module`` (in training mode, so ``F.dropout(..., training=self.training)`` drops)."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    was_training = module.training
    module.train()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # fx raises what the user's forward raises under tracing
        raise InputError(f"torch.fx cannot trace {type(module).__name__}.forward ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); supported: a forward without "
                         "control flow on tensor values", field="model") from None
    finally:
        module.train(was_training)
    return graph, tracer.root


def source_line(node) -> str:
    """``line 12: x = self.conv(x)`` of the user's code that made ``node`` (empty when fx has none)."""
    lines = (node.stack_trace or "").splitlines()
    found = ""
    for k, line in enumerate(lines):
        frame = re.match(r'\s*File "([^"]+)", line (\d+), in ', line)
        if frame and "/torch/" not in frame.group(1).replace("\\", "/"):
            code = lines[k + 1].strip() if k + 1 < len(lines) and not lines[k + 1].lstrip().startswith("File ") else ""
            found = f"line {frame.group(2)}" + (f": {code}" if code else "")
    return found


@dataclass
class GraphReader:
    """Walks the graph (see the module notes); ``layers`` and ``problems`` are what it found."""

    root: object
    x: Tensor

    def __post_init__(self):
        self.layers, self.problems, self.values, self.history = [], [], {}, []
        self.head, self.ending, self.count, self.current = self.x, None, 0, 0
        self.functions = torch_function_names()
        self.calls = {}  # module target -> the first node calling it (weight tying)
        self.owners = {}  # id of a parameter -> the module that holds it (tied weights)

    @property
    def broken(self) -> bool:
        return bool(self.problems)

    def read(self, graph) -> None:
        for node in graph.nodes:
            if node.op == "output":
                self.output(node)
                continue
            try:
                self.values[node] = self.node(node)
            except (Problem, InputError) as exc:
                message, supported = (exc.message, exc.supported) if isinstance(exc, Problem) else \
                    (exc.message, [exc.field] if exc.field else SUPPORTED)
                self.problem(node, message, supported)
                self.values[node] = self.head = Tensor(None)
            except Exception as exc:  # a call with arguments no rule foresaw: named, never a traceback
                self.problem(node, f"cannot be read ({type(exc).__name__}: {exc})", SUPPORTED)
                self.values[node] = self.head = Tensor(None)

    def problem(self, node, message: str, supported) -> None:
        kind = self.kind(node)
        where = str(node.target) if node.op == "call_module" else node.name
        line = source_line(node)
        name = kind if where == str(self.current) else f"{where!r}, {kind}"
        self.problems.append((f"layer {self.current} ({name}{', ' + line if line else ''}): {message}",
                              tuple(supported)))

    def kind(self, node) -> str:
        if node.op == "call_module":
            return type(self.root.get_submodule(node.target)).__name__
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        return getattr(node.target, "__name__", str(node.target))

    # ------------------------------------------------------------ the walk
    def node(self, node):
        if node.op == "placeholder":
            if node is not next(iter(node.graph.nodes)):
                self.problems.append((f"input {node.name!r}: a second input; a spec has one",
                                      ("a forward(self, x) of one tensor",)))
                return Unreadable(f"second input {node.name!r}")
            self.history.append((self.x, 0))
            return self.x
        if node.op == "get_attr":
            return operator.attrgetter(node.target)(self.root)
        args = self.resolve(node.args)
        kwargs = self.resolve(node.kwargs)
        self.current, self.count = self.count, self.count + 1
        if node.op == "call_module":
            return self.module(node, args, kwargs)
        name = node.target if node.op == "call_method" else self.functions.get(node.target)
        if not any(isinstance(a, (Tensor, FinalState, Unreadable)) for a in flat(args, kwargs)):
            return self.constant(node, args, kwargs)
        return self.call(node, name, args, kwargs)

    def resolve(self, value):
        return fx.node.map_arg(value, lambda n: self.values[n])

    def constant(self, node, args, kwargs):
        """A size, mask or initial state computed from sizes and constants."""
        self.count -= 1
        target = getattr(args[0], node.target) if node.op == "call_method" else node.target
        call_args = args[1:] if node.op == "call_method" else args
        try:
            return target(*call_args, **kwargs)
        except Exception as exc:
            raise Problem(f"{type(exc).__name__}: {exc}") from None

    def consume(self, value, what: str) -> Tensor:
        """``value`` as the input of the next layer: the head of the chain."""
        if isinstance(value, Unreadable):
            raise Problem(f"{what} reads the {value.what}", [value.instead])
        if isinstance(value, FinalState):
            raise Problem(f"{what} reads an LSTM's cell state c_n" if value.cell else
                          f"{what} reads h_n of every layer", ["h_n[-1]", "out[:, -1]"])
        if not isinstance(value, Tensor):
            raise Problem(f"{what} of a {type(value).__name__}", ["a chain of tensors"])
        if value is not self.head:
            raise Problem(f"{what} reads an earlier result, not the last one: the graph branches",
                          ["a chain", "residual adds x + f(x)"])
        return value

    def push(self, step: Step, x: Tensor) -> Tensor:
        """The layers of ``step`` appended after ``x``: the new head."""
        if x.shape is None or self.broken:
            self.head = Tensor(None)
            return self.head
        shape = x.shape
        for layer, _ in step.parts:
            try:
                shape = layer.output_shape(shape)
            except InputError as exc:
                raise Problem(f"{exc.message} (its input is {x.text()} in torch's layout)",
                              ["a chain whose shapes fit"]) from None
        self.layers.extend(step.parts)
        order = x.order if step.keep_order else step.order
        self.head = Tensor(shape, step.channels_first if len(shape) > 1 else False, order)
        self.history.append((self.head, len(self.layers)))
        return self.head

    def module(self, node, args, kwargs):
        module = self.root.get_submodule(node.target)
        kind = type(module).__name__
        if kind not in cl.MODULES:
            raise Problem(f"{kind} modules cannot be read")
        first = self.calls.setdefault(node.target, node)
        if first is not node and any(True for _ in module.parameters()):
            raise Problem(f"{kind} {node.target!r} is called again ({source_line(first) or first.name}, then "
                          f"here): its weights are shared (tied), which a spec cannot express",
                          ["a module with parameters called once", "shared parameterless modules"])
        for parameter in module.parameters():
            owner = self.owners.setdefault(id(parameter), node.target)
            if owner != node.target:
                raise Problem(f"its weight is also the weight of {owner!r} (tied weights), which a spec cannot "
                              "express", ["modules with weights of their own"])
        cl.settings(kind, module)
        if kind == "MultiheadAttention":
            return self.attention(module, args, kwargs)
        if kind == "Embedding" and isinstance(args[0], torch.Tensor):
            return positions_table(module, args[0])
        extra = [a for a in flat(args[1:], kwargs) if a is not None]
        if kind in cl.RNNS and all(isinstance(a, torch.Tensor) and not a.any() for a in extra):
            extra = []  # a zero initial state, the spec's
        if extra:
            raise Problem(f"{kind} called with {len(extra)} more argument(s) (an initial state?)",
                          [f"{kind}(x) alone"])
        x = self.consume(args[0], kind)
        if x.shape is None or kind == "Identity":
            return x if kind == "Identity" else self.unknown(kind)
        out = self.push(cl.convert(kind, module, x), x)
        if kind in ("Softmax", "LogSoftmax"):
            self.ending = (kind, out)
        if kind in cl.RNNS:
            state = FinalState(out, module.num_layers)
            return out, ((state, FinalState(out, module.num_layers, cell=True)) if kind == "LSTM" else state)
        return out

    def unknown(self, kind: str):
        self.head = Tensor(None)
        return (self.head, FinalState(self.head, 1)) if kind in cl.RNNS else self.head

    def attention(self, module, args, kwargs):
        """``mha(x, x, x, ...)``: self-attention, causal when its mask (or is_causal) says so."""
        query, key, value = (list(args) + [kwargs.get(k) for k in ("query", "key", "value")])[:3]
        if not (query is key is value):
            raise Problem("attention whose query, key and value are not one tensor", ["self-attention mha(x, x, x)"])
        mask = kwargs.get("attn_mask", args[5] if len(args) > 5 else None)
        padding = kwargs.get("key_padding_mask", args[3] if len(args) > 3 else None)
        if padding is not None:
            raise Problem("a key_padding_mask", ["no key_padding_mask"])
        x = self.consume(query, "MultiheadAttention")
        if x.shape is None:
            return self.head, Unreadable("attention weights")
        causal = causal_mask(mask, x.shape[0], bool(kwargs.get("is_causal", False)))
        step = cl.attention(module, x)
        step.parts = [(replace(layer, causal=causal), w) for layer, w in step.parts]
        return self.push(step, x), Unreadable("attention weights")

    def output(self, node) -> None:
        result = self.values.get(node.args[0])
        if self.ending is not None and self.ending[1] is not result and not self.broken:
            self.problem(node, f"{self.ending[0]} before the end of the network",
                         ["softmax or log_softmax as the last operation"])
        if isinstance(result, Tensor) and result is self.head:
            return
        if not self.broken:
            self.problem(node, "the module returns something other than the chain's last result",
                         ["one tensor, the last result"])

    # -------------------------------------------------- functions, methods
    def call(self, node, name, args, kwargs):
        if name == "getitem":
            return self.getitem(args[0], args[1])
        if name == "getattr" and args[1] in ("device", "dtype"):  # x.device for a state made in forward
            return {"device": torch.device("cpu"), "dtype": torch.float32}[args[1]]
        if name == "getattr" and isinstance(args[0], tuple) and args[1] in ("values", "indices"):
            return args[0][args[1] == "indices"]  # torch.max(x, dim).values
        if name == "max":
            return self.maximum(args, kwargs)
        if name in ("getattr", "size"):
            x = args[0]
            if isinstance(x, Tensor) and x.shape is not None and (name == "size" or args[1] == "shape"):
                dims = (BatchSize(2), *x.torch_dims())
                return dims if name == "getattr" or len(args) == 1 else dims[args[1]]
            raise Problem(f"{name} of {args[1:]!r}", ["x.size(), x.shape"])
        if name in ("add", "add_"):
            return self.add(args, kwargs)
        if name in IDENTITY_METHODS:
            return self.consume(args[0], f"Tensor.{name}")
        if name == "squeeze" and isinstance(args[0], FinalState):
            return self.last_state(args[0], 0 if len(args) < 2 else args[1], "squeeze")
        if name in ("permute", "transpose"):
            return self.transpose(args, name)
        if name is None or name not in FUNCTION_STEPS:
            raise Problem(f"{self.kind(node)} cannot be read")
        x = self.consume(args[0], name)
        if x.shape is None:
            return x
        out = self.push(FUNCTION_STEPS[name](x, args[1:], kwargs), x)
        if name in ("softmax", "log_softmax"):
            self.ending = (name, out)
        return out

    def add(self, args, kwargs):
        """``x + f(x)`` (either order): the layers since ``x`` become one residual block."""
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if kwargs.get("alpha", 1) == 1 and any(isinstance(v, Tensor) for v in (a, b)) \
                and any(isinstance(v, torch.Tensor) for v in (a, b)):
            return self.position_embedding(*((a, b) if isinstance(a, Tensor) else (b, a)))
        if kwargs.get("alpha", 1) != 1 or not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            raise Problem("an addition that is not x + f(x) of two tensors", ["residual adds x + f(x)"])
        if self.broken or a.shape is None or b.shape is None:
            return self.head
        other = b if a is self.head else a if b is self.head else None
        start = next((pos for value, pos in self.history if value is other), None)
        if other is None or start is None or start >= len(self.layers):
            raise Problem("an addition that is not x + f(x), x an earlier result of the chain",
                          ["residual adds x + f(x)"])
        if (other.shape, other.channels_first) != (self.head.shape, self.head.channels_first) \
                or not same_order(other.order, self.head.order):
            raise Problem(f"x + f(x) of {other.text()} and {self.head.text()}", ["f(x) of x's shape"])
        inner = self.layers[start:]
        block = Residual(tuple(layer for layer, _ in inner))
        weights = {f"{j}.{name}": w for j, (_, ws) in enumerate(inner) for name, w in ws.items()}
        del self.layers[start:]
        self.history = [(value, pos) for value, pos in self.history if pos <= start]
        self.layers.append((block, weights))
        self.head = Tensor(other.shape, other.channels_first, other.order)
        self.history.append((self.head, len(self.layers)))
        return self.head

    def position_embedding(self, x, table) -> Tensor:
        """``x + P`` (P a learned (1, T, d) or (T, d) parameter, or an embedding of ``arange(T)``):
        the spec's position embedding, its table the rows that are added."""
        x = self.consume(x, "adding a position table")
        if x.shape is None:
            return x
        rows = table.squeeze(0) if table.dim() == 3 and table.shape[0] == 1 else table
        if not table.requires_grad:
            raise Problem("a fixed (not learned) table added to the sequence, e.g. a sinusoidal encoding",
                          ["a learned position embedding (nn.Parameter or nn.Embedding of arange)"])
        if len(x.shape) != 2 or x.channels_first or tuple(rows.shape) != tuple(x.shape):
            raise Problem(f"x + a table of shape {tuple(table.shape)}, x being {x.text()}",
                          ["x + P, P of x's shape (T, d)"])
        step = Step([(PositionEmbedding(x.shape[0]), {"position_embeddings": cl.host(rows)})])
        return self.push(step, x)

    def maximum(self, args, kwargs):
        """``torch.max(x, dim)`` or ``x.max(dim)``: its values are ``x.amax(dim)`` (global max pooling over time
        or space); its indices are read by no layer."""
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim is None or isinstance(dim, (Tensor, torch.Tensor)):
            raise Problem("torch.max of a whole tensor or of two tensors",
                          ["torch.max(x, dim) or x.max(dim) over time or space", "x.amax(dim)"])
        keep = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        indices = Unreadable("indices of torch.max", "the values of torch.max(x, dim)")
        x = self.consume(args[0], "max")
        if x.shape is None:
            return x, indices
        return self.push(FUNCTION_STEPS["amax"](x, (dim,), {"keepdim": keep}), x), indices

    def getitem(self, x, index):
        if isinstance(x, tuple):
            return x[index]
        if isinstance(x, FinalState):
            return self.last_state(x, index, "index")
        x = self.consume(x, "indexing")
        if x.shape is None:
            return x
        rest = index[1:] if isinstance(index, tuple) and index and index[0] == slice(None) else None
        if rest and rest[0] == -1 and all(r == slice(None) for r in rest[1:]) and len(x.shape) == 2 \
                and not x.channels_first:
            return self.last_output(x)
        raise Problem(f"indexing [{index!r}]", ["out[:, -1] (the last step of a recurrent layer)"])

    def last_output(self, x: Tensor) -> Tensor:
        """The last step of a recurrent layer's outputs: that layer without ``return_sequences``."""
        layer, weights = self.layers[-1] if self.layers else (None, None)
        if isinstance(layer, Bidirectional) and x is self.head:
            raise Problem("the last step or state of a bidirectional layer: torch's out[:, -1] holds the backward "
                          "direction after one step and h_n one direction each, not the spec's last states of both",
                          ["the whole sequence of a bidirectional layer (e.g. then x.mean(1) or x.amax(1))"])
        if not isinstance(layer, RECURRENT) or x is not self.head or not layer.return_sequences:
            raise Problem("the last step of something other than a recurrent layer's outputs",
                          ["out[:, -1] right after an nn.RNN/LSTM/GRU"])
        self.layers[-1] = (replace(layer, return_sequences=False), weights)
        self.head = Tensor((layer.units,))
        self.history.append((self.head, len(self.layers)))
        return self.head

    def last_state(self, state: FinalState, index, how: str) -> Tensor:
        if state.cell:
            raise Problem("an LSTM's cell state c_n", ["h_n[-1]", "out[:, -1]"])
        if index not in (-1, state.layers - 1):
            raise Problem(f"h_n {how} {index!r}: not the last layer's state", ["h_n[-1]"])
        if state.sequence.shape is None:
            return state.sequence
        if state.sequence is not self.head:
            raise Problem("h_n of a recurrent layer whose outputs are used too", ["h_n[-1] or out[:, -1]"])
        return self.last_output(state.sequence)

    def transpose(self, args, how: str) -> Tensor:
        """(N, L, C) <-> (N, C, L): the same spec tensor, held the other way by torch."""
        x = self.consume(args[0], f"Tensor.{how}")
        dims = tuple(args[1:])
        swaps = {(0, 2, 1), (1, 2), (2, 1), (-1, -2), (-2, -1), (1, -1), (-1, 1)}
        if x.shape is None:
            return x
        if len(x.shape) != 2 or dims not in swaps:
            raise Problem(f"{how}{dims} of {x.text()}", ["permute(0, 2, 1) / transpose(1, 2) of (N, L, C)"])
        self.head = Tensor(x.shape, not x.channels_first)
        self.history.append((self.head, len(self.layers)))
        return self.head


def flat(args, kwargs) -> list:
    found = []
    for value in [*args, *kwargs.values()]:
        found += flat(value, {}) if isinstance(value, (tuple, list)) else [value]
    return found


def same_order(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def positions_table(module, ids):
    """An embedding of the positions ``arange(T)`` (a constant made in forward): its first T rows."""
    n = ids.numel()
    if ids.dim() not in (1, 2) or not torch.equal(ids.reshape(-1).cpu(), torch.arange(n)):
        raise Problem("an Embedding of a constant other than the positions arange(T)",
                      ["an Embedding of token ids, or of arange(T) added to them"])
    return module.weight[:n]
