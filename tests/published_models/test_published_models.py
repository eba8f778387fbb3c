"""Published model definitions (keras-io examples, the TensorFlow tutorials,
pytorch/examples, the PyTorch tutorials), read as a new user would hand them
over: each either converts exactly, or is refused with one error that lists
every part the spec cannot express.

Each ``torch_*.py`` / ``keras_*.py`` file here holds one model as its source
defines it (repository and path at its top) and says how it is trained:
``FRAMEWORK``, ``INPUT_SHAPE``, ``model()``, ``LOSS`` (Keras: compiled in
``model()``), ``OUTPUT`` (what the model returns: ``logits``,
``log_softmax``, ``softmax`` or ``sigmoid``), ``batch()`` (data made offline
in the right shapes) and, for a model the spec cannot express, ``REFUSED``
(what the one error must say) and ``PARTS`` (how many parts it lists). "Exactly" is the framework's own
numbers on one batch: the converted model's logits equal the model's (eval
mode), and dlbench's first training loss equals the framework's own loss
(training mode; dropout rates set to 0 on both sides, since the two draw
different masks) to float32 rounding. The reference is the NumPy backend.
"""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from dlbench import InputError
from dlbench.data.base import Dataset
from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.measure.session import prepare
from dlbench.network import Dropout
from dlbench.network.transformer import map_layers

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
pytest.importorskip("keras")
pytest.importorskip("torch")

HERE = Path(__file__).parent
MODELS = sorted(p.stem for p in HERE.glob("*.py") if p.stem.startswith(("torch_", "keras_")))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"published_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_dropout(spec):
    from dataclasses import replace

    layers = map_layers(spec.layers, lambda layer: Dropout(0.0) if isinstance(layer, Dropout) else layer)
    return replace(spec, layers=layers)


def numpy_session(imported, x, y):
    """The reference backend's trainer for the converted model, its batch ``x``, ``y`` the test set too."""
    spec = without_dropout(imported.spec)
    if imported.channels_first and x.ndim > 2:  # torch's (N, C, *spatial) as the spec's channels-last samples
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    classes = max(int(spec.output_shape[-1]), 2)
    data = Dataset(x, y, x, y, classes)
    return prepare(get_plugins().backend("numpy"), spec, data, BatchPlan(len(x), len(x), 1, 0), TrainerOptions(),
                   imported.weights)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def as_output(logits, output: str):
    """The spec's logits as the model returns its outputs."""
    if output == "log_softmax":
        return log_softmax(logits)
    if output == "softmax":
        return np.exp(log_softmax(logits))
    if output == "sigmoid":
        return 1 / (1 + np.exp(-logits))
    return logits


def no_dropout(model, framework: str) -> None:
    """Every dropout of the user's model off (the masks of two frameworks never agree)."""
    if framework == "torch":
        for module in model.modules():
            if hasattr(module, "p") and "Dropout" in type(module).__name__:
                module.p = 0.0
            if type(module).__name__ in ("LSTM", "GRU", "RNN"):
                module.dropout = 0.0
    else:
        for layer in model._flatten_layers():
            if type(layer).__name__ == "Dropout":
                layer.rate = 0.0


def framework_outputs(published, model, x, y):
    """(the model's outputs in eval mode, its own training-mode loss on the batch with dropout off)."""
    if published.FRAMEWORK == "torch":
        import torch

        tensor = torch.from_numpy(x)
        target = torch.from_numpy(y)
        model.eval()
        with torch.no_grad():
            outputs = model(tensor).numpy()
            no_dropout(model, "torch")
            model.train()
            loss = float(getattr(published, "FRAMEWORK_LOSS", published.LOSS)(model(tensor), target))
        return outputs, loss
    import keras

    outputs = np.asarray(model(x, training=False))
    no_dropout(model, "keras")
    loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    classes = getattr(published, "ONE_HOT_TARGETS", None)
    target = np.eye(classes, dtype=np.float32)[y] if classes else y
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        target = target.reshape(-1, 1).astype(np.float32)
    return outputs, float(np.mean(loss_fn(target, model(x, training=True))))  # a loss function: per sample


def read(published, model):
    reader = get_plugins().backend("torch" if published.FRAMEWORK == "torch" else "tensorflow")
    options = {"input_shape": published.INPUT_SHAPE}
    if published.FRAMEWORK == "torch":
        options.update(loss=published.LOSS, optimizer=published.optimizer(model) if hasattr(published, "optimizer")
                       else None)
    return reader.import_model(model, **options)


@pytest.mark.parametrize("name", MODELS)
def test_a_published_model_converts_exactly_or_is_refused_naming_every_part(name):
    published = load(name)
    model = published.model()
    refused = getattr(published, "REFUSED", None)
    if refused:
        with pytest.raises(InputError) as caught:
            read(published, model)
        message = str(caught.value)
        assert all(part in message for part in refused), message
        parts = published.PARTS
        assert (f"{parts} parts of the model cannot be read" in message) == (parts > 1), message
        return
    imported = read(published, model)
    x, y = published.batch()
    session = numpy_session(imported, x, y)
    ours = as_output(session.trainer.predict(np.arange(len(x))), published.OUTPUT)
    first_loss = float(session.trainer.train(np.arange(len(x))[None, :])[0])
    theirs, their_loss = framework_outputs(published, model, x, y)
    np.testing.assert_allclose(ours.reshape(theirs.shape), theirs, rtol=1e-5, atol=5e-6)  # seen: 1.1e-6 at most
    assert first_loss == pytest.approx(their_loss, rel=1e-6, abs=1e-7)  # float32 rounding; seen: 2e-7 at most
    if hasattr(published, "PUBLISHED_OPTIMIZER"):  # the example's own optimizer, read since issue 38 (Adadelta)
        make, expected = published.PUBLISHED_OPTIMIZER
        spec = get_plugins().backend("torch").import_model(model, input_shape=published.INPUT_SHAPE,
                                                           loss=published.LOSS, optimizer=make(model)).spec
        assert spec.optimizer == expected, spec.optimizer
