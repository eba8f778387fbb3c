"""The MNIST convnet of pytorch/examples, as published.

Source: https://github.com/pytorch/examples, mnist/main.py (class Net), trained there with
``F.nll_loss`` on the ``log_softmax`` output and ``optim.Adadelta(lr=1.0)``. The definition below
restates that class's layers and forward (same modules, sizes and calls, in the same order).
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dlbench.network import Adadelta

FRAMEWORK = "torch"
INPUT_SHAPE = (1, 28, 28)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def model():
    return Net()


LOSS = F.nll_loss
OUTPUT = "log_softmax"


def optimizer(net):
    """Adam for the conversion check (the example's Adadelta is checked on its own: PUBLISHED_OPTIMIZER)."""
    return torch.optim.Adam(net.parameters(), lr=1e-3)


#: the example trains with Adadelta, which dlbench reads (torch.optim.Adadelta defaults: rho 0.9, eps 1e-6)
PUBLISHED_OPTIMIZER = (lambda net: torch.optim.Adadelta(net.parameters(), lr=1.0), Adadelta(learning_rate=1.0))


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
