"""The contract between the core and a backend plugin.

A backend is a class: it says whether its framework is installed (from
package metadata, without importing it), which devices it supports, and
builds a :class:`Trainer` from the core's spec and initial weights. The
runner owns everything else: data, batch order, timing, results.

What every trainer computes, so that backends agree:

* the network's *logits* ``z``: the layers of ``spec.logit_layers()``, i.e.
  every layer except the last layer's activation ``f = spec.output_activation``;
* the loss from ``z`` (and ``f`` for mse) as documented in :mod:`dlbench.network`;
* gradients averaged over the batch, and the optimizer update of
  :mod:`dlbench.network`, in float32;
* accuracy: argmax of ``f(z)`` (several units) or ``f(z) > 0.5`` (one unit).

Inference (``dlbench run --mode inference|both``): :meth:`Trainer.predict`
returns the logits ``z`` of test samples chosen by index, computed in
inference mode (BatchNormalization on its moving statistics, Dropout the
identity, no gradient bookkeeping), as a host array. The core times the
calls (:mod:`dlbench.measure.inference`) and compares the logits with the NumPy
reference's float64 twin; a backend that can do this lists ``"inference"``
in :attr:`Backend.modes`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from dlbench.data.base import Dataset
from dlbench.errors import InputError, one_of
from dlbench.plugin.distributed import DataParallel
from dlbench.network.imported import ImportedModel
from dlbench.network.init import Weights
from dlbench.network import ModelSpec, is_trained
from dlbench.network.precision import PRECISIONS

__all__ = ["PRECISIONS", "Availability", "TrainerOptions", "TrainingState", "Trainer", "Backend",
           "slot_names", "empty_slots"]
#: how an option's expected type is said in an error message (as the command line spells values).
TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class TrainerOptions:
    """Everything a trainer is built with besides the spec and the weights."""

    device: str = "cpu"  # where the trainer runs: "cpu" or "gpu" (a run resolves "auto" before)
    precision: str = PRECISIONS[0]  # one of PRECISIONS, checked before any trainer is built
    deterministic: bool = False
    seed: int = 0  # for a backend's own randomness (dropout masks)
    #: the backend's options: in a run, checked against what it declares and filled with its
    #: defaults once, by the run's settings (:func:`dlbench.run.checks.filled_backend_options`)
    extra: dict = field(default_factory=dict)
    #: replicas on the backend's distributed engine (see :mod:`dlbench.plugin.distributed`)
    data_parallel: DataParallel = field(default_factory=DataParallel)


@dataclass
class TrainingState:
    """Everything that decides a trainer's next step, in the core's canonical
    layout, so that one backend's state can be loaded into another:

    * ``weights``: per layer, every parameter (``kernel``, ``bias``, ``gamma``,
      ``beta``) and moving statistic (``moving_mean``, ``moving_variance``),
      exactly as :meth:`Trainer.weights` returns them;
    * ``slots``: per layer, per trained parameter (the names in
      ``PARAMETERS_TRAINED`` that the layer has), the optimizer's state in the
      parameter's own shape, named by the optimizer's ``slots``
      (:mod:`dlbench.network.optimizers`): ``{"m", "v"}`` for Adam and AdamW,
      ``{"velocity"}`` for SGD with momentum (the ``v`` of ``v <- momentum*v + g``),
      nothing for plain SGD, ``square_avg`` (+ ``grad_avg`` centered, +
      ``momentum_buffer``) for RMSprop, ``square_avg`` and ``acc_delta`` for Adadelta;
    * ``step``: optimizer steps taken so far (Adam's bias correction and the
      learning-rate schedules use it);
      a step skipped by loss scaling is not one;
    * ``loss_scale``: at fp16, the dynamic loss scale and the finite steps in a
      row since it last changed (:mod:`dlbench.network.precision`); None otherwise.

    A backend's own random stream (dropout masks) is not part of the state.
    """

    weights: list
    slots: list
    step: int
    loss_scale: tuple[float, int] | None = None

    def copy(self) -> "TrainingState":
        return TrainingState([{k: np.array(v) for k, v in layer.items()} for layer in self.weights],
                             [{p: {k: np.array(v) for k, v in slot.items()} for p, slot in layer.items()}
                              for layer in self.slots], self.step, self.loss_scale)


def slot_names(optimizer) -> tuple[str, ...]:
    """The optimizer state kept per trained parameter (see :class:`TrainingState`)."""
    return optimizer.slots


def empty_slots(spec: ModelSpec) -> list:
    """The optimizer state before the first step: zeros for every slot."""
    names = slot_names(spec.optimizer)
    return [{param: {name: np.zeros(shape, np.float32) for name in names}
             for param, shape in shapes.items() if is_trained(param)}
            for shapes in spec.param_shapes()]


class Trainer(ABC):
    """One network, on one device, ready to train on the core's batches."""

    device_name: str = "cpu"

    @abstractmethod
    def place_data(self, data: Dataset) -> None:
        """Copy train and test arrays to the device (outside the timed region)."""

    @abstractmethod
    def train(self, indices: np.ndarray) -> np.ndarray:
        """Run one optimizer step per row of ``indices`` (steps, batch) and
        return each step's training loss as a host array. Returning means the
        device has finished: the runner reads its clock right after."""

    @abstractmethod
    def evaluate(self) -> tuple[float, float]:
        """(loss, accuracy) on the test set, in inference mode."""

    def predict(self, indices: np.ndarray) -> np.ndarray:
        """The logits of the test samples ``indices`` (a 1-D integer array, one
        batch; the test set is on the device since :meth:`place_data`), in
        inference mode, as a host array (batch, units), float32 (float64 for a
        float64 trainer). Returning means the device has finished: the core
        times each call on its own clock. Any network the trainer can train it
        can predict with; it never changes the training state, and compiled
        forms (XLA, torch.compile) are made on the first call of each batch
        size, which the core times apart as compile time."""
        raise NotImplementedError(f"{type(self).__name__} cannot run inference")

    @abstractmethod
    def weights(self) -> Weights:
        """The current parameters in the core's canonical layout (float32)."""

    def state(self) -> TrainingState:
        """The full training state (parameters, optimizer slots, step), copied
        to the host in canonical layout; training goes on unchanged after it."""
        raise NotImplementedError(f"{type(self).__name__} does not export its training state")

    def load_state(self, state: TrainingState) -> None:
        """Continue from ``state`` (taken from this or any other backend): the
        next step is the one that backend would have taken. Exact: ``state()``
        right after returns the same arrays."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a training state")

    def peak_device_bytes(self) -> int | None:
        """Peak device (GPU) memory this trainer allocated; None on CPU or when unknown."""
        return None

    def distributed(self) -> dict | None:
        """For a data-parallel trainer: ``{"engine", "collective", "world_size"}``
        and, where the framework exposes it, ``"communication_seconds"`` (time
        in gradient all-reduces so far); None for a single-process trainer."""
        return None


class Backend(ABC):
    """A framework the runner can train on. Subclass and register it with the
    ``dlbench_register_backends`` hook.

    What a backend can do comes in capability tiers; each is a few members
    beyond the one before, and a backend without one gets a row that says so
    (never a crash, never a silent substitute):

    * **core**: :attr:`name`, :meth:`availability` (from :attr:`module`,
      :attr:`distributions`, :attr:`pip_install`), :meth:`build` and the
      trainer's ``place_data``, ``train``, ``evaluate``, ``weights``: the
      backend trains and is judged on its free run against the NumPy reference;
      :attr:`option_defaults` (with :attr:`option_choices`,
      :attr:`option_minimums`) declare its ``--backend-option`` settings,
      :meth:`thread_environment` / :meth:`configure_threads` fix its threads.
    * **certificate**: the trainer's ``state`` / ``load_state``
      (:class:`TrainingState`): the parity certificate re-synchronises it with
      the reference segment by segment.
    * **inference**: ``"inference"`` in :attr:`modes` and the trainer's
      ``predict``: ``--mode inference|both``.
    * **mixed precision**: :attr:`precisions` beyond fp32/tf32 (and
      :meth:`precision_unavailable`): bf16/fp16 runs, fp16's loss scale in the
      training state.
    * **data parallel**: :attr:`data_parallel_engine` and, as the engine needs,
      :meth:`worker_environment`, :meth:`configure_data_parallel`,
      :meth:`data_parallel_unavailable`, :meth:`launch_command`,
      :meth:`process_rank`, and the trainer's ``distributed``:
      ``--data-parallel N``, on one host or several.
    * **peak**: :meth:`matmul` (and :meth:`gpu_name`), the trainer's
      ``peak_device_bytes``: ``dlbench peak``, "% of peak" and peak memory.
    * **model reader**: :meth:`reads_model` / :meth:`import_model`:
      ``dlbench.from_keras``, ``dlbench.from_torch``, ``benchmark(model)``.

    The built-in backends (``backends/<name>/``) also share one inner module
    API, checked by ``tests/backends/test_module_api.py``: see the "Backend
    module API" page of the documentation."""

    name: ClassVar[str]
    #: import name of the framework ("torch"); None for no framework.
    module: ClassVar[str | None] = None
    #: distribution whose version is reported ("torch", "tensorflow-cpu").
    distributions: ClassVar[tuple[str, ...]] = ()
    #: the command that installs what is missing.
    pip_install: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: its distributed engine for ``--data-parallel N`` ("torch.distributed DDP"); None: it has none,
    #: and a data-parallel run gets an "unavailable" row (the NumPy reference runs at the global batch)
    data_parallel_engine: ClassVar[str | None] = None
    #: the precisions its trainers compute in (``dlbench.network.precision``); a run
    #: asking for another gets an "unavailable" row, never a silent fp32 one
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "tf32")
    #: what ``dlbench run --mode`` may ask of it: "train", and "inference" when
    #: its trainer implements :meth:`Trainer.predict` (checked before any run starts)
    modes: ClassVar[tuple[str, ...]] = ("train",)
    description: ClassVar[str] = ""
    #: where ``--backend all`` and the reports put this backend among dlbench's own
    #: (the built-ins: 0 is the NumPy reference); the backends of every other plugin
    #: follow them in registration order, whatever they inherit.
    order: ClassVar[int] = 0
    #: backend-specific options (``--backend-option NAME.KEY=VALUE``) and their defaults,
    #: whose types the values must have (an int passes for a float);
    #: checked by the core before any run starts.
    option_defaults: ClassVar[dict] = {}
    #: the allowed values of options that take one of a few (checked instead of the type).
    option_choices: ClassVar[dict[str, tuple]] = {}
    #: the smallest allowed value of numeric options.
    option_minimums: ClassVar[dict[str, float]] = {}
    #: how the framework's models take images and signals: "channels_last" (as
    #: the spec) or "channels_first" (torch's NCHW); ``dlbench.benchmark`` moves
    #: the channel axis of a channels-first model's data last
    model_layout: ClassVar[str] = "channels_last"

    @classmethod
    def check_options(cls, options: dict) -> dict:
        """The options with defaults filled in; an InputError naming the option,
        the value and what is allowed. A classmethod, so that a trainer built
        without its backend (a subclass's) checks its options the same way."""
        for key, value in options.items():
            if key not in cls.option_defaults:
                allowed = one_of(cls.option_defaults) if cls.option_defaults else "it takes no options"
                raise InputError(f"unknown {cls.name} option {key!r}; {allowed}", field="--backend-option")
            allowed = cls._allowed_instead(key, value)
            if allowed is not None:
                raise InputError(f"{cls.name}.{key} must be {allowed}, got {value!r}", field="--backend-option")
        return {**cls.option_defaults, **options}

    @classmethod
    def _allowed_instead(cls, key: str, value) -> str | None:
        """What option ``key`` allows, said for a user, when ``value`` is not allowed; else None."""
        if key in cls.option_choices:
            choices = cls.option_choices[key]
            if any(type(value) is type(choice) and value == choice for choice in choices):
                return None
            return _spoken_choices(choices)
        default = cls.option_defaults[key]
        if type(value) is not type(default) and not (type(default) is float and type(value) is int):
            return TYPE_WORDS.get(type(default), type(default).__name__)
        low = cls.option_minimums.get(key)
        return f"at least {low}" if low is not None and value < low else None

    def availability(self) -> Availability:
        """Available when the framework can be imported; decided from the
        installed metadata only, so listing backends stays instant."""
        if self.module is None:
            return Availability(True, version=None)
        if importlib.util.find_spec(self.module) is None:
            return Availability(False, f"{self.module} is not installed; run: {self.pip_install}")
        return Availability(True, version=self.version())

    def version(self) -> str | None:
        for dist in self.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def thread_environment(self, threads: int, device: str) -> dict[str, str]:
        """Environment variables that fix this framework's thread pools to
        ``threads``; the runner puts them in the worker's environment, since a
        framework reads them once, when it starts. The BLAS and OpenMP pools
        every numerical library uses are set here; a framework adds its own."""
        n = str(threads)
        env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "PYTHONUNBUFFERED": "1"}
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def worker_environment(self, threads: int, device: str, replicas: int = 1) -> dict[str, str]:
        """The worker's environment for ``replicas`` data-parallel replicas on
        this host, of ``threads`` threads each: :meth:`thread_environment`, plus
        whatever the engine reads when the framework starts (JAX's host device count)."""
        return self.thread_environment(threads, device)

    def configure_data_parallel(self, data_parallel: DataParallel, threads: int) -> None:
        """Make this host's ``data_parallel.local_replicas`` devices of ``threads``
        threads each, and on several hosts join the others (after
        :meth:`configure_threads`, before :meth:`build`; in the worker, where the
        framework may be imported): TF's logical CPU devices and TF_CONFIG,
        ``jax.distributed.initialize``, for instance."""

    def data_parallel_unavailable(self, data_parallel: DataParallel, device: str,
                                  spec: ModelSpec | None = None) -> str | None:
        """Why this backend cannot train ``spec`` data-parallel as asked on
        ``device``, said for the row; None when it can. The default knows
        :attr:`data_parallel_engine`; a backend adds what its engine lacks."""
        if self.data_parallel_engine is None:
            return f"backend {self.name!r} has no data-parallel engine"
        return None

    def launch_command(self, data_parallel: DataParallel) -> list[str] | None:
        """The command (argv, up to the ``-m`` of the worker module) that starts
        the worker as one process per replica of this host (torchrun, joining the
        other hosts' at ``data_parallel.coordinator``); None when one process
        drives every replica of a host (JAX, TF)."""
        return None

    def process_rank(self) -> int:
        """This process's rank among the replica processes a launch started on
        this host (0 where one process drives every replica of a host); only
        rank 0 writes the row, so every host's run keeps one row per job."""
        return 0

    def configure_threads(self, threads: int) -> int:
        """Apply ``threads`` to the framework (env vars are already set by the
        runner before any import); return the thread count in effect."""
        return threads

    def precision_unavailable(self, precision: str, device: str, spec: ModelSpec | None = None) -> str | None:
        """Why this backend cannot compute ``spec`` in ``precision`` on ``device``
        ("cpu" or "gpu", resolved), said for the row; None when it can. The
        default knows :attr:`precisions`; a backend adds what its framework
        lacks on a device (called in the worker: the framework may be imported)."""
        if precision not in self.precisions:
            return f"{self.name} does not compute in {precision} (it computes in {', '.join(self.precisions)})"
        return None

    def gpu_name(self) -> str | None:
        """The GPU this backend would use, or None when it sees none."""
        return None

    def matmul(self, n: int, dtype: str = "float32") -> Callable[[], object] | None:
        """A function multiplying two n x n ``dtype`` ("float32" or "bfloat16")
        matrices with this framework that returns only once the result is
        ready; None when the backend has none (for that dtype). The machine's peak (``dlbench peak``, "% of peak") is timed with
        it, in a fresh process with this backend's thread environment, after
        ``configure_threads``."""
        return None

    @abstractmethod
    def build(self, spec: ModelSpec, weights: Weights, options: TrainerOptions) -> Trainer:
        """A trainer holding a copy of ``weights``, placed on ``options.device``.
        The built-in backends give their trainer ``options.extra`` filled in by
        :meth:`check_options`, so that a trainer never re-checks it."""

    def reads_model(self, model) -> bool:
        """Whether ``model`` is one of this framework's models, for
        :meth:`import_model` (``dlbench.benchmark`` asks every backend).
        Never imports the framework: an object of a module nobody imported is not one."""
        return False

    def import_model(self, model, *, input_shape=None, loss=None, optimizer=None) -> ImportedModel:
        """``model`` (a framework's own model) as a spec with its current
        weights in canonical layout: ``dlbench.from_keras``, ``from_torch`` and
        ``benchmark(model)`` come here. ``input_shape``: one sample as the model
        takes it (for a model that does not say); ``loss``, ``optimizer``:
        given to override or complete the model's. Anything the spec cannot
        express is one InputError naming the layer, its index and what is
        supported; nothing is half converted."""
        raise InputError(f"backend {self.name!r} cannot read models; dlbench reads Keras models (tensorflow "
                         "backend) and torch modules (torch backend)", field="model")


def _spoken_choices(choices: tuple) -> str:
    """(True, False, "auto") -> 'true, false or auto', as the command line spells them."""
    words = [str(c).lower() if isinstance(c, bool) else str(c) for c in choices]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
