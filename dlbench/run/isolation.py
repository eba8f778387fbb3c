"""Running one job in a fresh worker process, isolated from the runner:
the request goes in a file, the row comes back in one; a worker that crashes,
hangs past its timeout, or writes garbage becomes a row, never a lost run.

Thread settings reach a framework only if they are in place before it is
imported, so the worker's environment carries them; its address space is
capped (``--max-memory``) and it dies with the runner (no orphan trains on).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlbench.errors import ERROR_CHARS, InputError, capped
from dlbench.plugin.manager import get_plugins
from dlbench.results.schema import check_row
from dlbench.run.row import failed_row
from dlbench.run.settings import RunRequest
from dlbench.run.signals import deferred


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
            return failed_row(request, f"no result after {timeout:g} s; {tail}".rstrip("; "), "timeout")
        if result_path.exists():
            return _worker_row(request, result_path)
        how = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        return failed_row(request, f"worker {how}; {tail}".rstrip("; "))


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
        return failed_row(request, f"the worker's result file is not a row: {exc}")


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
