import json

import numpy as np
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.run.worker import RunRequest, execute


def test_numpy_backend_is_bit_identical_run_to_run():
    request = RunRequest(scenario="digits-mlp", backend="numpy", overrides={"max_steps": 40})
    a, b = execute(request), execute(request)
    assert a["metrics"]["loss_history"] == b["metrics"]["loss_history"]
    assert a["metrics"]["test_accuracy"] == b["metrics"]["test_accuracy"]


def test_seed_changes_the_trajectory():
    a = execute(RunRequest(scenario="digits-mlp", backend="numpy", overrides={"max_steps": 5}))
    b = execute(RunRequest(scenario="digits-mlp", backend="numpy", overrides={"max_steps": 5, "seed": 1}))
    assert not np.allclose(a["metrics"]["loss_history"], b["metrics"]["loss_history"])


def test_deterministic_flag_is_recorded(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--steps", "2", "--deterministic",
                                       "--in-process", "--format", "json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["deterministic"] is True


def test_a_scenario_name_cannot_write_outside_the_output_folder(tmp_path):
    scenario = tmp_path / "evil.toml"
    scenario.write_text('name = "../../../escape"\n[data]\nname = "xor"\n[model]\ninput_shape = [2]\n'
                        'layers = [{ type = "dense", units = 1, activation = "sigmoid" }]\n'
                        '[train]\nloss = "binary_crossentropy"\n')
    out = tmp_path / "deep" / "er" / "out"
    result = CliRunner().invoke(main, ["run", "--scenario", str(scenario), "--backend", "numpy", "--steps", "2",
                                       "--in-process", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != scenario]
    assert written and all(out in p.parents for p in written)
    assert json.loads(result.stdout)["results"][0]["scenario"] == "../../../escape"
