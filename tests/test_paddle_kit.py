"""The Paddle plugin (plugins/dlbench-paddle, which CI pip-installs from its
folder) checked as its author would check it: the shipped backend kit
(``python -m dlbench.plugin.testing paddle``) and the plugin's own tests
(``plugins/dlbench-paddle/tests``), each in a process of its own. Paddle
3.3.1's library segfaults when it loads into a process that has imported
TensorFlow, as this test process has: paddle is never imported here."""

import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_TESTS = ROOT / "plugins" / "dlbench-paddle" / "tests"
#: what the plugin does not declare, the only skips its kit run may have
DECLARED_SKIPS = ("paddle runs on the CPU only", "precision tier: paddle 3.3.1 has no bfloat16 matmul on a CPU",
                  "precision tier: paddle 3.3.1 has no float16 matmul on a CPU")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("dlbench_paddle") is None,
                                reason="the paddle plugin is not installed: pip install ./plugins/dlbench-paddle")


def pytest_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python *args`` (a pytest run) in a fresh process; every test's outcome by its
    id: ("passed" | "failed" | "skipped", message), from its JUnit report."""
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, *args, "-n", "0", "-q", "-p", "no:cacheprovider",
                             f"--junitxml={report}"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    outcomes = {}
    for case in ET.parse(report).iter("testcase") if report.exists() else ():
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        kind = {"failure": "failed", "error": "failed", "skipped": "skipped"}[found[0].tag] if found else "passed"
        outcomes[f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"] = (
            kind, found[0].get("message", "") if found else "")
    return result, outcomes


def test_the_shipped_kit_passes_for_the_installed_paddle_plugin(tmp_path):
    """Every contract test of what paddle declares passes (the shipped scenarios'
    100-step certificate runs, marked slow, are left to ``dlbench run``); the
    skips are exactly what it does not declare: a GPU, bf16 and fp16."""
    result, outcomes = pytest_run(tmp_path, "-m", "dlbench.plugin.testing", "paddle", "-m", "not slow")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    failed = [test for test, (kind, _) in outcomes.items() if kind == "failed"]
    assert not failed
    passed = [test for test, (kind, _) in outcomes.items() if kind == "passed"]
    skipped = {test: message for test, (kind, message) in outcomes.items() if kind == "skipped"}
    assert len(passed) >= 140, len(passed)
    assert "test_contract::test_regression_losses_and_loss_options_train_like_numpy[paddle-huber-delta-0.5-adam]" \
        in passed
    assert all(message.startswith(DECLARED_SKIPS) for message in skipped.values()), skipped


def test_the_plugins_own_tests_pass(tmp_path):
    """Paddle's conventions against its stock layers (GRU gates, BatchNorm momentum,
    Adam's epsilon), its refusals, and that it imports nothing from dlbench_backends."""
    result, outcomes = pytest_run(tmp_path, "-m", "pytest", str(PLUGIN_TESTS), "--rootdir", str(PLUGIN_TESTS))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert outcomes and {kind for kind, _ in outcomes.values()} == {"passed"}, outcomes
    assert len(outcomes) >= 11
