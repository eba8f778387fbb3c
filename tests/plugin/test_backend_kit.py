"""The backend kit (dlbench.plugin.testing) as a plugin author runs it, in a
process of its own: the template backend of examples/template_backend passes
its core tier, the tiers it does not declare skip saying why, a plugin that
fails to load fails, and a name no plugin registers is a usage error."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "template_backend"


def kit_run(tmp_path: Path, plugin_path: Path, plugin: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python -m dlbench.plugin.testing`` with ``plugin`` registered through
    DLBENCH_PLUGINS (as an installed entry point would register it); the
    outcome of every test by its id: ("passed" | "failed" | "skipped", message)."""
    report = tmp_path / "kit.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
           "DLBENCH_PLUGINS": plugin}
    result = subprocess.run([sys.executable, "-m", "dlbench.plugin.testing", *args, "-n", "0", "-q",
                             f"--junitxml={report}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    outcomes = {}
    for case in ET.parse(report).iter("testcase") if report.exists() else ():
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        kind = {"failure": "failed", "error": "failed", "skipped": "skipped"}[found[0].tag] if found else "passed"
        outcomes[f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"] = (
            kind, found[0].get("message", "") if found else "")
    return result, outcomes


@pytest.fixture(scope="module")
def template_run(tmp_path_factory):
    return kit_run(tmp_path_factory.mktemp("kit"), TEMPLATE, "dlbench_template", "template", "-m", "not slow")


def test_the_template_backend_passes_the_core_tier(template_run):
    result, outcomes = template_run
    assert result.returncode == 0, result.stdout[-3000:]
    assert not [test for test, (kind, _) in outcomes.items() if kind == "failed"]
    passed = {test for test, (kind, _) in outcomes.items() if kind == "passed"}
    core = ["test_contract::test_backend_trains_like_numpy[template-relu-softmax-sgd]",
            "test_contract::test_backend_trains_like_numpy[template-gelu-erf-and-tanh-adam]",
            "test_contract::test_weights_right_after_build_are_the_initial_weights_exactly[template-tanh-adam]",
            "test_contract::test_unknown_option_is_rejected_naming_the_allowed_ones[template]",
            "test_contract::test_a_small_cross_entropy_keeps_its_digits[template]",
            "test_contract::test_precision_and_determinism_settings_still_train_like_numpy[template-tf32-relu-adam]",
            "test_optimizer_pins::test_update_matches_the_canonical_float64_formula[template-adam]"]
    assert set(core) - passed == set()
    assert len(passed) >= 30


@pytest.mark.parametrize("test, reason", [
    ("test_inference_contract::test_predict_after_training_uses_the_trained_weights[template]",
     "inference tier: backend template does not list 'inference' in its modes (train)"),
    ("test_mixed_precision_contract::test_bf16_has_no_loss_scale_and_fp16_starts_at_the_core_schedule[template]",
     "precision tier: template does not compute in bf16 (it computes in fp32, tf32)"),
    ("test_training_state::test_a_fresh_trainer_state_is_the_initial_weights_with_empty_slots[template-mlp-momentum]",
     "template does not implement this: TemplateTrainer does not export its training state"),
    ("test_contract::test_conv_and_pooling_networks_train_like_numpy[template-conv2d-same-strided-maxpool]",
     "template does not implement this: the template backend cannot build 'conv2d' layers"),
    # a loss it does not compute is refused, never trained as another (it once trained mae as mse)
    ("test_contract::test_regression_losses_and_loss_options_train_like_numpy[template-mae-linear-sgd]",
     "template does not implement this: the template backend computes categorical_crossentropy, "
     "binary_crossentropy, mse without options only, not mae {}"),
])
def test_the_tiers_the_template_does_not_declare_skip_saying_why(template_run, test, reason):
    _, outcomes = template_run
    assert outcomes[test] == ("skipped", reason)


def test_a_plugin_that_fails_to_load_fails_the_kit(tmp_path):
    (tmp_path / "kit_broken.py").write_text("raise ImportError('its framework is half installed')\n")
    result, outcomes = kit_run(tmp_path, tmp_path, "kit_broken", "kit_broken", "-k", "optimizer")
    assert result.returncode == 1
    assert outcomes and {kind for kind, _ in outcomes.values()} == {"failed"}
    assert all("backend kit_broken failed to load: ImportError: its framework is half installed" in message
               for _, message in outcomes.values())


def test_a_backend_no_plugin_registers_is_a_usage_error(tmp_path):
    result, outcomes = kit_run(tmp_path, TEMPLATE, "dlbench_template", "nosuch")
    assert result.returncode == 4 and not outcomes
    assert "--dlbench-backend: no backend named 'nosuch' is registered; registered: numpy" in result.stderr
    assert "Traceback" not in result.stderr


class Options:
    """A pytest config holding only ``--dlbench-backend``'s values."""

    def __init__(self, *values: str):
        self.values = list(values)

    def getoption(self, dest: str, default=None):
        return self.values if dest == "dlbench_backend" else default


def test_backends_are_picked_by_repeated_or_comma_listed_names_in_their_order():
    from dlbench.plugin.manager import get_plugins
    from dlbench.plugin.testing.fixtures import selected_backends

    assert selected_backends(Options("torch, numpy", "torch", "jax")) == ["torch", "numpy", "jax"]
    assert selected_backends(Options()) == list(get_plugins().backends)
    with pytest.raises(pytest.UsageError, match="no backend named 'nosuch' is registered; registered: numpy"):
        selected_backends(Options("numpy,nosuch"))
