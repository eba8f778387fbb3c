"""A cache is the user's file to break: an ill-formed peak.json is measured
again and rewritten, never a run stopped (issue 34, case 10)."""

import json
import subprocess

import pytest

from dlbench.measure import peak

ENV = {"cpu": "test cpu", "logical_cores": 2}
KEY = peak.machine_key(ENV, 2)
BROKEN = {
    "a list": [1, 2, 3],
    "text gflops": {KEY: {"numpy": {"gflops": "fast", "load": 0.0}}},
    "a bool gflops": {KEY: {"numpy": {"gflops": True, "load": 0.0}}},
    "a negative gflops": {KEY: {"numpy": {"gflops": -5.0, "load": 0.0}}},
    "a text load": {KEY: {"numpy": {"gflops": 50.0, "load": "low"}}},
    "an entry that is a list": {KEY: [1, 2]},
    "a number": 7,
}


def measured(monkeypatch, tmp_path, gflops: float) -> list:
    calls = []
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(peak, "measure", lambda name, threads, dtype="float32", device="cpu": calls.append(name) or gflops)
    monkeypatch.setattr(peak, "measurable_backends", lambda plugins, device="cpu": ["numpy"])
    monkeypatch.setattr(peak, "load_average", lambda: 0.0)
    return calls


@pytest.mark.parametrize("content", [*BROKEN.values(), "{not json", "\udcff"], ids=[*BROKEN, "not JSON", "not UTF-8"])
def test_an_ill_formed_peak_cache_is_measured_again_and_rewritten(monkeypatch, tmp_path, content):
    calls = measured(monkeypatch, tmp_path, gflops=80.0)
    raw = content if isinstance(content, str) else json.dumps(content)
    (tmp_path / "peak.json").write_bytes(raw.encode("utf-8", "surrogateescape"))
    assert peak.peaks_for_run(ENV, 2) == {"numpy": 80.0} and calls == ["numpy"]
    cache = json.loads((tmp_path / "peak.json").read_text())
    assert cache[KEY]["numpy"]["gflops"] == 80.0
    calls.clear()
    assert peak.peaks_for_run(ENV, 2) == {"numpy": 80.0} and not calls  # the rewritten cache is used


def test_a_well_formed_entry_beside_an_ill_formed_one_is_kept(monkeypatch, tmp_path):
    calls = measured(monkeypatch, tmp_path, gflops=80.0)
    other = peak.machine_key(ENV, 1)
    (tmp_path / "peak.json").write_text(json.dumps({KEY: {"numpy": {"gflops": "fast"}},
                                                    other: {"torch": {"gflops": 12.5, "load": 0.1}}}))
    peak.peaks_for_run(ENV, 2)
    assert calls == ["numpy"]
    assert json.loads((tmp_path / "peak.json").read_text())[other] == {"torch": {"gflops": 12.5, "load": 0.1}}


def test_a_measurement_that_is_not_a_positive_number_is_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "nan\n", ""))
    assert peak.measure("numpy", 1) is None


def test_a_run_with_a_broken_peak_cache_finishes_ok(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from dlbench.cli import main

    measured(monkeypatch, tmp_path, gflops=80.0)  # no framework process is started to measure
    (tmp_path / "peak.json").write_text("[1, 2, 3]")
    result = CliRunner().invoke(main, ["run", "--scenario", "xor-mlp", "--backend", "numpy", "--steps", "5",
                                       "--in-process", "--format", "json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [row["status"] for row in json.loads(result.stdout)["results"]] == ["ok"]
    (entry,) = json.loads((tmp_path / "peak.json").read_text()).values()
    assert entry["numpy"]["gflops"] == 80.0
