"""The Python API: :func:`benchmark`, :func:`from_keras`, :func:`from_torch`.

``benchmark`` is ``dlbench run`` for scripts and notebooks: the same checks,
the same isolated worker processes, the same measurement, parity
certificate and result document, run by the same driver
(:mod:`dlbench.run.runner`); only what is printed differs. Its keyword
arguments are the CLI's flags. Importing this module imports no framework:
Keras and torch models are read by the backends that know them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

from dlbench.errors import InputError
from dlbench.network import ModelSpec
from dlbench.report.view import Results
from dlbench.run.settings import RunSettings, option_default


def benchmark(model, data=None, *, backends: str = option_default("backends"),
              epochs: int | None = option_default("epochs"), steps: int | None = option_default("steps"),
              batch_size: int | None = option_default("batch_size"), seed: int | None = option_default("seed"),
              repeat: int = option_default("repeat"), device: str = option_default("device"),
              precision: str = option_default("precision"), threads: int | None = option_default("threads"),
              mode: str = option_default("mode"), out: str | os.PathLike | None = None, progress: bool = True,
              weights="init", loss=None, optimizer=None,
              inference_batch_size=option_default("inference_batch_size"),
              data_parallel: int = option_default("data_parallel"), scaling: str = option_default("scaling"),
              sync_batchnorm: bool = option_default("sync_batchnorm"),
              executor: str = option_default("executor")) -> Results:
    """Train ``model`` on ``backends`` and measure it, as ``dlbench run`` does.

    ``model``: a shipped scenario name or a scenario file (or a list of them),
    a :class:`~dlbench.scenario.Scenario`, a compiled ``Sequential`` spec, a
    Keras model or a torch module. A model given in Python needs
    ``data``: a dataset name, a table ``{"name": ..., **options}``, or the
    arrays ``(x_train, y_train, x_test, y_test)`` (class-index labels; for a
    torch model, images as torch takes them, NCHW). It trains with ``epochs``
    (default 1) and ``batch_size`` (default 32) unless given; ``loss`` and
    ``optimizer`` override a Keras model's compiled ones and are a torch
    model's (see :func:`from_torch`). ``weights``: ``"init"`` (the core's
    initialisation for the seed), ``"model"`` (the Keras or torch model's
    current weights) or per-layer dicts in canonical layout.

    ``out``: a results folder to store the document in (as ``--out``; a new,
    numbered file, never replacing one); None keeps it in memory
    (``Results.save`` stores it later). ``progress`` shows a bar on standard
    error (in a notebook, an HTML bar in the cell). ``mode``: "train", "inference" (forward passes from the initial
    weights) or "both" (inference from the trained weights), with
    ``inference_batch_size`` (a list or "1,32"; default 1 and the batch size)
    as ``--mode`` and ``--inference-batch-size``. Bad input raises
    :class:`dlbench.InputError` before anything runs. ``data_parallel``,
    ``scaling``, ``sync_batchnorm``: as ``--data-parallel`` (N replicas on each
    backend's own distributed engine), ``--scaling`` and ``--sync-batchnorm``;
    ``executor``: "local", or "slurm" for a submitit job array per run (as ``--executor``).
    Every option left out takes the default ``dlbench run`` takes (both read
    :data:`dlbench.run.settings.OPTION_DEFAULTS`).
    """
    from dlbench.plugin.manager import get_plugins
    from dlbench.run.inputs import prepare_inputs
    from dlbench.run.checks import check_mode

    check_mode(mode)
    plugins = get_plugins()
    for plugin, error in plugins.load_errors.items():
        warnings.warn(f"dlbench: plugin {plugin!r} failed to load and is skipped: {error}", stacklevel=2)
    options = dict(backends=backends, epochs=epochs, steps=steps, batch_size=batch_size, seed=seed, repeat=repeat,
                   device=device, precision=precision, threads=threads, inference_batch_size=inference_batch_size,
                   data_parallel=data_parallel, scaling=scaling, sync_batchnorm=sync_batchnorm, executor=executor)
    with tempfile.TemporaryDirectory(prefix="dlbench-inputs-") as folder:  # removed once the workers are done
        inputs = prepare_inputs(plugins, model, data, weights, Path(folder), loss=loss, optimizer=optimizer)
        if steps is None and inputs.max_steps is not None:
            options["steps"] = inputs.max_steps
        try:
            settings = RunSettings.from_options(plugins, scenarios=inputs.scenarios, mode=mode, sources=inputs.sources,
                                                weights_files=inputs.weights_files, **options)
        except InputError as exc:
            raise inputs.relocated(exc) from None
        return _run(settings, out, call_text(inputs.label, data, {**options, "mode": mode}), progress)


def _run(settings, out, command: str, progress: bool) -> Results:
    """The checked run, through the driver ``dlbench run`` uses; its Results."""
    from dlbench.run import runner

    document, path = runner.new_run(settings, None if out is None else Path(out), [command])
    try:
        with runner.writer(path):
            outcome = runner.execute(settings.jobs(), settings, document, path, progress=progress)
    except KeyboardInterrupt:
        print(f"dlbench: interrupted{f'; finished rows kept in {path}' if path else ''}", file=sys.stderr)
        raise
    if outcome.save_error:
        warnings.warn(f"dlbench: the result document could not be written to {path} ({outcome.save_error}); "
                      "it is kept in the returned Results: save it with .save(path)", stacklevel=3)
        return Results(outcome.document, None)
    return Results(outcome.document, outcome.path)


def call_text(label: str, data, options: dict) -> str:
    """The run's ``command``: the call, with the options that differ from their defaults."""
    parts = [label]
    if data is not None:
        parts.append("data=" + ("<arrays>" if isinstance(data, (list, tuple)) else repr(data)))
    parts += [f"{k}={v!r}" for k, v in options.items() if v != option_default(k)]
    return f"dlbench.benchmark({', '.join(parts)})"


def _reader(name: str, what: str):
    """The registered backend ``name``, available, to read a framework's model."""
    from dlbench.plugin.manager import get_plugins

    backend = get_plugins().backend(name)
    availability = backend.availability()
    if not availability.available:
        raise InputError(f"reading a {what} needs the {name} backend, which is unavailable: {availability.reason}",
                         field="model")
    return backend


def from_keras(model, *, loss=None, optimizer=None, input_shape=None) -> ModelSpec:
    """The spec of a Keras 3 ``Sequential`` or functional model built from
    the layers dlbench knows, with its compiled loss and optimizer (``loss``
    and ``optimizer`` override them; ``input_shape`` is for a model that was
    never built, or built for any length). Anything unsupported raises one
    InputError naming every such layer."""
    return _reader("tensorflow", "Keras model").import_model(model, input_shape=input_shape, loss=loss,
                                                             optimizer=optimizer).spec


def from_torch(module, input_shape, *, loss=None, optimizer=None) -> ModelSpec:
    """The spec of a torch module (an ``nn.Sequential`` or a class with its own
    ``forward``, read by tracing it with torch.fx) of supported modules and calls.
    ``input_shape``: one sample as the module takes it (channels first,
    ``(C, H, W)``); the spec is channels-last, as every dlbench spec.
    ``loss``: a dlbench loss name or a torch loss module (``nn.CrossEntropyLoss()``
    means a softmax output, ``nn.BCEWithLogitsLoss()`` a sigmoid one; ``F.nll_loss``
    after ``log_softmax``); None takes it from a final softmax, log_softmax or sigmoid. ``optimizer``: a dlbench
    optimizer (name, table or ``dlbench.Adam(...)``) or a ``torch.optim``
    Adam or SGD, whose hyper-parameters are taken; None: ``dlbench.Adam()``."""
    return _reader("torch", "torch module").import_model(module, input_shape=input_shape, loss=loss,
                                                         optimizer=optimizer).spec
