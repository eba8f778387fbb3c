"""Runs (scenario, backend) jobs, each in a fresh worker process, and collects
their rows into one result document that is rewritten after every row.

Thread settings reach a framework only if they are in place before it is
imported, so the runner puts them in the worker's environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlbench.plugin.manager import get_plugins
from dlbench.run import parity
from dlbench.run.timing import combine_repeats
from dlbench.errors import InputError
from dlbench.results.document import write_document
from dlbench.results.schema import check_row
from dlbench.run.worker import RunRequest, base_row, execute

STDERR_TAIL_LINES = 12


def run_isolated(request: RunRequest, timeout: float | None) -> dict:
    """Run one job in a fresh Python process; crashes and hangs become rows."""
    with tempfile.TemporaryDirectory(prefix="dlbench-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        request_path.write_text(request.to_json(), encoding="utf-8")
        backend = get_plugins().backend(request.backend)
        env = {**os.environ, **backend.thread_environment(request.threads, request.device)}
        proc = subprocess.Popen([sys.executable, "-m", "dlbench.run.worker", str(request_path), str(result_path)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True,
                                preexec_fn=functools.partial(_prepare_worker, request.max_memory_mib))
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
            return {**base_row(request), "status": "timeout",
                    "error": f"no result after {timeout:g} s; {_tail(stderr)}".rstrip("; ")}
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        if result_path.exists():
            return _worker_row(request, result_path)
        how = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        return {**base_row(request), "status": "failed", "error": f"worker {how}; {_tail(stderr)}".rstrip("; ")}


def _worker_row(request: RunRequest, result_path: Path) -> dict:
    """The row a worker wrote; a result file that is not a row (a plugin that
    wrote garbage, a half-written file) becomes a failed row, not a crash."""
    try:
        return check_row(json.loads(result_path.read_text(encoding="utf-8")), "result", str(result_path))
    except (ValueError, InputError) as exc:
        return {**base_row(request), "status": "failed", "error": f"the worker's result file is not a row: {exc}"}


def _prepare_worker(max_memory_mib: int | None) -> None:
    """In the worker, before exec: get SIGKILL when the runner dies (Linux), so a
    killed run leaves no orphaned worker training on; cap its address space."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if max_memory_mib:
        limit = max_memory_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _tail(stderr: str | None) -> str:
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:])


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled like Ctrl-C, told apart in the exit code (143)."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the suite runs, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Job:
    """One (scenario, sweep point, backend) cell of a run, repeated ``Suite.repeat`` times."""

    request: RunRequest
    sweep_point: dict = field(default_factory=dict)


SWEEP_KEYS = ("batch_size", "threads", "seed")
OVERRIDDEN_BY_SWEEP = ("batch_size", "seed")  # sweep keys that change the scenario; threads change the worker


def plan_jobs(scenarios: dict[str, str], backends: list[str], sweep: dict[str, list[int]],
              overrides: dict, threads: int, digests: dict | None = None, **common) -> list[Job]:
    """Scenario-major order; within a scenario and sweep point, the NumPy
    reference first. ``scenarios`` maps name -> shipped name or file."""
    ordered = sorted(backends, key=lambda b: b != parity.REFERENCE_BACKEND)
    points = [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]
    jobs = []
    for name, source in scenarios.items():
        for point in points:
            point_overrides = {**overrides, **{k: point[k] for k in OVERRIDDEN_BY_SWEEP if k in point}}
            for backend in ordered:
                request = RunRequest(scenario=source, name=name, backend=backend, overrides=point_overrides,
                                     threads=point.get("threads", threads),
                                     scenario_digest=(digests or {}).get(name, ""), **common)
                jobs.append(Job(request, point))
    return jobs


@dataclass
class Suite:
    """The jobs of one ``dlbench run`` and where their document goes."""

    jobs: list[Job]
    document: dict
    path: Path | None
    repeat: int = 1
    timeout: float | None = None
    in_process: bool = False
    peak_gflops: float | None = None
    on_row: Callable[[dict], None] = field(default=lambda row: None)
    save_error: str | None = None  # why the last save failed; None when it succeeded
    parity_dir: str = ""  # where the reference leaves its checkpoints for this run's certificate

    def run(self) -> dict:
        """Run every job; on Ctrl-C or SIGTERM (what a scheduler, ``timeout``
        or ``docker stop`` sends) mark the rest 'interrupted', save, and re-raise."""
        rows = self.document["results"]
        with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="dlbench-parity-") as parity_dir:
            self.parity_dir = parity_dir
            for i, job in enumerate(self.jobs):
                try:
                    row = self.run_job(job)
                except KeyboardInterrupt as stop:
                    why = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted by the user"
                    rows.extend({**base_row(j.request), "status": "interrupted", "error": why,
                                 **({"sweep_point": j.sweep_point} if j.sweep_point else {})}
                                for j in self.jobs[i:])
                    self.save()
                    raise
                rows.append(row)
                parity.annotate(rows)
                self.save()
                self.on_row(row)
        return self.document

    def run_job(self, job: Job) -> dict:
        repeats = []
        for repeat in range(self.repeat):
            # the certificate once per cell: the first repetition carries the row's parity
            request = dataclasses.replace(job.request, parity_dir=self.parity_dir if repeat == 0 else "")
            start = time.perf_counter()
            # in process: for debugging, without isolation or timeout
            row = execute(request) if self.in_process else run_isolated(request, self.timeout)
            row.setdefault("metrics", {})["wall_seconds"] = time.perf_counter() - start
            repeats.append(row)
            if row["status"] != "ok":
                break
        row = combine_repeats(repeats)
        if job.sweep_point:
            row["sweep_point"] = job.sweep_point
        gflops = row["metrics"].get("gflops_per_sec")
        if gflops and self.peak_gflops:
            row["metrics"]["peak_fraction"] = gflops / self.peak_gflops
        return row

    def save(self) -> None:
        """Rewrite the document. A write that fails (disk full, folder gone)
        does not stop the run: the rows stay in memory, the next save tries
        again, and ``save_error`` tells the caller if the last one failed."""
        if self.path is None:
            return
        try:
            write_document(self.document, self.path)
        except OSError as exc:
            if self.save_error is None:
                print(f"dlbench: warning: cannot write {self.path}: {exc.strerror or exc}; the run goes on "
                      "and keeps its rows in memory", file=sys.stderr)
            self.save_error = exc.strerror or str(exc)
        else:
            self.save_error = None
