import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dlbench.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def run_cli(runner, *args):
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_version(runner):
    result = run_cli(runner, "--version")
    assert result.exit_code == 0 and result.output.startswith("dlbench ")


def test_list_shows_backends_scenarios_and_datasets(runner):
    result = run_cli(runner, "list")
    assert result.exit_code == 0
    for word in ("numpy", "xor-mlp", "digits-mlp", "synthetic", "spirals"):
        assert word in result.output


def test_list_names_each_scenarios_source(runner):
    result = run_cli(runner, "list", "scenarios")
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in result.output.splitlines()
            if line.count("│") == 5 and line.split("│")[1].strip()}
    assert rows["resnet20-cifar"] == "He, Zhang, Ren & Sun 2016"
    assert rows["bert-tiny-style"] == "Devlin et al. 2019"
    assert rows["mnist1d-cnn"] == "Greydanus 2020"


def test_help_and_list_import_no_framework():
    code = ("import sys; from click.testing import CliRunner; from dlbench.cli import main; "
            "r = CliRunner().invoke(main, ['list']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_run_json_prints_the_document_it_writes(runner, tmp_path):
    result = runner.invoke(main, ["run", "--backend", "numpy", "--steps", "30", "--format", "json",
                                  "--out", str(tmp_path), "--in-process"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    files = list(tmp_path.glob("*/*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["results"] == doc["results"]
    assert doc["schema_version"] == 3
    assert {"python", "cpu", "versions", "blas"} <= set(doc["environment"])
    rows = {r["scenario"]: r for r in doc["results"]}
    assert set(rows) == {"xor-mlp", "digits-mlp"}
    for row in rows.values():
        assert row["backend"] == "numpy" and row["status"] == "ok" and row["error"] is None
        m = row["metrics"]
        assert m["steps"] == 30 and len(m["loss_history"]) == 30 and m["loss_history_every"] == 1
        assert m["samples_per_sec"] > 0 and 0 <= m["test_accuracy"] <= 1
        assert {"final_loss", "compile_seconds", "wall_seconds"} <= set(m)


@pytest.mark.slow
def test_default_suite_in_worker_processes_reaches_the_expected_accuracy(runner, tmp_path):
    result = runner.invoke(main, ["run", "--backend", "numpy", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "xor-mlp" in result.output and "digits-mlp" in result.output
    doc = json.loads(next(tmp_path.glob("*/*.json")).read_text())
    acc = {r["scenario"]: r["metrics"]["test_accuracy"] for r in doc["results"]}
    assert acc["digits-mlp"] >= 0.9
    assert acc["xor-mlp"] >= 0.9
    digits = next(r for r in doc["results"] if r["scenario"] == "digits-mlp")
    assert digits["metrics"]["steps"] == 20 * 12  # 1437 training images, batches of 128, last kept
    assert digits["metrics"]["time_to_accuracy"] is not None


@pytest.mark.parametrize("args, message", [
    (["run", "--scenario", "nope"], "--scenario: unknown scenario 'nope'"),
    (["run", "--backend", "caffe"], "--backend: unknown backend 'caffe'; expected one of"),
    (["run", "--steps", "0"], "must be a positive integer, got 0"),
    (["run", "--epochs", "-1"], "must be a positive integer"),
    (["run", "--device", "tpu"], "'tpu' is not one of"),
])
def test_bad_command_line_exits_2_with_one_clear_line(runner, tmp_path, args, message):
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_scenario_file_exits_2_naming_file_and_field(runner, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[data]\nname = "digits"\n[model]\ninput_shape = [64]\n'
                    'layers = [{ type = "dense", units = 10, activation = "softmax" }]\n'
                    '[train]\nloss = "binary_crossentropy"\n')
    result = runner.invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{path}: train.loss: binary_crossentropy needs a last layer of 1 unit" in result.output
    assert not list(tmp_path.glob("*/*.json"))


def test_input_shape_must_match_the_dataset(runner, tmp_path):
    path = tmp_path / "shape.toml"
    path.write_text('[data]\nname = "digits"\n[model]\ninput_shape = [32]\n'
                    'layers = [{ type = "dense", units = 10, activation = "softmax" }]\n'
                    '[train]\nloss = "categorical_crossentropy"\n')
    result = runner.invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "model.input_shape: (32,) does not match dataset 'digits', whose samples have shape (64,)" in result.output


def test_a_run_too_short_for_a_checkpoint_exits_0_unless_a_verdict_is_required(runner, tmp_path, mutants):
    """`--steps 1` used to print "no (0/0)" and exit 1: a smoke test failed CI."""
    from dlbench.run.runner import exit_code

    smoke = runner.invoke(main, ["run", "--scenario", "xor-mlp", "--backend", "numpy,mutant-lr", "--steps", "1",
                                 "--in-process", "--format", "markdown", "--out", str(tmp_path)])
    assert smoke.exit_code == 0, smoke.output
    assert "| not judged (too short) |" in smoke.output
    path = next(tmp_path.glob("*/*.json"))
    document = json.loads(path.read_text())
    verdict = next(r["parity"] for r in document["results"] if r["backend"] == "mutant-lr")
    assert verdict["verdict"] == "not judged" and verdict["agrees"] is None
    assert verdict["reason"] == "too short: fewer than 3 steps, no checkpoint"
    assert exit_code(document) == 0 and exit_code(document, require_verdict=True) == 1
    strict = runner.invoke(main, ["run", "--resume", str(path), "--require-verdict"])  # the one flag --resume takes
    assert strict.exit_code == 1, strict.output
