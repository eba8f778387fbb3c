"""The checks of a run's options, before anything runs: backends, scenarios
against their dataset's *metadata* (no arrays are loaded here), sweeps,
backend options (checked against what each backend declares, and filled with
its defaults, once), data-parallel replicas and hosts, and whether the model
can fit in this machine's memory. Each bad value is one :class:`InputError`
naming the option and what is allowed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from dlbench.errors import InputError, one_of
from dlbench.network import check_choice, check_number, check_positive_int, format_shape
from dlbench.network.loss import REGRESSION_LOSSES
from dlbench.network.precision import PRECISIONS
from dlbench.plugin.distributed import DataParallel, check_divides, check_replicas, check_scaling
from dlbench.scale.cluster import Hosts, check_spread, resolve as resolve_hosts
from dlbench.scenario import Scenario, resolve_scenario, scenario_files

if TYPE_CHECKING:
    from dlbench.plugin.manager import Plugins

SWEEP_KEYS = ("batch_size", "threads", "seed", "precision", "data_parallel")
MODES = ("train", "inference", "both")
DEVICES = ("cpu", "gpu", "auto")


def checked_settings(cls, plugins: Plugins, scenarios, o: SimpleNamespace):
    """The settings (``cls``: :class:`dlbench.run.settings.RunSettings`) of the
    options ``o``, every one checked, the scenarios loaded."""
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
    if o.precision != cls.precision and any(str(i).startswith("precision=") for i in o.sweep):
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
               isolation="in-process" if o.in_process else cls.isolation, max_memory_mib=o.max_memory_mib,
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
    if meta.regression:
        check_regression_against_data(scenario, meta, where)
        check_fits_in_memory(scenario)
        return
    check_sequences_against_data(scenario, meta, where)
    units = scenario.model.output_shape[-1]
    if scenario.model.loss in ("mae", "huber"):
        raise InputError(f"{scenario.model.loss} compares float targets, but dataset {scenario.data_name!r} has "
                         f"class labels; use categorical_crossentropy (or mse, which compares a label's one-hot "
                         "encoding)", field="train.loss", source=where)
    if scenario.model.loss == "categorical_crossentropy" and units < meta.n_classes:
        raise InputError(f"the last layer has {units} units but dataset {scenario.data_name!r} has "
                         f"{meta.n_classes} classes", field="model.layers", source=where)
    if scenario.model.loss == "binary_crossentropy" and meta.n_classes != 2:
        raise InputError(f"binary_crossentropy needs 2 classes; dataset {scenario.data_name!r} has "
                         f"{meta.n_classes}", field="train.loss", source=where)
    check_fits_in_memory(scenario)


def check_regression_against_data(scenario: Scenario, meta, where: str) -> None:
    """Float targets take a regression loss and one output unit per value."""
    model, name = scenario.model, scenario.data_name
    if model.loss not in REGRESSION_LOSSES:
        raise InputError(f"{model.loss} needs class labels, but dataset {name!r} has float targets (a regression); "
                         f"{one_of(REGRESSION_LOSSES)}", field="train.loss", source=where)
    if model.output_shape != (meta.target_units,):
        raise InputError(f"dataset {name!r} has {meta.target_units} float target(s) per sample, but the model's "
                         f"output is {format_shape(model.output_shape)}", field="model.layers", source=where)
    if scenario.train.target_accuracy is not None:
        raise InputError(f"dataset {name!r} has float targets (a regression), which have no accuracy to reach",
                         field="train.target_accuracy", source=where)


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
