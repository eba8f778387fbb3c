"""scripts/gpu-check.sh, the one-call GPU check, run end to end in its dry mode
(the same steps with --device cpu): every step reports, nothing fails, and its
output folder holds what the GPU call would bring back."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend_helpers import require_backend

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_s_dry_mode_runs_every_step_and_passes_on_the_cpu(tmp_path):
    require_backend("torch")
    require_backend("jax")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["sh", str(ROOT / "scripts" / "gpu-check.sh"), "--dry", str(out), "--scenarios",
                           "synthetic-fcn", "--precisions", "fp32,tf32", "--repeat", "1", "--networks", "mlp",
                           "--budget", "1200", "--pack"], env=env, capture_output=True, text=True, timeout=1500)
    summary = (out / "summary.txt").read_text()
    assert done.returncode == 0, summary + done.stdout + done.stderr
    lines = summary.splitlines()
    assert lines[-1].startswith("RESULT:") and " 0 FAIL" in lines[-1], summary
    passed = [line for line in lines if line.startswith("PASS ")]
    for check in ("requirement: torch", "requirement: mnist1d", "TF32 off at fp32 (torch)", "TF32 off at fp32 (jax)",
                  "peak torch", "peak jax", "rows ok (fp32)", "rows agree with the NumPy reference (fp32)",
                  "rows placed (fp32)", "peak device memory (fp32)", "% peak synthetic-fcn torch (fp32)",
                  "% peak synthetic-fcn jax (tf32)", "report headers name the cpu (tf32)",
                  "deterministic runs bit-identical (synthetic-fcn/jax)"):
        assert any(line.startswith(f"PASS {check}") for line in passed), f"no PASS {check}:\n{summary}"
    # measured and said, though CPU timings on a shared machine decide nothing
    assert sum("hand-written loop" in line for line in lines) == 2, summary
    assert {p.name for p in out.iterdir()} == {"summary.txt", "gpu-check.log", "details.tar.gz",
                                               "report-fp32.html", "report-tf32.html"}
