"""The runner's own memory on a large data set: the peak resident set of the
``dlbench run`` process itself (VmHWM, read until it exits; its workers are
other processes), and how long it took to start its first worker.

    python tests/benchmarks/runner_memory.py --samples 1000000 --features 256 --backend numpy,torch

The runner checks the scenario against the dataset's metadata and never holds
the arrays; the first worker makes the data once into the run's cache and
every worker maps it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """name = "big-synthetic"
[data]
name = "synthetic"
n_samples = {samples}
n_features = {features}
[model]
input_shape = [{features}]
layers = [{{ type = "dense", units = 64, activation = "relu" }}, {{ type = "dense", units = 10, activation = "softmax" }}]
[train]
loss = "categorical_crossentropy"
optimizer = "sgd"
batch_size = 256
"""


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--backend", default="numpy,torch")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp, "big.toml")
        scenario.write_text(SCENARIO.format(samples=args.samples, features=args.features))
        command = [sys.executable, "-m", "dlbench.cli", "run", "--scenario", str(scenario), "--backend", args.backend,
                   "--steps", str(args.steps), "--threads", "1", "--format", "json", "--out", str(Path(tmp, "out"))]
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid) or 0.0)
            time.sleep(0.02)
        out, err = proc.communicate()
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dlbench run failed ({proc.returncode}): {err[-2000:]}")
    import json

    rows = json.loads(out)["results"]
    print(f"{args.samples:,} x {args.features} synthetic, backends {args.backend}, {args.steps} steps")
    print(f"runner peak RSS: {peak:,.0f} MiB (VmHWM of the dlbench process, workers excluded)")
    for row in rows:
        m = row["metrics"]
        print(f"  {row['backend']:<11} {row['status']:<7} worker peak RSS {m.get('peak_rss_mib', 0):,.0f} MiB, "
              f"build {m.get('build_seconds', 0):.2f} s, placement {m.get('placement_seconds', 0):.2f} s")
    print(f"wall {wall:.1f} s")


if __name__ == "__main__":
    main()
