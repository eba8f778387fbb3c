"""The PyTorch backend's sequence layers: embeddings and recurrent layers.

* Embedding: ``nn.Embedding``; its weight (vocab, dim) is the canonical
  ``embeddings`` as it is (a dense gradient, like every other parameter's).
* SimpleRNN / LSTM / GRU, and bidirectional ones: :mod:`~dlbench_backends.torch.recurrent`.
"""

from __future__ import annotations

import torch
from torch import nn

from dlbench.network.sequence import DIRECTIONS, Bidirectional, Embedding
from dlbench_backends.torch import recurrent


def sequence_modules(layer, in_shape, device) -> list:
    """The torch modules computing one sequence layer (the last holds its parameters)."""
    if isinstance(layer, Embedding):
        return [nn.Embedding(layer.input_dim, layer.output_dim, device=device, dtype=torch.float32)]
    if isinstance(layer, Bidirectional):
        return [recurrent.BidirectionalRecurrent(layer, in_shape[-1], device)]
    return [recurrent.Recurrent(layer, in_shape[-1], device)]


def sequence_tensors(module, layer) -> dict:
    """One sequence layer's parameters by canonical name, as torch holds them."""
    if isinstance(layer, Embedding):
        return {"embeddings": module.weight}
    if isinstance(layer, Bidirectional):
        return {f"{direction}.{name}": tensor
                for direction, held in zip(DIRECTIONS, (module.forward_layer, module.backward_layer))
                for name, tensor in sequence_tensors(held, layer.layer).items()}
    return {"kernel": module.weight_ih, "recurrent_kernel": module.weight_hh, "bias": module.bias}


def sequence_to_torch(layer, name: str, t: torch.Tensor) -> torch.Tensor:
    """A canonical array (host tensor) in torch's layout of parameter ``name``."""
    if isinstance(layer, Bidirectional):  # "forward.<name>", "backward.<name>": the wrapped layer's own
        return sequence_to_torch(*layer.part(name), t)
    return t if isinstance(layer, Embedding) else recurrent.to_torch(layer, name, t)


def sequence_to_canonical(layer, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`sequence_to_torch` (on the device; the caller copies it to the host)."""
    if isinstance(layer, Bidirectional):
        return sequence_to_canonical(*layer.part(name), tensor)
    return tensor if isinstance(layer, Embedding) else recurrent.to_canonical(layer, name, tensor)
