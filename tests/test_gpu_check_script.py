"""scripts/gpu-check.sh, the one-call GPU check: its dry mode (the same steps
with --device cpu) end to end, and the verdicts it gives on a GPU run's
documents and its time budget, which no CPU run reaches."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend_helpers import require_backend

ROOT = Path(__file__).resolve().parents[1]
GPU = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def gpu_check(monkeypatch, tmp_path):
    """The script's module, and a Check of a GPU run writing into tmp_path."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import gpu_check

    return gpu_check, gpu_check.Check(tmp_path, "gpu", ["synthetic-fcn"], ["fp32", "tf32"], 3, 100, 450, 15, ["mlp"])


def gpu_document(**changes) -> dict:
    """A GPU run's document as dlbench writes it: NumPy on the CPU, torch and JAX on the GPU."""
    def row(backend, device, memory, gflops, fraction):
        return {"scenario": "synthetic-fcn", "backend": backend, "status": "ok", "device": device,
                "parity": None if backend == "numpy" else {"agrees": True},
                "metrics": {"peak_device_mib": memory, "gflops_per_sec": gflops, "peak_fraction": fraction}}

    rows = {"numpy": row("numpy", "cpu", None, 50.0, 0.5), "torch": row("torch", GPU, 40.0, 5000.0, 0.1),
            "jax": row("jax", GPU, 30.0, 10000.0, 0.2)}
    for backend, metrics in changes.items():
        rows[backend]["metrics"].update(metrics.pop("metrics", {}))
        rows[backend].update(metrics)
    env = {"gpus": [f"{GPU}, 81559 MiB, 580.159.04"], "peak_gflops": {"numpy": 100.0},
           "gpu_peak_gflops": {"torch": 50000.0, "jax": 40000.0}}
    return {"environment": env, "results": list(rows.values())}


def verdicts(check) -> dict[str, str]:
    lines = (check.out / "summary.txt").read_text().splitlines()
    return {line.split(" ", 1)[1].split(":")[0]: line.split(" ", 1)[0] for line in lines}


def test_a_gpu_run_s_document_passes_every_check(gpu_check):
    module, check = gpu_check
    module.check_document(check, gpu_document(), "fp32")
    assert set(verdicts(check).values()) == {"PASS"} and len(verdicts(check)) == 7


def test_a_gpu_document_fails_where_a_row_is_on_the_cpu_without_memory_or_against_the_wrong_ceiling(gpu_check):
    module, check = gpu_check
    document = gpu_document(jax={"device": "cpu", "metrics": {"peak_device_mib": None}},
                            torch={"metrics": {"peak_fraction": 5000.0 / 100.0}})  # against the CPU's ceiling
    module.check_document(check, document, "fp32")
    found = verdicts(check)
    assert found["rows placed (fp32)"] == found["peak device memory (fp32)"] == "FAIL"
    assert found["% peak synthetic-fcn torch (fp32)"] == "FAIL" and found["rows ok (fp32)"] == "PASS"


def test_a_later_precision_runs_fewer_repeats_or_none_as_the_budget_runs_short(gpu_check, monkeypatch):
    module, check = gpu_check
    runs = []
    monkeypatch.setattr(module, "run_and_check", lambda ck, precision, repeat, reserve=0: runs.append(repeat))
    for budget in (500, 100, 20):  # the first run took 90 s for 3 repeats
        check.budget = budget + (module.time.monotonic() - check.start)
        module.later_precision(check, "tf32", 90.0)
    assert runs == [3, 1]
    lines = (check.out / "summary.txt").read_text().splitlines()
    assert lines[0].startswith("NOTE run tf32: --repeat 1") and lines[1].startswith("SKIP run tf32")


@pytest.mark.slow
def test_the_gpu_check_s_dry_mode_runs_every_step_and_passes_on_the_cpu(tmp_path):
    require_backend("torch")
    require_backend("jax")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["sh", str(ROOT / "scripts" / "gpu-check.sh"), "--dry", str(out), "--scenarios",
                           "synthetic-fcn", "--precisions", "fp32", "--repeat", "1", "--networks", "mlp",
                           "--budget", "1200", "--pack"], env=env, capture_output=True, text=True, timeout=1500)
    summary = (out / "summary.txt").read_text()
    assert done.returncode == 0, summary + done.stdout + done.stderr
    lines = summary.splitlines()
    assert lines[-1].startswith("RESULT:") and " 0 FAIL" in lines[-1], summary
    passed = [line for line in lines if line.startswith("PASS ")]
    for check in ("requirement: torch", "requirement: mnist1d", "TF32 off at fp32 (torch)", "TF32 off at fp32 (jax)",
                  "peak torch", "peak jax", "rows ok (fp32)", "rows agree with the NumPy reference (fp32)",
                  "rows placed (fp32)", "peak device memory (fp32)", "% peak synthetic-fcn torch (fp32)",
                  "% peak synthetic-fcn jax (fp32)", "report headers name the cpu (fp32)",
                  "deterministic runs bit-identical (synthetic-fcn/jax)"):
        assert any(line.startswith(f"PASS {check}") for line in passed), f"no PASS {check}:\n{summary}"
    # measured and said, though CPU timings on a shared machine decide nothing
    assert sum("hand-written loop" in line for line in lines) == 2, summary
    assert {p.name for p in out.iterdir()} == {"summary.txt", "gpu-check.log", "details.tar.gz", "report-fp32.html"}
