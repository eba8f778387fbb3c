import pytest

from dlbench.errors import InputError
from dlbench.network import SGD, Activation, Adam, Dense, ModelSpec, Sequential, TrainSpec, make_optimizer


def test_sequential_compiles_like_the_keras_seed():
    model = Sequential([Dense(10, activation="relu", input_shape=(2,)), Dense(1, activation="sigmoid")])
    spec = model.compile(loss="binary_crossentropy", optimizer="adam")
    assert spec.input_shape == (2,)
    assert [out for _, out in spec.shapes] == [(10,), (1,)]
    assert spec.optimizer == Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    assert spec.param_shapes() == [{"kernel": (2, 10), "bias": (10,)}, {"kernel": (10, 1), "bias": (1,)}]
    assert spec.n_params == 2 * 10 + 10 + 10 + 1


def test_logit_layers_drop_only_the_final_activation():
    spec = Sequential([Dense(4, "relu", input_shape=(3,)), Dense(2, "softmax")]).compile("categorical_crossentropy")
    assert [layer.activation for layer in spec.logit_layers()] == ["relu", "linear"]
    assert spec.output_activation == "softmax"
    spec = Sequential([Dense(4, input_shape=(3,)), Dense(2), Activation("softmax")]).compile(
        "categorical_crossentropy")
    assert len(spec.logit_layers()) == 2 and spec.output_activation == "softmax"


@pytest.mark.parametrize("make, field, text", [
    (lambda: Dense(0), "units", "positive integer"),
    (lambda: Dense("10"), "units", "positive integer"),
    (lambda: Dense(3, activation="rlu"), "activation",
     "expected one of elu, gelu, gelu_erf, gelu_tanh, leaky_relu, linear, relu, sigmoid, silu, softmax, tanh"),
    (lambda: SGD(learning_rate=-0.1), "learning_rate", "must be in (0.0, inf)"),
    (lambda: SGD(momentum=1.0), "momentum", "must be in [0.0, 1.0)"),
    (lambda: Adam(epsilon=0), "epsilon", "must be in"),
    (lambda: TrainSpec(batch_size=0), "batch_size", "positive integer"),
    (lambda: TrainSpec(epochs=-1), "epochs", "positive integer"),
    (lambda: TrainSpec(drop_last="yes"), "drop_last", "true or false"),
])
def test_bad_values_name_the_field_and_what_is_allowed(make, field, text):
    with pytest.raises(InputError) as err:
        make()
    assert err.value.field == field
    assert text in str(err.value)


def test_loss_must_fit_the_last_layer():
    with pytest.raises(InputError, match="binary_crossentropy needs a last layer of 1 unit with sigmoid"):
        Sequential([Dense(10, "sigmoid", input_shape=(2,))]).compile("binary_crossentropy")
    with pytest.raises(InputError, match="categorical_crossentropy needs .* softmax"):
        Sequential([Dense(1, "softmax", input_shape=(2,))]).compile("categorical_crossentropy")
    with pytest.raises(InputError, match="unknown 'hinge'"):
        Sequential([Dense(1, input_shape=(2,))]).compile("hinge")


def test_shape_that_cannot_chain_names_the_layer():
    with pytest.raises(InputError) as err:
        ModelSpec((8, 8, 1), (Dense(3, "softmax"),), "categorical_crossentropy", SGD())
    assert err.value.field == "layers[0]"
    assert "dense needs a 1-D input (features,) or a sequence (time, features), got shape (8, 8, 1)" in str(err.value)


def test_input_shape_is_required():
    with pytest.raises(InputError, match="input_shape"):
        Sequential([Dense(1, "sigmoid")]).compile("binary_crossentropy")


def test_optimizer_from_name_table_or_instance():
    assert make_optimizer("sgd") == SGD()
    assert make_optimizer({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}) == SGD(0.1, 0.9)
    with pytest.raises(InputError, match="unknown key 'lr'"):
        make_optimizer({"name": "adam", "lr": 0.1})
    with pytest.raises(InputError, match="expected one of adadelta, adam, adamw, rmsprop, sgd"):
        make_optimizer("lamb")
