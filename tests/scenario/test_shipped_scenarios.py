"""Every shipped scenario reaches its documented accuracy range (a regression: its R^2 range) on the NumPy reference."""

import pytest

from dlbench.scenario import resolve_scenario, scenario_files
from dlbench.run.worker import RunRequest, execute

SCENARIOS = sorted(scenario_files())


def test_every_shipped_scenario_documents_its_source_and_expected_accuracy_or_r2():
    for name in SCENARIOS:
        scenario = resolve_scenario(name)
        assert scenario.description and scenario.source, name
        regression = scenario.model.loss in ("mae", "huber") or scenario.data_name in ("diabetes", "regression")
        assert (scenario.expected_r2 is not None) == regression, name
        assert (scenario.expected_accuracy is not None) != regression, name


def test_the_paper_scenarios_are_configured_like_mnist1d_baselines():
    cnn = resolve_scenario("mnist1d-cnn")
    assert [(l.filters, l.kernel_size, l.strides, l.padding) for l in cnn.model.layers[:3]] == [
        (25, (5,), (2,), 1), (25, (3,), (2,), 1), (25, (3,), (2,), 1)]
    assert cnn.model.shapes[3][0] == (5, 25)  # 40 -> 19 -> 10 -> 5 positions, as ConvBase's linear_in = 125
    for name in ("mnist1d-logreg", "mnist1d-mlp", "mnist1d-cnn"):
        s = resolve_scenario(name)
        assert (s.train.batch_size, s.model.optimizer.name, s.model.optimizer.learning_rate) == (100, "adam", 0.01)
        assert s.train.epochs * 4000 // s.train.batch_size == 6000  # the paper's 6000 steps


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_shipped_scenario_reaches_its_expected_accuracy_on_numpy(name):
    row = execute(RunRequest(scenario=name, backend="numpy", threads=1))
    assert row["status"] == "ok", row["error"]
    scenario = resolve_scenario(name)
    low, high = scenario.expected_accuracy or scenario.expected_r2
    assert low <= row["metrics"]["test_accuracy" if scenario.expected_accuracy else "test_r2"] <= high
    if scenario.expected_perplexity is not None:
        low, high = scenario.expected_perplexity
        assert low <= row["metrics"]["test_perplexity"] <= high


def test_language_model_scenarios_document_their_perplexity():
    for name in SCENARIOS:
        scenario = resolve_scenario(name)
        per_timestep = len(scenario.model.output_shape) == 2
        assert (scenario.expected_perplexity is not None) == per_timestep, name


def test_the_scenarios_page_lists_every_shipped_scenario():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "scenarios.md").read_text()
    table = readme.split("## Shipped scenarios", 1)[1].split("\n\n", 2)[1]
    assert sorted(line.split("`")[1] for line in table.splitlines()[2:]) == SCENARIOS
