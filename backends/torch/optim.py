"""The PyTorch backend's optimizers: torch.optim's own Adam, AdamW and SGD, whose
maths is the canonical one (Adam: ``W -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``,
epsilon after bias correction; AdamW: ``W -= lr wd W`` first; SGD: ``v <- momentum v + g;
W -= lr v``, dampening 0, nesterov and coupled weight decay as torch has them), run
through its functional form (``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``)
with the fused kernels (one kernel for all parameters, on CPU and CUDA).
RMSprop and Adadelta, which torch has no fused kernel for, are written in
``torch._foreach_*`` ops as :mod:`dlbench.network.optimizers` states them (torch's
own functional forms take no tensor learning rate outside CUDA graphs).

Clipping (global norm as ``clip_grad_norm_``, then by value) runs before the
update on every parameter together; a learning-rate schedule is evaluated on
the device from a step count of its own (a 0-d float64 tensor that a step fp16
skips does not advance), so no step waits on the host. That is the code ``torch.optim.Adam(fused=True).step()``
runs, minus the ~40 us of per-step bookkeeping of ``Optimizer.step`` (hooks,
profiler, state lookup), which dominates a batch-1 network.

The optimizer state is the trainer's own, ``{parameter: {"m", "v", "step"}}``
for Adam or ``{"velocity"}`` for SGD with momentum (:func:`optimizer_state`),
updated in place by the fused kernels. ``update(grads, found_inf)``: given
``found_inf`` (a 0-d tensor, 1 when fp16's loss scaling found an inf/NaN
gradient), the fused kernels skip the step on the device, Adam's step count
included, as under ``GradScaler`` (no host synchronisation).
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from dlbench.network.optimizers import CLIP_NORM_EPSILON
from dlbench.plugin.backend import slot_names

#: elements per thread below which ATen's elementwise kernels do not go parallel.
PARALLEL_GRAIN = 32768


def optimizer_state(config, params: list) -> dict:
    """{parameter: its optimizer state}, the state before the first step, as torch.optim
    keeps it per parameter: the slots of :func:`slot_names` (zeros, each like its
    parameter) and, for Adam/AdamW, its float32 step count (0-d, on the parameter's device)."""
    state = {p: {name: torch.zeros_like(p) for name in slot_names(config)} for p in params}
    if config.name in ("adam", "adamw"):
        for p, slots in state.items():
            slots["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
    return state


class AdamUpdate:
    """torch.optim's Adam/AdamW (fused kernel) on ``params``, updating ``state``
    (:func:`optimizer_state`) in place. ``update(grads, found_inf, lr)`` is a closure
    over the lists the kernel takes, made once: a method would look them up every step."""

    def __init__(self, config, params: list, state: dict):
        exp_avgs = [state[p]["m"] for p in params]
        exp_avg_sqs = [state[p]["v"] for p in params]
        steps = [state[p]["step"] for p in params]
        hyper = dict(amsgrad=False, beta1=config.beta_1, beta2=config.beta_2, weight_decay=config.weight_decay,
                     eps=config.epsilon, maximize=False, decoupled_weight_decay=config.name == "adamw")

        def update(grads, found_inf, lr) -> None:
            adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, found_inf=found_inf, lr=lr, **hyper)

        self.update = update


class SGDUpdate:
    """torch.optim's SGD (fused kernel), updating the "velocity" of ``state`` in place
    (:func:`optimizer_state`). Given buffers, torch always computes
    ``v <- momentum*v + g`` (first step: ``momentum*0 + g = g``), never its first-step
    shortcut ``v = g``, which would ignore a loaded velocity."""

    def __init__(self, config, params: list, state: dict):
        buffers = [state[p]["velocity"] for p in params] if config.momentum else [None] * len(params)
        hyper = dict(weight_decay=config.weight_decay, momentum=config.momentum, dampening=0.0,
                     nesterov=config.nesterov, maximize=False)

        def update(grads, found_inf, lr) -> None:
            sgd(params, grads, buffers, fused=True, found_inf=found_inf, lr=lr, **hyper)

        self.update = update


class ForeachUpdate:
    """An update written in ``torch._foreach_*`` ops (``step(grads, lr)``); a step
    whose ``found_inf`` is set leaves parameters and slots as they were."""

    def __init__(self, config, params: list, state: dict):
        self.config, self.params = config, params
        self.slots = {name: [state[p][name] for p in params] for name in slot_names(config)}
        self.kept = params + [t for tensors in self.slots.values() for t in tensors]

    def update(self, grads, found_inf, lr) -> None:
        if self.config.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.config.weight_decay)
        if found_inf is None:
            self.step(grads, lr)
            return
        before = [t.clone() for t in self.kept]
        self.step(grads, lr)
        skip = found_inf.bool()
        for t, old in zip(self.kept, before):
            t.copy_(torch.where(skip, old, t))


class RMSpropUpdate(ForeachUpdate):
    """s <- rho s + (1-rho) g^2 (centered: a <- rho a + (1-rho) g, d = sqrt(s - a^2) + eps,
    else d = sqrt(s) + eps);  b <- momentum b + g/d;  W <- W - lr b."""

    def step(self, grads, lr) -> None:
        c, slots = self.config, self.slots
        torch._foreach_mul_(slots["square_avg"], c.rho)
        torch._foreach_addcmul_(slots["square_avg"], grads, grads, value=1.0 - c.rho)
        if c.centered:
            torch._foreach_mul_(slots["grad_avg"], c.rho)
            torch._foreach_add_(slots["grad_avg"], grads, alpha=1.0 - c.rho)
            denominator = torch._foreach_addcmul(slots["square_avg"], slots["grad_avg"], slots["grad_avg"], value=-1)
            torch._foreach_sqrt_(denominator)
        else:
            denominator = torch._foreach_sqrt(slots["square_avg"])
        torch._foreach_add_(denominator, c.epsilon)
        if c.momentum:
            torch._foreach_mul_(slots["momentum_buffer"], c.momentum)
            torch._foreach_addcdiv_(slots["momentum_buffer"], grads, denominator)
            step = torch._foreach_mul(slots["momentum_buffer"], lr)
        else:
            step = torch._foreach_div(grads, denominator)
            torch._foreach_mul_(step, lr)
        torch._foreach_sub_(self.params, step)


class AdadeltaUpdate(ForeachUpdate):
    """s <- rho s + (1-rho) g^2;  u = sqrt(x + eps) / sqrt(s + eps) * g;
    x <- rho x + (1-rho) u^2;  W <- W - lr u."""

    def step(self, grads, lr) -> None:
        c, square_avg, acc_delta = self.config, self.slots["square_avg"], self.slots["acc_delta"]
        torch._foreach_mul_(square_avg, c.rho)
        torch._foreach_addcmul_(square_avg, grads, grads, value=1.0 - c.rho)
        std = torch._foreach_add(square_avg, c.epsilon)
        torch._foreach_sqrt_(std)
        delta = torch._foreach_add(acc_delta, c.epsilon)
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, grads)
        torch._foreach_mul_(acc_delta, c.rho)
        torch._foreach_addcmul_(acc_delta, delta, delta, value=1.0 - c.rho)
        torch._foreach_mul_(delta, lr)
        torch._foreach_sub_(self.params, delta)


OPTIMIZERS = {"adam": AdamUpdate, "adamw": AdamUpdate, "sgd": SGDUpdate, "rmsprop": RMSpropUpdate,
              "adadelta": AdadeltaUpdate}


class TorchOps:
    """The ops a schedule's factor needs (:mod:`dlbench.network.schedules`), on 0-d tensors."""

    floor, cos = staticmethod(torch.floor), staticmethod(torch.cos)

    @staticmethod
    def minimum(x, c: float):
        return torch.clamp(x, max=c)

    @staticmethod
    def maximum(x, c: float):
        return torch.clamp(x, min=c)

    @staticmethod
    def power(base: float, x):
        return torch.pow(base, x)


def clip_gradients(config, grads) -> None:
    """Clipping in place: by global norm as ``torch.nn.utils.clip_grad_norm_``
    (``g * min(1, c / (||g|| + 1e-6))``), then by value."""
    if config.clip_global_norm:
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(config.clip_global_norm / (total + CLIP_NORM_EPSILON), max=1.0))
    if config.clip_value:
        torch._foreach_clamp_min_(grads, -config.clip_value)
        torch._foreach_clamp_max_(grads, config.clip_value)


class TorchOptimizer:
    """The optimizer of ``config`` over ``params``: ``state`` (:func:`optimizer_state`)
    and ``update(grads, found_inf=None)``, the step (clipping, the scheduled learning
    rate, the update), with the small parameters on one thread; ``slots()`` /
    ``load_slots(slots, step)`` read and set the state, each slot a list like
    ``params`` (the module API, ``docs/backends/module-api.md``).

    The fused CPU kernels split any tensor of more than 16 floats across all
    threads; for a small tensor that fork/join costs more than the update (and
    stalls for milliseconds when the cores are busy). So on CPU the parameters
    below ATen's own grain size are updated by one fused call on one thread
    (as the unfused kernels would run them) and the large ones by another.
    """

    def __init__(self, config, params: list):
        self.config, self.params, self.names = config, params, slot_names(config)
        self.state = optimizer_state(config, params)
        device = params[0].device if params else torch.device("cpu")
        #: steps taken, for the schedule (None without one: the learning rate is a constant)
        self.step = torch.zeros((), dtype=torch.float64, device=device) if config.schedule else None
        inner = split_update(config, params, self.state)
        clips = bool(config.clip_global_norm or config.clip_value)
        if not clips and self.step is None:
            lr = config.learning_rate
            self.update = lambda grads, found_inf=None: inner(grads, found_inf, lr)
            return

        def update(grads, found_inf=None) -> None:
            if clips:
                grads = list(grads)
                clip_gradients(config, grads)
            inner(grads, found_inf, self.learning_rate())
            if self.step is not None:
                self.step += 1 if found_inf is None else 1 - found_inf.double()

        self.update = update

    def learning_rate(self):
        """The learning rate of the next step: a float, or a 0-d float32 tensor under a schedule."""
        if self.step is None:
            return self.config.learning_rate
        return (self.config.learning_rate * self.config.schedule.factor(self.step, TORCH_OPS)).float()

    def slots(self) -> dict[str, list]:
        """{slot name: its tensor for each parameter, in ``params``' order} (the tensors themselves)."""
        return {name: [self.state[p][name] for p in self.params] for name in self.names}

    def load_slots(self, slots: dict[str, list], step: int) -> None:
        """Copy ``slots`` (torch layouts, host or device) into the state; Adam's and AdamW's
        step counts and the schedule's set to ``step``."""
        with torch.no_grad():
            for name, tensors in self.slots().items():
                for tensor, given in zip(tensors, slots[name]):
                    tensor.copy_(given)
            for p in self.params:
                if "step" in self.state[p]:  # Adam's bias correction
                    self.state[p]["step"].fill_(step)
            if self.step is not None:
                self.step.fill_(step)


TORCH_OPS = TorchOps()


def split_update(config, params: list, state: dict):
    """update(grads, found_inf, lr) for :class:`TorchOptimizer`: small and large parameters apart on CPU."""
    make = OPTIMIZERS[config.name]
    if any(p.device.type != "cpu" for p in params):
        return make(config, params, state).update
    small = [i for i, p in enumerate(params) if p.numel() < PARALLEL_GRAIN]
    large = [i for i, p in enumerate(params) if p.numel() >= PARALLEL_GRAIN]
    if not small:
        return make(config, params, state).update
    update_small = one_thread(make(config, [params[i] for i in small], state).update)
    if not large:
        return update_small
    update_large = make(config, [params[i] for i in large], state).update

    def update(grads, found_inf, lr) -> None:
        update_small([grads[i] for i in small], found_inf, lr)
        update_large([grads[i] for i in large], found_inf, lr)

    return update


def one_thread(update):
    """``update`` run with torch's intra-op threads set to 1 (then restored)."""
    get_threads, set_threads = torch.get_num_threads, torch.set_num_threads

    def single_threaded(grads, found_inf, lr) -> None:
        threads = get_threads()
        set_threads(1)
        try:
            update(grads, found_inf, lr)
        finally:
            set_threads(threads)

    return single_threaded


def build_optimizer(config, params: list) -> TorchOptimizer:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over ``params``;
    ``update(grads, found_inf=None)`` takes one step."""
    return TorchOptimizer(config, params)
