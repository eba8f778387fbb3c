"""What machine and software a result was measured on (no framework imports)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

CORE_DISTRIBUTIONS = ("numpy", "scikit-learn")  # the frameworks' come from each Backend.distributions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions(distributions=()) -> dict[str, str]:
    """Installed versions of the core's distributions and of ``distributions``."""
    found = {}
    for dist in dict.fromkeys([*CORE_DISTRIBUTIONS, *distributions]):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    """The commit of the dlbench source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def gpus() -> list[str]:
    """The machine's NVIDIA GPUs as "name, memory, driver", from ``nvidia-smi``
    (no framework import); empty where there is none or no driver."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    found = []
    for line in out.stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[0]:
            found.append(f"{parts[0]} ({parts[1]}, driver {parts[2]})")
    return found


BLAS_FIELDS = ("internal_api", "version", "architecture", "num_threads")
BLAS_PROBE = ("import json, numpy; from threadpoolctl import threadpool_info; "
              f"print(json.dumps([{{k: i.get(k) for k in {BLAS_FIELDS!r}}} for i in threadpool_info() "
              "if i.get('user_api') == 'blas']))")


def blas_info() -> list[dict]:
    """The BLAS libraries NumPy loads and the kernel (architecture) they run,
    as a fresh process (a worker) sees them: the calling process may have
    loaded other libraries' BLAS (a notebook that imported torch) or resized
    the pool (an in-process run), which says nothing about the workers."""
    import json
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):  # no fresh process to ask: this one's
        import numpy  # noqa: F401  (loads NumPy's BLAS so threadpoolctl can see it)
        from threadpoolctl import threadpool_info

        return [{k: info.get(k) for k in BLAS_FIELDS} for info in threadpool_info() if info.get("user_api") == "blas"]


def dlbench_version() -> str:
    """The installed dlbench's version (``dlbench.__version__``), read here so
    that the run modules need not import the package that re-exports them."""
    try:
        return importlib.metadata.version("dlbench")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0.0.0+unknown"


def collect(distributions=()) -> dict:
    import psutil

    return {
        "dlbench": dlbench_version(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "available_cores": available_cores(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus(),
        "blas": blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "versions": versions(distributions),
    }
