"""The parity verdict on published models of realistic size, run short as a new
user runs them (4, 12, 48 steps): every real backend agrees or is not judged,
never "disagrees", and every mutant (the shipped ones, and realistic slips: a
learning rate 2% off, Adam's epsilon 100x, a bias gradient summed over part
of the batch) disagrees on every model whose maths its slip changes.

The models are in ``tests/published_models/verdict_*.py`` (each citing its
source); the data is scikit-learn's 8x8 digits upsampled to 28x28 (each pixel
3x3, a 2-pixel blank border, as MNIST's), generated here, offline."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.run.row import annotate
from dlbench.scenario import Scenario, write_scenario
from dlbench.network import TrainSpec

import mutant_plugins

MODELS = Path(__file__).parents[1] / "published_models"


def published(name: str):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits28(tmp_path_factory) -> Path:
    """Digits as 28x28x1 images in [0, 1] with a blank border (MNIST's layout), 1437 train / 360 test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images.astype(np.float32) / 16.0, np.ones((3, 3), np.float32))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None]
    y = digits.target.astype(np.int64)
    path = tmp_path_factory.mktemp("data") / "digits28.npz"
    np.savez(path, x_train=x[:1437], y_train=y[:1437], x_test=x[1437:], y_test=y[1437:])
    return path


def scenario_of(name: str, data: Path, folder: Path) -> tuple[Path, Scenario]:
    module = published(name)
    scenario = Scenario(module.NAME, f"test-only: {name}", "npz", {"path": str(data)}, module.model(),
                        TrainSpec(batch_size=module.BATCH_SIZE, epochs=20, seed=0))
    return write_scenario(scenario, folder / f"{module.NAME}.toml"), scenario


def judged(path: Path, backends: list[str], steps: int, folder: Path, data_dir: str = "") -> dict:
    """Rows of the reference and ``backends`` on ``path`` for ``steps`` steps, judged as a run judges them
    (their data from ``data_dir``, a run's shared data folder, when given)."""
    from dlbench.run.worker import RunRequest, execute

    rows = [execute(RunRequest(scenario=str(path), backend=b, overrides={"max_steps": steps},
                               parity_dir=str(folder), data_dir=data_dir)) for b in ["numpy", *backends]]
    annotate(rows)
    return {r["backend"]: r for r in rows}


def check(rows: dict, frameworks: list[str], mutants: list[str]) -> None:
    for backend in frameworks:
        verdict = rows[backend]["parity"]
        assert rows[backend]["status"] == "ok", rows[backend].get("error")
        assert verdict["verdict"] in ("agrees", "not judged"), (backend, verdict)
    for mutant in mutants:
        if rows[mutant]["status"] == "diverged":  # caught before any judge
            continue
        verdict = rows[mutant]["parity"]
        assert verdict["verdict"] == "disagrees", (mutant, verdict)


def applicable(scenario: Scenario) -> list[str]:
    return [m.name for m in (*mutant_plugins.MUTANTS, *mutant_plugins.REALISTIC_MUTANTS) if m.applies(scenario)]


def test_the_quickstart_mlp_at_4_steps_agrees_on_torch_and_catches_the_realistic_slips(digits28, tmp_path, mutants):
    path, _ = scenario_of("verdict_tf_quickstart_mlp", digits28, tmp_path)
    frameworks = [b for b in ("torch",) if require_backend(b)]
    slips = ["mutant-lr-2pct", "mutant-adam-epsilon", "mutant-bias-partial-batch"]
    rows = judged(path, [*frameworks, *slips], 4, tmp_path)
    check(rows, frameworks, slips)
    assert all(rows[b]["parity"]["checkpoints"] == 2 for b in [*frameworks, *slips])  # steps 0 and 1


@pytest.mark.slow
@pytest.mark.parametrize("name, steps", [("verdict_mnist_convnet", 4), ("verdict_batchnorm_cnn", 12),
                                         ("verdict_tf_quickstart_mlp", 48)])
def test_published_models_run_short_agree_on_every_framework_and_disagree_on_every_mutant(
        name, steps, digits28, tmp_path, mutants):
    path, scenario = scenario_of(name, digits28, tmp_path)
    frameworks = [b for b in ("torch", "tensorflow", "jax") if require_backend(b)]
    slips = applicable(scenario)
    check(judged(path, [*frameworks, *slips], steps, tmp_path), frameworks, slips)


@pytest.mark.slow
def test_one_step_of_every_shipped_scenario_is_not_judged_too_short_on_every_framework(tmp_path, data_cache):
    """`dlbench run --steps 1` is a smoke test: it exits 0 with "not judged (too short)"."""
    from dlbench.run.runner import exit_code
    from dlbench.scenario import scenario_files

    frameworks = [b for b in ("torch", "tensorflow", "jax") if require_backend(b)]
    for name in sorted(scenario_files()):
        rows = judged(Path(name), frameworks, 1, tmp_path, data_cache)
        for backend in frameworks:
            verdict = rows[backend]["parity"] or {}
            assert (verdict.get("verdict"), verdict.get("reason")) == (
                "not judged", "too short: fewer than 3 steps, no checkpoint"), (name, backend, rows[backend].get("error"))
        assert exit_code({"results": list(rows.values())}) == 0
