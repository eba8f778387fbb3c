"""torch modules -> dlbench specs (``dlbench.from_torch``, ``dlbench.benchmark(module)``).

Any ``nn.Module``, an ``nn.Sequential`` or a class with its own ``forward``,
is read by tracing it with ``torch.fx`` (see
:mod:`dlbench_backends.torch.convert_graph` for why fx and how the graph is
walked): a chain of the supported modules and functional calls, every call
of a module instance (a shared parameterless module, such as one
``nn.ReLU()`` or pool, is applied at each call; a module *with* parameters
called twice ties its weights, which a spec cannot express), and residual
adds ``x + f(x)``. Everything else, and every setting the spec cannot
express, is listed in one InputError: each part's index, name, class,
source line, why, and what is supported. torch's conventions, converted:

* layout: torch takes images NCHW and signals NCL; the spec is channels-last.
  ``input_shape`` is given as torch takes it, ``(C, H, W)``; the spec's is
  ``(H, W, C)`` (``benchmark`` moves the data's channels last). A 2-D
  sample is ``(C, L)`` when a Conv1d, a 1-D pool or a BatchNorm1d reads it
  first, otherwise ``(L, C)`` as RNNs, attention and LayerNorm take it (then
  nothing is moved); ``x.permute(0, 2, 1)`` between them is followed.
  Kernels ``(F, C, kh, kw)`` become ``(kh, kw, C, F)``, a Linear's
  ``(out, in)`` weight its ``(in, out)`` kernel. A flattened feature map
  orders its features (C, H, W) in torch and (H, W, C) in the spec, so the
  Linear (BatchNorm1d, LayerNorm) after it gets its inputs reordered.
* BatchNorm momentum: torch's is the weight of the *new* batch (0.1), the
  spec's that of the old statistics: ``1 - momentum``. torch updates its
  running variance from the unbiased batch variance, the spec (as Keras)
  from the biased one: the converted model follows the spec.
* LayerNorm: its ``eps`` is kept (torch's default 1e-5).
* nn.RNN / LSTM / GRU (``batch_first=True``): torch's
  ``(gates*u, in)`` weights are the spec's transposed kernels; LSTM gates
  i, f, g, o are the spec's i, f, c, o; GRU gates r, z, n become z, r, h and
  its two biases are the spec's two rows (``n = tanh(W_in x + b_in + r (W_hn
  h + b_hn))`` is Keras's ``reset_after``). An LSTM or RNN has one canonical
  bias, ``b_ih + b_hh``: the forward is exact, but torch trains both biases
  (their sum moves twice per step), so **an imported torch LSTM/RNN trains
  like a one-bias Keras RNN, not like stock torch** (its row says so).
  ``num_layers=k`` is k layers with ``Dropout(dropout)`` between them;
  ``out[:, -1]`` or ``h_n[-1]`` is the last layer without
  ``return_sequences``. A zero initial state is the spec's; another is refused.
  ``bidirectional=True`` is the spec's ``bidirectional`` (outputs
  concatenated forward first, as torch's): ``weight_ih_l{k}`` ... are its
  ``forward.<name>``, ``weight_ih_l{k}_reverse`` ... its ``backward.<name>``,
  one canonical bias per direction as above. Its whole sequence is read
  (e.g. then ``out.mean(1)`` or ``out.amax(1)``); ``out[:, -1]`` and ``h_n``
  are refused: torch's last step holds the backward direction after one step,
  and ``h_n`` each direction apart, not the spec's last states of both.
* nn.MultiheadAttention (``batch_first=True``) called as self-attention
  ``mha(x, x, x)``: ``num_heads`` H and ``key_dim`` d / H; ``in_proj_weight``
  ``[Wq; Wk; Wv]`` and ``out_proj`` transposed into the spec's flat
  head-major kernels; causal when its ``attn_mask`` (computed while reading,
  e.g. ``nn.Transformer.generate_square_subsequent_mask``) is the causal one.
* position embeddings: ``x + P`` for a learned ``P`` of x's shape (an
  ``nn.Parameter`` of (1, T, d) or (T, d), or an ``nn.Embedding`` of
  ``torch.arange(T)``) is the spec's ``position_embedding`` with those T
  rows; a fixed (sinusoidal) table is refused.
* activations: ``nn.GELU()`` / ``F.gelu`` (``approximate='none'``, the exact
  erf form) are the spec's ``gelu_erf``, ``approximate='tanh'`` its
  ``gelu_tanh``; ``nn.SiLU`` / ``F.silu`` are ``silu``; ``nn.LeakyReLU
  (negative_slope)`` / ``F.leaky_relu`` (torch's default 0.01, the spec's
  too) are ``leaky_relu`` and ``nn.ELU(alpha)`` / ``F.elu`` ``elu``, the
  slope written out.
* ``bias=False`` on a Linear or convolution is the spec's ``use_bias=False``.
* global pooling: ``AdaptiveAvg/MaxPool(k)`` whose k divides the input is a
  pool of fixed windows (at k = 1 a full-size pool, then ``flatten``);
  ``x.mean((2, 3))`` a full-size average pool and a Flatten; ``x.mean(1)`` of
  (N, L, C) the spec's ``global_average_pool1d``; ``x.amax`` over every
  position (``amax(1)`` of (N, L, C), ``amax(2)`` of (N, C, L), ``amax((2,
  3))`` of a map) the spec's ``global_max_pool1d/2d``. The spec's max pools
  send a tied maximum's gradient to the first maximum; ``amax`` splits it
  between the ties (equal only without ties, as with float inputs).
* loss: ``nn.CrossEntropyLoss`` / ``F.cross_entropy`` / ``nn.BCEWithLogitsLoss``
  take logits, so the spec gets the softmax / sigmoid output they imply;
  after a final ``log_softmax``, ``nn.NLLLoss`` / ``F.nll_loss`` (and
  cross-entropy, log_softmax being idempotent) are categorical cross-entropy
  on logits; ``nn.BCELoss`` needs a final sigmoid; ``nn.MSELoss`` /
  ``F.mse_loss`` is mse, ``nn.L1Loss`` / ``F.l1_loss`` mae, ``nn.HuberLoss(delta)``
  huber with that delta (``F.huber_loss``: its default delta, 1.0);
  ``CrossEntropyLoss(label_smoothing=eps)`` is categorical cross-entropy with
  that label smoothing (torch's and the spec's smoothed target agree); a
  dlbench loss name or table is taken as it is. None: a final softmax,
  log_softmax or sigmoid says which.
* optimizer: a ``torch.optim.Adam``, ``AdamW``, ``SGD`` (nesterov too),
  ``RMSprop`` (its ``alpha`` is the spec's ``rho``) or ``Adadelta``, their
  ``weight_decay`` included (one set of hyper-parameters; no AMSGrad,
  dampening or maximize), or a dlbench optimizer; None: ``dlbench.Adam()``.
  torch's conventions are the spec's (epsilon after Adam's bias correction and
  outside RMSprop's root, coupled weight decay but AdamW's). A scheduler or
  clipping lives outside a torch optimizer: give them in a dlbench optimizer.
"""

from __future__ import annotations

import sys

from dlbench.errors import InputError, one_of
from dlbench.network import OPTIMIZERS, Activation, Adam, ModelSpec, make_optimizer
from dlbench.network.imported import LOGIT_OUTPUTS, ImportedModel, all_problems
from dlbench.network.loss import LOSSES

LOSS_MODULES = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss", "MSELoss", "L1Loss", "HuberLoss")
LOSS_FUNCTIONS = {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss",
                  "binary_cross_entropy_with_logits": "BCEWithLogitsLoss", "binary_cross_entropy": "BCELoss",
                  "mse_loss": "MSELoss", "l1_loss": "L1Loss", "huber_loss": "HuberLoss"}
#: the spec's loss of each torch loss that does not take log-probabilities
SPEC_LOSSES = {"CrossEntropyLoss": "categorical_crossentropy", "BCEWithLogitsLoss": "binary_crossentropy",
               "BCELoss": "binary_crossentropy", "MSELoss": "mse", "L1Loss": "mae", "HuberLoss": "huber"}
#: what a network's last operation makes of its outputs, for the loss
ENDINGS = {"softmax": "a softmax", "log_softmax": "a log_softmax", "sigmoid": "a sigmoid", None: "logits"}
#: layers the first of which reads a 2-D sample channels-first (C, L)
CHANNELS_FIRST_READERS = ("Conv1d", "MaxPool1d", "AvgPool1d", "BatchNorm1d", "AdaptiveAvgPool1d",
                          "AdaptiveMaxPool1d", "Flatten", "max_pool1d", "avg_pool1d", "flatten")


def reads(model) -> bool:
    """Whether ``model`` is a torch module (torch is never imported to tell)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def import_model(module, *, input_shape=None, loss=None, optimizer=None) -> ImportedModel:
    """The spec and canonical weights of ``module``; see the module notes."""
    from dlbench_backends.torch import convert_graph
    from dlbench_backends.torch.convert_layers import Tensor

    where = f"torch {type(module).__name__}"
    try:
        shape = torch_input_shape(input_shape)
        graph, root = convert_graph.trace(module)
        channels_first = reads_channels_first(graph, root, shape)
        reader = convert_graph.GraphReader(root, Tensor(channels_last(shape) if channels_first else shape,
                                                        channels_first and len(shape) > 1))
        reader.read(graph)
        if reader.problems:
            raise all_problems(reader.problems, convert_graph.SUPPORTED)
        layers, weights = [layer for layer, _ in reader.layers], [w for _, w in reader.layers]
        loss_name, output = torch_loss(loss, ending(reader))
        if output:
            layers, weights = [*layers, Activation(output)], [*weights, {}]
        spec = ModelSpec(reader.x.shape, tuple(layers), loss_name, torch_optimizer(optimizer))
    except InputError as exc:
        raise exc.within(source=where) from None
    return ImportedModel(spec, weights, scenario_name(module), description(module, spec), channels_first)


def scenario_name(module) -> str:
    kind = type(module).__name__
    return "torch-sequential" if kind == "Sequential" else f"torch-{kind.lower()}"


def description(module, spec: ModelSpec) -> str:
    from dlbench.network.sequence import GRU, RECURRENT_LAYERS
    from dlbench.network.transformer import nested_layers

    kind = "nn.Sequential" if type(module).__name__ == "Sequential" else f"nn.Module {type(module).__name__}"
    text = f"torch {kind} ({len(spec.layers)} spec layers, read by torch.fx)"
    if any(isinstance(layer, RECURRENT_LAYERS) and not isinstance(layer, GRU) for layer in nested_layers(spec.layers)):
        text += ("; its LSTM/RNN has one bias b_ih + b_hh: it trains like a one-bias Keras RNN, not like stock "
                 "torch (which trains both)")
    return text


def reads_channels_first(graph, root, shape: tuple) -> bool:
    """Whether the sample is channels-first: an image, or a 2-D sample first read as (C, L) (see the notes)."""
    if len(shape) != 2:
        return len(shape) == 3
    placeholder = next(iter(graph.nodes))
    users = [node for node in graph.nodes if node in placeholder.users]
    if not users:
        return True
    first = users[0]
    if first.op == "call_module":
        kind = type(root.get_submodule(first.target)).__name__
    else:
        kind = first.target if isinstance(first.target, str) else getattr(first.target, "__name__", "")
    return kind in CHANNELS_FIRST_READERS


def ending(reader) -> str | None:
    """What the network's last operation makes of its outputs (a key of ENDINGS)."""
    if reader.ending is not None:
        return "log_softmax" if reader.ending[0] in ("LogSoftmax", "log_softmax") else "softmax"
    last = reader.layers[-1][0] if reader.layers else None
    return "sigmoid" if isinstance(last, Activation) and last.activation == "sigmoid" else None


def torch_input_shape(shape) -> tuple:
    if shape is None:
        raise InputError("give the shape of one sample as the module takes it, e.g. (1, 28, 28) for NCHW images",
                         field="input_shape")
    shape = tuple(shape)
    if not shape or len(shape) > 3 or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
        raise InputError(f"must be 1 to 3 positive integers: (features,), (C, L), (L, C) or (C, H, W); got "
                         f"{shape!r}", field="input_shape")
    return shape


def channels_last(shape: tuple) -> tuple:
    """torch's (C, *spatial) as the spec's (*spatial, C)."""
    return (*shape[1:], shape[0]) if len(shape) > 1 else tuple(shape)


def loss_kind(loss) -> str:
    """The torch loss ``loss`` is (a module's class or a functional's module name), checked."""
    nn = sys.modules["torch"].nn
    if isinstance(loss, nn.Module):
        kind = type(loss).__name__
    else:
        kind = LOSS_FUNCTIONS.get(getattr(loss, "__name__", None), "")
        if getattr(loss, "__module__", "") != "torch.nn.functional":
            kind = ""
    if kind not in LOSS_MODULES:
        name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__name__", repr(loss))
        raise InputError(f"loss {name} cannot be read; expected a dlbench loss name, one of {', '.join(LOSS_MODULES)} "
                         f"or F.{', F.'.join(LOSS_FUNCTIONS)}", field="loss")
    if getattr(loss, "reduction", "mean") != "mean" or getattr(loss, "weight", None) is not None \
            or getattr(loss, "pos_weight", None) is not None or getattr(loss, "ignore_index", -100) != -100:
        raise InputError(f"{kind} with weights, ignore_index or a reduction other than 'mean'", field="loss")
    return kind


def loss_options(loss, kind: str) -> dict:
    """The spec's options of a torch loss: CrossEntropyLoss's label smoothing, HuberLoss's delta
    (a functional's are its defaults: they are given with each call, not with the function)."""
    if kind == "HuberLoss":
        return {"delta": float(getattr(loss, "delta", 1.0))}
    smoothing = float(getattr(loss, "label_smoothing", 0.0))
    return {"label_smoothing": smoothing} if smoothing else {}


def torch_loss(loss, last: str | None) -> tuple[str | dict, str | None]:
    """(the spec's loss, a name or a table with its options, and the output activation a logits loss
    implies or None), ``last`` the network's ending."""
    if loss is None:
        found = {"softmax": "categorical_crossentropy", "log_softmax": "categorical_crossentropy",
                 "sigmoid": "binary_crossentropy"}.get(last)
        if found is None:
            raise InputError(f"give loss=: a dlbench loss ({one_of(LOSSES)}), a torch loss module "
                             f"({', '.join(LOSS_MODULES)}) or function (F.cross_entropy, ...); "
                             "the module ends in logits, which name none", field="loss")
        return found, None
    if isinstance(loss, (str, dict)):
        name = loss if isinstance(loss, str) else loss.get("name")
        if last == "log_softmax" and name != "categorical_crossentropy":
            raise InputError(f"loss {name!r} of log-probabilities (the module ends in log_softmax)", field="loss")
        return loss, None  # ModelSpec checks the name and options
    kind = loss_kind(loss)
    options = loss_options(loss, kind)
    if last == "log_softmax":  # log_softmax of log-probabilities changes nothing: cross-entropy on logits
        if kind not in ("NLLLoss", "CrossEntropyLoss"):
            raise InputError(f"{kind} of log-probabilities (the module ends in log_softmax); expected nll_loss or "
                             "cross_entropy", field="loss")
        return {"name": "categorical_crossentropy", **options}, None
    if kind == "NLLLoss":
        raise InputError(f"NLLLoss takes log-probabilities, but the module ends in {ENDINGS[last]}: end it in "
                         "log_softmax, or use CrossEntropyLoss on logits", field="loss")
    spec_loss = SPEC_LOSSES[kind]
    if kind in ("CrossEntropyLoss", "BCEWithLogitsLoss"):
        if last == LOGIT_OUTPUTS[spec_loss]:
            raise InputError(f"{kind} takes logits, but the module ends in {ENDINGS[last]}: drop it, or pass "
                             f"loss={spec_loss!r}", field="loss")
        return {"name": spec_loss, **options}, LOGIT_OUTPUTS[spec_loss]
    return {"name": spec_loss, **options}, None


#: per torch.optim class, the hyper-parameters read (torch's name -> the spec's)
TORCH_OPTIMIZERS = {
    "Adam": {"lr": "learning_rate", "betas": ("beta_1", "beta_2"), "eps": "epsilon", "weight_decay": "weight_decay"},
    "AdamW": {"lr": "learning_rate", "betas": ("beta_1", "beta_2"), "eps": "epsilon", "weight_decay": "weight_decay"},
    "SGD": {"lr": "learning_rate", "momentum": "momentum", "nesterov": "nesterov", "weight_decay": "weight_decay"},
    "RMSprop": {"lr": "learning_rate", "alpha": "rho", "eps": "epsilon", "momentum": "momentum",
                "centered": "centered", "weight_decay": "weight_decay"},
    "Adadelta": {"lr": "learning_rate", "rho": "rho", "eps": "epsilon", "weight_decay": "weight_decay"},
}


def torch_optimizer(optimizer):
    """The spec's optimizer of a torch optimizer (or a dlbench optimizer, name or table)."""
    torch = sys.modules["torch"]
    if optimizer is None:
        return Adam()
    if not isinstance(optimizer, torch.optim.Optimizer):
        return make_optimizer(optimizer)
    kind = type(optimizer).__name__
    if kind not in TORCH_OPTIMIZERS:
        raise InputError(f"optimizer {kind} cannot be read; {one_of(TORCH_OPTIMIZERS)} of torch.optim, or a "
                         "dlbench optimizer", field="optimizer")
    names = TORCH_OPTIMIZERS[kind]
    groups = [{k: _number(g[k]) for k in names} for g in optimizer.param_groups]
    if any(g != groups[0] for g in groups):
        raise InputError("parameter groups with different hyper-parameters; a spec has one set", field="optimizer")
    g = optimizer.param_groups[0]
    if kind == "Adam" and g.get("decoupled_weight_decay"):  # torch's Adam(decoupled_weight_decay=True) is AdamW
        kind = "AdamW"
    for key in ("amsgrad", "dampening", "maximize"):
        if g.get(key):
            raise InputError(f"{kind} with {key}={g[key]!r} has no counterpart in a dlbench optimizer",
                             field="optimizer")
    fields = {}
    for key, name in names.items():
        fields.update(zip(name, groups[0][key]) if isinstance(name, tuple) else {name: groups[0][key]})
    for flag in ("nesterov", "centered"):
        if flag in fields:
            fields[flag] = bool(fields[flag])
    return OPTIMIZERS[kind.lower()](**fields)


def _number(value):
    if isinstance(value, (tuple, list)):
        return tuple(_number(v) for v in value)
    return float(value)
