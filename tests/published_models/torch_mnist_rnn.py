"""The MNIST LSTM of pytorch/examples: each image a sequence of 28 rows, the last output through
BatchNorm1d, Dropout2d and two Linear layers, ``log_softmax`` out.

Source: https://github.com/pytorch/examples, mnist_rnn/main.py (class Net; ``F.nll_loss``,
``optim.Adadelta(lr=0.1)``). Its forward begins with ``input.reshape(-1, 28, 28)``; the spec has no
reshape layer, so the model is read with ``input_shape=(28, 28)``, on which that reshape changes
nothing (an image of (1, 28, 28) is refused with that advice). Dropout2d of a (batch, features)
tensor drops single features: the spec's Dropout.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dlbench.network import Adadelta

FRAMEWORK = "torch"
INPUT_SHAPE = (28, 28)
LOSS = F.nll_loss
OUTPUT = "log_softmax"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        input = input.reshape(-1, 28, 28)
        output, hidden = self.rnn(input)
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = self.fc1(output)
        output = F.relu(output)
        output = self.dropout2(output)
        output = self.fc2(output)
        return F.log_softmax(output, dim=1)


def model():
    return Net()


def optimizer(net):
    return torch.optim.Adam(net.parameters())


#: the example trains with Adadelta, which dlbench reads (torch.optim.Adadelta defaults: rho 0.9, eps 1e-6)
PUBLISHED_OPTIMIZER = (lambda net: torch.optim.Adadelta(net.parameters(), lr=0.1), Adadelta(learning_rate=0.1))


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
