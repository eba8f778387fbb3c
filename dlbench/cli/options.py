"""The options of ``dlbench run``, each defined once (as pip-tools' ``options.py``).

Their defaults and choices are not written here: they come from the run's
settings type (:data:`dlbench.run.settings.OPTION_DEFAULTS`, the fields of
:class:`~dlbench.run.settings.RunSettings`) and the value lists the checks
use, so that the command line, the Python API and ``--resume`` cannot
disagree on what a run does when an option is left out. Importing this
module imports no numerical library (``dlbench --help`` stays instant).
"""

from __future__ import annotations

from pathlib import Path

import click

from dlbench.network.precision import PRECISIONS
from dlbench.plugin.distributed import SCALINGS
from dlbench.run.checks import DEVICES
from dlbench.run.settings import option_default
from dlbench.scale.cluster import EXECUTORS

DEFAULT_SCENARIOS = ("xor-mlp", "digits-mlp")


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive integer, got {value}")
    return value


def setting(*names: str, key: str | None = None, **kwargs):
    """A ``click.option`` for the run setting ``key`` (by default the
    parameter's name, its last name given), with the settings' default."""
    default = option_default(key or names[-1].lstrip("-").replace("-", "_"))
    shown = default not in (None, ()) and not kwargs.get("is_flag")
    return click.option(*names, default=default, show_default=shown, **kwargs)


scenario_option = click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME|FILE",
                               help="Shipped scenario name, 'all', or a .toml file (repeatable). "
                                    f"Default: {', '.join(DEFAULT_SCENARIOS)}.")
backend_option = setting("--backend", "-b", "backends", metavar="all|NAME[,NAME...]", help="Backends to run.")
format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
                             default="table", show_default=True, help="What to print.")

#: the options that choose what a run does (each a setting of the run), in the order ``--help`` lists them
RUN_OPTIONS = [
    scenario_option,
    backend_option,
    setting("--epochs", type=int, callback=positive, help="Override the scenarios' epochs."),
    setting("--steps", type=int, callback=positive, help="Stop after N optimizer steps (quick checks)."),
    setting("--batch-size", type=int, callback=positive, help="Override the scenarios' batch size."),
    setting("--seed", type=click.IntRange(min=0), help="Override the scenarios' seed."),
    setting("--device", type=click.Choice(DEVICES)),
    setting("--threads", type=int, callback=positive, help="Threads per run. Default: the machine's cores."),
    setting("--repeat", type=int, callback=positive,
            help="Run each (scenario, backend) N times, each in a fresh process."),
    setting("--sweep", multiple=True, metavar="KEY=V,V,...",
            help="Run a grid: batch_size=1,32,128, threads=1,2, seed=0,1,2, precision=fp32,bf16 and/or "
                 "data_parallel=1,2 (repeatable)."),
    setting("--seeds", type=int, callback=positive, metavar="N",
            help="Train each (scenario, backend) from N seeds (--seed, or 0, and the next ones), each a fresh "
                 "process: the report gives the outcome distributions and a rank test against NumPy."),
    setting("--precision", type=click.Choice(PRECISIONS),
            help="fp32; tf32 (tensor cores on GPUs); bf16 or fp16: mixed precision (float32 master weights, "
                 "matmuls and convolutions from bf16/fp16 operands; fp16 with dynamic loss scaling)."),
    setting("--data-parallel", "data_parallel", type=int, callback=positive, metavar="N",
            help="Train with N replicas on each backend's own distributed engine (torch DDP, jax.sharding, "
                 "tf.distribute); NumPy stays the one-process reference at the global batch. --threads is then "
                 "per replica (default: cores / N)."),
    setting("--scaling", type=click.Choice(SCALINGS),
            help="With --data-parallel: strong keeps the global batch (each replica takes batch/N), weak "
                 "keeps each replica's batch (the global batch is N x batch)."),
    setting("--sync-batchnorm", is_flag=True,
            help="With --data-parallel: BatchNormalization statistics over the global batch "
                 "(default: per replica, as DDP does)."),
    setting("--hosts", metavar="HOST,HOST[,...]",
            help="With --data-parallel: spread the replicas over these hosts, running this same command on "
                 "each (default: this host; inside a Slurm allocation of several nodes, its nodes)."),
    setting("--node-rank", type=click.IntRange(min=0), metavar="I",
            help="Which of --hosts this host is (default: found by its name)."),
    setting("--coordinator-port", type=int, metavar="PORT",
            help="With --hosts: the first port the engines meet on at the first host (job i takes the ports "
                 "from PORT + i x hosts; default 29400, inside Slurm 20000 + job id mod 20000)."),
    setting("--deterministic", is_flag=True, help="Ask every backend for deterministic kernels."),
    setting("--backend-option", "backend_options", multiple=True, metavar="BACKEND.KEY=VALUE",
            help="Backend-specific option, e.g. torch.compile=true, tensorflow.jit_compile=true."),
    setting("--timeout", type=click.FloatRange(min=0, min_open=True),
            help="Seconds (> 0) before a run is stopped as 'timeout'."),
    setting("--max-memory", "max_memory_mib", type=int, callback=positive, metavar="MIB",
            help="Address-space limit of each worker process; a run that exceeds it fails as a row."),
    setting("--mode", metavar="train|inference|both",
            help="What to measure: training; inference (forward passes from the initial weights: latency "
                 "percentiles, samples/s, outputs vs NumPy); or both (inference from the trained weights)."),
    setting("--inference-batch-size", metavar="N[,N...]",
            help="Inference batch sizes, e.g. 1,32,256. Default: 1 and the scenario's batch size."),
    setting("--inference-calls", type=int, callback=positive, metavar="N",
            help="Timed inference calls per batch size. Default: as many as fit 2 s (50 to 1000)."),
    setting("--in-process", is_flag=True, help="Run in this process (debugging; no isolation)."),
    setting("--executor", type=click.Choice(EXECUTORS),
            help="local: each job in a fresh worker here, one after another. slurm: each (scenario, sweep point, "
                 "backend) one job of a submitit job array on Slurm (where there is none, local processes, "
                 "one at a time); needs dlbench[cluster]."),
    setting("--slurm-partition", metavar="NAME", help="With --executor slurm: the Slurm partition."),
    setting("--slurm-gpus-per-job", type=int, callback=positive, metavar="N",
            help="With --executor slurm: GPUs per job. Default: none."),
    setting("--slurm-time", type=int, callback=positive, metavar="MINUTES",
            help="With --executor slurm: a job's time limit (all its repeats). Default: from --timeout and "
                 "--repeat, else 60."),
]

#: what a run prints and where it goes, beside its settings
OUTPUT_OPTIONS = [
    click.option("--require-verdict", is_flag=True,
                 help="Exit 1 when a backend's parity is 'not judged' (a run too short for a checkpoint, free runs "
                      "that are not comparable), as when it disagrees: for CI jobs that need the proof. Default: "
                      "'not judged' exits 0."),
    click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), metavar="RUN.json",
                 help="Finish a stopped run: run only the jobs that have no finished row in RUN.json."),
    format_option,
    click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                 default=Path("results"), show_default=True,
                 help="Result folder; the document goes to OUT/<machine-id>/NNNN_<commit>_<time>.json."),
]


def run_options(command):
    """``command`` with every option of ``dlbench run``, in ``--help``'s order."""
    for option in reversed([*RUN_OPTIONS, *OUTPUT_OPTIONS]):
        command = option(command)
    return command
