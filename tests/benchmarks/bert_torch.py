"""A plain PyTorch training loop of the BERT-style encoder, as someone would
write it by hand: ``nn.Embedding``, a position-embedding parameter,
``nn.LayerNorm(eps=1e-12)``, ``nn.TransformerEncoderLayer`` (post-norm, exact
GELU, no dropout, batch first), mean over positions, a tanh pooler,
``torch.optim.AdamW`` (weight decay 0 for an ``adam`` scenario: Adam) with Hugging
Face's linear warm-up and decay as a ``LambdaLR`` stepped per batch where the
scenario has one, ``zero_grad / backward / step``.
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bert_weights import adamw_recipe, parts, settings, warmup_linear


def _copy(tensor, value):
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(value))


def _linear(linear: nn.Linear, w, b) -> None:
    _copy(linear.weight, w.T.copy())
    _copy(linear.bias, b)


def _norm(norm: nn.LayerNorm, gamma, beta) -> None:
    _copy(norm.weight, gamma)
    _copy(norm.bias, beta)


def _encoder_layer(w, heads: int, epsilon: float) -> nn.TransformerEncoderLayer:
    d, inner = w["up"][0].shape
    layer = nn.TransformerEncoderLayer(d, heads, inner, dropout=0.0, activation="gelu", layer_norm_eps=epsilon,
                                       batch_first=True, norm_first=False)
    attention = layer.self_attn
    _copy(attention.in_proj_weight, np.concatenate([w[p][0].T for p in ("query", "key", "value")]))
    _copy(attention.in_proj_bias, np.concatenate([w[p][1] for p in ("query", "key", "value")]))
    _linear(attention.out_proj, *w["output"])
    _linear(layer.linear1, *w["up"])
    _linear(layer.linear2, *w["down"])
    _norm(layer.norm1, *w["norm1"])
    _norm(layer.norm2, *w["norm2"])
    return layer


class Encoder(nn.Module):
    def __init__(self, weights, heads: int, epsilon: float):
        super().__init__()
        w = parts(weights)
        self.embedding = nn.Embedding(*w["embeddings"].shape)
        _copy(self.embedding.weight, w["embeddings"])
        self.positions = nn.Parameter(torch.from_numpy(w["positions"].copy()))
        self.norm = nn.LayerNorm(w["positions"].shape[1], eps=epsilon)
        _norm(self.norm, *w["norm"])
        self.layers = nn.Sequential(*(_encoder_layer(layer, heads, epsilon) for layer in w["layers"]))
        self.pooler, self.classifier = nn.Linear(*w["pooler"][0].shape), nn.Linear(*w["classifier"][0].shape)
        _linear(self.pooler, *w["pooler"])
        _linear(self.classifier, *w["classifier"])

    def forward(self, tokens):
        x = self.norm(self.embedding(tokens) + self.positions[:tokens.shape[1]])
        return self.classifier(torch.tanh(self.pooler(self.layers(x).mean(dim=1))))


def make_loop(weights, x_train, y_train, scenario):
    model = Encoder(weights, *settings(scenario)).train()
    x = torch.tensor(x_train, dtype=torch.int64)
    y = torch.tensor(y_train, dtype=torch.int64)
    adam = adamw_recipe(scenario)
    optimizer = torch.optim.AdamW(model.parameters(), lr=adam["learning_rate"], betas=(adam["beta_1"], adam["beta_2"]),
                                  eps=adam["epsilon"], weight_decay=adam["weight_decay"])
    scheduler = None
    if adam["warmup_steps"]:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
            warmup_linear, warmup_steps=adam["warmup_steps"], decay_steps=adam["decay_steps"], alpha=adam["alpha"]))

    def train(indices):
        indices = torch.from_numpy(indices)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return train
