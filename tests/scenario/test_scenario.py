import textwrap

import pytest

from dlbench.errors import InputError
from dlbench.scenario import load_scenario_file, resolve_scenario, scenario_files
from dlbench.network import SGD, Adam

GOOD = """
name = "digits-mlp"
description = "an MLP"
[data]
name = "digits"
test_fraction = 0.2
[model]
input_shape = [64]
layers = [ { type = "dense", units = 256, activation = "relu" },
           { type = "dense", units = 10, activation = "softmax" } ]
[train]
loss = "categorical_crossentropy"
optimizer = { name = "sgd", learning_rate = 0.1 }
batch_size = 128
epochs = 20
seed = 0
drop_last = false
"""


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_scenario_file_becomes_a_validated_spec(tmp_path):
    s = load_scenario_file(write(tmp_path, GOOD))
    assert s.name == "digits-mlp" and s.data_name == "digits" and s.data_options == {"test_fraction": 0.2}
    assert s.model.input_shape == (64,) and s.model.output_shape == (10,)
    assert s.model.optimizer == SGD(learning_rate=0.1)
    assert (s.train.batch_size, s.train.epochs, s.train.seed, s.train.drop_last) == (128, 20, 0, False)


def test_optimizer_defaults_to_adam(tmp_path):
    s = load_scenario_file(write(tmp_path, GOOD.replace('optimizer = { name = "sgd", learning_rate = 0.1 }\n', "")))
    assert s.model.optimizer == Adam()


@pytest.mark.parametrize("old, new, message", [
    ('name = "digits"\n', 'name = "digits"\nsize = 3\n', "data.size: unknown option 'size' for dataset"),
    ('activation = "relu"', 'activation = "rlu"',
     "model.layers[0].activation: unknown 'rlu'; expected one of elu, gelu, gelu_erf, gelu_tanh, "
     "leaky_relu, linear, relu, sigmoid, silu, softmax, tanh"),
    ('type = "dense", units = 256', 'type = "dence", units = 256', "model.layers[0].type: unknown 'dence'"),
    ("units = 256", 'units = "256"', "model.layers[0].units: must be a positive integer, got '256'"),
    ("units = 256", "units = 0", "model.layers[0].units: must be a positive integer, got 0"),
    ("units = 256", "units = 256, filters = 3", "model.layers[0].filters: unknown key 'filters'"),
    ("learning_rate = 0.1", "learning_rate = [0.1]", "train.optimizer.learning_rate: must be a number"),
    ("learning_rate = 0.1", "learning_rate = -1", "train.optimizer.learning_rate: must be in (0.0, inf)"),
    ('name = "sgd"', 'name = "lamb"',
     "train.optimizer.name: unknown 'lamb'; expected one of adadelta, adam, adamw, rmsprop, sgd"),
    ('loss = "categorical_crossentropy"', 'loss = "hinge"', "train.loss: unknown 'hinge'"),
    ('loss = "categorical_crossentropy"', 'loss = "binary_crossentropy"',
     "train.loss: binary_crossentropy needs a last layer of 1 unit with sigmoid activation, got 10 units"),
    ("batch_size = 128", "batch_size = 0", "train.batch_size: must be a positive integer"),
    ("epochs = 20", "epochs = -2", "train.epochs: must be a positive integer"),
    ("seed = 0", "seed = 0\nlr = 3", "train.lr: unknown key 'lr'; expected one of"),
    ('description = "an MLP"', 'description = "an MLP"\ncolour = "red"', "colour: unknown key 'colour'"),
])
def test_bad_scenario_names_file_field_and_allowed_values(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        s = load_scenario_file(path)
        # dataset options are checked against the dataset's registry entry
        from dlbench.run.checks import check_against_data
        from dlbench.plugin.manager import get_plugins
        check_against_data(s, get_plugins())
    assert str(err.value).startswith(str(path) + ": ")
    assert message in str(err.value)


def test_malformed_toml_names_the_file(tmp_path):
    path = write(tmp_path, "name = \n")
    with pytest.raises(InputError, match=f"{path}: malformed TOML"):
        load_scenario_file(path)


def test_shipped_scenarios_load_and_include_the_default_suite():
    files = scenario_files()
    assert {"xor-mlp", "digits-mlp"} <= set(files)
    for name in files:
        scenario = resolve_scenario(name)
        assert scenario.name == name and scenario.description


def test_xor_mlp_is_the_seed_keras_example():
    s = resolve_scenario("xor-mlp")
    assert [(l.units, l.activation) for l in s.model.layers] == [(10, "relu"), (1, "sigmoid")]
    assert s.model.input_shape == (2,) and s.model.loss == "binary_crossentropy"
    assert s.model.optimizer == Adam() and (s.train.epochs, s.train.batch_size) == (10, 1)


def test_unknown_scenario_lists_the_shipped_ones():
    with pytest.raises(InputError, match="unknown scenario 'nope'; expected one of .*digits-mlp.*xor-mlp"):
        resolve_scenario("nope")


def test_overrides_are_validated():
    s = resolve_scenario("xor-mlp").with_overrides(epochs=2, max_steps=5, batch_size=None)
    assert s.train.epochs == 2 and s.train.max_steps == 5 and s.train.batch_size == 1
    with pytest.raises(InputError, match="command line: epochs"):
        resolve_scenario("xor-mlp").with_overrides(epochs=0)
