"""The Suite: runs (scenario, backend) jobs, each in a fresh worker process
(:mod:`dlbench.run.isolation`), and collects their rows into one result
document that is rewritten after every row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlbench.results.document import write_document
from dlbench.results.store import machine_id
from dlbench.run import row as rows
from dlbench.run.isolation import run_isolated
from dlbench.run.settings import Job, RunSettings
from dlbench.run.signals import deferred, stop_signals
from dlbench.run.worker import execute


@dataclass
class Suite:
    """The jobs of one ``dlbench run`` and where their document goes."""

    jobs: list[Job]
    document: dict
    path: Path | None
    repeat: int = RunSettings.repeat
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
                self._record(*(rows.interrupted_row(j, stop) for j in self.jobs[recorded:]))
                raise
        return self.document

    def _record(self, *finished: dict) -> None:
        """Add finished rows (their error texts capped) to the document and save it."""
        with deferred():
            self.document["results"].extend(rows.capped_row(row) for row in finished)
            rows.annotate(self.document["results"])
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
                        done[cell.index] = rows.capped_row(cell.row)
                        if cell.environment is not None:
                            self.document.setdefault("machines", {})[cell.row["machine"]["id"]] = cell.environment
                        self._replace_rows(kept, done)
                    self.on_row(cell.row)
        except KeyboardInterrupt as stop:
            done.update({i: rows.interrupted_row(job, stop) for i, job in enumerate(self.jobs) if i not in done})
            self._replace_rows(kept, done)
            raise

    def _replace_rows(self, kept: list, done: dict) -> None:
        """The rows a resumed run kept, then the executor's by job index; saved."""
        with deferred():
            self.document["results"][:] = kept + [done[i] for i in sorted(done)]
            rows.annotate(self.document["results"])
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
        return rows.finished_row(job, repeats, self.peak_gflops)

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
