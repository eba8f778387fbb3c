"""A plain PyTorch training loop of the Transformer benchmark network, as someone
would write it by hand: ``nn.Linear``, ``nn.LayerNorm``, ``nn.MultiheadAttention``
(batch first, one packed in-projection), ``nn.GELU("tanh")``, ``torch.optim.Adam``,
``zero_grad / backward / step``. ``make_loop(weights, x_train, y_train, scenario)``
returns ``train(indices) -> losses``."""

import torch
import torch.nn.functional as F
from torch import nn

from transformer_weights import num_heads, parts


def _linear(w, b) -> nn.Linear:
    linear = nn.Linear(*w.shape)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T))
        linear.bias.copy_(torch.from_numpy(b))
    return linear


def _norm(gamma, beta) -> nn.LayerNorm:
    norm = nn.LayerNorm(len(gamma), eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(gamma))
        norm.bias.copy_(torch.from_numpy(beta))
    return norm


class Block(nn.Module):
    def __init__(self, w, heads: int):
        super().__init__()
        d = w["query"][0].shape[0]
        self.norm1, self.norm2 = _norm(*w["norm1"]), _norm(*w["norm2"])
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)
        with torch.no_grad():
            self.attention.in_proj_weight.copy_(torch.cat([torch.from_numpy(w[p][0].T) for p in
                                                           ("query", "key", "value")]))
            self.attention.in_proj_bias.copy_(torch.cat([torch.from_numpy(w[p][1]) for p in
                                                         ("query", "key", "value")]))
            self.attention.out_proj.weight.copy_(torch.from_numpy(w["output"][0].T))
            self.attention.out_proj.bias.copy_(torch.from_numpy(w["output"][1]))
        self.feed_forward = nn.Sequential(_linear(*w["up"]), nn.GELU(approximate="tanh"), _linear(*w["down"]))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.feed_forward(self.norm2(x))


class Encoder(nn.Module):
    def __init__(self, weights, heads: int):
        super().__init__()
        w = parts(weights)
        self.projection = _linear(*w["projection"])
        self.positions = nn.Parameter(torch.from_numpy(w["positions"].copy()))
        self.blocks = nn.Sequential(*(Block(b, heads) for b in w["blocks"]))
        self.norm = _norm(*w["norm"])
        self.classifier = _linear(*w["classifier"])

    def forward(self, x):
        x = self.projection(x) + self.positions[:x.shape[1]]
        return self.classifier(self.norm(self.blocks(x)).mean(dim=1))


def make_loop(weights, x_train, y_train, scenario):
    heads = num_heads(scenario)
    model = Encoder(weights, heads)
    x = torch.tensor(x_train, dtype=torch.float32)
    y = torch.tensor(y_train, dtype=torch.int64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)

    def train(indices):
        indices = torch.from_numpy(indices)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return train
