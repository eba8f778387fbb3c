"""A plain PyTorch training loop of the LSTM language-model benchmark network
(``chars-lstm``), as someone would write it by hand: ``nn.Embedding``,
``nn.LSTM(batch_first=True)``, ``nn.Linear`` over every position,
``F.cross_entropy`` on the flattened logits, ``torch.optim.Adam``,
``zero_grad / backward / step``. ``make_loop(weights, x_train, y_train, scenario)``
returns ``train(indices) -> losses``.

nn.LSTM's gates i, f, g, o are the canonical (Keras) i, f, c, o, so the
kernels are only transposed. It has two biases, ``b_ih + b_hh``, where the spec
has one: the canonical bias goes in ``bias_ih_l0`` and ``bias_hh_l0`` stays
zero and frozen, else Adam would move their sum twice as far per step.
"""

import torch
import torch.nn.functional as F
from torch import nn


class LanguageModel(nn.Module):
    def __init__(self, weights):
        super().__init__()
        embedding, lstm, dense = weights
        vocab, width = embedding["embeddings"].shape
        units = lstm["recurrent_kernel"].shape[0]
        self.embedding = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, units, batch_first=True)
        self.head = nn.Linear(units, dense["kernel"].shape[1])
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(embedding["embeddings"]))
            self.lstm.weight_ih_l0.copy_(torch.from_numpy(lstm["kernel"].T))
            self.lstm.weight_hh_l0.copy_(torch.from_numpy(lstm["recurrent_kernel"].T))
            self.lstm.bias_ih_l0.copy_(torch.from_numpy(lstm["bias"]))
            self.lstm.bias_hh_l0.zero_()
            self.head.weight.copy_(torch.from_numpy(dense["kernel"].T))
            self.head.bias.copy_(torch.from_numpy(dense["bias"]))
        self.lstm.bias_hh_l0.requires_grad_(False)

    def forward(self, tokens):
        return self.head(self.lstm(self.embedding(tokens))[0])


def make_loop(weights, x_train, y_train, scenario):
    model = LanguageModel(weights)
    x = torch.tensor(x_train, dtype=torch.int64)
    y = torch.tensor(y_train, dtype=torch.int64)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=scenario.model.optimizer.learning_rate, eps=1e-7)

    def train(indices):
        indices = torch.from_numpy(indices)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            logits = model(x[idx])
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten())
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return train
