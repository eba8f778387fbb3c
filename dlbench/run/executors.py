"""``--executor slurm``: a suite's jobs fanned out as submitit job arrays.

As benchopt does, each (scenario, sweep point, backend) cell — all its
repeats — is one job of a job array, submitted through
``submitit.AutoExecutor``: a Slurm job where there is Slurm, a local process
where there is none (``executor.cluster == "local"``). A job runs its cell as
a local run does (:meth:`dlbench.run.suite.Suite.run_job`: a fresh worker per
repeat, thread settings fixed before the framework is imported) and hands
back the row; :class:`dlbench.run.suite.Suite` files the rows into the one
document as they come.

Every submitit import is in this module, and happens only for a run that
asks for ``--executor slurm``: ``dlbench --help`` and ``dlbench list`` never pay for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dlbench.scale.cluster import DEFAULT_MINUTES, import_submitit
from dlbench.run.row import job_row, this_machine
from dlbench.run.settings import Job
from dlbench.run.suite import Suite

POLL_SECONDS = 0.5  # how often a finished job is looked for (Slurm's own state is asked less often)
TIMED_OUT_STATES = ("TIMEOUT", "DEADLINE")
PARALLEL_NOTE = ("the jobs ran in parallel on a cluster: their wall times are not comparable with those of a "
                 "sequential run, and a machine's throughputs only with that machine's")
SEQUENTIAL_NOTE = "no Slurm: submitit ran the jobs as local processes, one at a time, as a local run does"


@dataclass(frozen=True)
class Finished:
    """A cell whose job ended: its index in the suite's jobs, its row, and the
    environment of the machine it ran on where that is not the document's (else None)."""

    index: int
    row: dict
    environment: dict | None = None


@dataclass(frozen=True)
class CellJob:
    """What one cluster job does: one cell with all its repeats, as a local run
    runs it, on whichever machine the scheduler chose. Plain values only, as
    it is pickled into the job. A machine other than the document's records
    its environment, and gets no "% peak": the ceilings are the document's machine's."""

    repeat: int
    timeout: float | None
    peak_gflops: dict
    parity_dir: str
    data_dir: str
    home: str  # the id of the machine the document belongs to
    #: variables set back to this process's values (None: unset) before the workers start
    restore: dict = dataclasses.field(default_factory=dict)
    #: (pid, start time) of the dlbench that submitted the job, on the local fallback: the job ends when it does
    owner: tuple[int, float] | None = None

    def __call__(self, job: Job) -> tuple[dict, dict | None]:
        if self.owner is not None:
            threading.Thread(target=end_with_owner, args=self.owner, daemon=True).start()
        for name, value in self.restore.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        at_home = this_machine()["id"] == self.home
        suite = Suite([job], {}, None, repeat=self.repeat, timeout=self.timeout,
                      peak_gflops=self.peak_gflops if at_home else {}, parity_dir=self.parity_dir,
                      data_dir=self.data_dir)
        return suite.run_job(job), None if at_home else machine_environment()


OWNER_POLL_SECONDS = 1.0


def end_with_owner(pid: int, started: float) -> None:
    """Kill this job's process once the dlbench that submitted it is gone (a
    SIGKILL gives it no chance to cancel its jobs): submitit's local
    controller outlives it by design, and would run the job to its end; the
    job's worker, which gets SIGKILL when its parent dies, goes with it."""
    import psutil

    while True:
        try:
            if psutil.Process(pid).create_time() != started:
                break  # the pid is another process's now
        except psutil.NoSuchProcess:
            break
        time.sleep(OWNER_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def this_process() -> tuple[int, float]:
    import psutil

    return os.getpid(), psutil.Process().create_time()


def machine_environment() -> dict:
    """This machine and its software, as a run's document records its own (without the matmul peaks)."""
    from dlbench.plugin.manager import get_plugins
    from dlbench.measure import environment

    return environment.collect(get_plugins().backend_distributions())


@dataclass
class SubmititExecutor:
    """Runs a suite's cells as submitit jobs whose files (logs, pickles, and
    the run's parity and data folders) live in ``folder``: beside the result
    document, on storage a cluster's nodes share."""

    folder: Path
    partition: str | None = None
    gpus_per_job: int | None = None
    minutes: int = DEFAULT_MINUTES
    temporary: bool = False  # a folder of its own (a document kept in memory): removed at the end
    cluster: str = ""  # once started: "slurm", or "local" where there is no Slurm
    _executor: object = dataclasses.field(default=None, repr=False)
    _watcher: object = dataclasses.field(default=None, repr=False)  # the jobs' states from the controller

    @classmethod
    def of(cls, settings, path: Path | None) -> "SubmititExecutor":
        """The executor of ``settings`` (``--executor slurm``) for the document at ``path``."""
        import_submitit()  # a resumed run's machine may lack it: say so before anything runs
        if path is not None:
            folder, temporary = path.parent / f"{path.stem}.submitit", False
        else:  # the working folder, not /tmp: on a cluster the nodes share it
            folder, temporary = Path(tempfile.mkdtemp(prefix=".dlbench-submitit-", dir=Path.cwd())), True
        return cls(folder, settings.slurm_partition, settings.slurm_gpus_per_job,
                   settings.slurm_time or DEFAULT_MINUTES, temporary)

    @contextlib.contextmanager
    def shared_folders(self) -> Iterator[tuple[str, str]]:
        """The run's parity and data folders, under ``folder`` (a temporary
        folder would be on one machine only); removed at the end, as a local
        run's are. The jobs' logs stay beside the document, for a failed job's post-mortem."""
        parity, data = self.folder / "parity", self.folder / "data"
        for folder in (parity, data):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            yield str(parity), str(data)
        finally:
            for folder in (self.folder,) if self.temporary else (parity, data):
                shutil.rmtree(folder, ignore_errors=True)

    def start(self) -> dict:
        """Ready the submitit executor; what the document records of how its jobs ran."""
        executor = import_submitit().AutoExecutor(folder=self.folder / "jobs")
        executor.update_parameters(name="dlbench", timeout_min=self.minutes, nodes=1, tasks_per_node=1,
                                   gpus_per_node=self.gpus_per_job, slurm_partition=self.partition,
                                   slurm_signal_delay_s=signal_delay(self.minutes))
        self._executor, self.cluster = executor, executor.cluster
        parallel = self.cluster != "local"
        record = {"name": "slurm", "cluster": self.cluster, "folder": str(self.folder), "parallel": parallel,
                  "note": PARALLEL_NOTE if parallel else SEQUENTIAL_NOTE}
        if self.cluster == "slurm" and (why := accounting_off()) is not None:
            self._watcher = controller_watcher()
            record["job_states"] = ACCOUNTING_OFF_NOTE.format(why=why)
            print(f"dlbench: {record['job_states']}", file=sys.stderr, flush=True)
        return record

    def finished(self, suite: Suite, home: str) -> Iterator[Finished]:
        """Each cell as its job ends: the reference's jobs first, waited for,
        since the other backends' jobs read the checkpoints they leave."""
        cell = CellJob(suite.repeat, suite.timeout, suite.peak_gflops, suite.parity_dir, suite.data_dir, home,
                       self._restored(), this_process() if self.cluster == "local" else None)
        first = [i for i, job in enumerate(suite.jobs) if job.request.is_reference]
        rest = [i for i, job in enumerate(suite.jobs) if not job.request.is_reference]
        for phase in (first, rest):
            for wave in self._waves([(i, suite.jobs[i]) for i in phase]):
                yield from self._run_wave(cell, wave)

    def _restored(self) -> dict:
        """The local fallback's controller sets CUDA_VISIBLE_DEVICES to the GPUs
        asked for (none: there is no Slurm to ask); its jobs get this process's
        back, so they see the GPUs a local run sees. On Slurm, Slurm decides."""
        return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")} if self.cluster == "local" else {}

    def _waves(self, items: list[tuple[int, Job]]) -> list[list[tuple[int, Job]]]:
        """What is submitted together. Where submitit falls back to local
        processes, one job at a time (an array parallelism of 1): concurrent
        jobs on one machine would time each job against the others, and their
        numbers would not be comparable with a local run's. On Slurm the whole
        phase at once, each job on an allocation of its own."""
        if self.cluster == "local":
            return [[item] for item in items]
        return [items] if items else []

    def _run_wave(self, cell: CellJob, wave: list[tuple[int, Job]]) -> Iterator[Finished]:
        """The wave's cells as their jobs end; the jobs still queued or running
        are cancelled when this stops early (Ctrl-C, SIGTERM)."""
        pending: dict[int, tuple[Job, object]] = {}
        try:
            yield from self._submit(cell, wave, pending)
            while pending:
                for index, (job, handle) in list(pending.items()):
                    if handle.done():
                        del pending[index]
                        yield self._outcome(index, job, handle)
                if pending:
                    time.sleep(POLL_SECONDS)
        finally:
            for _, handle in pending.values():
                self._cancel(handle)

    def _cancel(self, handle) -> None:
        """Cancel a job that has not ended. On Slurm, scancel. On the local
        fallback, Ctrl-C for the job's own process rather than for submitit's
        controller (its ``cancel``), which would print a traceback on this
        run's standard error: the job stops its worker, and the controller, its
        job ended, exits quietly."""
        if self.cluster != "local":
            handle.cancel(check=False)
            return
        import psutil

        try:
            tasks = psutil.Process(int(handle.job_id)).children()
        except (psutil.Error, ValueError):
            tasks = []
        for task in tasks:
            with contextlib.suppress(psutil.Error):
                task.send_signal(signal.SIGINT)
        if not tasks:
            handle.cancel(check=False)

    def _submit(self, cell: CellJob, wave: list[tuple[int, Job]], pending: dict) -> list[Finished]:
        """One job array per CPU count (a job's CPUs: its threads per replica
        times its replicas), one task each; the accepted jobs go to ``pending``,
        an array the scheduler refuses (sbatch's error) becomes failed rows."""
        groups: dict[int, list[tuple[int, Job]]] = {}
        for index, job in wave:
            groups.setdefault(job.request.threads * job.request.data_parallel.replicas, []).append((index, job))
        refused = []
        for cpus, group in groups.items():
            self._executor.update_parameters(cpus_per_task=cpus)
            try:
                handles = self._executor.map_array(cell, [job for _, job in group])
            except Exception as exc:  # e.g. an unknown partition, a time limit beyond the partition's
                refused += [Finished(index, refused_row(job, exc)) for index, job in group]
                continue
            for handle in handles if self._watcher is not None else ():
                handle.watcher = self._watcher  # submitit makes array tasks as SlurmJob, with sacct's watcher
                self._watcher.register_job(handle.job_id)
            pending.update({index: (job, handle) for (index, job), handle in zip(group, handles)})
        return refused

    def _outcome(self, index: int, job: Job, handle) -> Finished:
        try:
            row, environment = handle.result()
        except Exception as exc:  # the job ended without a row: it raised, was killed, pre-empted, timed out
            return Finished(index, job_failed_row(job, f"{self.cluster} job {handle.job_id}", handle.state, exc,
                                                  self.minutes))
        return Finished(index, row, environment)


ACCOUNTING_OFF_NOTE = ("Slurm accounting is off on this cluster (sacct: {why}), so submitit cannot ask sacct for "
                       "its jobs' states (it would warn of a sacct error at every poll, and never see a cancelled "
                       "job end); dlbench asks the controller instead (scontrol show job), which remembers an "
                       "ended job for MinJobAge seconds")
#: how often, at most, the controller is asked for the jobs' states: well within Slurm's MinJobAge (300 s by default)
CONTROLLER_POLL_SECONDS = 30


def signal_delay(minutes: int) -> int:
    """How long before its time limit a job is told (SIGUSR2), in seconds:
    submitit's 90, or a quarter of a shorter limit (90 s before a 1-minute
    limit would tell the job as it starts)."""
    return min(90, minutes * 60 // 4)


def accounting_off() -> str | None:
    """Why sacct cannot tell the jobs' states here (its error, e.g. "Slurm
    accounting storage is disabled"), or None where it can."""
    try:
        probe = subprocess.run(["sacct", "--noheader", "-X", "-o", "JobID", "-j", "1"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]


def controller_watcher():
    """A submitit SlurmInfoWatcher that reads the jobs' states from
    ``scontrol show job`` (the controller) rather than sacct (accounting), for
    a cluster without accounting."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class ControllerInfoWatcher(SlurmInfoWatcher):
        def _make_command(self) -> list[str] | None:
            return None if super()._make_command() is None else ["scontrol", "show", "job", "--oneliner"]

        def read_info(self, string) -> dict[str, dict[str, str]]:
            return controller_states(string.decode() if isinstance(string, bytes) else string)

    return ControllerInfoWatcher(delay_s=CONTROLLER_POLL_SECONDS)


def controller_states(text: str) -> dict[str, dict[str, str]]:
    """submitit's job information (``JobID``, ``State``, ``NodeList`` by job
    id; an array task by ``ARRAY_TASK`` too) from ``scontrol show job --oneliner``."""
    found = {}
    for line in text.splitlines():
        fields = dict(token.split("=", 1) for token in line.split() if "=" in token)
        if "JobId" not in fields:
            continue
        info = {"JobID": fields["JobId"], "State": fields.get("JobState", "UNKNOWN"),
                "NodeList": fields.get("NodeList", "")}
        found[fields["JobId"]] = info
        if fields.get("ArrayTaskId", "").isdigit():
            found[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = info
    return found


def job_failed_row(job: Job, name: str, state: str, exc: Exception, minutes: int) -> dict:
    """The row of a cell whose job (``name``) left no row: ``timeout`` when it
    was stopped at its time limit (Slurm's TIMEOUT, or submitit's own word
    when the warning signal before the limit reached it first), ``failed``
    otherwise (it raised, was killed, pre-empted, cancelled), with submitit's
    state and what its exception says."""
    text = str(exc)
    timed_out = (state or "").split(" ")[0].upper() in TIMED_OUT_STATES or "timed-out" in text
    what = f"ran past its time limit ({minutes} min, --slurm-time)" if timed_out else "ended without a row"
    return job_row(job, "timeout" if timed_out else "failed", f"{name} {what} (state {state}): {summary(text)}")


def refused_row(job: Job, exc: Exception) -> dict:
    """The row of a cell whose job array the scheduler would not take."""
    return job_row(job, "failed", f"submitit could not submit the job array: {summary(str(exc))}")


#: the rule around the trace in the message of submitit's FailedJobError
TRACE_RULE = "-" * 22 + "\n"


def summary(text: str) -> str:
    """submitit's exception text on one line. A job that raised: the
    exception's line and its log file. Any other: the first lines (what
    happened, in which state) and the last lines of its log."""
    sections = text.split(TRACE_RULE)
    if len(sections) == 3:
        raised = [line.strip() for line in sections[1].splitlines() if line.strip()]
        logs = [line.strip()[2:] for line in sections[2].splitlines() if line.strip().startswith("- ")]
        return f"{raised[-1] if raised else 'no trace'}{f' (log: {logs[0]})' if logs else ''}"
    lines = [line.strip() for line in text.splitlines() if line.strip() and set(line.strip()) != {"-"}]
    return " | ".join(lines if len(lines) <= 4 else [*lines[:2], "...", *lines[-2:]])
