"""The PyTorch backend's optimizers: torch.optim's own Adam and SGD, whose
maths is the canonical one (Adam: ``W -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``,
epsilon after bias correction; SGD: ``v <- momentum v + g; W -= lr v``, dampening
0), run through its functional form (``torch.optim.adam.adam``,
``torch.optim.sgd.sgd``) with the fused kernels (one kernel for all
parameters, on CPU and CUDA). That is the code ``torch.optim.Adam(fused=True).step()``
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

from dlbench.plugin.backend import slot_names

#: elements per thread below which ATen's elementwise kernels do not go parallel.
PARALLEL_GRAIN = 32768


def optimizer_state(config, params: list) -> dict:
    """{parameter: its optimizer state}, the state before the first step, as torch.optim
    keeps it per parameter: the slots of :func:`slot_names` (zeros, each like its
    parameter) and, for Adam, its float32 step count (0-d, on the parameter's device)."""
    state = {p: {name: torch.zeros_like(p) for name in slot_names(config)} for p in params}
    if config.name == "adam":
        for p, slots in state.items():
            slots["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
    return state


class AdamUpdate:
    """torch.optim's Adam (fused kernel) on ``params``, updating ``state``
    (:func:`optimizer_state`) in place. ``update(grads)`` is a closure over the
    lists the kernel takes, made once: a method would look them up every step."""

    def __init__(self, config, params: list, state: dict):
        exp_avgs = [state[p]["m"] for p in params]
        exp_avg_sqs = [state[p]["v"] for p in params]
        steps = [state[p]["step"] for p in params]
        hyper = dict(amsgrad=False, beta1=config.beta_1, beta2=config.beta_2, lr=config.learning_rate,
                     weight_decay=0.0, eps=config.epsilon, maximize=False)

        def update(grads, found_inf=None) -> None:
            adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, found_inf=found_inf, **hyper)

        self.update = update


class SGDUpdate:
    """torch.optim's SGD (fused kernel), updating the "velocity" of ``state`` in place
    (:func:`optimizer_state`). Given buffers, torch always computes
    ``v <- momentum*v + g`` (first step: ``momentum*0 + g = g``), never its first-step
    shortcut ``v = g``, which would ignore a loaded velocity."""

    def __init__(self, config, params: list, state: dict):
        buffers = [state[p]["velocity"] for p in params] if config.momentum else [None] * len(params)
        hyper = dict(weight_decay=0.0, momentum=config.momentum, lr=config.learning_rate, dampening=0.0,
                     nesterov=False, maximize=False)

        def update(grads, found_inf=None) -> None:
            sgd(params, grads, buffers, fused=True, found_inf=found_inf, **hyper)

        self.update = update


OPTIMIZERS = {"adam": AdamUpdate, "sgd": SGDUpdate}


class TorchOptimizer:
    """The optimizer of ``config`` over ``params``: ``state`` (:func:`optimizer_state`)
    and ``update(grads)``, the step, with the small parameters on one thread;
    ``slots()`` / ``load_slots(slots, step)`` read and set the state, each
    slot a list like ``params`` (the module API, ``docs/backends/module-api.md``).

    The fused CPU kernels split any tensor of more than 16 floats across all
    threads; for a small tensor that fork/join costs more than the update (and
    stalls for milliseconds when the cores are busy). So on CPU the parameters
    below ATen's own grain size are updated by one fused call on one thread
    (as the unfused kernels would run them) and the large ones by another.
    """

    def __init__(self, config, params: list):
        self.params, self.names = params, slot_names(config)
        self.state = optimizer_state(config, params)
        self.update = split_update(config, params, self.state)

    def slots(self) -> dict[str, list]:
        """{slot name: its tensor for each parameter, in ``params``' order} (the tensors themselves)."""
        return {name: [self.state[p][name] for p in self.params] for name in self.names}

    def load_slots(self, slots: dict[str, list], step: int) -> None:
        """Copy ``slots`` (torch layouts, host or device) into the state; Adam's step counts set to ``step``."""
        with torch.no_grad():
            for name, tensors in self.slots().items():
                for tensor, given in zip(tensors, slots[name]):
                    tensor.copy_(given)
            for p in self.params:
                if "step" in self.state[p]:  # Adam's bias correction
                    self.state[p]["step"].fill_(step)


def split_update(config, params: list, state: dict):
    """update(grads) for :class:`TorchOptimizer`: small and large parameters apart on CPU."""
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

    def update(grads, found_inf=None) -> None:
        update_small([grads[i] for i in small], found_inf)
        update_large([grads[i] for i in large], found_inf)

    return update


def one_thread(update):
    """``update`` run with torch's intra-op threads set to 1 (then restored)."""
    get_threads, set_threads = torch.get_num_threads, torch.set_num_threads

    def single_threaded(grads, found_inf=None) -> None:
        threads = get_threads()
        set_threads(1)
        try:
            update(grads, found_inf)
        finally:
            set_threads(threads)

    return single_threaded


def build_optimizer(config, params: list) -> TorchOptimizer:
    """The optimizer of ``config`` (a :mod:`dlbench.network` optimizer) over ``params``;
    ``update(grads)`` takes one step."""
    return TorchOptimizer(config, params)
