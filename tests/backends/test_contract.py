"""Every backend trains the same network as the NumPy reference: same losses
step by step, same weights, same test accuracy."""

import pytest

from backend_helpers import assert_matches_numpy, require_backend, toy_data
from dlbench.run.parity import annotate
from dlbench.scenario import scenario_files
from dlbench.spec import SGD, Activation, Adam, Dense, Sequential
from dlbench.run.worker import RunRequest, execute

FRAMEWORKS = ["torch", "tensorflow", "jax"]



def mlp(hidden: str, loss: str, units_out: int, out_act: str, optimizer, input_dim: int = 5):
    return Sequential([Dense(8, activation=hidden, input_shape=(input_dim,)), Dense(6, activation="tanh"),
                       Dense(units_out, activation=out_act)]).compile(loss=loss, optimizer=optimizer)


CASES = {
    "relu-softmax-sgd": (mlp("relu", "categorical_crossentropy", 3, "softmax", SGD(0.1)), 3),
    "sigmoid-softmax-momentum": (mlp("sigmoid", "categorical_crossentropy", 3, "softmax", SGD(0.05, 0.9)), 3),
    "tanh-softmax-adam": (mlp("tanh", "categorical_crossentropy", 4, "softmax", Adam(0.01, 0.8, 0.99, 1e-6)), 3),
    "softmax-hidden-adam": (mlp("softmax", "categorical_crossentropy", 3, "softmax", Adam()), 3),
    "linear-bce-adam": (mlp("linear", "binary_crossentropy", 1, "sigmoid", "adam"), 2),
    "mse-linear-out": (mlp("relu", "mse", 1, "linear", SGD(0.01)), 2),
    "mse-sigmoid-out": (mlp("relu", "mse", 3, "sigmoid", SGD(0.5, 0.5)), 3),
    "activation-layers": (Sequential([Dense(7, input_shape=(5,)), Activation("relu"), Dense(3),
                                      Activation("softmax")]).compile("categorical_crossentropy", "adam"), 3),
}


@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("case", list(CASES))
def test_backend_trains_like_numpy(backend, case):
    spec, n_classes = CASES[case]
    # 40 samples in batches of 8 plus one partial batch of 3: a second batch shape
    data = toy_data(n_classes=n_classes, n_train=43)
    assert_matches_numpy(backend, spec, data, batch_size=8, steps=25)


@pytest.mark.slow
@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("scenario", sorted(scenario_files()))
def test_shipped_scenario_agrees_with_numpy_for_100_steps(backend, scenario, tmp_path):
    """Judged as a run judges it: the re-synchronised certificate at checkpoints
    spread over the 100 steps, and test accuracy; the free-running loss
    histories are compared too, as information (chaotic scenarios part)."""
    require_backend(backend)
    rows = [execute(RunRequest(scenario=scenario, backend=b, overrides={"max_steps": 100},
                               parity_dir=str(tmp_path))) for b in ("numpy", backend)]
    assert rows[1]["status"] == "ok", rows[1]["error"]
    assert rows[1]["metrics"]["loss_history_every"] == 1
    assert len(rows[1]["metrics"]["loss_history"]) == rows[0]["metrics"]["steps"] <= 100
    annotate(rows)
    verdict = rows[1]["parity"]
    assert verdict["kind"] == "certificate", rows[1]["metrics"].get("certificate_error")
    assert verdict["checkpoints"] >= 2
    assert verdict["agrees"], verdict


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_batchnorm_before_max_pool_trains_like_numpy(backend):
    """JAX's custom max-pool gradient once routed by equality with the forward's
    maximum, which XLA computed one rounding away after a BatchNormalization:
    windows lost their gradient (beta's gradient off by 2e-3 at the first step)."""
    from dlbench.spec import BatchNormalization, Conv2D, Flatten, MaxPool2D

    spec = Sequential([Conv2D(3, 3, padding="same", input_shape=(6, 6, 1)), BatchNormalization(), MaxPool2D(2),
                       Flatten(), Dense(3, "softmax")]).compile("categorical_crossentropy", SGD(0.1))
    assert_matches_numpy(backend, spec, toy_data(input_shape=(6, 6, 1), n_classes=3, n_train=43), steps=15)
