"""dlbench: one network spec, trained identically on NumPy, PyTorch, TensorFlow and JAX.

From Python: ``dlbench.benchmark(model, data, backends="all")`` runs what
``dlbench run`` runs and returns :class:`Results`; ``dlbench.load(path)``
reads a stored run; ``from_keras`` / ``from_torch`` turn a Keras or torch
model into a spec. The core (this package) imports no framework; backends
live in ``dlbench_backends`` and are loaded as pluggy plugins.
"""

import pluggy

from dlbench.api import benchmark, from_keras, from_torch
from dlbench.errors import InputError
from dlbench.report.view import Results, Row, load
from dlbench.measure.environment import dlbench_version
from dlbench.scenario import Scenario
from dlbench.network import (
    SGD,
    Activation,
    Adadelta,
    Adam,
    AdamW,
    AveragePool1D,
    AveragePool2D,
    BatchNormalization,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePool1D,
    GlobalAveragePool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    LayerNormalization,
    MaxPool1D,
    MaxPool2D,
    ModelSpec,
    PositionEmbedding,
    Residual,
    RMSprop,
    SelfAttention,
    Sequential,
)
from dlbench.network.schedules import CosineDecay, ExponentialDecay, StepDecay, WarmupCosine, WarmupLinear
from dlbench.network.sequence import GRU, LSTM, Bidirectional, Embedding, SimpleRNN

__version__ = dlbench_version()

hookimpl = pluggy.HookimplMarker("dlbench")

__all__ = [
    "benchmark", "load", "from_keras", "from_torch", "Results", "Row", "InputError", "Scenario",
    "Activation", "Adam", "AveragePool1D", "AveragePool2D", "BatchNormalization", "Conv1D", "Conv2D", "Dense",
    "Dropout", "Flatten", "GlobalAveragePool1D", "LayerNormalization", "MaxPool1D", "MaxPool2D", "ModelSpec",
    "PositionEmbedding", "Residual", "SelfAttention", "SGD", "Sequential",
    "Embedding", "SimpleRNN", "LSTM", "GRU",
    "GlobalAveragePool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "Bidirectional",
    "AdamW", "RMSprop", "Adadelta", "StepDecay", "ExponentialDecay", "CosineDecay", "WarmupCosine", "WarmupLinear",
    "hookimpl", "__version__",
]
