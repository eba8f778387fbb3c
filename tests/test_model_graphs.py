"""torch modules with their own forward and Keras functional graphs, read into
specs: every call of a module, residual adds, the layers the spec has, and one
error listing every part that cannot be read."""

import os

import numpy as np
import pytest

import dlbench
from dlbench import InputError
from dlbench.plugin.manager import get_plugins

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
L, nn, F = keras.layers, torch.nn, torch.nn.functional


def torch_reader():
    return get_plugins().backend("torch")


def spec_logits(imported, x):
    """The converted model's logits on ``x`` (channels-last), by the NumPy backend."""
    from dlbench.data.base import Dataset
    from dlbench.data.batches import BatchPlan
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.run.session import prepare

    y = np.zeros(len(x), np.int64)
    data = Dataset(x, y, x, y, 2)
    session = prepare(get_plugins().backend("numpy"), imported.spec, data, BatchPlan(len(x), len(x), 1, 0),
                      TrainerOptions(), imported.weights)
    return session.trainer.predict(np.arange(len(x)))


def test_a_module_shared_in_a_sequential_is_applied_at_each_call():
    """One nn.ReLU() and one pool used twice: named_children() lists each once, the network calls each twice."""
    torch.manual_seed(0)
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, pool, nn.Conv2d(2, 3, 3, padding=1), relu, pool,
                        nn.Flatten(), nn.Linear(12, 4), relu, nn.Linear(4, 3))
    spec = dlbench.from_torch(net, (1, 8, 8), loss=nn.CrossEntropyLoss())
    kinds = [layer.type for layer in spec.layers]
    assert kinds == ["conv2d", "activation", "maxpool2d", "conv2d", "activation", "maxpool2d", "flatten", "dense",
                     "activation", "dense", "activation"]
    mlp = nn.Sequential(nn.Linear(2, 5), relu, nn.Linear(5, 5), relu, nn.Linear(5, 3))
    imported = torch_reader().import_model(mlp, input_shape=(2,), loss=nn.CrossEntropyLoss())
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spec_logits(imported, x), expected, rtol=1e-5, atol=1e-6)
