"""The PyTorch backend's trainer.

Gradients come from ``torch.autograd.grad(loss, params)``: the same backward
pass as ``loss.backward()``, without accumulating into ``.grad`` (so there is
nothing to zero). Unlike ``.grad``, such a gradient may come in another memory
format than its parameter, which the fused kernels of
:mod:`~dlbench_backends.torch.optim` do not check (they would pair up the
wrong elements): a conv weight's gradient is re-laid like the weight when so.

A window of steps: one host->device copy of its indices, one ``index_select``
gathering the batches of many steps at once on the device (up to 16 MiB, so
large batches do not inflate peak memory), then per step: forward, loss,
gradients, fused update. Each loss stays a 0-d device tensor in a list; the
window's losses are stacked and copied to the host once (which also waits for
the device). A list and one ``torch.stack`` cost less per step than writing
into a preallocated tensor (``buf[i] = loss``: ~7 us vs ~2 us on CPU).

Training state (``state``/``load_state``): the optimizer's per-parameter slots
go to and from the canonical layout like the parameters do
(:func:`~dlbench_backends.torch.network.to_canonical`, ``to_torch_layout``), and
Adam's per-parameter step tensors are set to the state's step count.

Mixed precision (bf16, fp16): see :mod:`~dlbench_backends.torch.precision`.

Data parallelism (``--data-parallel N``): this trainer is one of N replica
processes under DDP (:mod:`~dlbench_backends.torch.distributed`). Each takes
its slice of every global batch (the core's ``replica_slice``), and the step
uses ``loss.backward()``, whose hooks DDP's all-reduce rides on
(``autograd.grad`` would bypass them), then the same fused update on
``.grad``. A window's losses (each replica's slice means) are averaged over
the replicas once per window: the global batch's losses, as one process has them.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from dlbench.data.base import Dataset
from dlbench.errors import InputError
from dlbench.plugin.backend import Trainer, TrainerOptions, TrainingState, slot_names
from dlbench.plugin.helpers import input_dtype, loss_targets, signal_as_image
from dlbench.network import ModelSpec, is_trained
from dlbench.network.precision import LOSS_SCALE, is_mixed, scales_loss
from dlbench.plugin.distributed import replica_slice
from dlbench_backends.torch import TorchBackend, distributed, inference, network
from dlbench_backends.torch.losses import LOSSES
from dlbench_backends.torch.network import (activation, build_network, load_weights, module_tensors,
                                            module_weights, to_canonical, to_torch_layout)
from dlbench_backends.torch.optim import build_optimizer
from dlbench_backends.torch.precision import LossScaler, autocast

#: at most this many bytes of batches are gathered at once (one index_select for many steps).
GATHER_BYTES = 16 << 20


def set_tf32(tf32: bool) -> None:
    """TF32 tensor cores on or off for float32 matmuls (cuBLAS) and convolutions
    and RNNs (cuDNN), through both of torch's switches, kept in agreement (torch
    refuses a mix of its legacy and new TF32 settings that disagree)."""
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def apply_settings(options: TrainerOptions) -> None:
    """Pin precision and determinism explicitly, whatever they were before."""
    set_tf32(options.precision == "tf32")
    if options.deterministic and options.device == "gpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(options.deterministic)
    torch.backends.cudnn.deterministic = options.deterministic
    torch.backends.cudnn.benchmark = False


class TorchTrainer(Trainer):
    def __init__(self, spec: ModelSpec, weights, options: TrainerOptions):
        extra = TorchBackend.check_options(options.extra)
        apply_settings(options)
        if options.device == "gpu" and not torch.cuda.is_available():
            raise InputError("torch sees no CUDA GPU; use device 'cpu'", field="device")
        self.device = torch.device("cuda" if options.device == "gpu" else "cpu")
        self.data_parallel = options.data_parallel
        if self.data_parallel.active:
            self.device = distributed.local_device(self.device)
            distributed.start(self.device, self.data_parallel.replicas)
        self.device_name = torch.cuda.get_device_name(self.device) if options.device == "gpu" else "cpu"
        if self.device.type == "cuda":  # the row's peak is this trainer's, not an earlier one's in this process
            torch.cuda.reset_peak_memory_stats(self.device)
        self.spec = spec
        self.channels_first = network.takes_channels_first(spec)
        self.channels_last = network.CHANNELS_LAST
        # dropout masks: a generator of our own, seeded from the options, never torch's global one;
        # each data-parallel replica its own (as DDP's ranks, whose global generators differ by rank)
        self.generator = torch.Generator(self.device).manual_seed(
            distributed.replica_seed(options.seed, distributed.rank()) if self.data_parallel.active else options.seed)
        self.model, self.holders = build_network(spec, weights, self.device, self.generator)
        self.params = list(self.model.parameters())  # the moving statistics are buffers, not parameters
        self.output = activation(spec.output_activation, alpha=spec.output_alpha)[1]
        self.loss = LOSSES[spec.loss]
        self.precision = options.precision
        #: the module training steps run through: the model, or the model under DDP
        self.ddp = (distributed.wrap(self.model, self.device, self.data_parallel.sync_batchnorm)
                    if self.data_parallel.active else None)
        self.loss_of = self._loss_of(compiled=extra["compile"])
        self.optimizer = build_optimizer(spec.optimizer, self.params)
        self.steps_taken = 0
        self.scaler = LossScaler(self.device) if scales_loss(options.precision) else None
        self._step = (self._make_step if self.ddp is None else self._make_ddp_step)(self.optimizer.update)
        self.options_extra, self.predictor = extra, None  # see :mod:`~dlbench_backends.torch.inference`

    def autocast(self):
        """The mixed-precision context of forward passes (none at fp32/tf32)."""
        return autocast(self.device, self.precision)

    def _loss_of(self, compiled: bool):
        """loss_of(x, t): forward and loss, through torch.compile when ``compiled``."""
        model, loss, output, autocast = self.ddp or self.model, self.loss, self.output, self.autocast

        def loss_of(x, t):
            return loss(model(x), t, output)

        if is_mixed(self.precision):
            plain = loss_of

            def loss_of(x, t):
                with autocast():
                    return plain(x, t)

        if not compiled:
            return loss_of
        # dynamo caches compiled code per function *code*, shared by every
        # trainer of this process, with a recompile limit (8): start clean
        torch.compiler.reset()
        return torch.compile(loss_of, dynamic=False)

    def _make_step(self, update):
        """One optimizer step on one batch, returning its loss as a 0-d device tensor."""
        grad, no_grad, loss_of, params = torch.autograd.grad, torch.no_grad, self.loss_of, self.params
        # The fused kernels walk a gradient's memory in its parameter's order, whatever
        # its strides. ``loss.backward()`` lays .grad out like the parameter, but
        # autograd.grad returns what the backward made: a convolution's weight gradient
        # can come in another memory format than the weight. Those are re-laid.
        strided = [(i, [d for d, n in enumerate(p.shape) if n > 1]) for i, p in enumerate(params) if p.dim() > 2]

        scaler = self.scaler

        def step(x, t):
            loss = loss_of(x, t)
            grads = grad(loss if scaler is None else loss * scaler.scale, params)
            if strided:
                grads = list(grads)
                for i, dims in strided:
                    g, p = grads[i], params[i]
                    if any(g.stride(d) != p.stride(d) for d in dims):  # a size-1 axis's stride means nothing
                        grads[i] = torch.empty_like(p).copy_(g)
            with no_grad():
                if scaler is None:
                    update(grads)
                else:
                    update(grads, scaler.unscale(grads))
                    scaler.update()
            return loss.detach()

        return step

    def _make_ddp_step(self, update):
        """One replica's step under DDP: backward (DDP all-reduces the gradients
        into ``.grad`` on the way), then the update from ``.grad``."""
        no_grad, loss_of, params, scaler = torch.no_grad, self.loss_of, self.params, self.scaler

        def step(x, t):
            loss = loss_of(x, t)
            (loss if scaler is None else loss * scaler.scale).backward()
            grads = [p.grad for p in params]
            with no_grad():
                if scaler is None:
                    update(grads)
                else:
                    update(grads, scaler.unscale(grads))
                    scaler.update()
            for p in params:
                p.grad = None
            return loss.detach()

        return step

    def distributed(self) -> dict | None:
        return None if self.ddp is None else distributed.info(self.ddp)

    def peak_device_bytes(self) -> int | None:
        """The most GPU memory torch's allocator held in tensors since this
        trainer was built (``max_memory_allocated``); None on a CPU."""
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None

    def place_data(self, data: Dataset) -> None:
        def put(array):
            return torch.tensor(np.ascontiguousarray(array), device=self.device)

        def put_inputs(x):
            """Inputs in their canonical channels-last memory order; a 1-D signal
            (N, L, C) as an image of height 1, (N, 1, L, C)."""
            x = np.asarray(x, input_dtype(self.spec))  # token ids stay integers
            return put(signal_as_image(x) if x.ndim == 3 and self.channels_first else x)

        self.x_train = put_inputs(data.x_train)
        self.t_train = put(loss_targets(self.spec, data.y_train))
        self.x_test = put_inputs(data.x_test)
        self.t_test = put(loss_targets(self.spec, data.y_test))
        self.y_test = put(data.y_test.astype(np.int64, copy=False))
        self.sample_bytes = sum(t[0].nelement() * t.element_size() for t in (self.x_train, self.t_train))

    def train(self, indices: np.ndarray) -> np.ndarray:
        if not self.model.training:  # predictions left it in eval mode
            self.model.train()
        if self.ddp is not None:
            indices = replica_slice(indices, distributed.rank(), self.data_parallel.replicas)
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
        losses = torch.stack(losses)
        return (losses if self.ddp is None else distributed.mean_over_replicas(losses)).cpu().numpy()

    def _network_input(self, x):
        """(..., H, W, C) inputs as the (..., C, H, W) the network takes: a view in
        channels_last memory format, no copy (identity for flat inputs)."""
        if not self.channels_first:
            return x
        x = x.movedim(-1, -3)
        return x if self.channels_last else x.contiguous()

    def evaluate(self) -> tuple[float, float]:
        self.model.eval()  # dropout off, BatchNormalization on its moving statistics
        try:
            with torch.inference_mode(), self.autocast():
                z = self.model(self._network_input(self.x_test))
                loss = float(self.loss(z, self.t_test, self.output))
                out = self.output(z)
                predicted = out[..., 0] > 0.5 if out.shape[-1] == 1 else out.argmax(dim=-1)
                correct = int((predicted == self.y_test).sum())
        finally:
            self.model.train()
        return loss, correct / self.y_test.numel()  # per token for labels per timestep

    def predict(self, indices: np.ndarray) -> np.ndarray:
        return inference.predict(self, indices)

    def weights(self):
        """One dict per spec layer, like the initial weights: a final Activation
        layer, left out of the logit layers, has its empty one too."""
        layers = self.spec.logit_layers()
        return [module_weights(self.holders[i], layers[i]) if i in self.holders else {}
                for i in range(len(self.spec.layers))]

    def _trained(self):
        """(layer, canonical name, its optimizer state) for every trained parameter."""
        layers = self.spec.logit_layers()
        for i, module in self.holders.items():
            for name, tensor in module_tensors(module, layers[i]).items():
                if is_trained(name):
                    yield i, name, self.optimizer.state[tensor]

    def state(self) -> TrainingState:
        layers = self.spec.logit_layers()
        names = slot_names(self.spec.optimizer)
        slots = [{} for _ in self.spec.layers]
        for i, name, tensors in self._trained():
            slots[i][name] = {slot: to_canonical(layers[i], name, tensors[slot]) for slot in names}
        if self.scaler is None:
            return TrainingState(self.weights(), slots, self.steps_taken)
        skipped = int(self.scaler.skipped)  # steps the loss scale skipped are not optimizer steps
        return TrainingState(self.weights(), slots, self.steps_taken - skipped, self.scaler.state())

    def load_state(self, state: TrainingState) -> None:
        layers = self.spec.logit_layers()
        with torch.no_grad():
            for i, module in self.holders.items():
                load_weights(module, layers[i], state.weights[i])
            for i, name, tensors in self._trained():
                for slot, t in tensors.items():
                    if slot == "step":  # Adam's bias correction (and AdamW's)
                        t.fill_(state.step)
                    else:
                        t.copy_(to_torch_layout(layers[i], name, state.slots[i][name][slot], t))
            if self.scaler is not None:
                self.scaler.load(state.loss_scale or LOSS_SCALE.start())
        self.steps_taken = state.step
        self.optimizer.load_step(state.step)

