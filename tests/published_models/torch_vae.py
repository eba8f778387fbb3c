"""The variational autoencoder of pytorch/examples.

Source: https://github.com/pytorch/examples, vae/main.py (class VAE; its loss is its own
``loss_function``, reconstruction BCE plus the KL divergence). Refused, every part at once: the
encoder branches into two heads (mu, logvar), the reparameterization draws noise
(``torch.randn_like``) and multiplies tensors, and forward returns three tensors; a dlbench spec is one
chain from one input to one output.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
INPUT_SHAPE = (1, 28, 28)
LOSS = "binary_crossentropy"
OUTPUT = "sigmoid"
PARTS = 5  # parts the one error lists
REFUSED = ["layer 4 ('fc22', Linear", "the graph branches", "randn_like cannot be read", "exp cannot be read"]


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def model():
    return VAE()


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 2, n)
