"""A plain PyTorch training loop, as someone would write it by hand, for the two
overhead-benchmark networks. The harness's torch backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp).

Idiomatic code: ``nn.Sequential``, ``torch.optim``, ``zero_grad / backward /
step``, the batch gathered by index from tensors already on the device, the
losses kept as tensors and read once per call.
"""

import torch
import torch.nn.functional as F
from torch import nn


def make_loop(kind, weights, x_train, y_train):
    sizes = [layer["kernel"].shape for layer in weights]
    layers = []
    for i, (n_in, n_out) in enumerate(sizes):
        linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weights[i]["kernel"].T))
            linear.bias.copy_(torch.from_numpy(weights[i]["bias"]))
        layers.append(linear)
        if i < len(sizes) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    x = torch.tensor(x_train, dtype=torch.float32)
    if kind == "mlp":
        y = torch.tensor(y_train, dtype=torch.int64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = F.cross_entropy
    else:
        y = torch.tensor(y_train, dtype=torch.float32).reshape(-1, 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
        loss_fn = F.binary_cross_entropy_with_logits

    def train(indices):
        indices = torch.from_numpy(indices)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return train
