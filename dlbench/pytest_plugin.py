"""pytest fixtures for benchmarking dlbench trainers with pytest-benchmark.

Registered as the ``dlbench`` pytest plugin (entry point ``pytest11``), so a
benchmark of one (scenario, backend) takes a few lines::

    def test_digits_on_torch(benchmark, dlbench_trainer):
        trainer = dlbench_trainer("digits-mlp", "torch")
        benchmark.group = trainer.scenario
        benchmark.extra_info.update(trainer.info)
        benchmark.pedantic(trainer.run_window, rounds=10, iterations=1)

``run_window()`` trains one window of ``steps_per_call`` steps of the
scenario's batch size on data already placed on the device, and returns the
losses as a host array. Returning a host value is the trainer contract's
synchronization point (the device has finished), so pytest-benchmark's
clock, read right after, times finished work. The factory runs one window
before handing the trainer over, so compilation and tracing (JAX jit,
tf.function) stay out of the timed rounds; its time is ``info["compile_seconds"]``.

Unlike ``dlbench run``, everything runs in the pytest process: thread
settings apply only as far as ``Backend.configure_threads`` can change them
after import. A backend whose framework is missing is skipped with the pip
command that installs it.

Inference has its own fixture, ``dlbench_predictor``::

    def test_digits_latency_on_jax(benchmark, dlbench_predictor):
        predictor = dlbench_predictor("digits-mlp", "jax", batch_size=1)
        benchmark.extra_info.update(predictor.info)
        benchmark.pedantic(predictor.predict, rounds=200, iterations=1)

``predict()`` runs the trainer's forward pass in inference mode
(:meth:`Trainer.predict`) on the next batch of test rows, as ``dlbench run
--mode inference`` does, and returns the logits as a host array (so the
device has finished). The factory times the first call (compilation) as
``info["compile_seconds"]`` and makes ``WARMUP_CALLS`` more before handing
the predictor over.

The plugin also adds the framework versions, BLAS and CPU to
pytest-benchmark's ``machine_info`` (under ``"dlbench"``), so saved benchmark
files say what they were measured with.

It also gives the backend kit its option, ``--dlbench-backend NAME``
(repeatable, or a comma list): the backends ``pytest --pyargs
dlbench.plugin.testing`` checks (:mod:`dlbench.plugin.testing`).

Nothing heavy is imported when pytest loads this module.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import pytest

DEFAULT_WINDOW_STEPS = 10
FLOPS_PER_CALL = 2e9  # automatic windows stay under this much arithmetic (well under a second on a CPU)
MAX_WINDOWS = 32


@dataclass
class BenchTrainer:
    """A built trainer with its data placed, ready to run windows of steps."""

    scenario: str
    backend: str
    backend_version: str | None
    device: str
    steps_per_call: int
    batch_size: int
    flops_per_step: int | None
    compile_seconds: float
    trainer: object = field(repr=False)
    windows: object = field(repr=False)

    @property
    def samples_per_call(self) -> int:
        return self.steps_per_call * self.batch_size

    def run_window(self):
        """One window of steps; returns the losses (a host array, so the device is done)."""
        return self.trainer.train(next(self.windows))

    def samples_per_sec(self, seconds: float) -> float:
        return self.samples_per_call / seconds

    @property
    def info(self) -> dict:
        """Metadata for ``benchmark.extra_info``."""
        return {"scenario": self.scenario, "backend": self.backend, "backend_version": self.backend_version,
                "device": self.device, "steps_per_call": self.steps_per_call, "batch_size": self.batch_size,
                "samples_per_call": self.samples_per_call, "flops_per_step": self.flops_per_step,
                "compile_seconds": self.compile_seconds}


def shipped_scenarios() -> list[str]:
    """Names of the shipped scenarios (for ``pytest.mark.parametrize``)."""
    from dlbench.scenario import scenario_files

    return list(scenario_files())


def registered_backends() -> list[str]:
    """Every registered backend, available or not (unavailable ones are skipped by the fixture)."""
    from dlbench.plugin.manager import get_plugins

    return list(get_plugins().backends)


def _full_windows(plan, window_steps: int):
    """Windows of exactly ``window_steps`` full batches, cycled: every call does the same work."""
    steps = min(window_steps, plan.n_samples // plan.batch_size)
    windows = [w.indices for w in itertools.islice(plan.windows(steps), MAX_WINDOWS * 4)
               if w.steps == steps and w.batch_size == plan.batch_size][:MAX_WINDOWS]
    return steps, windows


def build_trainer(scenario: str, backend: str, *, window_steps: int | None = None,
                  batch_size: int | None = None, device: str = "cpu", threads: int | None = None,
                  options: dict | None = None) -> BenchTrainer:
    """Build ``backend``'s trainer for ``scenario``, place the data, run (and time) one warm-up window.

    ``window_steps`` (steps per ``run_window`` call) defaults to 10, fewer for
    heavy networks so that one call stays under ``FLOPS_PER_CALL``."""
    from dlbench.data.batches import BatchPlan
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.manager import get_plugins
    from dlbench.measure.session import load_data, prepare_scenario
    from dlbench.scenario import resolve_scenario

    plugins = get_plugins()
    chosen = plugins.backend(backend)
    availability = chosen.availability()
    if not availability.available:
        pytest.skip(f"{backend}: {availability.reason}")
    if threads is not None:
        chosen.configure_threads(threads)
    loaded = resolve_scenario(scenario, plugins.scenario_dirs).with_overrides(batch_size=batch_size)
    spec, train = loaded.model, loaded.train
    data = load_data(loaded)
    flops = _step_flops(spec, train.batch_size)
    if window_steps is None:
        affordable = int(FLOPS_PER_CALL // flops) if flops else DEFAULT_WINDOW_STEPS
        window_steps = max(1, min(DEFAULT_WINDOW_STEPS, affordable))
    plan = BatchPlan(len(data.x_train), train.batch_size, MAX_WINDOWS, train.seed, drop_last=True)
    steps, windows = _full_windows(plan, window_steps)
    if not windows:
        pytest.skip(f"{scenario}: fewer than one full batch of {train.batch_size} samples")
    trainer = prepare_scenario(loaded, chosen, TrainerOptions(device, seed=train.seed, extra=options or {}),
                               data=data, plan=plan).trainer
    cycle = itertools.cycle(windows)
    start = time.perf_counter()
    trainer.train(next(cycle))
    compile_seconds = time.perf_counter() - start
    return BenchTrainer(loaded.name, backend, chosen.version(), getattr(trainer, "device_name", device), steps,
                        train.batch_size, flops, compile_seconds, trainer, cycle)


@dataclass
class BenchPredictor:
    """A built trainer with its test set placed, ready to predict batch after batch."""

    scenario: str
    backend: str
    backend_version: str | None
    device: str
    batch_size: int
    compile_seconds: float
    trainer: object = field(repr=False)
    batches: object = field(repr=False)

    def predict(self):
        """The logits of the next batch of test rows (a host array, so the device is done)."""
        return self.trainer.predict(next(self.batches))

    def samples_per_sec(self, seconds: float) -> float:
        return self.batch_size / seconds

    @property
    def info(self) -> dict:
        """Metadata for ``benchmark.extra_info``."""
        return {"scenario": self.scenario, "backend": self.backend, "backend_version": self.backend_version,
                "device": self.device, "mode": "inference", "batch_size": self.batch_size,
                "compile_seconds": self.compile_seconds}


def build_predictor(scenario: str, backend: str, *, batch_size: int | None = None, device: str = "cpu",
                    threads: int | None = None, options: dict | None = None) -> BenchPredictor:
    """Build ``backend``'s trainer for ``scenario`` from the core's initial weights, place
    the data, time the first prediction of ``batch_size`` rows (default: the scenario's
    batch size) and warm up; batches cycle through the test set as ``dlbench run`` cycles them."""
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.manager import get_plugins
    from dlbench.measure.inference import WARMUP_CALLS, batch_rows
    from dlbench.measure.session import prepare_scenario
    from dlbench.scenario import resolve_scenario

    plugins = get_plugins()
    chosen = plugins.backend(backend)
    availability = chosen.availability()
    if not availability.available:
        pytest.skip(f"{backend}: {availability.reason}")
    if "inference" not in chosen.modes:
        pytest.skip(f"{backend}: cannot run inference")
    if threads is not None:
        chosen.configure_threads(threads)
    loaded = resolve_scenario(scenario, plugins.scenario_dirs)
    size = batch_size or loaded.train.batch_size
    session = prepare_scenario(loaded, chosen, TrainerOptions(device, seed=loaded.train.seed, extra=options or {}))
    n_test = len(session.data.x_test)
    batches = itertools.cycle([batch_rows(n_test, size, k) for k in range(max(1, min(64, n_test // size)))])
    trainer = session.trainer
    start = time.perf_counter()
    trainer.predict(next(batches))
    compile_seconds = time.perf_counter() - start
    for _ in range(WARMUP_CALLS):
        trainer.predict(next(batches))
    return BenchPredictor(loaded.name, backend, chosen.version(), getattr(trainer, "device_name", device), size,
                          compile_seconds, trainer, batches)


def _step_flops(spec, batch_size: int) -> int | None:
    from dlbench.network.flops import training_step_flops

    try:
        return training_step_flops(spec, batch_size)
    except (KeyError, NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def pytest_configure(config: pytest.Config) -> None:
    """The kit's marker, and its backends checked before anything is collected
    (a name no plugin registers is a usage error, exit status 4)."""
    config.addinivalue_line("markers", "slow: trains real scenarios or spawns framework processes")
    if config.getoption("dlbench_backend", default=None):
        from dlbench.plugin.testing.fixtures import selected_backends

        selected_backends(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("dlbench").addoption(
        "--dlbench-backend", action="append", dest="dlbench_backend", metavar="NAME",
        help="the backend(s) the contract suite checks (pytest --pyargs dlbench.plugin.testing); repeatable or a "
             "comma list; default: every registered backend")


@pytest.fixture
def dlbench_trainer():
    """Factory: ``dlbench_trainer(scenario, backend, window_steps=None, batch_size=None,
    device="cpu", threads=None, options=None)`` -> :class:`BenchTrainer`."""
    return build_trainer


@pytest.fixture
def dlbench_predictor():
    """Factory: ``dlbench_predictor(scenario, backend, batch_size=None, device="cpu",
    threads=None, options=None)`` -> :class:`BenchPredictor` (inference mode)."""
    return build_predictor


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    """Framework versions, CPU and machine id next to pytest-benchmark's own
    machine info. Only what stays put between runs on one machine goes in (the
    commit is in pytest-benchmark's commit_info; the loaded BLAS libraries depend
    on which frameworks the selected tests imported), so pytest-benchmark warns
    about a different machine only when the machine or its software changed."""
    import platform

    import psutil

    import dlbench
    from dlbench.plugin.manager import get_plugins
    from dlbench.results.store import machine_id
    from dlbench.measure import environment

    env = {"hostname": platform.node(), "cpu": environment.cpu_model(), "logical_cores": psutil.cpu_count()}
    machine_info["dlbench"] = {"dlbench": dlbench.__version__, "cpu": env["cpu"],
                               "available_cores": environment.available_cores(),
                               "versions": environment.versions(get_plugins().backend_distributions()),
                               "machine_id": machine_id(env)}
