"""A plain PyTorch training loop, as someone would write it by hand, for the
overhead-benchmark networks. The harness's torch backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train, device="cpu")`` returns
``train(indices) -> losses``: one optimizer step per row of ``indices``,
losses as a host array (reading them waits for the GPU; device "gpu": CUDA).
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp);
* ``tiny``: 64-10-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1, at batch 1;
* ``cnn``: digits-cnn, conv3x3(16, same)-relu-maxpool2-conv3x3(32, same)-relu-maxpool2-dense(10),
  Adam lr 0.003, on (N, 8, 8, 1) images, converted once to NCHW as a user would.

Idiomatic code: ``nn.Sequential``, ``torch.optim``, ``zero_grad / backward /
step``, the batch gathered by index from tensors already on the device, the
losses kept as tensors and read once per call.
"""

import torch
import torch.nn.functional as F
from torch import nn


def make_loop(kind, weights, x_train, y_train, device="cpu"):
    device = torch.device("cuda" if device == "gpu" else "cpu")
    if kind == "cnn":
        return _cnn(weights, x_train, y_train, device)
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
    model = nn.Sequential(*layers).to(device)
    x = torch.tensor(x_train, dtype=torch.float32, device=device)
    if kind in ("mlp", "tiny"):
        y = torch.tensor(y_train, dtype=torch.int64, device=device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = F.cross_entropy
    else:
        y = torch.tensor(y_train, dtype=torch.float32, device=device).reshape(-1, 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
        loss_fn = F.binary_cross_entropy_with_logits

    def train(indices):
        indices = torch.from_numpy(indices).to(device)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).cpu().numpy()

    return train


def _cnn(weights, x_train, y_train, device):
    conv1, conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
    dense = nn.Linear(128, 10)
    with torch.no_grad():
        for conv, w in ((conv1, weights[0]), (conv2, weights[2])):
            conv.weight.copy_(torch.from_numpy(w["kernel"]).permute(3, 2, 0, 1))
            conv.bias.copy_(torch.from_numpy(w["bias"]))
        dense.weight.copy_(torch.from_numpy(weights[5]["kernel"].T))
        dense.bias.copy_(torch.from_numpy(weights[5]["bias"]))

    class ToChannelsLast(nn.Module):  # flatten in (H, W, C) order, as the canonical Dense kernel expects
        def forward(self, x):
            return x.permute(0, 2, 3, 1)

    model = nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU(), nn.MaxPool2d(2), ToChannelsLast(),
                          nn.Flatten(), dense).to(device)
    x = torch.tensor(x_train, dtype=torch.float32, device=device).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(y_train, dtype=torch.int64, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003, eps=1e-7)

    def train(indices):
        indices = torch.from_numpy(indices).to(device)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).cpu().numpy()

    return train
