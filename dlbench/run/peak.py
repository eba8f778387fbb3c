"""The machine's fp32 matmul ceiling, per library, at a given thread count.

Each library is measured in a fresh process with the run's thread settings
(square float32 matmuls, best of several), so "% of peak" compares a backend
with what this machine can do, not with a datasheet. Results are cached per
machine and thread count in ``~/.cache/dlbench/peak.json`` (``$DLBENCH_CACHE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZE = 2048
REPEATS = 10
LIBRARIES = ("numpy", "torch", "tensorflow", "jax")


def _numpy(n):
    import numpy as np

    a = np.ones((n, n), np.float32)
    return lambda: a @ a


def _torch(n):
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    a = torch.ones((n, n), dtype=torch.float32)
    return lambda: torch.mm(a, a)


def _tensorflow(n):
    import tensorflow as tf

    a = tf.ones((n, n), tf.float32)
    return lambda: tf.matmul(a, a).numpy()


def _jax(n):
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: jnp.dot(x, x, precision=jax.lax.Precision.HIGHEST))
    return lambda: f(a).block_until_ready()


def measure_here(library: str, n: int = SIZE, repeats: int = REPEATS) -> float:
    """GFLOP/s of the best of ``repeats`` n x n float32 matmuls, in this process."""
    matmul = {"numpy": _numpy, "torch": _torch, "tensorflow": _tensorflow, "jax": _jax}[library](n)
    matmul()  # warm up: allocation, JIT
    best = min(_timed(matmul) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(library: str, threads: int, timeout: float = 300) -> float | None:
    """Measure in a fresh process with the thread settings of a run; None on failure."""
    from dlbench.plugin.manager import get_plugins

    env = {**os.environ, **get_plugins().backend(library).thread_environment(threads, "cpu")}
    out = subprocess.run([sys.executable, "-m", "dlbench.run.peak", library], env=env, capture_output=True,
                         text=True, timeout=timeout)
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def cache_path() -> Path:
    root = os.environ.get("DLBENCH_CACHE") or Path.home() / ".cache" / "dlbench"
    return Path(root) / "peak.json"


def machine_key(environment: dict, threads: int) -> str:
    return f"{environment.get('cpu')}|{environment.get('logical_cores')} cores|{threads} threads"


def load_cached(environment: dict, threads: int) -> dict[str, float]:
    try:
        cache = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return cache.get(machine_key(environment, threads), {})


def save(environment: dict, threads: int, peaks: dict[str, float]) -> None:
    path = cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache.setdefault(machine_key(environment, threads), {}).update(peaks)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
    except OSError:
        pass  # a read-only home only costs a re-measurement next time


def available_libraries() -> list[str]:
    import importlib.util

    return [lib for lib in LIBRARIES if importlib.util.find_spec(lib) is not None]


def peaks_for_run(environment: dict, threads: int) -> dict[str, float]:
    """Cached peaks of every installed library; the missing ones are measured
    once per machine and thread count (a few seconds each, imports included).
    The machine's ceiling is the best of them: NumPy's OpenBLAS may be held
    to an older kernel (OPENBLAS_CORETYPE) that the frameworks' BLAS are not."""
    peaks = load_cached(environment, threads)
    missing = [lib for lib in available_libraries() if lib not in peaks]
    measured = {lib: value for lib in missing if (value := measure(lib, threads))}
    if measured:
        save(environment, threads, measured)
    return {**peaks, **measured}


if __name__ == "__main__":
    print(f"{measure_here(sys.argv[1]):.3f}")
