"""The machine's matmul ceiling, per backend, at a given thread count, in
float32 and in the compute dtypes of mixed precision (bfloat16, float16).

Each backend's own ``matmul`` (see :meth:`dlbench.plugin.backend.Backend.matmul`)
is measured in a fresh process with the run's thread settings (square
matmuls, best of several), so "% of peak" compares a backend with what this
machine can do, not with a datasheet; a third-party backend takes part like a
built-in. A row at bf16 or fp16 is compared with that dtype's ceiling (a CPU
with bf16 dot-product instructions has about twice the fp32 one; one without
emulates them, slower than fp32). Results are cached per machine and thread count in
``~/.cache/dlbench/peak.json`` (``$DLBENCH_CACHE``), each with the machine's
load average when it was measured. On a GPU (``dlbench peak --device gpu``,
and a run with ``--device gpu``) the backends' matmuls run on the first GPU, at
:data:`GPU_SIZE`, and a tf32 row has a ceiling of its own: float32 matmuls with
TF32 tensor cores allowed ("tfloat32"), several times the true-fp32 one there
(on a CPU, tf32 computes as fp32 and shares its ceiling). A peak measured on a busy machine is not
the machine's ceiling (on 2 cores, a 2-thread matmul beside another process
runs at a third of its speed): a run on a quiet machine (load below
:data:`QUIET_LOAD` per core) measures again every peak that was measured on a
busy one, or with no load recorded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlbench.plugin.backend import Backend
from dlbench.network.precision import PRECISIONS, compute_dtype

SIZE = 2048
#: a GPU's matmuls are timed at this size: at 2048 a bf16 product takes tens of
#: microseconds on an H100, of which the launch is a good share
GPU_SIZE = 8192
REPEATS = 10
#: a first, small matmul: where SIZE would take longer than SLOW_CALL_SECONDS a call,
#: the rate is measured at this size instead (torch's float16 matmul on a CPU without
#: fp16 dot-product instructions runs below 1 GFLOP/s: 2048^3 would take minutes)
PROBE_SIZE = 512
SLOW_CALL_SECONDS = 2.0


#: the 1-minute load average per core below which the machine counts as quiet
QUIET_LOAD = 0.25


def peak_dtype(precision: str, device: str = "cpu") -> str:
    """The dtype of the matmuls that decide ``precision``'s ceiling on ``device``
    ("tfloat32" for tf32 on a GPU: float32 operands, TF32 tensor cores)."""
    if precision == "tf32" and device == "gpu":
        return "tfloat32"
    return compute_dtype(precision) or "float32"


def environment_key(dtype: str, device: str = "cpu") -> str:
    """Where a run's environment keeps the peaks of ``dtype`` matmuls on ``device``."""
    key = "peak_gflops" if dtype == "float32" else f"peak_gflops_{dtype}"
    return f"gpu_{key}" if device == "gpu" else key


def ceiling_key(precision: str, device: str = "cpu") -> str:
    """The key of a run's ceilings (:func:`dlbench.run.runner.ceilings`) for a row
    at ``precision`` on ``device`` ("cpu", or "gpu" for a row trained on a GPU)."""
    return f"gpu {precision}" if device == "gpu" else precision


def row_ceiling(ceilings: dict[str, float], row: dict) -> float | None:
    """The ceiling of ``row``'s precision where it trained: a GPU's for a row
    trained on one (its ``device`` names the GPU), else the CPU's."""
    device = "cpu" if row.get("device") in (None, "cpu") else "gpu"
    return ceilings.get(ceiling_key(row.get("precision") or PRECISIONS[0], device))


def measure_here(name: str, threads: int, n: int | None = None, repeats: int = REPEATS,
                 dtype: str = "float32", device: str = "cpu") -> float | None:
    """GFLOP/s of the best of ``repeats`` n x n ``dtype`` matmuls of backend
    ``name`` on ``device``, in this process (n: :data:`SIZE` on a CPU,
    :data:`GPU_SIZE` on a GPU); None when the backend has no matmul (in that
    dtype, on that device). A CPU matmul is asked for as ``matmul(n)`` or
    ``matmul(n, dtype)``, so a backend written before GPUs had peaks still works."""
    from dlbench.plugin.manager import get_plugins

    backend = get_plugins().backend(name)
    backend.configure_threads(threads)
    n = n or (GPU_SIZE if device == "gpu" else SIZE)
    if device != "cpu":
        def make(size):
            return backend.matmul(size, dtype, device)
    else:
        make = backend.matmul if dtype == "float32" else (lambda size: backend.matmul(size, dtype))
    probe = make(PROBE_SIZE)
    if probe is None:
        return None
    probe()  # warm up: allocation, JIT
    seconds = _timed(probe) * (n / PROBE_SIZE) ** 3
    if seconds > SLOW_CALL_SECONDS:  # an emulated dtype (no instructions for it): its rate at the probe's size
        n, matmul, repeats = PROBE_SIZE, probe, 3
    else:
        matmul = make(n)
        matmul()
    best = min(_timed(matmul) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def has_matmul(backend: Backend, device: str = "cpu") -> bool:
    """Whether the backend's class gives a matmul (the base class's is None), and
    runs on ``device``, known without a process."""
    return type(backend).matmul is not Backend.matmul and device in backend.devices


def measure(name: str, threads: int, timeout: float = 300, dtype: str = "float32",
            device: str = "cpu") -> float | None:
    """Measure in a fresh process with the thread settings of a run on ``device``; None on failure."""
    from dlbench.plugin.manager import get_plugins

    env = {**os.environ, **get_plugins().backend(name).thread_environment(threads, device)}
    try:
        out = subprocess.run([sys.executable, "-m", "dlbench.measure.peak", name, str(threads), dtype, device],
                             env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    try:
        value = float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if _is_peak(value) else None


def cache_path() -> Path:
    root = os.environ.get("DLBENCH_CACHE") or Path.home() / ".cache" / "dlbench"
    return Path(root) / "peak.json"


def machine_key(environment: dict, threads: int, dtype: str = "float32", device: str = "cpu") -> str:
    """The cache's key: the CPU, its cores and the threads; on a GPU, the first
    GPU (name, memory, driver) and "gpu" (a GPU's peak does not depend on threads)."""
    if device == "gpu":
        key = f"{(environment.get('gpus') or ['an unnamed GPU'])[0]}|gpu"
    else:
        key = f"{environment.get('cpu')}|{environment.get('logical_cores')} cores|{threads} threads"
    return key if dtype == "float32" else f"{key}|{dtype}"


def load_average() -> float:
    """The 1-minute load average per logical core (0 where the OS has none)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return 0.0


def _is_peak(value) -> bool:
    """A GFLOP/s figure: a finite positive number (not a bool, not text)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _is_measurement(m) -> bool:
    load = m.get("load", 0) if isinstance(m, dict) else None
    return isinstance(m, dict) and _is_peak(m.get("gflops")) and isinstance(load, (int, float)) \
        and not isinstance(load, bool) and math.isfinite(load) and load >= 0


def read_cache() -> dict[str, dict[str, dict]]:
    """The cache's well-formed measurements only. The file is the user's to
    edit or break (``[1,2,3]``, a gflops of ``"fast"``, a half-written file):
    what is not a mapping of machine keys to backends to ``{"gflops": a
    positive number, "load": ...}`` is dropped, so that peak is measured
    again and the file rewritten, never a run stopped."""
    try:
        cache = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(cache, dict):
        return {}
    return {key: {name: m for name, m in entry.items() if isinstance(name, str) and _is_measurement(m)}
            for key, entry in cache.items() if isinstance(key, str) and isinstance(entry, dict)}


def load_cached(environment: dict, threads: int, quiet_only: bool = False,
                dtype: str = "float32", device: str = "cpu") -> dict[str, float]:
    """The cached peaks (GFLOP/s per backend); with ``quiet_only`` those measured on a quiet machine."""
    entry = read_cache().get(machine_key(environment, threads, dtype, device), {})
    return {name: float(m["gflops"]) for name, m in entry.items()
            if not quiet_only or m.get("load", float("inf")) < QUIET_LOAD}


def save(environment: dict, threads: int, peaks: dict[str, float], load: float, dtype: str = "float32",
         device: str = "cpu") -> None:
    """Cache ``peaks`` (GFLOP/s per backend, of ``dtype`` matmuls), measured at
    ``load`` (per core); written whole to a temporary file then renamed, so a
    reader never sees half a file."""
    if not peaks:
        return
    path = cache_path()
    cache = read_cache()
    cache.setdefault(machine_key(environment, threads, dtype, device), {}).update(
        {name: {"gflops": value, "load": round(load, 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
         for name, value in peaks.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".peak.", suffix=".tmp")
    except OSError:
        return  # a read-only home only costs a re-measurement next time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(partial)


def measurable_backends(plugins, device: str = "cpu") -> list[str]:
    """The registered, available backends with a matmul on ``device``, one per implementation:
    a backend that inherits its matmul (a variant of a built-in) multiplies with
    the same code as the backend it inherits from, which is measured already."""
    names, implementations = [], set()
    for name, backend in plugins.backends.items():
        implementation = type(backend).matmul
        if has_matmul(backend, device) and implementation not in implementations \
                and backend.availability().available:
            implementations.add(implementation)
            names.append(name)
    return names


def peaks_for_run(environment: dict, threads: int, dtype: str = "float32", device: str = "cpu") -> dict[str, float]:
    """Cached peaks of every measurable backend; the missing ones, and those
    measured on a busy machine, are measured now (a few seconds each, imports
    included) and cached. The machine's ceiling is the best of them: NumPy's
    OpenBLAS may be held to an older kernel (OPENBLAS_CORETYPE) that the
    frameworks' BLAS are not."""
    from dlbench.plugin.manager import get_plugins

    load = load_average()
    peaks = load_cached(environment, threads, quiet_only=load < QUIET_LOAD, dtype=dtype, device=device)
    missing = [name for name in measurable_backends(get_plugins(), device) if name not in peaks]
    measured = {name: value for name in missing if (value := measure(name, threads, dtype=dtype, device=device))}
    if measured:
        save(environment, threads, measured, load, dtype, device)
    return {**peaks, **measured}


if __name__ == "__main__":
    value = measure_here(sys.argv[1], int(sys.argv[2]), dtype=sys.argv[3] if len(sys.argv) > 3 else "float32",
                         device=sys.argv[4] if len(sys.argv) > 4 else "cpu")
    print("none" if value is None else f"{value:.3f}")
