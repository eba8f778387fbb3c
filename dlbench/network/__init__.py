"""What a network is: layers, the compiled model, optimizers, training
settings, initial weights and FLOP counts. No framework imports."""

from dlbench.network.checks import Shape, check_choice, check_number, check_positive_int, format_shape
from dlbench.network.layers import (ACTIVATION_ALPHA, ACTIVATIONS, GLOBAL_POOLS, LAYER_TYPES, PARAMETERS_TRAINED,
                                 Activation, AveragePool1D, AveragePool2D, BatchNormalization, Conv1D, Conv2D, Dense,
                                 Dropout, Flatten, GlobalAveragePool2D, GlobalMaxPool1D, GlobalMaxPool2D, Layer,
                                 MaxPool1D, MaxPool2D, activation_alpha, is_trained, layer_activation)
from dlbench.network.sequence import GRU, LSTM, Embedding, SimpleRNN
from dlbench.network.transformer import (TRANSFORMER_LAYERS, GlobalAveragePool1D, LayerNormalization,
                                      PositionEmbedding, Residual, SelfAttention)
from dlbench.network.model import *  # noqa: F401,F403  (the model's public names)
from dlbench.network.model import __all__ as _model_names

__all__ = ["Shape", "check_choice", "check_number", "check_positive_int", "format_shape", "ACTIVATIONS",
           "LAYER_TYPES", "PARAMETERS_TRAINED", "Activation", "AveragePool1D", "AveragePool2D",
           "BatchNormalization", "Conv1D", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool1D",
           "MaxPool2D", "is_trained", "layer_activation", "ACTIVATION_ALPHA", "GLOBAL_POOLS", "GlobalAveragePool2D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "activation_alpha", "Embedding", "SimpleRNN", "LSTM", "GRU",
           "TRANSFORMER_LAYERS", "GlobalAveragePool1D", "LayerNormalization", "PositionEmbedding", "Residual",
           "SelfAttention", *_model_names]
