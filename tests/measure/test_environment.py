"""What the environment records about the machine."""

import os
import stat

from dlbench.measure import environment

FAKE_SMI = """#!/bin/sh
echo "NVIDIA H200, 143771 MiB, 580.65.06"
"""


def test_gpus_are_read_from_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert environment.gpus() == ["NVIDIA H200 (143771 MiB, driver 580.65.06)"]
    assert environment.collect()["gpus"] == ["NVIDIA H200 (143771 MiB, driver 580.65.06)"]


def test_no_gpus_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert environment.gpus() == []


def test_blas_is_recorded_as_a_worker_sees_it_not_as_the_caller_left_it(monkeypatch):
    """A notebook (or an in-process run) may have resized NumPy's BLAS pool or loaded other BLAS libraries."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with threadpool_limits(limits=1, user_api="blas"):
        recorded = environment.blas_info()
    assert recorded and all(info["num_threads"] == 2 for info in recorded)
    assert {"internal_api", "version", "architecture", "num_threads"} == set(recorded[0])
