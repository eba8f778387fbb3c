"""The up-front memory estimate, against hand counts."""

import pytest

from dlbench.run.checks import check_fits_in_memory
from dlbench.errors import InputError
from dlbench.scenario import resolve_scenario
from dlbench.network import SGD, Adam, BatchNormalization, Dense, Sequential
from dlbench.network.memory import training_memory_bytes


def test_parameters_count_gradients_and_optimizer_state():
    # Dense 3->4 (12 + 4 trained), BatchNorm on 4 (4 + 4 trained, 4 + 4 moving), Dense 4->2 (8 + 2 trained)
    layers = [Dense(4, activation="relu", input_shape=(3,)), BatchNormalization(), Dense(2, activation="softmax")]
    trained, moving = 16 + 8 + 10, 8
    for optimizer, copies in ((SGD(0.1), 2), (SGD(0.1, 0.9), 3), (Adam(), 4)):
        spec = Sequential(layers).compile("categorical_crossentropy", optimizer)
        need = training_memory_bytes(spec, batch_size=10)
        assert need["parameters"] == 4 * (trained * copies + moving)
        # activations: input 3, outputs 4, 4, 2, plus one gradient as large as the largest (4)
        assert need["activations"] == 4 * 10 * (3 + 4 + 4 + 2 + 4)
        assert need["total"] == need["parameters"] + need["activations"]


def test_a_model_that_cannot_fit_is_refused_before_it_runs():
    scenario = resolve_scenario("digits-mlp")
    check_fits_in_memory(scenario)  # a small model on this machine passes
    need = training_memory_bytes(scenario.model, scenario.train.batch_size)["total"]
    check_fits_in_memory(scenario, available_bytes=need)
    with pytest.raises(InputError, match="training this model needs at least .* this machine has"):
        check_fits_in_memory(scenario, available_bytes=need - 1)
