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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlbench.plugin.manager import get_plugins
from dlbench.parity import verdict as parity
from dlbench.measure.peak import row_ceiling
from dlbench.measure.timing import combine_repeats
from dlbench.errors import ERROR_CHARS, InputError, capped
from dlbench.results.document import write_document
from dlbench.results.schema import check_row
from dlbench.results.store import machine_id
from dlbench.run.settings import Job, RunRequest
from dlbench.run.signals import Terminated, deferred, stop_signals
from dlbench.run.worker import base_row, execute


STDERR_TAIL_LINES = 12
STDERR_TAIL_BYTES = 64 * 1024  # read of a worker's standard error, from its end


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
        with open(Path(tmp, "stderr"), "wb") as stderr:
            proc = None
            try:
                with deferred():  # a stop signal waits until the worker is known, so it is never left running
                    proc = subprocess.Popen([*python, "-m", "dlbench.run.worker", str(request_path),
                                             str(result_path)], env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                            start_new_session=True,
                                            preexec_fn=functools.partial(_prepare_worker, request.max_memory_mib))
                finished = _wait(proc, timeout, progress_path, on_progress)
            except BaseException:
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                raise
            if not finished:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        tail = _tail(_read_tail(Path(tmp, "stderr")))
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
    lines = [capped(line, ERROR_CHARS // 4) for line in (stderr or "").splitlines() if line.strip()]
    return capped(" | ".join(lines[-STDERR_TAIL_LINES:]))


def _read_tail(path: Path) -> str:
    """The end of a worker's standard error (a worker may write gigabytes there)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - STDERR_TAIL_BYTES))
        return f.read().decode("utf-8", "replace")


def capped_row(row: dict) -> dict:
    """``row`` with every error text it carries capped to :data:`ERROR_CHARS` characters."""
    row = {**row, **{key: capped(row[key]) for key in ("error", "traceback") if isinstance(row.get(key), str)}}
    metrics = row.get("metrics")
    if isinstance(metrics, dict):
        row["metrics"] = {key: capped(value) if key.endswith("_error") and isinstance(value, str) else value
                          for key, value in metrics.items()}
    return row


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

    from dlbench.measure.environment import cpu_model

    host = platform.node()
    return {"hostname": host,
            "id": machine_id({"hostname": host, "cpu": cpu_model(), "logical_cores": psutil.cpu_count(logical=True)})}


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
        or ``docker stop`` sends) mark the rest 'interrupted', save, and re-raise.
        A signal is handled wherever it lands (in a job, between jobs, while a
        row is recorded): the rows recorded stay, every other job is marked."""
        with stop_signals(), self._folders() as (parity_dir, data_dir):
            self.parity_dir, self.data_dir = parity_dir, data_dir
            if self.executor is not None:
                self._gather()
                return self.document
            recorded = 0
            try:
                for job in self.jobs:
                    row = self.run_job(job)
                    with deferred():  # a row is recorded and saved whole, or not at all
                        self._record(row)
                        recorded += 1
                    self.on_row(row)
            except KeyboardInterrupt as stop:
                self._record(*(interrupted_row(j, stop) for j in self.jobs[recorded:]))
                raise
        return self.document

    def _record(self, *rows: dict) -> None:
        """Add finished rows (their error texts capped) to the document and save it."""
        with deferred():
            self.document["results"].extend(capped_row(row) for row in rows)
            parity.annotate(self.document["results"])
            self.save()

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
        kept, done = list(self.document["results"]), {}
        home = machine_id(self.document["environment"])
        try:
            self.document["executor"] = self.executor.start()
            # leaving the block closes ``finished``, which cancels the jobs still queued or running
            with contextlib.closing(self.executor.finished(self, home)) as finished:
                for cell in finished:
                    with deferred():
                        done[cell.index] = capped_row(cell.row)
                        if cell.environment is not None:
                            self.document.setdefault("machines", {})[cell.row["machine"]["id"]] = cell.environment
                        self._replace_rows(kept, done)
                    self.on_row(cell.row)
        except KeyboardInterrupt as stop:
            done.update({i: interrupted_row(job, stop) for i, job in enumerate(self.jobs) if i not in done})
            self._replace_rows(kept, done)
            raise

    def _replace_rows(self, kept: list, done: dict) -> None:
        """The rows a resumed run kept, then the executor's by job index; saved."""
        with deferred():
            self.document["results"][:] = kept + [done[i] for i in sorted(done)]
            parity.annotate(self.document["results"])
            self.save()

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
