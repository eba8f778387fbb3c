"""Runs (scenario, backend) jobs, each in a fresh worker process, and collects
their rows into one result document that is rewritten after every row.

Thread settings reach a framework only if they are in place before it is
imported, so the runner puts them in the worker's environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
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
from dlbench.run.peak import row_ceiling
from dlbench.run.timing import combine_repeats
from dlbench.errors import InputError
from dlbench.results.document import write_document
from dlbench.results.schema import check_row
from dlbench.results.store import machine_id
from dlbench.run.settings import Job, RunRequest
from dlbench.run.worker import base_row, execute


STDERR_TAIL_LINES = 12


POLL_SECONDS = 0.25  # how often the runner looks at a worker's progress


def run_isolated(request: RunRequest, timeout: float | None, on_progress=None) -> dict:
    """Run one job in a fresh Python process; crashes and hangs become rows.
    ``on_progress(steps done, total steps)`` is called while it trains."""
    with tempfile.TemporaryDirectory(prefix="dlbench-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        progress_path = Path(tmp, "progress")
        request = dataclasses.replace(request, progress_file=str(progress_path) if on_progress else "")
        request_path.write_text(request.to_json(), encoding="utf-8")
        backend = get_plugins().backend(request.backend)
        data_parallel = request.data_parallel
        env = {**os.environ, **backend.worker_environment(request.threads, request.device,
                                                          data_parallel.local_replicas)}
        # one process, or the backend's launcher starting one per replica of this host (torchrun)
        python = (backend.launch_command(data_parallel) if data_parallel.active else None) or [sys.executable]
        with open(Path(tmp, "stderr"), "w+", encoding="utf-8", errors="replace") as stderr:
            proc = subprocess.Popen([*python, "-m", "dlbench.run.worker", str(request_path),
                                     str(result_path)], env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True,
                                    preexec_fn=functools.partial(_prepare_worker, request.max_memory_mib))
            try:
                finished = _wait(proc, timeout, progress_path, on_progress)
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            if not finished:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            stderr.seek(0)
            tail = _tail(stderr.read())
        if not finished:
            return {**base_row(request), "status": "timeout",
                    "error": f"no result after {timeout:g} s; {tail}".rstrip("; ")}
        if result_path.exists():
            return _worker_row(request, result_path)
        how = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        return {**base_row(request), "status": "failed", "error": f"worker {how}; {tail}".rstrip("; ")}


def _wait(proc: subprocess.Popen, timeout: float | None, progress_path: Path, on_progress) -> bool:
    """Wait for the worker, reporting its progress; False when ``timeout`` passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = POLL_SECONDS if deadline is None else min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))
        try:
            proc.wait(timeout=wait)
            return True
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                return False
        if on_progress is not None:
            try:
                done, total = map(int, progress_path.read_text().split())
            except (OSError, ValueError):  # not written yet, or caught mid-write
                continue
            on_progress(done, total)


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


def interrupted_row(job: Job, stop: KeyboardInterrupt) -> dict:
    """The row of a job that Ctrl-C or SIGTERM stopped, or kept from starting."""
    why = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted by the user"
    return {**base_row(job.request), "status": "interrupted", "error": why,
            **({"sweep_point": job.sweep_point} if job.sweep_point else {})}


@functools.cache
def this_machine() -> dict:
    """The machine a row ran on: its host name and the id its documents are
    stored under (:func:`dlbench.results.store.machine_id` of the same host
    name, CPU model and core count the environment records), without the
    environment's slower probes, so that every row can carry it."""
    import psutil

    from dlbench.run.environment import cpu_model

    host = platform.node()
    return {"hostname": host,
            "id": machine_id({"hostname": host, "cpu": cpu_model(), "logical_cores": psutil.cpu_count(logical=True)})}


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


@dataclass
class Suite:
    """The jobs of one ``dlbench run`` and where their document goes."""

    jobs: list[Job]
    document: dict
    path: Path | None
    repeat: int = 1
    timeout: float | None = None
    in_process: bool = False
    #: the machine's matmul ceiling per precision (GFLOP/s), for "% peak"
    peak_gflops: dict = field(default_factory=dict)
    on_row: Callable[[dict], None] = field(default=lambda row: None)
    #: called while a job trains in a worker: (job, steps done, total steps)
    on_progress: Callable[[Job, int, int], None] | None = None
    save_error: str | None = None  # why the last save failed; None when it succeeded
    parity_dir: str = ""  # where the reference leaves its checkpoints for this run's certificate
    data_dir: str = ""  # the run's data cache: each dataset materialised once, memory-mapped by the workers
    #: None: one job after another, each in a worker of this process; else the jobs of a submitit job array
    executor: object | None = None  # a dlbench.run.executors.SubmititExecutor (which imports this module)

    def run(self) -> dict:
        """Run every job; on Ctrl-C or SIGTERM (what a scheduler, ``timeout``
        or ``docker stop`` sends) mark the rest 'interrupted', save, and re-raise."""
        rows = self.document["results"]
        with _terminate_as_interrupt(), self._folders() as (parity_dir, data_dir):
            self.parity_dir, self.data_dir = parity_dir, data_dir
            if self.executor is not None:
                self._gather()
                return self.document
            for i, job in enumerate(self.jobs):
                try:
                    row = self.run_job(job)
                except KeyboardInterrupt as stop:
                    rows.extend(interrupted_row(j, stop) for j in self.jobs[i:])
                    self.save()
                    raise
                rows.append(row)
                parity.annotate(rows)
                self.save()
                self.on_row(row)
        return self.document

    @contextlib.contextmanager
    def _folders(self):
        """(parity folder, data folder) for the run: temporary ones here, or
        the executor's, which every machine running a job can reach."""
        if self.executor is not None:
            with self.executor.shared_folders() as folders:
                yield folders
            return
        with (tempfile.TemporaryDirectory(prefix="dlbench-parity-") as parity_dir,
              tempfile.TemporaryDirectory(prefix="dlbench-data-") as data_dir):
            yield parity_dir, data_dir

    def _gather(self) -> None:
        """The executor's rows, each saved as its job ends, in the order a
        local run has (after the rows a resumed run kept); a machine other
        than the document's adds its environment under ``machines``."""
        rows, kept, done = self.document["results"], list(self.document["results"]), {}
        self.document["executor"] = self.executor.start()
        home = machine_id(self.document["environment"])
        with contextlib.closing(self.executor.finished(self, home)) as finished:
            try:
                for cell in finished:
                    done[cell.index] = cell.row
                    if cell.environment is not None:
                        self.document.setdefault("machines", {})[cell.row["machine"]["id"]] = cell.environment
                    rows[:] = kept + [done[i] for i in sorted(done)]
                    parity.annotate(rows)
                    self.save()
                    self.on_row(cell.row)
            except KeyboardInterrupt as stop:
                finished.close()  # cancels the jobs still queued or running
                done.update({i: interrupted_row(job, stop) for i, job in enumerate(self.jobs) if i not in done})
                rows[:] = kept + [done[i] for i in sorted(done)]
                self.save()
                raise

    def run_job(self, job: Job) -> dict:
        repeats = []
        for repeat in range(self.repeat):
            # the certificate once per cell: the first repetition carries the row's parity
            request = dataclasses.replace(job.request, parity_dir=self.parity_dir if repeat == 0 else "",
                                          data_dir=self.data_dir)
            start = time.perf_counter()
            # in process: for debugging, without isolation or timeout
            progress = None if self.on_progress is None else functools.partial(self.on_progress, job)
            row = execute(request) if self.in_process else run_isolated(request, self.timeout, progress)
            row.setdefault("metrics", {})["wall_seconds"] = time.perf_counter() - start
            repeats.append(row)
            if row["status"] != "ok":
                break
        row = combine_repeats(repeats)
        if job.sweep_point:
            row["sweep_point"] = job.sweep_point
        row["machine"] = dict(this_machine())
        gflops = row["metrics"].get("gflops_per_sec")
        # the ceiling of one replica's threads, times the replicas (the reference: one process)
        replicas = (row.get("distributed") or {}).get("world_size") or 1
        ceiling = row_ceiling(self.peak_gflops, row)
        if gflops and ceiling:
            row["metrics"]["peak_fraction"] = gflops / (ceiling * replicas)
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
