"""LeNet of the PyTorch "Neural Networks" tutorial (60-minute blitz): functional pooling with a
tuple and an int window, trained with ``nn.MSELoss`` against a 10-value target.

Source: https://github.com/pytorch/tutorials, beginner_source/blitz/neural_networks_tutorial.py
(class Net; ``criterion = nn.MSELoss()``, ``optim.SGD(net.parameters(), lr=0.01)``). The target here
is the one-hot class, which is what dlbench's mse compares several outputs with.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
INPUT_SHAPE = (1, 32, 32)
LOSS = nn.MSELoss()
OUTPUT = "logits"


def FRAMEWORK_LOSS(outputs, target):
    return F.mse_loss(outputs, F.one_hot(target, 10).float())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        c1 = F.relu(self.conv1(input))
        s2 = F.max_pool2d(c1, (2, 2))
        c3 = F.relu(self.conv2(s2))
        s4 = F.max_pool2d(c3, 2)
        s4 = torch.flatten(s4, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        return self.fc3(f6)


def model():
    return Net()


def optimizer(net):
    return torch.optim.SGD(net.parameters(), lr=0.01)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 10, n)
