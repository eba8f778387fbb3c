"""The ``dlbench`` command: thin click commands over the core modules.

Exit codes: 0 every requested run ok; 1 a backend failed, timed out,
diverged or disagreed with the reference (the document is still written);
a verdict "not judged" (a run too short for a checkpoint) is 0 unless
``--require-verdict``;
2 usage or input error (nothing is run, no document is written).
"""

from __future__ import annotations

import sys

import click

from dlbench.cli.options import DEFAULT_SCENARIOS, positive, run_options, setting
from dlbench.errors import InputError, capped

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


@main.command()
@run_options
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
@setting("--backend", "-b", "backends", metavar="all|NAME[,NAME...]", help="Backends whose matmul to measure.")
@setting("--device", type=click.Choice(["cpu", "gpu"]),
              help="gpu: the first GPU's ceiling, with tf32 (float32 on TF32 tensor cores) beside fp32.")
def peak(threads, backends, device):
    """Measure this machine's matmul ceiling per backend in fp32, bf16 and fp16 (used for '% of peak')."""
    from dlbench.cli import commands
    commands.measure_peaks(threads, backends, device)


from dlbench.cli.reports import compare, history_, report  # noqa: E402  (commands defined there)

main.add_command(report)
main.add_command(compare)
main.add_command(history_)
