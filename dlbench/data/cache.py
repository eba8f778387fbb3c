"""One materialised copy of a dataset per run, shared by its workers.

The first worker that needs a (dataset, seed, options) generates or reads it
once and writes its arrays as ``.npy`` files into the run's cache folder;
every worker (that one included) then opens them memory-mapped, so a run's
data cost does not grow with the number of backends and repeats, and the
runner itself never holds the arrays. Copy-on-write mapping: a backend may
write to its arrays without changing the files the next worker reads.

Workers run one after another, but a lock file serialises them anyway, and
an entry is renamed into place only once complete: a worker killed while
writing leaves nothing that a later one would take for data.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from dlbench.data.base import Dataset, DatasetInfo

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def cache_key(info: DatasetInfo, seed: int, options: dict) -> str:
    text = json.dumps([info.name, seed, info.resolve(options)], sort_keys=True)
    return f"{info.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached_load(info: DatasetInfo, seed: int, options: dict, cache_dir: str | Path) -> Dataset:
    """``info.load(seed, options)``, materialised once in ``cache_dir``."""
    folder = Path(cache_dir) / cache_key(info, seed, options)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not folder.is_dir():
            _write(info.load(seed, options), folder)
    return _open(folder)


def _write(data: Dataset, folder: Path) -> None:
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".partial", dir=folder.parent))
    for name in ARRAYS:
        np.save(partial / f"{name}.npy", getattr(data, name), allow_pickle=False)
    (partial / "meta.json").write_text(json.dumps({"n_classes": data.n_classes}))
    os.replace(partial, folder)


def _open(folder: Path) -> Dataset:
    # plain ndarray views of the mappings: no np.memmap subclass in the backends' arithmetic
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False).view(np.ndarray)
              for name in ARRAYS}
    meta = json.loads((folder / "meta.json").read_text())
    return Dataset(**arrays, n_classes=meta["n_classes"])
