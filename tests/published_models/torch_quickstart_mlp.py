"""The FashionMNIST network of the PyTorch quickstart: an nn.Flatten and an nn.Sequential
inside a class with its own forward.

Source: https://github.com/pytorch/tutorials, beginner_source/basics/quickstart_tutorial.py
(class NeuralNetwork; ``nn.CrossEntropyLoss()``, ``torch.optim.SGD(model.parameters(), lr=1e-3)``).
"""

import numpy as np
import torch
from torch import nn

FRAMEWORK = "torch"
INPUT_SHAPE = (1, 28, 28)
LOSS = nn.CrossEntropyLoss()
OUTPUT = "logits"


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        return self.linear_relu_stack(x)


def model():
    return NeuralNetwork()


def optimizer(net):
    return torch.optim.SGD(net.parameters(), lr=1e-3)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
