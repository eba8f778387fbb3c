"""The one run driver: checked settings in, a stored result document out.

``dlbench run`` and :func:`dlbench.benchmark` both run through here, so a
run from a notebook is the run a shell gets: the same environment record and
matmul peaks, the same document, the same store (numbered, created
exclusively: no run replaces another's file), the same isolated workers and
parity. Nothing here knows click or prints a result: the CLI prints and picks
exit codes, the Python API wraps the document in :class:`dlbench.Results`.
"""

from __future__ import annotations

import json
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
    import dataclasses

    from dlbench.results import document as results, store

    if out_dir is not None:
        out_dir = results.check_writable(out_dir)
    precisions = settings.sweep.get("precision") or [settings.precision]
    document = results.new_document(environment(settings.threads, precisions), dataclasses.asdict(settings), command)
    path = store.store_path(out_dir, document) if out_dir is not None else None
    return document, path


def environment(threads: int, precisions=("fp32",)) -> dict:
    """This machine and its software, with the matmul peaks for ``threads``
    (measured once, then cached): float32's in ``peak_gflops``, and for a run at
    bf16 or fp16 that compute dtype's in ``peak_gflops_bfloat16``/``_float16``."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.run import environment as machine, peak

    env = machine.collect(get_plugins().backend_distributions())
    env["peak_gflops"] = peak.peaks_for_run(env, threads)
    for dtype in dict.fromkeys(peak.peak_dtype(p) for p in precisions):
        if dtype != "float32":
            env[peak.environment_key(dtype)] = peak.peaks_for_run(env, threads, dtype)
    return env


def ceilings(env: dict) -> dict[str, float]:
    """The machine's ceiling per precision (the best backend's peak in its matmul dtype) that the run measured."""
    from dlbench.run.peak import environment_key, peak_dtype
    from dlbench.spec.precision import PRECISIONS

    found = {}
    for precision in PRECISIONS:
        peaks = env.get(environment_key(peak_dtype(precision))) or {}
        best = max((v for v in peaks.values() if v), default=None)
        if best:
            found[precision] = best
    return found


def execute(jobs: list[Job], settings: RunSettings, document: dict, path: Path | None,
            progress: bool = False) -> Outcome:
    """Run ``jobs`` into ``document``, saving it after every row. On Ctrl-C or
    SIGTERM the unfinished jobs are marked interrupted, the document is saved
    and the KeyboardInterrupt (``suite.Terminated`` for SIGTERM) propagates."""
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


def resumable(path: Path) -> tuple[list[Job], RunSettings, dict]:
    """The jobs of a stopped run that have no finished row, its settings and its document (rows kept)."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.results import document as results
    from dlbench.run.settings import load_scenarios

    document = results.read_document(path)
    try:
        settings = RunSettings(**document["settings"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"cannot resume: the document has no usable settings ({exc})", source=str(path)) from None
    gone = [name for name, source in settings.scenarios.items() if name in settings.sources
            and not Path(source).exists()]
    if gone:
        raise InputError(f"cannot resume: {gone[0]!r} was a model given in Python ({settings.sources[gone[0]]}), "
                         "whose run-private scenario file is gone; run it again with dlbench.benchmark",
                         source=str(path))
    load_scenarios(get_plugins(), list(settings.scenarios.values()), settings.overrides)
    document["results"] = [r for r in document["results"] if r["status"] != "interrupted"]
    done = {_cell(r["scenario"], r["backend"], r.get("sweep_point")) for r in document["results"]}
    jobs = [j for j in settings.jobs() if _cell(j.request.name, j.request.backend, j.sweep_point) not in done]
    return jobs, settings, document


def _cell(scenario: str, backend: str, point) -> tuple:
    return scenario, backend, json.dumps(point or {}, sort_keys=True)


def exit_code(document: dict, require_verdict: bool = False) -> int:
    """1 when a row is not ok (unavailable aside), a backend disagrees with the
    reference (training, or its inference outputs) or its inference failed, else 0.
    A training verdict "not judged" (a run too short for a checkpoint, free runs
    that are not comparable) is 0, a smoke test that passes, unless
    ``require_verdict`` (``--require-verdict``: CI jobs that need the proof)."""
    from dlbench.run.parity import DISAGREES, NOT_JUDGED

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
    from dlbench.run.parity import AGREES, DISAGREES

    return parity.get("verdict") or (AGREES if parity.get("agrees") else DISAGREES)


def run_with_progress(suite) -> None:
    """Rows as they finish, and a bar for the run in progress (steps done / total), on standard error."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, log_path=False)
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
