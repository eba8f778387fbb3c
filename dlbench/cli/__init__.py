"""The ``dlbench`` command: thin click commands over the core modules.

Exit codes: 0 every requested run ok; 1 a backend failed, timed out,
diverged or disagreed with the reference (the document is still written);
a verdict "not judged" (a run too short for a checkpoint) is 0 unless
``--require-verdict``;
2 usage or input error (nothing is run, no document is written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dlbench.errors import InputError, capped
from dlbench.network.precision import PRECISIONS

DEFAULT_SCENARIOS = ("xor-mlp", "digits-mlp")
EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


class InputErrorGroup(click.Group):
    """Any InputError becomes one line on stderr and exit code 2."""

    def invoke(self, ctx):
        from dlbench.plugin.manager import PluginError

        try:
            return super().invoke(ctx)
        except (InputError, PluginError) as exc:
            click.echo(f"dlbench: error: {capped(str(exc))}", err=True)
            ctx.exit(EXIT_INPUT)


@click.group(cls=InputErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dlbench", message="dlbench %(version)s")
def main():
    """Train one network identically on NumPy, PyTorch, TensorFlow and JAX; compare accuracy and speed."""


# ------------------------------------------------------------- options, once
scenario_option = click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME|FILE",
                               help="Shipped scenario name, 'all', or a .toml file (repeatable). "
                                    f"Default: {', '.join(DEFAULT_SCENARIOS)}.")
backend_option = click.option("--backend", "-b", "backends", default="all", show_default=True,
                              metavar="all|NAME[,NAME...]", help="Backends to run.")
format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
                             default="table", show_default=True, help="What to print.")


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive integer, got {value}")
    return value


@main.command()
@scenario_option
@backend_option
@click.option("--epochs", type=int, callback=positive, help="Override the scenarios' epochs.")
@click.option("--steps", type=int, callback=positive, help="Stop after N optimizer steps (quick checks).")
@click.option("--batch-size", type=int, callback=positive, help="Override the scenarios' batch size.")
@click.option("--seed", type=click.IntRange(min=0), help="Override the scenarios' seed.")
@click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default="cpu", show_default=True)
@click.option("--threads", type=int, callback=positive, help="Threads per run. Default: the machine's cores.")
@click.option("--repeat", type=int, default=1, show_default=True, callback=positive,
              help="Run each (scenario, backend) N times, each in a fresh process.")
@click.option("--sweep", multiple=True, metavar="KEY=V,V,...",
              help="Run a grid: batch_size=1,32,128, threads=1,2, seed=0,1,2, precision=fp32,bf16 and/or "
                   "data_parallel=1,2 (repeatable).")
@click.option("--seeds", type=int, callback=positive, metavar="N",
              help="Train each (scenario, backend) from N seeds (--seed, or 0, and the next ones), each a fresh "
                   "process: the report gives the outcome distributions and a rank test against NumPy.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp32; tf32 (tensor cores on GPUs); bf16 or fp16: mixed precision (float32 master weights, "
                   "matmuls and convolutions from bf16/fp16 operands; fp16 with dynamic loss scaling).")
@click.option("--data-parallel", "data_parallel", type=int, default=1, show_default=True, callback=positive,
              metavar="N", help="Train with N replicas on each backend's own distributed engine (torch DDP, "
                                "jax.sharding, tf.distribute); NumPy stays the one-process reference at the "
                                "global batch. --threads is then per replica (default: cores / N).")
@click.option("--scaling", type=click.Choice(["strong", "weak"]), default="strong", show_default=True,
              help="With --data-parallel: strong keeps the global batch (each replica takes batch/N), weak "
                   "keeps each replica's batch (the global batch is N x batch).")
@click.option("--sync-batchnorm", is_flag=True,
              help="With --data-parallel: BatchNormalization statistics over the global batch "
                   "(default: per replica, as DDP does).")
@click.option("--hosts", metavar="HOST,HOST[,...]",
              help="With --data-parallel: spread the replicas over these hosts, running this same command on "
                   "each (default: this host; inside a Slurm allocation of several nodes, its nodes).")
@click.option("--node-rank", type=click.IntRange(min=0), metavar="I",
              help="Which of --hosts this host is (default: found by its name).")
@click.option("--coordinator-port", type=int, metavar="PORT",
              help="With --hosts: the first port the engines meet on at the first host (job i takes the ports "
                   "from PORT + i x hosts; default 29400, inside Slurm 20000 + job id mod 20000).")
@click.option("--deterministic", is_flag=True, help="Ask every backend for deterministic kernels.")
@click.option("--backend-option", "backend_options", multiple=True, metavar="BACKEND.KEY=VALUE",
              help="Backend-specific option, e.g. torch.compile=true, tensorflow.jit_compile=true.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds (> 0) before a run is stopped as 'timeout'.")
@click.option("--max-memory", "max_memory_mib", type=int, callback=positive, metavar="MIB",
              help="Address-space limit of each worker process; a run that exceeds it fails as a row.")
@click.option("--mode", default="train", show_default=True, metavar="train|inference|both",
              help="What to measure: training; inference (forward passes from the initial weights: latency "
                   "percentiles, samples/s, outputs vs NumPy); or both (inference from the trained weights).")
@click.option("--inference-batch-size", metavar="N[,N...]",
              help="Inference batch sizes, e.g. 1,32,256. Default: 1 and the scenario's batch size.")
@click.option("--inference-calls", type=int, callback=positive, metavar="N",
              help="Timed inference calls per batch size. Default: as many as fit 2 s (50 to 1000).")
@click.option("--in-process", is_flag=True, help="Run in this process (debugging; no isolation).")
@click.option("--require-verdict", is_flag=True,
              help="Exit 1 when a backend's parity is 'not judged' (a run too short for a checkpoint, free runs "
                   "that are not comparable), as when it disagrees: for CI jobs that need the proof. Default: "
                   "'not judged' exits 0.")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
              help="local: each job in a fresh worker here, one after another. slurm: each (scenario, sweep point, "
                   "backend) one job of a submitit job array on Slurm (where there is none, local processes, "
                   "one at a time); needs dlbench[cluster].")
@click.option("--slurm-partition", metavar="NAME", help="With --executor slurm: the Slurm partition.")
@click.option("--slurm-gpus-per-job", type=int, callback=positive, metavar="N",
              help="With --executor slurm: GPUs per job. Default: none.")
@click.option("--slurm-time", type=int, callback=positive, metavar="MINUTES",
              help="With --executor slurm: a job's time limit (all its repeats). Default: from --timeout and "
                   "--repeat, else 60.")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), metavar="RUN.json",
              help="Finish a stopped run: run only the jobs that have no finished row in RUN.json.")
@format_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True,
              help="Result folder; the document goes to OUT/<machine-id>/NNNN_<commit>_<time>.json.")
def run(resume, fmt, out_dir, require_verdict, **options):
    """Train scenarios on backends and report accuracy, agreement and speed."""
    from dlbench.cli import commands
    if resume is not None:
        ctx = click.get_current_context()
        given = [p.opts[0] for p in ctx.command.params if p.name not in ("resume", "fmt", "require_verdict")
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise InputError(f"--resume takes its settings from the document; drop {', '.join(given)}",
                             field="--resume")
        sys.exit(commands.resume(resume, fmt, require_verdict))
    options["scenarios"] = options["scenarios"] or DEFAULT_SCENARIOS
    sys.exit(commands.run(fmt, out_dir, require_verdict, **options))


@main.command("list")
@click.argument("what", type=click.Choice(["backends", "scenarios", "datasets"]), required=False)
def list_(what):
    """List backends, scenarios and datasets (all three by default)."""
    from dlbench.cli import commands
    commands.show_lists([what] if what else ["backends", "scenarios", "datasets"])

@main.command()
@click.option("--threads", type=int, callback=positive, help="Threads. Default: the machine's cores.")
@click.option("--backend", "-b", "backends", default="all", show_default=True, metavar="all|NAME[,NAME...]",
              help="Backends whose matmul to measure.")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="gpu: the first GPU's ceiling, with tf32 (float32 on TF32 tensor cores) beside fp32.")
def peak(threads, backends, device):
    """Measure this machine's matmul ceiling per backend in fp32, bf16 and fp16 (used for '% of peak')."""
    from dlbench.cli import commands
    commands.measure_peaks(threads, backends, device)


from dlbench.cli.reports import compare, history_, report  # noqa: E402  (commands defined there)

main.add_command(report)
main.add_command(compare)
main.add_command(history_)
