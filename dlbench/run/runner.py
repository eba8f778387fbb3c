"""The one run driver: checked settings in, a stored result document out.

``dlbench run`` and :func:`dlbench.benchmark` both run through here, so a
run from a notebook is the run a shell gets: the same environment record and
matmul peaks, the same document, the same store (numbered, created
exclusively: no run replaces another's file), the same isolated workers and
parity. Nothing here knows click or prints a result: the CLI prints and picks
exit codes, the Python API wraps the document in :class:`dlbench.Results`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dlbench.errors import InputError
from dlbench.run.settings import Job, RunSettings


@dataclass
class Outcome:
    """What a finished run left: its document, where it is stored (None: not
    stored), and why the last write failed (None: it succeeded)."""

    document: dict
    path: Path | None
    save_error: str | None = None


def new_run(settings: RunSettings, out_dir: Path | None, command: list[str]) -> tuple[dict, Path | None]:
    """The run's empty document and its reserved file under ``out_dir``
    (``OUT/<machine-id>/NNNN_<commit>_<time>.json``); no file when ``out_dir`` is None."""
    from dlbench.results import document as results, store

    if out_dir is not None:
        out_dir = results.check_writable(out_dir)
    precisions = settings.sweep.get("precision") or [settings.precision]
    document = results.new_document(environment(settings.threads, precisions, settings.device),
                                     settings.to_document(), command)
    path = store.store_path(out_dir, document) if out_dir is not None else None
    return document, path


def environment(threads: int, precisions, device: str) -> dict:
    """This machine and its software, with the matmul peaks for ``threads``
    (measured once, then cached): float32's in ``peak_gflops``, and for a run at
    bf16 or fp16 that compute dtype's in ``peak_gflops_bfloat16``/``_float16``.
    A run that may train on a GPU (``device`` "gpu", or "auto" where there is
    one) has the GPU's peaks beside them, ``gpu_peak_gflops`` (true fp32),
    ``gpu_peak_gflops_tfloat32``, ``_bfloat16``, ``_float16`` (the NumPy
    reference of such a run trains on the CPU, under the CPU's ceiling)."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.measure import environment as machine, peak

    env = machine.collect(get_plugins().backend_distributions())
    devices = ["cpu", "gpu"] if device == "gpu" or device == "auto" and env.get("gpus") else ["cpu"]
    for where in devices:
        for dtype in dict.fromkeys(["float32", *(peak.peak_dtype(p, where) for p in precisions)]):
            env[peak.environment_key(dtype, where)] = peak.peaks_for_run(env, threads, dtype, where)
    return env


def ceilings(env: dict) -> dict[str, float]:
    """The machine's ceiling per precision (the best backend's peak in its matmul
    dtype) that the run measured, keyed by :func:`dlbench.measure.peak.ceiling_key`:
    the CPU's by precision, a GPU's by "gpu PRECISION"."""
    from dlbench.measure.peak import ceiling_key, environment_key, peak_dtype
    from dlbench.network.precision import PRECISIONS

    found = {}
    for device in ("cpu", "gpu"):
        for precision in PRECISIONS:
            peaks = env.get(environment_key(peak_dtype(precision, device), device)) or {}
            best = max((v for v in peaks.values() if v), default=None)
            if best:
                found[ceiling_key(precision, device)] = best
    return found


def execute(jobs: list[Job], settings: RunSettings, document: dict, path: Path | None,
            progress: bool = False) -> Outcome:
    """Run ``jobs`` into ``document``, saving it after every row. On Ctrl-C or
    SIGTERM the unfinished jobs are marked interrupted, the document is saved
    and the KeyboardInterrupt (``signals.Terminated`` for SIGTERM) propagates."""
    from dlbench.run.suite import Suite

    document["path"] = None if path is None else str(path)
    suite = Suite(jobs, document, path, repeat=settings.repeat, timeout=settings.timeout,
                  in_process=settings.isolation == "in-process", peak_gflops=ceilings(document["environment"]),
                  executor=cluster_executor(settings, path))
    suite.save()  # the reserved file holds a valid document from the start
    if progress and jobs:
        run_with_progress(suite)
    else:
        suite.run()
    suite.save()
    return Outcome(document, path, suite.save_error)


def cluster_executor(settings: RunSettings, path: Path | None):
    """The submitit executor of ``--executor slurm`` (None: the jobs run here, one after another)."""
    if settings.executor == "local":
        return None
    from dlbench.run.executors import SubmititExecutor

    return SubmititExecutor.of(settings, path)


def writer(path: Path | None, field: str | None = None):
    """The lock that makes this process the only writer of the document at
    ``path`` (:mod:`dlbench.results.lock`), to hold for the run's whole life;
    nothing to hold for a run kept in memory."""
    from dlbench.results.lock import DocumentLock

    return contextlib.nullcontext() if path is None else DocumentLock(path, field)


def resumable(path: Path) -> tuple[list[Job], RunSettings, dict]:
    """The jobs of a stopped run that have no finished row, its settings and
    its document (rows kept). Everything is checked before anything is
    written: the document field by field as it is read, the files its
    settings name, its backends, its scenarios against their data and batches."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.results import document as results
    from dlbench.run.checks import check_batches, filled_backend_options, load_scenarios, select_backends

    plugins = get_plugins()
    document = results.read_document(path)
    settings = stored_settings(document, path)
    check_stored_files(settings, path)
    select_backends(plugins, ",".join(settings.backends))
    # a document written before the defaults were stored gets them now, as the run had them
    settings = dataclasses.replace(settings, backend_options=filled_backend_options(
        plugins, settings.backends, settings.backend_options))
    loaded = load_scenarios(plugins, list(settings.scenarios.values()), settings.overrides)
    check_batches(plugins, loaded, settings.replica_counts, settings.sweep.get("batch_size"),
                  settings.data_parallel.scaling, settings.mode)
    document["results"] = [r for r in document["results"] if r["status"] != "interrupted"]
    done = {_cell(r["scenario"], r["backend"], r.get("sweep_point")) for r in document["results"]}
    jobs = [j for j in settings.jobs() if _cell(j.request.name, j.request.backend, j.sweep_point) not in done]
    return jobs, settings, document


def stored_settings(document: dict, path: Path) -> RunSettings:
    """The run's settings as the document stores them (their types and ranges
    were checked as it was read); a key this dlbench does not know is refused."""
    stored = document["settings"]
    known = set(RunSettings.from_document({"scenarios": {}, "backends": [], "overrides": {}}).to_document())
    unknown = [key for key in stored if key not in known]
    missing = [key for key in ("scenarios", "backends", "overrides") if key not in stored]
    if unknown or missing:
        what = f"unknown setting {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
        raise InputError(f"cannot resume: the document's settings have {what}", field="settings", source=str(path))
    return RunSettings.from_document(stored)


def check_stored_files(settings: RunSettings, path: Path) -> None:
    """The files a resumed run would open: its scenario files and initial
    weights must still be regular files (not a device, a FIFO or a folder)."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.scenario import scenario_files

    shipped = scenario_files(get_plugins().scenario_dirs)
    for name, source in settings.scenarios.items():
        if source in shipped:
            continue
        if name in settings.sources and not Path(source).exists():
            raise InputError(f"cannot resume: {name!r} was a model given in Python ({settings.sources[name]}), "
                             "whose run-private scenario file is gone; run it again with dlbench.benchmark",
                             source=str(path))
        _regular(source, f"settings.scenarios.{name}", path)
    for name, weights in settings.weights_files.items():
        _regular(weights, f"settings.weights_files.{name}", path)


def _regular(file: str, field: str, path: Path) -> None:
    try:
        regular = stat.S_ISREG(os.stat(file).st_mode)
    except OSError as exc:
        raise InputError(f"cannot resume: {file}: {exc.strerror}", field=field, source=str(path)) from None
    if not regular:
        raise InputError(f"cannot resume: {file} is not a regular file", field=field, source=str(path))


def _cell(scenario: str, backend: str, point) -> tuple:
    return scenario, backend, json.dumps(point or {}, sort_keys=True)


def exit_code(document: dict, require_verdict: bool = False) -> int:
    """1 when a row is not ok (unavailable aside), a backend disagrees with the
    reference (training, or its inference outputs) or its inference failed, else 0.
    A training verdict "not judged" (a run too short for a checkpoint, free runs
    that are not comparable) is 0, a smoke test that passes, unless
    ``require_verdict`` (``--require-verdict``: CI jobs that need the proof)."""
    from dlbench.parity.verdict import DISAGREES, NOT_JUDGED

    rows = document["results"]
    bad = any(r["status"] not in ("ok", "unavailable") for r in rows)
    failing = (DISAGREES, NOT_JUDGED) if require_verdict else (DISAGREES,)
    disagree = any(r.get("parity") and verdict_of(r["parity"]) in failing for r in rows)
    outputs = [(r.get("metrics") or {}).get("inference_outputs") for r in rows]
    wrong = any(o and not o.get("agrees") for o in outputs)
    lost = any((r.get("metrics") or {}).get("inference_error") for r in rows)
    return 1 if bad or disagree or wrong or lost else 0


def verdict_of(parity: dict) -> str:
    """A row's training verdict, also in a document written before the three values."""
    from dlbench.parity.verdict import AGREES, DISAGREES

    return parity.get("verdict") or (AGREES if parity.get("agrees") else DISAGREES)


def run_with_progress(suite) -> None:
    """Rows as they finish, and a bar for the run in progress (steps done / total), on standard error."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, log_path=False)
    if console.is_jupyter:  # rich's live bar needs ipywidgets there: the notebook's own display instead
        from dlbench.run.notebook import run_in_notebook

        return run_in_notebook(suite, describe, upcoming)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        total = len(suite.jobs)
        task = progress.add_task(upcoming(suite, 0), total=None)
        done = 0

        def on_progress(job, steps, steps_total):
            progress.update(task, description=describe(job), completed=steps, total=steps_total)

        def on_row(row):
            nonlocal done
            done += 1
            console.log(f"[{done}/{total}] {row['scenario']} / {row['backend']}: {row['status']}")
            if done < total:
                progress.reset(task, description=upcoming(suite, done), total=None)

        suite.on_row, suite.on_progress = on_row, on_progress
        suite.run()


def upcoming(suite, done: int) -> str:
    """What the bar waits for once ``done`` rows are in: the next job, or (a
    cluster's jobs end in any order and report no steps) how many are left."""
    if suite.executor is not None:
        return f"waiting for {len(suite.jobs) - done} of {len(suite.jobs)} cluster jobs"
    return describe(suite.jobs[done])


def describe(job: Job) -> str:
    point = ", ".join(f"{k}={v}" for k, v in job.sweep_point.items())
    doing = {"inference": "inference of", "both": "training + inference of"}.get(job.request.mode, "training")
    return f"{doing} {job.request.name} on {job.request.backend}{' (' + point + ')' if point else ''}"
