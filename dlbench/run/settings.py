"""One run's settings, in one frozen type, from which everything else is derived.

:class:`RunSettings` is what a user asked for, checked: the CLI
(:mod:`dlbench.cli.options` takes its defaults and choices from here), the
Python API (:func:`dlbench.benchmark`, likewise) and ``--resume`` all build
this one value; every front end hands :meth:`RunSettings.from_options` the
options by their CLI names (checked by :mod:`dlbench.run.checks`), the result
document stores it as ``settings`` (:meth:`RunSettings.to_document`;
``--resume`` rebuilds the same value with :meth:`RunSettings.from_document`),
and the jobs are derived from it: one :class:`RunRequest` per (scenario,
sweep point, backend), the slice of the settings a worker needs, from which
the worker derives the backend's ``TrainerOptions``.

Its nested values are written once: the data-parallel settings are one
:class:`~dlbench.plugin.distributed.DataParallel` (whose ``global_batch`` is
the weak-scaling rule), the backend options are checked against what each
backend declares and stored with its defaults filled in, and whether a job is
the reference is :func:`dlbench.parity.verdict.is_reference`'s to say.
This module imports no numerical library, so that ``dlbench --help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING

from dlbench.network.precision import PRECISIONS
from dlbench.parity.verdict import is_reference
from dlbench.plugin.distributed import DataParallel
from dlbench.run.checks import DEVICES, MODES, checked_settings
from dlbench.scale.cluster import EXECUTORS, Hosts

if TYPE_CHECKING:
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.manager import Plugins
    from dlbench.scenario import Scenario

#: sweep keys that change the scenario; threads, precision and data_parallel change the worker
OVERRIDDEN_BY_SWEEP = ("batch_size", "seed")
ISOLATIONS = ("process", "in-process")


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides which jobs a run has and how, checked: the one
    value the CLI, :func:`dlbench.benchmark` and ``--resume`` all read. Its
    field defaults are the run's defaults, written here only (the CLI's and
    the Python API's derive theirs from :func:`option_default`); the result
    document stores it (:meth:`to_document`) and ``--resume`` rebuilds the
    same value from there (:meth:`from_document`)."""

    scenarios: dict  # name -> shipped name or file
    backends: list
    overrides: dict
    device: str = DEVICES[0]
    threads: int = 1
    repeat: int = 1
    timeout: float | None = None
    precision: str = PRECISIONS[0]
    deterministic: bool = False
    #: backend -> its options, checked against what it declares and with its defaults filled in
    backend_options: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)
    isolation: str = ISOLATIONS[0]
    max_memory_mib: int | None = None
    scenario_digests: dict = field(default_factory=dict)  # name -> digest of the file as the run began
    #: name -> the scenario's description, for reports (which never open the files a document names)
    scenario_descriptions: dict = field(default_factory=dict)
    #: name -> where a model given in Python came from (a Keras model, arrays), for a reader of the document
    sources: dict = field(default_factory=dict)
    weights_files: dict = field(default_factory=dict)  # name -> .npz of the initial weights it starts from
    mode: str = MODES[0]
    inference_batch_sizes: list = field(default_factory=list)
    inference_calls: int | None = None
    #: replicas (``threads`` is then per replica), scaling, BatchNorm mode, and a multi-host run's hosts,
    #: this one's rank among them and the first port of the engines' rendezvous (see dlbench.scale.cluster)
    data_parallel: DataParallel = field(default_factory=DataParallel)
    #: local (workers here, one after another) or slurm (a submitit job array; see dlbench.run.executors)
    executor: str = EXECUTORS[0]
    slurm_partition: str | None = None
    slurm_gpus_per_job: int | None = None
    slurm_time: int | None = None  # minutes a job (a cell and its repeats) may run; set for --executor slurm

    @classmethod
    def from_options(cls, plugins: Plugins, *, scenarios, **given) -> "RunSettings":
        """The checked settings of the options a user gave, named as on the
        command line (:data:`OPTION_DEFAULTS`; ``sources`` and ``weights_files``,
        by scenario name, come from the Python API); every option not given takes its default."""
        unknown = sorted(set(given) - set(OPTION_DEFAULTS))
        if unknown:
            raise TypeError(f"RunSettings.from_options() got unexpected options {', '.join(unknown)}")
        return checked_settings(cls, plugins, scenarios, SimpleNamespace(**{**OPTION_DEFAULTS, **given}))

    def to_document(self) -> dict:
        """The settings as the result document stores them (the data-parallel
        settings under their command-line names, as documents always had them)."""
        stored = dataclasses.asdict(self)
        dp = stored.pop("data_parallel")
        return {**stored, "data_parallel": dp["replicas"], "scaling": dp["scaling"],
                "sync_batchnorm": dp["sync_batchnorm"], "hosts": list(dp["hosts"]), "node_rank": dp["node_rank"],
                "coordinator_port": dp["port"]}

    @classmethod
    def from_document(cls, stored: dict) -> "RunSettings":
        """The value :meth:`to_document` stored (a TypeError names a key it does not know)."""
        stored, single = dict(stored), DataParallel()
        dp = DataParallel(stored.pop("data_parallel", single.replicas), stored.pop("scaling", single.scaling),
                          stored.pop("sync_batchnorm", single.sync_batchnorm), tuple(stored.pop("hosts", ())),
                          stored.pop("node_rank", single.node_rank), stored.pop("coordinator_port", single.port))
        return cls(**stored, data_parallel=dp)

    @property
    def replica_counts(self) -> list[int]:
        """The replica counts the run trains with (a sweep of them, or one)."""
        return self.sweep.get("data_parallel") or [self.data_parallel.replicas]

    def jobs(self) -> list[Job]:
        """Scenario-major order; within a scenario and sweep point, the reference first."""
        ordered = sorted(self.backends, key=lambda b: not is_reference(b))
        points = [dict(zip(self.sweep, values)) for values in itertools.product(*self.sweep.values())]
        cells = [(name, source, point, backend) for name, source in self.scenarios.items() for point in points
                 for backend in ordered]
        return [Job(self.request(name, source, backend, point, job_index=i), point)
                for i, (name, source, point, backend) in enumerate(cells)]

    def request(self, name: str, source: str, backend: str, point: dict, job_index: int = 0) -> RunRequest:
        """Job ``job_index``'s request: the settings' own fields, at the sweep point, for one backend."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunRequest) if hasattr(self, f.name)}
        dp = self.data_parallel
        # every host derives the same jobs in the same order, so job i meets the others on the same ports
        port = Hosts(dp.hosts, dp.node_rank, dp.port).job_port(job_index) if dp.hosts else 0
        return RunRequest(**{
            **shared, **{k: point[k] for k in ("threads", "precision") if k in point},
            "scenario": source, "name": name, "backend": backend,
            "overrides": {**self.overrides, **{k: point[k] for k in OVERRIDDEN_BY_SWEEP if k in point}},
            "backend_options": self.backend_options.get(backend, {}),
            "scenario_digest": self.scenario_digests.get(name, ""), "weights_file": self.weights_files.get(name, ""),
            "inference_batch_sizes": list(self.inference_batch_sizes),
            "data_parallel": dataclasses.replace(dp, replicas=point.get("data_parallel", dp.replicas), port=port)})


@dataclass(frozen=True)
class RunRequest:
    """One job's slice of :class:`RunSettings`, what its worker needs; derived by
    :meth:`RunSettings.request` (the fields they share are the settings' own,
    taken by name, with the settings' defaults) and JSON-serializable, to
    cross a process boundary."""

    scenario: str  # a shipped scenario's name or a file path
    backend: str
    name: str = ""  # the scenario's name, for rows written before it is loaded
    overrides: dict = field(default_factory=dict)
    device: str = RunSettings.device
    threads: int = RunSettings.threads
    precision: str = RunSettings.precision
    deterministic: bool = RunSettings.deterministic
    window_steps: int = 50
    max_memory_mib: int | None = None  # address-space limit of the worker process
    #: the backend's options, checked and with its defaults filled in (once, by the settings)
    backend_options: dict = field(default_factory=dict)
    parity_dir: str = ""  # where the reference leaves its checkpoints ("" = no certificate)
    scenario_digest: str = ""  # the scenario file's digest when the run began ("" = not checked)
    data_dir: str = ""  # the run's shared data cache ("" = load in the worker, uncached)
    progress_file: str = ""  # where the worker keeps "steps-done total-steps" for the runner's progress bar
    weights_file: str = ""  # a .npz of canonical initial weights ("" = the core's initialisation for the seed)
    mode: str = RunSettings.mode  # train, inference or both (see dlbench.measure.inference)
    inference_batch_sizes: list = field(default_factory=list)  # [] = 1 and the scenario's batch size
    inference_calls: int | None = None  # timed calls per batch size (None: as many as fit the time budget)
    #: the replicas (threads are per replica), their scaling and hosts (see dlbench.plugin.distributed)
    data_parallel: DataParallel = field(default_factory=DataParallel)

    @property
    def is_reference(self) -> bool:
        """Whether this job trains the reference the others are judged against."""
        return is_reference(self.backend)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "RunRequest":
        fields = json.loads(text)
        dp = fields.pop("data_parallel")
        return cls(**fields, data_parallel=DataParallel(**{**dp, "hosts": tuple(dp["hosts"])}))

    def at_global_batch(self, scenario: Scenario) -> tuple["RunRequest", Scenario]:
        """(request, scenario) at the global batch of the replicas
        (:meth:`DataParallel.global_batch`): under weak scaling N replicas keep
        the scenario's batch each, and the reference and the certificate's cell
        are at the global batch too."""
        batch = self.data_parallel.global_batch(scenario.train.batch_size)
        if batch == scenario.train.batch_size:
            return self, scenario
        return (dataclasses.replace(self, overrides={**self.overrides, "batch_size": batch}),
                scenario.with_overrides(batch_size=batch))

    def trainer_options(self, device: str, seed: int) -> TrainerOptions:
        """What the backend builds its trainer with (``seed`` seeds its own randomness)."""
        from dlbench.plugin.backend import TrainerOptions

        return TrainerOptions(device, self.precision, self.deterministic, seed, self.backend_options,
                              self.data_parallel)


@dataclass(frozen=True)
class Job:
    """One (scenario, sweep point, backend) cell of a run, repeated ``RunSettings.repeat`` times."""

    request: RunRequest
    sweep_point: dict = field(default_factory=dict)


#: the options :meth:`RunSettings.from_options` takes, by their command-line names, and their defaults: a
#: settings field's own default, or (an option that is not a field as given) written here once
OPTION_DEFAULTS = {
    **{f.name: f.default for f in dataclasses.fields(RunSettings)
       if f.default is not dataclasses.MISSING and f.name != "isolation"},
    "backends": "all", "epochs": None, "steps": None, "batch_size": None, "seed": None, "threads": None,
    "sweep": (), "seeds": None, "backend_options": (), "in_process": False, "sources": None,
    "weights_files": None, "inference_batch_size": None, "data_parallel": DataParallel.replicas,
    "scaling": DataParallel.scaling, "sync_batchnorm": DataParallel.sync_batchnorm, "hosts": None,
    "node_rank": None, "coordinator_port": None,
}


def option_default(name: str):
    """The default of the run option ``name`` (as the command line names it)."""
    return OPTION_DEFAULTS[name]
