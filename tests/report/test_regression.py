"""Regression end to end: float targets from arrays and npz files, R^2 in place of
accuracy in the rows and every report format, and the R^2 definition itself."""

import json

import numpy as np
import pytest

import dlbench
from dlbench import Adam, Dense, Sequential
from dlbench.data.base import DatasetMeta
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.plugin.helpers import r_squared

DATASETS = {info.name: info for info in BUILTIN_DATASETS}
MODEL = Sequential([Dense(16, activation="tanh"), Dense(2)], input_shape=(3,)).compile(
    loss={"name": "huber", "delta": 0.5}, optimizer=Adam(learning_rate=0.02))


def regression_arrays(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] ** 2 - 1], axis=1).astype(np.float32)
    return x[:200], y[:200], x[200:], y[200:]


@pytest.fixture(scope="module")
def regression_run():
    """Two float targets per sample from arrays, numpy only: a real run through the workers."""
    return dlbench.benchmark(MODEL, data=regression_arrays(), backends="numpy", epochs=10, progress=False)


def test_float_targets_from_arrays_train_and_report_r2_not_accuracy(regression_run):
    (row,) = regression_run.rows
    assert row.status == "ok", row.error
    assert row.test_accuracy is None and 0.5 < row.test_r2 <= 1.0  # the teacher is learnable from 200 samples
    assert row.metrics["test_loss"] is not None


def test_every_report_format_shows_r2_and_the_test_loss_instead_of_accuracy(regression_run):
    from dlbench.report.render import render_csv, render_html, render_json, render_markdown
    from dlbench.report.table import runs_of

    runs = runs_of([regression_run.document])
    r2 = f"{regression_run.rows[0].test_r2:.4f}"
    markdown, html, terminal = render_markdown(runs), render_html(runs), str(regression_run.table())
    assert "| test R^2 | test loss |" in markdown and "| test acc |" not in markdown and r2 in markdown
    assert "<th>test R^2</th>" in html and "<th>test loss</th>" in html and "<th>test acc</th>" not in html
    header = next(line for line in terminal.splitlines() if " backend " in line and " status " in line)
    assert " test R^2 " in header and " test loss " in header and "test acc" not in header and r2 in terminal
    header, line = render_csv(runs).splitlines()[:2]
    record = dict(zip(header.split(","), line.split(",")))
    assert float(record["test_r2"]) == regression_run.rows[0].test_r2 and record["test_accuracy"] == ""
    assert json.loads(render_json(runs))["rows"][0]["test_r2"] == regression_run.rows[0].test_r2


def test_a_single_target_column_and_integer_targets_of_mae_are_float_targets():
    from dlbench.data.arrays import checked_arrays

    spec = Sequential([Dense(1)], input_shape=(3,)).compile("mae")
    x, y, xt, yt = regression_arrays()
    arrays = checked_arrays((x, y[:, :1], xt, np.round(yt[:, 0]).astype(int)), (3,), spec)
    assert arrays["y_train"].shape == (200,) and arrays["y_test"].dtype == np.float32


def test_targets_that_do_not_fit_the_outputs_are_refused():
    from dlbench.data.arrays import checked_arrays

    x, y, xt, yt = regression_arrays()
    with pytest.raises(dlbench.InputError, match=r"y_train has shape \(200, 2\); the last layer's 3 units take float "
                                                 r"targets of shape \(200, 3\)"):
        checked_arrays((x, y, xt, yt), (3,), Sequential([Dense(3)], input_shape=(3,)).compile("mse"))
    with pytest.raises(dlbench.InputError, match="y_test holds NaN or infinite values"):
        checked_arrays((x, y, xt, np.full_like(yt, np.nan)), (3,), MODEL)


def test_npz_float_targets_are_a_regression_described_from_the_file(tmp_path):
    x, y, xt, yt = regression_arrays()
    path = tmp_path / "r.npz"
    np.savez(path, x_train=x, y_train=y.astype(np.float64), x_test=xt, y_test=yt)
    info = DATASETS["npz"]
    meta, data = info.describe(0, {"path": str(path)}), info.load(0, {"path": str(path)})
    assert meta == DatasetMeta.of(data)
    assert (meta.regression, meta.n_classes, meta.target_shape, meta.target_units) == (True, 0, (2,), 2)
    assert data.y_train.dtype == np.float32 and data.regression


@pytest.mark.parametrize("name, options, shape", [("diabetes", {}, (10,)), ("regression", {"n_targets": 3}, (8,))])
def test_the_regression_datasets_are_described_without_loading(name, options, shape):
    meta = DATASETS[name].describe(0, options)
    assert meta == DatasetMeta.of(DATASETS[name].load(0, options))
    assert meta.regression and meta.input_shape == shape


def test_r_squared_is_scikit_learn_s_uniform_average():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    t = rng.standard_normal((50, 3))
    f = t + 0.5 * rng.standard_normal((50, 3)) * np.array([0.1, 1.0, 3.0])
    assert r_squared(f, t) == pytest.approx(metrics.r2_score(t, f), rel=1e-12)
    assert r_squared(f[:, 0], t[:, 0]) == pytest.approx(metrics.r2_score(t[:, 0], f[:, 0]), rel=1e-12)
    constant = np.ones((4, 1))
    assert r_squared(constant, constant) == 1.0 and r_squared(constant + 1, constant) == 0.0


def test_a_loss_with_options_survives_the_toml_round_trip():
    from dlbench.scenario import parse_scenario, resolve_scenario, scenario_document

    scenario = resolve_scenario("diabetes-mlp")
    document = scenario_document(scenario)
    assert document["train"]["loss"] == {"name": "huber", "delta": 0.5}
    assert parse_scenario(document, "copy").model == scenario.model
    assert scenario_document(resolve_scenario("xor-mlp"))["train"]["loss"] == "binary_crossentropy"
