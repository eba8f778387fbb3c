"""The PyTorch backend: an ``nn.Module``, autograd, and torch.optim's Adam and SGD.

The network is an ``nn.Sequential`` of the layers of ``spec.logit_layers()``:
``nn.Linear`` for Dense and ``nn.ReLU/Sigmoid/Tanh/Softmax`` for the
activations. ``nn.Linear`` keeps its weight as (out, in) and computes
``z = x W^T + b``; the canonical kernel is (in, out), so ``build`` copies
``kernel.T`` into ``weight`` and ``weights()`` returns ``weight.T`` (exact
copies both ways).

Convolutional networks (any spatial input) run in torch's NCHW order, a 1-D
signal as an image of height 1 (N, C, 1, L), as the NumPy reference does:

* Conv1D/Conv2D: ``nn.Conv2d``, weight (F, C, kh, kw) = the canonical kernel
  (kh, kw, C, F) permuted (a Conv1D kernel (k, C, F) is (1, k, C, F)), and
  permuted back by ``weights()``. A 3-D tensor has no channels_last format;
  over a height of 1 oneDNN runs its NHWC kernels, and a mnist1d-cnn step
  costs about a third less than with ``F.conv1d`` on (N, C, L). "same" padding is
  TensorFlow's (:func:`dlbench.spec.layers.conv_output_length`): when it splits
  evenly on every axis the convolution pads itself, otherwise an
  ``nn.ZeroPad2d`` puts the odd element at the bottom/right first; an integer
  padding is symmetric.
* Memory format: channels_last. The inputs stay on the device in their
  canonical (N, H, W, C) order and the network takes them as a permuted view
  (N, C, H, W), which *is* channels_last, without a copy; convolution weights
  are channels_last too, so oneDNN (cuDNN) runs its NHWC kernels and every
  feature map stays NHWC in memory. On CPU (one thread) that trains the
  shipped CNN scenarios 25-45% faster than contiguous NCHW.
* Max/AveragePool1D/2D: ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (no padding; a
  max's gradient goes to the first maximum, as in the reference).
* Flatten: ``x.movedim(1, -1).flatten(1)``: back to channels-last before
  flattening (free on an NHWC tensor), so the next Dense kernel means what it
  means canonically.
* BatchNormalization: ``gamma``, ``beta`` are parameters and
  ``moving_mean``, ``moving_variance`` buffers (the optimizer never sees
  them). Training normalizes with ``F.batch_norm(training=True)`` (fused,
  biased batch variance) and updates the moving statistics itself with
  Keras's momentum (weight of the old values) from the *biased* batch
  variance; ``nn.BatchNorm2d`` would use torch's momentum and the unbiased
  one. ``evaluate()`` switches the model to eval mode: moving statistics.
* Dropout: F.dropout's computation (``x * bernoulli(1 - rate) / (1 - rate)``)
  with the masks drawn from a ``torch.Generator`` of the trainer's own, seeded
  with ``options.seed``: the same seed gives the same masks, and nothing else
  in the process moves them. Not the NumPy reference's masks, so only rate 0
  can agree with it step by step. Identity in eval mode.

Loss from the logits ``z`` (``f`` = the last layer's activation):

* categorical_crossentropy: ``F.cross_entropy(z, labels)`` (mean over the batch);
* binary_crossentropy: ``F.binary_cross_entropy_with_logits(z, t)`` (mean);
* mse: ``F.mse_loss(f(z), t)``.

Gradients come from ``torch.autograd.grad(loss, params)``: the same backward
pass as ``loss.backward()``, without accumulating into ``.grad`` (so there is
nothing to zero). Unlike ``.grad``, such a gradient may come in another memory
format than its parameter, which the fused kernels below do not check (they
would pair up the wrong elements): a conv weight's gradient is re-laid like
the weight when so. The update is torch.optim's own Adam and SGD, whose maths is
the canonical one (Adam: ``W -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``,
epsilon after bias correction; SGD: ``v <- momentum v + g; W -= lr v``, dampening
0), run through its functional form (``torch.optim.adam.adam``,
``torch.optim.sgd.sgd``) with the fused kernels (one kernel for all
parameters, on CPU and CUDA). That is the code ``torch.optim.Adam(fused=True).step()``
runs, minus the ~40 us of per-step bookkeeping of ``Optimizer.step`` (hooks,
profiler, state lookup), which dominates a batch-1 network.

Training state (``state``/``load_state``): the optimizer state is the trainer's
own, ``{parameter: {"m", "v", "step"}}`` for Adam or ``{"velocity"}`` for SGD with
momentum (:func:`optimizer_state`), updated in place by the fused kernels; its
slots go to and from the canonical layout like the parameters do
(:func:`~dlbench_backends.torch.network.to_canonical`, ``to_torch_layout``), and
Adam's per-parameter step tensors are set to the state's step count.

A window of steps: one host->device copy of its indices, one ``index_select``
gathering the batches of many steps at once on the device (up to 16 MiB, so
large batches do not inflate peak memory), then per step: forward, loss,
gradients, fused update. Each loss stays a 0-d device tensor in a list; the
window's losses are stacked and copied to the host once (which also waits for
the device). A list and one ``torch.stack`` cost less per step than writing
into a preallocated tensor (``buf[i] = loss``: ~7 us vs ~2 us on CPU).

Settings: precision "fp32" turns TF32 off for cuBLAS and cuDNN
(``set_float32_matmul_precision("highest")``); "tf32" turns it on ("high").
``deterministic`` calls ``torch.use_deterministic_algorithms`` (and sets
``CUBLAS_WORKSPACE_CONFIG`` for CUDA when unset). ``configure_threads`` calls
``torch.set_num_threads`` (and one inter-op thread where still possible).

Options (``options.extra``):

* ``compile`` (bool, default False): the forward pass and loss go through
  ``torch.compile`` (inductor; AOTAutograd compiles the backward too), once
  per batch shape (``dynamic=False``: the runner times each shape's first
  step as compile time). The optimizer update stays the fused kernel, which
  compiled is slower per call on CPU. Building such a trainer resets
  torch's compiler caches (``torch.compiler.reset()``), so that trainers
  built earlier in the same process do not use up the recompile limit.
"""

from __future__ import annotations

import functools
import os

import numpy as np

import dlbench
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions, TrainingState, loss_targets, slot_names
from dlbench.data.base import Dataset
from dlbench.errors import InputError, one_of
from dlbench.spec import PARAMETERS_TRAINED, ModelSpec

from dlbench_backends.torch.network import (CHANNELS_LAST, _torch, activation, build_network, load_weights,
                                           loss_function, module_tensors, module_weights, to_canonical,
                                           to_torch_layout)

#: the keys of ``options.extra`` this backend accepts, with their defaults.
EXTRA_OPTIONS = {"compile": False}


def parse_extra(extra: dict) -> dict:
    """``options.extra`` checked against :data:`EXTRA_OPTIONS`, defaults filled in."""
    resolved = dict(EXTRA_OPTIONS)
    for key, value in extra.items():
        if key not in EXTRA_OPTIONS:
            raise InputError(f"unknown torch option {key!r}; {one_of(EXTRA_OPTIONS)}",
                             field=f"backend_options.{key}")
        if not isinstance(value, bool):
            raise InputError(f"must be true or false, got {value!r}", field=f"backend_options.{key}")
        resolved[key] = value
    return resolved


def apply_settings(options: TrainerOptions) -> None:
    """Pin precision and determinism explicitly, whatever they were before."""
    torch = _torch()
    tf32 = options.precision == "tf32"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if options.deterministic and options.device == "gpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(options.deterministic)
    torch.backends.cudnn.deterministic = options.deterministic
    torch.backends.cudnn.benchmark = False


# -------------------------------------------------------------- optimizers
def optimizer_state(config, params: list) -> dict:
    """{parameter: its optimizer state}, the state before the first step, as torch.optim
    keeps it per parameter: the slots of :func:`slot_names` (zeros, each like its
    parameter) and, for Adam, its float32 step count (0-d, on the parameter's device)."""
    torch = _torch()
    state = {p: {name: torch.zeros_like(p) for name in slot_names(config)} for p in params}
    if config.name == "adam":
        for p, slots in state.items():
            slots["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
    return state


def adam_update(config, params: list, state: dict | None = None):
    """torch.optim's Adam (fused kernel) on ``params``, updating ``state`` in place
    (:func:`optimizer_state`, zeros when not given)."""
    from torch.optim.adam import adam
    state = optimizer_state(config, params) if state is None else state
    exp_avgs = [state[p]["m"] for p in params]
    exp_avg_sqs = [state[p]["v"] for p in params]
    steps = [state[p]["step"] for p in params]
    hyper = dict(amsgrad=False, beta1=config.beta_1, beta2=config.beta_2, lr=config.learning_rate,
                 weight_decay=0.0, eps=config.epsilon, maximize=False)

    def update(grads) -> None:
        adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, **hyper)

    return update


def sgd_update(config, params: list, state: dict | None = None):
    """torch.optim's SGD (fused kernel), updating the "velocity" of ``state`` in place
    (:func:`optimizer_state`, zeros when not given). Given buffers, torch always computes
    ``v <- momentum*v + g`` (first step: ``momentum*0 + g = g``), never its first-step
    shortcut ``v = g``, which would ignore a loaded velocity."""
    from torch.optim.sgd import sgd
    state = optimizer_state(config, params) if state is None else state
    buffers = [state[p]["velocity"] for p in params] if config.momentum else [None] * len(params)
    hyper = dict(weight_decay=0.0, momentum=config.momentum, lr=config.learning_rate, dampening=0.0,
                 nesterov=False, maximize=False)

    def update(grads) -> None:
        sgd(params, grads, buffers, fused=True, **hyper)

    return update


UPDATES = {"adam": adam_update, "sgd": sgd_update}

#: at most this many bytes of batches are gathered at once (one index_select for many steps).
GATHER_BYTES = 16 << 20

#: elements per thread below which ATen's elementwise kernels do not go parallel.
PARALLEL_GRAIN = 32768


def optimizer_update(config, params: list, state: dict | None = None):
    """update(grads): the optimizer step, with the small parameters on one thread,
    updating ``state`` (:func:`optimizer_state`) in place when given.

    The fused CPU kernels split any tensor of more than 16 floats across all
    threads; for a small tensor that fork/join costs more than the update (and
    stalls for milliseconds when the cores are busy). So on CPU the parameters
    below ATen's own grain size are updated by one fused call on one thread
    (as the unfused kernels would run them) and the large ones by another.
    """
    make = UPDATES[config.name] if state is None else functools.partial(UPDATES[config.name], state=state)
    if any(p.device.type != "cpu" for p in params):
        return make(config, params)
    small = [i for i, p in enumerate(params) if p.numel() < PARALLEL_GRAIN]
    large = [i for i, p in enumerate(params) if p.numel() >= PARALLEL_GRAIN]
    if not small:
        return make(config, params)
    update_small = one_thread(make(config, [params[i] for i in small]))
    if not large:
        return update_small
    update_large = make(config, [params[i] for i in large])

    def update(grads) -> None:
        update_small([grads[i] for i in small])
        update_large([grads[i] for i in large])

    return update


def one_thread(update):
    """``update`` run with torch's intra-op threads set to 1 (then restored)."""
    torch = _torch()
    get_threads, set_threads = torch.get_num_threads, torch.set_num_threads

    def single_threaded(grads) -> None:
        threads = get_threads()
        set_threads(1)
        try:
            update(grads)
        finally:
            set_threads(threads)

    return single_threaded


# ----------------------------------------------------------------- trainer
class TorchTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        torch = _torch()
        extra = parse_extra(options.extra)
        apply_settings(options)
        if options.device == "gpu" and not torch.cuda.is_available():
            raise InputError("torch sees no CUDA GPU; use device 'cpu'", field="device")
        self.device = torch.device("cuda" if options.device == "gpu" else "cpu")
        self.device_name = torch.cuda.get_device_name(self.device) if options.device == "gpu" else "cpu"
        self.spec = spec
        self.channels_first = len(spec.input_shape) > 1
        self.channels_last = CHANNELS_LAST
        # dropout masks: a generator of our own, seeded from the options, never torch's global one
        self.generator = torch.Generator(self.device).manual_seed(options.seed)
        self.model, self.holders = build_network(spec, weights, self.device, self.generator)
        self.params = list(self.model.parameters())  # the moving statistics are buffers, not parameters
        self.output = activation(spec.output_activation)[1]
        self.loss = loss_function(spec)
        model, loss = self.model, self.loss

        def loss_of(x, t):
            return loss(model(x), t)

        self.loss_of = loss_of
        if extra["compile"]:
            # dynamo caches compiled code per function *code*, shared by every
            # trainer of this process, with a recompile limit (8): start clean
            torch.compiler.reset()
            self.loss_of = torch.compile(loss_of, dynamic=False)
        self.optimizer_state = optimizer_state(spec.optimizer, self.params)
        self.steps_taken = 0
        self._step = self._make_step(optimizer_update(spec.optimizer, self.params, self.optimizer_state))

    def _make_step(self, update):
        """One optimizer step on one batch, returning its loss as a 0-d device tensor."""
        torch = _torch()
        grad, no_grad, loss_of, params = torch.autograd.grad, torch.no_grad, self.loss_of, self.params
        # The fused kernels walk a gradient's memory in its parameter's order, whatever
        # its strides. ``loss.backward()`` lays .grad out like the parameter, but
        # autograd.grad returns what the backward made: a convolution's weight gradient
        # can come in another memory format than the weight. Those are re-laid.
        strided = [(i, [d for d, n in enumerate(p.shape) if n > 1]) for i, p in enumerate(params) if p.dim() > 2]

        def step(x, t):
            loss = loss_of(x, t)
            grads = grad(loss, params)
            if strided:
                grads = list(grads)
                for i, dims in strided:
                    g, p = grads[i], params[i]
                    if any(g.stride(d) != p.stride(d) for d in dims):  # a size-1 axis's stride means nothing
                        grads[i] = torch.empty_like(p).copy_(g)
            with no_grad():
                update(grads)
            return loss.detach()

        return step

    def place_data(self, data: Dataset) -> None:
        torch = _torch()

        def put(array):
            return torch.tensor(np.ascontiguousarray(array), device=self.device)

        def put_inputs(x):
            """Inputs in their canonical channels-last memory order; a 1-D signal
            (N, L, C) as an image of height 1, (N, 1, L, C)."""
            x = np.asarray(x, np.float32)
            return put(x[:, None] if x.ndim == 3 else x)

        self.x_train = put_inputs(data.x_train)
        self.t_train = put(loss_targets(self.spec, data.y_train))
        self.x_test = put_inputs(data.x_test)
        self.t_test = put(loss_targets(self.spec, data.y_test))
        self.y_test = put(data.y_test.astype(np.int64, copy=False))
        self.sample_bytes = sum(t[0].nelement() * t.element_size() for t in (self.x_train, self.t_train))

    def train(self, indices: np.ndarray) -> np.ndarray:
        torch = _torch()
        steps, batch = indices.shape
        rows = torch.from_numpy(np.ascontiguousarray(indices, np.int64)).to(self.device)
        losses = []
        append, step = losses.append, self._step
        for part in rows.split(max(1, GATHER_BYTES // (batch * self.sample_bytes))):
            flat = part.view(-1)
            xs = self._network_input(self.x_train.index_select(0, flat).unflatten(0, part.shape)).unbind(0)
            ts = self.t_train.index_select(0, flat).unflatten(0, part.shape).unbind(0)
            for x, t in zip(xs, ts):
                append(step(x, t))
        self.steps_taken += steps
        return torch.stack(losses).cpu().numpy()

    def _network_input(self, x):
        """(..., H, W, C) inputs as the (..., C, H, W) the network takes: a view in
        channels_last memory format, no copy (identity for flat inputs)."""
        if not self.channels_first:
            return x
        x = x.movedim(-1, -3)
        return x if self.channels_last else x.contiguous()

    def evaluate(self) -> tuple[float, float]:
        torch = _torch()
        self.model.eval()  # dropout off, BatchNormalization on its moving statistics
        try:
            with torch.inference_mode():
                z = self.model(self._network_input(self.x_test))
                loss = float(self.loss(z, self.t_test))
                out = self.output(z)
                predicted = out[:, 0] > 0.5 if out.shape[1] == 1 else out.argmax(dim=1)
                correct = int((predicted == self.y_test).sum())
        finally:
            self.model.train()
        return loss, correct / len(self.y_test)

    def weights(self):
        layers = self.spec.logit_layers()
        return [module_weights(self.holders[i], layers[i]) if i in self.holders else {}
                for i in range(len(layers))]

    def _trained(self):
        """(layer, canonical name, its optimizer state) for every trained parameter."""
        layers = self.spec.logit_layers()
        for i, module in self.holders.items():
            for name, tensor in module_tensors(module, layers[i]).items():
                if name in PARAMETERS_TRAINED:
                    yield i, name, self.optimizer_state[tensor]

    def state(self) -> TrainingState:
        layers = self.spec.logit_layers()
        names = slot_names(self.spec.optimizer)
        slots = [{} for _ in layers]
        for i, name, tensors in self._trained():
            slots[i][name] = {slot: to_canonical(layers[i], name, tensors[slot]) for slot in names}
        return TrainingState(self.weights(), slots, self.steps_taken)

    def load_state(self, state: TrainingState) -> None:
        torch = _torch()
        layers = self.spec.logit_layers()
        with torch.no_grad():
            for i, module in self.holders.items():
                load_weights(module, layers[i], state.weights[i])
            for i, name, tensors in self._trained():
                for slot, t in tensors.items():
                    if slot == "step":  # Adam's bias correction
                        t.fill_(state.step)
                    else:
                        t.copy_(to_torch_layout(layers[i], name, state.slots[i][name][slot], t))
        self.steps_taken = state.step


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    distributions = ("torch",)
    pip_install = 'pip install "dlbench[torch]"'
    devices = ("cpu", "gpu")
    description = "PyTorch: nn.Module, autograd, torch.optim's fused Adam/SGD; option compile"
    option_defaults = EXTRA_OPTIONS

    def configure_threads(self, threads: int) -> int:
        torch = _torch()
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only possible before the first parallel work
            pass
        return torch.get_num_threads()

    def gpu_name(self) -> str | None:
        torch = _torch()
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        return TorchTrainer(spec, weights, options)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TorchBackend)
