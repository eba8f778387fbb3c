"""The readers map the frameworks' losses onto the spec's: torch's MSELoss, L1Loss,
HuberLoss(delta), CrossEntropyLoss(label_smoothing) and NLLLoss after log_softmax;
Keras's mse/mae/Huber(delta)/CategoricalCrossentropy(label_smoothing). Each option
lands in the spec, and the output activation a logits loss implies with it."""

import pytest

import dlbench
from dlbench.errors import InputError


@pytest.fixture(scope="module")
def torch_nn():
    torch = pytest.importorskip("torch")
    return torch.nn, torch.nn.functional


def _torch_mlp(nn, last=None):
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), *([last] if last is not None else []))


@pytest.mark.parametrize("make_loss, loss, options", [
    (lambda nn, F: nn.MSELoss(), "mse", ()),
    (lambda nn, F: F.mse_loss, "mse", ()),
    (lambda nn, F: nn.L1Loss(), "mae", ()),
    (lambda nn, F: F.l1_loss, "mae", ()),
    (lambda nn, F: nn.HuberLoss(delta=0.3), "huber", (("delta", 0.3),)),
    (lambda nn, F: F.huber_loss, "huber", (("delta", 1.0),)),  # a functional's delta is its default
    (lambda nn, F: {"name": "huber", "delta": 2.0}, "huber", (("delta", 2.0),)),
])
def test_torch_regression_losses_read_with_their_options(torch_nn, make_loss, loss, options):
    nn, F = torch_nn
    spec = dlbench.from_torch(_torch_mlp(nn), (4,), loss=make_loss(nn, F))
    assert (spec.loss, spec.loss_options, spec.output_activation) == (loss, options, "linear")


def test_torch_label_smoothing_is_the_spec_s_on_a_softmax_output(torch_nn):
    nn, _ = torch_nn
    spec = dlbench.from_torch(_torch_mlp(nn), (4,), loss=nn.CrossEntropyLoss(label_smoothing=0.15))
    assert (spec.loss, spec.loss_kwargs, spec.output_activation) == (
        "categorical_crossentropy", {"label_smoothing": 0.15}, "softmax")


@pytest.mark.parametrize("make_loss", [lambda nn, F: nn.NLLLoss(), lambda nn, F: F.nll_loss,
                                       lambda nn, F: nn.CrossEntropyLoss(label_smoothing=0.1)])
def test_torch_log_softmax_with_nll_is_cross_entropy_on_logits(torch_nn, make_loss):
    nn, F = torch_nn
    spec = dlbench.from_torch(_torch_mlp(nn, nn.LogSoftmax(dim=1)), (4,), loss=make_loss(nn, F))
    assert (spec.loss, spec.output_activation) == ("categorical_crossentropy", "softmax")
    assert spec.loss_kwargs["label_smoothing"] == getattr(make_loss(nn, F), "label_smoothing", 0.0)


@pytest.mark.parametrize("make_loss, log_softmax, message", [
    (lambda nn, F: nn.L1Loss(reduction="sum"), False,
     "loss: L1Loss with weights, ignore_index or a reduction other than 'mean'"),
    (lambda nn, F: nn.HuberLoss(delta=0.5), True,
     "loss: HuberLoss of log-probabilities (the module ends in log_softmax); expected nll_loss or cross_entropy"),
    (lambda nn, F: nn.CrossEntropyLoss(label_smoothing=1.0), False,
     "loss.label_smoothing: must be in [0.0, 1.0), got 1.0"),
])
def test_torch_losses_that_do_not_fit_are_one_clear_error(torch_nn, make_loss, log_softmax, message):
    nn, F = torch_nn
    with pytest.raises(InputError) as caught:
        dlbench.from_torch(_torch_mlp(nn, nn.LogSoftmax(dim=1) if log_softmax else None), (4,), loss=make_loss(nn, F))
    assert message in str(caught.value)


@pytest.fixture(scope="module")
def keras_mlp():
    pytest.importorskip("tensorflow")
    from dlbench_backends.tensorflow import framework

    _, keras = framework()

    def build(loss, last="linear"):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh"),
                                  keras.layers.Dense(3, activation=last)])
        model.compile(loss=loss, optimizer=keras.optimizers.SGD(0.1))
        return model
    return keras, build


@pytest.mark.parametrize("make_loss, loss, options, output", [
    (lambda k: "mae", "mae", (), "linear"),
    (lambda k: k.losses.MeanAbsoluteError(), "mae", (), "linear"),
    (lambda k: "huber", "huber", (("delta", 1.0),), "linear"),
    (lambda k: k.losses.Huber(delta=0.3), "huber", (("delta", 0.3),), "linear"),
    (lambda k: k.losses.MeanSquaredError(), "mse", (), "linear"),
    (lambda k: k.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), "categorical_crossentropy",
     (("label_smoothing", 0.2),), "softmax"),
])
def test_keras_losses_read_with_their_options(keras_mlp, make_loss, loss, options, output):
    keras, build = keras_mlp
    spec = dlbench.from_keras(build(make_loss(keras)))
    assert (spec.loss, spec.loss_options, spec.output_activation) == (loss, options, output)


def test_keras_label_smoothing_of_a_binary_loss_is_refused(keras_mlp):
    keras, build = keras_mlp
    with pytest.raises(InputError, match="'binary_crossentropy' with label_smoothing=0.1; dlbench smooths the labels "
                                         "of categorical_crossentropy only"):
        dlbench.from_keras(build(keras.losses.BinaryCrossentropy(label_smoothing=0.1), "sigmoid"))
