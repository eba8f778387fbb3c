"""The one trainer set-up. Everything that trains a network goes through
:func:`prepare`: the worker, the certificate's segments, the pytest-benchmark
plugin, the test helpers and the overhead benchmark. So a backend is built
the same way wherever it is measured or checked:

    data (from the run's cache) -> initial weights and batch order from the
    core -> Backend.build -> Trainer.place_data

Building and placing the data are timed here, apart from training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions
from dlbench.scenario import Scenario
from dlbench.network import ModelSpec
from dlbench.network.init import Weights, initial_weights


@dataclass
class Session:
    """A built trainer with its data placed, and what it was built from."""

    backend: Backend
    spec: ModelSpec
    data: Dataset
    plan: BatchPlan
    options: TrainerOptions
    weights: Weights  # the weights it started from
    trainer: Trainer
    build_seconds: float
    placement_seconds: float


def prepare(backend: Backend, spec: ModelSpec, data: Dataset, plan: BatchPlan, options: TrainerOptions,
            weights: Weights | None = None) -> Session:
    """Build ``backend``'s trainer for ``spec`` from ``weights`` (default: the
    core's initial weights for ``options.seed``) and place ``data`` on its device."""
    if weights is None:
        weights = initial_weights(spec, options.seed)
    start = time.perf_counter()
    trainer = backend.build(spec, weights, options)
    built = time.perf_counter()
    trainer.place_data(data)
    return Session(backend, spec, data, plan, options, weights, trainer, built - start,
                   time.perf_counter() - built)


def scenario_plan(scenario: Scenario, n_train: int) -> BatchPlan:
    """The batch order of ``scenario``'s training, for a training set of ``n_train`` samples."""
    train = scenario.train
    return BatchPlan(n_train, train.batch_size, train.epochs, train.seed, train.drop_last, train.max_steps)


def load_data(scenario: Scenario, data_dir: str = "") -> Dataset:
    """The scenario's dataset: from the run's shared cache in ``data_dir`` when
    there is one (materialised once per run, memory-mapped by every worker)."""
    from dlbench.data.cache import cached_load
    from dlbench.plugin.manager import get_plugins

    info = get_plugins().dataset(scenario.data_name)
    if data_dir:
        return cached_load(info, scenario.train.seed, scenario.data_options, data_dir)
    return info.load(scenario.train.seed, scenario.data_options)


def prepare_scenario(scenario: Scenario, backend: Backend, options: TrainerOptions, *, data_dir: str = "",
                     data: Dataset | None = None, plan: BatchPlan | None = None,
                     weights: Weights | None = None) -> Session:
    """:func:`prepare` for a scenario: its data (or ``data``), its batch order (or ``plan``),
    the core's initial weights (or ``weights``, e.g. those of the user's own model)."""
    data = load_data(scenario, data_dir) if data is None else data
    plan = scenario_plan(scenario, len(data.x_train)) if plan is None else plan
    return prepare(backend, scenario.model, data, plan, options, weights)
