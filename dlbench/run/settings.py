"""One run's settings, in one type, from which everything else is derived.

:class:`RunSettings` is what a user asked for, checked: the CLI (and any other
front end) hands :meth:`RunSettings.from_options` the options by their CLI
names, the result document stores it as ``settings`` (``--resume`` rebuilds it
from there), and the jobs are derived from it: one :class:`RunRequest` per
(scenario, sweep point, backend), the slice of the settings a worker needs,
from which the worker derives the backend's ``TrainerOptions``.

Everything is validated before anything runs: backends, scenarios against
their dataset's *metadata* (no arrays are loaded here), sweeps, backend
options, and whether the model can fit in this machine's memory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

from dlbench.errors import InputError, one_of
from dlbench.network.precision import PRECISIONS
from dlbench.plugin.backend import TrainerOptions
from dlbench.scale.cluster import EXECUTORS, Hosts, check_spread, resolve as resolve_hosts
from dlbench.plugin.distributed import DataParallel, check_divides, check_replicas, check_scaling
from dlbench.plugin.manager import Plugins
from dlbench.parity.verdict import is_reference
from dlbench.scenario import Scenario, resolve_scenario, scenario_files
from dlbench.network import check_choice, check_number, check_positive_int, format_shape

SWEEP_KEYS = ("batch_size", "threads", "seed", "precision", "data_parallel")
#: sweep keys that change the scenario; threads, precision and data_parallel change the worker
OVERRIDDEN_BY_SWEEP = ("batch_size", "seed")
MODES = ("train", "inference", "both")
DEVICES = ("cpu", "gpu", "auto")
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
        return _checked_settings(cls, plugins, scenarios, SimpleNamespace(**{**OPTION_DEFAULTS, **given}))

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
        stored = dict(stored)
        dp = DataParallel(stored.pop("data_parallel", 1), stored.pop("scaling", DataParallel.scaling),
                          stored.pop("sync_batchnorm", False), tuple(stored.pop("hosts", ())),
                          stored.pop("node_rank", 0), stored.pop("coordinator_port", 0))
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
        return RunRequest(**{**shared, **{k: point[k] for k in ("threads", "precision") if k in point}},
                          scenario=source, name=name, backend=backend,
                          overrides={**self.overrides, **{k: point[k] for k in OVERRIDDEN_BY_SWEEP if k in point}},
                          backend_options=self.backend_options.get(backend, {}),
                          scenario_digest=self.scenario_digests.get(name, ""),
                          weights_file=self.weights_files.get(name, ""),
                          inference_batch_sizes=list(self.inference_batch_sizes),
                          data_parallel=dataclasses.replace(dp, replicas=point.get("data_parallel", dp.replicas),
                                                            port=port))


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


def _checked_settings(cls, plugins: Plugins, scenarios, o: SimpleNamespace) -> RunSettings:
    """:meth:`RunSettings.from_options`'s work: every option checked, the scenarios loaded."""
    from dlbench.measure import environment
    from dlbench.measure.inference import parse_batch_sizes
    from dlbench.scale.cluster import check_executor

    check_mode(o.mode)
    if o.mode != "train" and (o.data_parallel != 1 or any(str(i).startswith("data_parallel=") for i in o.sweep)):
        raise InputError(f"data-parallel runs measure training; --mode {o.mode} runs on one replica: drop "
                         "--data-parallel or use --mode train", field="--mode")
    batch_sizes = parse_batch_sizes(o.inference_batch_size if not isinstance(o.inference_batch_size, (list, tuple))
                                    else ",".join(map(str, o.inference_batch_size)))
    if o.inference_calls is not None:
        check_positive_int(o.inference_calls, "--inference-calls")
    check_run_options(epochs=o.epochs, steps=o.steps, batch_size=o.batch_size, seed=o.seed, device=o.device,
                      threads=o.threads, repeat=o.repeat, precision=o.precision, timeout=o.timeout,
                      max_memory_mib=o.max_memory_mib)
    slurm_time = check_executor(o.executor, partition=o.slurm_partition, gpus_per_job=o.slurm_gpus_per_job,
                                minutes=o.slurm_time, timeout=o.timeout, repeat=o.repeat, in_process=o.in_process)
    names = checked_backends(plugins, o.backends, o.mode)
    if o.precision != option_default("precision") and any(str(i).startswith("precision=") for i in o.sweep):
        raise InputError("--precision and --sweep precision=... both choose the precision; use one",
                         field="--precision")
    overrides = {k: v for k, v in {"epochs": o.epochs, "max_steps": o.steps, "batch_size": o.batch_size,
                                   "seed": o.seed}.items() if v is not None}
    loaded = load_scenarios(plugins, scenarios, overrides)
    sweep = parse_sweep(o.sweep, o.seeds, o.seed)
    replica_counts = replicas_of_run(o.data_parallel, o.scaling, sweep)
    spread = run_hosts(replica_counts, o.hosts, o.node_rank, o.coordinator_port, o.executor)
    per_host = [replicas // spread.count for replicas in replica_counts]
    threads = o.threads or max(1, environment.available_cores() // max(per_host))
    for replicas in per_host:
        check_replicas(replicas, threads, o.device, environment.available_cores(), field=REPLICAS_FIELD)
    check_batches(plugins, loaded, replica_counts, sweep.get("batch_size"), o.scaling, o.mode)
    return cls(scenarios={n: s.path or n for n, s in loaded.items()}, backends=names, overrides=overrides,
               scenario_digests={n: s.digest for n, s in loaded.items()},
               scenario_descriptions={n: s.description for n, s in loaded.items()}, device=o.device,
               threads=threads, repeat=o.repeat, timeout=o.timeout, precision=o.precision,
               deterministic=o.deterministic, sweep=sweep,
               backend_options=parse_backend_options(o.backend_options, names, plugins),
               isolation=ISOLATIONS[1] if o.in_process else ISOLATIONS[0], max_memory_mib=o.max_memory_mib,
               sources=dict(o.sources or {}), weights_files=dict(o.weights_files or {}), mode=o.mode,
               inference_batch_sizes=batch_sizes, inference_calls=o.inference_calls,
               data_parallel=DataParallel(o.data_parallel, o.scaling, o.sync_batchnorm, tuple(spread.names),
                                          spread.node_rank, spread.port if spread.names else 0),
               executor=o.executor, slurm_partition=o.slurm_partition, slurm_gpus_per_job=o.slurm_gpus_per_job,
               slurm_time=slurm_time)


def checked_backends(plugins: Plugins, text: str, mode: str) -> list[str]:
    """The run's backends; those named explicitly must be available and able to run ``mode``."""
    names, explicit = select_backends(plugins, text)
    if explicit:
        for name in names:
            availability = plugins.backends[name].availability()
            if not availability.available:
                raise InputError(f"backend {name!r} is unavailable: {availability.reason}", field="--backend")
        check_modes(plugins, names, mode)
    return names


REPLICAS_FIELD = "--data-parallel"


def replicas_of_run(data_parallel, scaling: str, sweep: dict) -> list[int]:
    """The replica counts a run trains with (``--data-parallel N`` or a sweep of them), checked."""
    check_positive_int(data_parallel, REPLICAS_FIELD)
    check_scaling(scaling)
    if "data_parallel" in sweep:
        if data_parallel != 1:
            raise InputError("--data-parallel and --sweep data_parallel=... both choose the replicas; use one",
                             field=REPLICAS_FIELD)
        return sweep["data_parallel"]
    return [data_parallel]


def run_hosts(replica_counts: list[int], hosts: str | None, node_rank: int | None, port: int | None,
              executor: str) -> Hosts:
    """The hosts a data-parallel run spreads its replicas over (given, or a
    Slurm allocation's), checked; this one alone for any other run."""
    data_parallel = max(replica_counts) > 1
    if not data_parallel:
        if hosts or node_rank is not None or port is not None:
            raise InputError("spreads data-parallel replicas over hosts; add --data-parallel N",
                             field="--hosts")
        return Hosts()
    spread = resolve_hosts(hosts, node_rank, port)
    if spread.names and executor != "local":
        raise InputError("a multi-host run is started on every host (by hand or with srun); --executor slurm "
                         "sends each job to one node: use one", field="--executor")
    check_spread(spread, replica_counts)
    return spread


def check_batches(plugins: Plugins, loaded: dict, replica_counts: list[int], batch_sizes, scaling: str,
                  mode: str) -> None:
    """At every swept batch size and replica count, judged from each dataset's
    metadata: the replicas split every batch into equal slices, and a run that
    trains has at least one step to train."""
    for scenario in loaded.values():
        meta = plugins.datasets[scenario.data_name].describe(scenario.train.seed, scenario.data_options)
        for batch in batch_sizes or [scenario.train.batch_size]:
            for replicas in replica_counts:
                global_batch = DataParallel(replicas, scaling).global_batch(batch)
                check_divides(replicas, global_batch, meta.n_train, scenario.train.drop_last,
                              scenario.path or scenario.name, REPLICAS_FIELD)
                if mode != "inference":
                    check_some_steps(scenario, meta.n_train, global_batch)


def check_some_steps(scenario: Scenario, n_train: int | None, global_batch: int) -> None:
    """Refuse a run that would train zero steps (a batch larger than the
    training set, with drop_last): it would report an untrained model as ok."""
    if n_train is None or not scenario.train.drop_last or n_train >= global_batch:
        return
    raise InputError(f"a batch of {global_batch} samples with drop_last = true leaves no step in an epoch of "
                     f"{n_train} training samples: nothing would be trained; use a batch size of at most "
                     f"{n_train}, or drop_last = false", field="train.batch_size",
                     source=scenario.path or scenario.name)


def check_run_options(*, epochs, steps, batch_size, seed, device, threads, repeat, precision, timeout,
                      max_memory_mib) -> None:
    """The options' types and ranges, checked here once for every front end
    (the CLI's click types say the same before this runs)."""
    from dlbench.plugin.backend import PRECISIONS

    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size), ("threads", threads),
                        ("max_memory_mib", max_memory_mib)):
        if value is not None:
            check_positive_int(value, name)
    check_positive_int(repeat, "repeat")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"must be a non-negative integer, got {seed!r}", field="seed")
    if timeout is not None:
        check_number(timeout, "timeout", low=0.0)
    check_choice(device, DEVICES, "device")
    check_choice(precision, PRECISIONS, "precision")



def check_mode(mode: str) -> None:
    """train (the default), inference, or both (inference from the trained weights)."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; {one_of(MODES)}", field="--mode")


def check_modes(plugins: Plugins, names: list[str], mode: str) -> None:
    """Backends named explicitly must be able to run ``mode`` (``--backend all``
    leaves a backend that cannot as an 'unavailable' row instead)."""
    needed = {"train": ("train",), "inference": ("inference",), "both": ("train", "inference")}[mode]
    for name in names:
        modes = plugins.backends[name].modes
        missing = [m for m in needed if m not in modes]
        if missing:
            raise InputError(f"backend {name!r} cannot run {missing[0]} (it runs {', '.join(modes)}); "
                             f"choose another --mode or backend", field="--backend")


def select_backends(plugins: Plugins, text: str) -> tuple[list[str], bool]:
    """(names, explicit): 'all' means every registered backend."""
    if text.strip() == "all":
        return list(plugins.backends), False
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(f"no backend named; {one_of(['all', *plugins.backends])}", field="--backend")
    for name in names:
        plugins.backend(name)
    return list(dict.fromkeys(names)), True


def select_scenarios(plugins: Plugins, names) -> list[str]:
    if "all" in names:
        return list(scenario_files(plugins.scenario_dirs))
    return list(dict.fromkeys(names))


def load_scenarios(plugins: Plugins, names, overrides: dict) -> dict[str, Scenario]:
    loaded = {}
    for name in select_scenarios(plugins, names):
        scenario = resolve_scenario(name, plugins.scenario_dirs).with_overrides(**overrides)
        check_against_data(scenario, plugins)
        loaded[scenario.name] = scenario
    return loaded


def check_against_data(scenario: Scenario, plugins: Plugins) -> None:
    """The model must fit its dataset: input shape and number of classes,
    judged from what the dataset declares (its metadata), not its arrays."""
    where = scenario.path or scenario.name
    info = plugins.datasets.get(scenario.data_name)
    if info is None:
        raise InputError(f"unknown dataset {scenario.data_name!r}; {one_of(plugins.datasets)}",
                         field="data.name", source=where)
    try:
        meta = info.describe(scenario.train.seed, scenario.data_options)
    except InputError as exc:  # an error about a data file names that file, others the scenario
        raise (exc if exc.source else exc.within(source=where)) from None
    if meta.input_shape != scenario.model.input_shape:
        raise InputError(f"{format_shape(scenario.model.input_shape)} does not match dataset "
                         f"{scenario.data_name!r}, whose samples have shape {format_shape(meta.input_shape)}",
                         field="model.input_shape", source=where)
    check_sequences_against_data(scenario, meta, where)
    units = scenario.model.output_shape[-1]
    if scenario.model.loss == "categorical_crossentropy" and units < meta.n_classes:
        raise InputError(f"the last layer has {units} units but dataset {scenario.data_name!r} has "
                         f"{meta.n_classes} classes", field="model.layers", source=where)
    if scenario.model.loss == "binary_crossentropy" and meta.n_classes != 2:
        raise InputError(f"binary_crossentropy needs 2 classes; dataset {scenario.data_name!r} has "
                         f"{meta.n_classes}", field="train.loss", source=where)
    check_fits_in_memory(scenario)


def check_sequences_against_data(scenario: Scenario, meta, where: str) -> None:
    """Token inputs go to an embedding that has a row for each id; labels per
    timestep go to an output per timestep, and a class label to one output."""
    from dlbench.network.sequence import Embedding, takes_tokens

    model, name = scenario.model, scenario.data_name
    if takes_tokens(model) != (meta.input_dtype == "int64"):
        wanted = "token ids (integers)" if takes_tokens(model) else "real numbers"
        raise InputError(f"the model's first layer takes {wanted}, but dataset {name!r} holds "
                         f"{'token ids' if meta.input_dtype == 'int64' else 'real numbers'}; "
                         "token ids go into an embedding layer first", field="model.layers[0]", source=where)
    first = model.layers[0]
    if isinstance(first, Embedding) and meta.vocab_size is not None and meta.vocab_size > first.input_dim:
        raise InputError(f"input_dim {first.input_dim} is smaller than dataset {name!r}'s {meta.vocab_size} token "
                         "ids", field="model.layers[0].input_dim", source=where)
    if tuple(model.output_shape[:-1]) != tuple(meta.target_shape):
        kind = f"a label per timestep {format_shape(meta.target_shape)}" if meta.target_shape else "one label"
        raise InputError(f"dataset {name!r} has {kind} per sample, but the model's output is "
                         f"{format_shape(model.output_shape)}", field="model.layers", source=where)


def check_fits_in_memory(scenario: Scenario, available_bytes: int | None = None) -> None:
    """Refuse a model that cannot train in this machine's memory (the lower
    bound of :mod:`dlbench.network.memory`), before any worker allocates it."""
    import psutil

    from dlbench.network.memory import training_memory_bytes

    available = available_bytes or psutil.virtual_memory().total
    need = training_memory_bytes(scenario.model, scenario.train.batch_size)
    if need["total"] > available:
        gib = 2**30
        raise InputError(f"training this model needs at least {need['total'] / gib:,.1f} GiB "
                         f"(parameters, gradients and optimizer state {need['parameters'] / gib:,.1f} GiB, "
                         f"activations of a batch of {scenario.train.batch_size} {need['activations'] / gib:,.1f} GiB);"
                         f" this machine has {available / gib:,.1f} GiB", field="model.layers",
                         source=scenario.path or scenario.name)


def parse_sweep(items, seeds: int | None = None, seed: int | None = None) -> dict[str, list]:
    """['batch_size=1,32', 'precision=fp32,bf16'] -> {'batch_size': [1, 32], 'precision': ['fp32', 'bf16']};
    ``seeds=N`` adds the seeds ``seed`` (or 0) and the N - 1 after it."""
    from dlbench.network.precision import PRECISIONS

    if seeds:
        if any(item.startswith("seed=") for item in items):
            raise InputError("--seeds and --sweep seed=... both choose the seeds; use one", field="--seeds")
        items = (*items, "seed=" + ",".join(str((seed or 0) + i) for i in range(seeds)))
    sweep: dict[str, list[int]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in SWEEP_KEYS:
            raise InputError(f"unknown sweep key {key!r}; {one_of(SWEEP_KEYS)}", field="--sweep")
        if key == "precision":
            names = [v.strip() for v in values.split(",")]
            unknown = [v for v in names if v not in PRECISIONS]
            if unknown or not values:
                raise InputError(f"{item!r}: unknown precision {unknown[0] if unknown else ''!r}; "
                                 f"{one_of(PRECISIONS)}", field="--sweep")
            sweep[key] = list(dict.fromkeys(names))
            continue
        try:
            numbers = [int(v) for v in values.split(",")]
        except ValueError:
            numbers = []
        lowest = 0 if key == "seed" else 1
        if not numbers or min(numbers) < lowest:
            kind = "non-negative" if key == "seed" else "positive"
            raise InputError(f"{item!r}: expected {key}=N[,N...] with {kind} integers", field="--sweep")
        sweep[key] = list(dict.fromkeys(numbers))
    return sweep


def parse_backend_options(items, backends: list[str], plugins: Plugins) -> dict[str, dict]:
    """['torch.compile=true', 'jax.scan=false'] -> {'torch': {'compile': True, ...}, 'jax': {'scan': False, ...}}:
    every backend of the run's options, checked against what it declares and
    with its defaults filled in, here once (trainers take them as they are)."""
    options: dict[str, dict] = {}
    for item in items:
        name, _, rest = item.partition(".")
        key, eq, text = rest.partition("=")
        if not (name and key and eq):
            raise InputError(f"{item!r}: expected BACKEND.KEY=VALUE, e.g. torch.compile=true",
                             field="--backend-option")
        if name not in backends:
            raise InputError(f"{item!r}: backend {name!r} is not in this run; {one_of(backends)}",
                             field="--backend-option")
        options.setdefault(name, {})[key] = _option_value(text)
    return filled_backend_options(plugins, backends, options)


def filled_backend_options(plugins: Plugins, backends: list[str], given: dict) -> dict:
    """Each backend's ``given`` options, checked against what it declares, with its defaults filled in."""
    return {name: plugins.backends[name].check_options(given.get(name, {})) for name in backends}


def _option_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text
