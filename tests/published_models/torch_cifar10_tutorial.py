"""The CIFAR-10 classifier of the PyTorch "Training a Classifier" tutorial, with its one
``self.pool`` called after both convolutions (a module shared by two call sites).

Source: https://github.com/pytorch/tutorials, beginner_source/blitz/cifar10_tutorial.py (class Net),
trained there with ``nn.CrossEntropyLoss()`` and ``optim.SGD(lr=0.001, momentum=0.9)``. The class
below restates its modules and forward.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
INPUT_SHAPE = (3, 32, 32)
LOSS = nn.CrossEntropyLoss()
OUTPUT = "logits"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def model():
    return Net()


def optimizer(net):
    return torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
