"""The bag-of-words logistic regression of the PyTorch NLP tutorial ("Deep Learning with PyTorch").

Source: https://github.com/pytorch/tutorials, beginner_source/nlp/deep_learning_tutorial.py (class
BoWClassifier; ``nn.NLLLoss()``, ``optim.SGD(model.parameters(), lr=0.1)``). Its vocabulary there
has 26 words and 2 labels.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
VOCAB_SIZE, NUM_LABELS = 26, 2
INPUT_SHAPE = (VOCAB_SIZE,)
LOSS = nn.NLLLoss()
OUTPUT = "log_softmax"


class BoWClassifier(nn.Module):
    def __init__(self, num_labels, vocab_size):
        super().__init__()
        self.linear = nn.Linear(vocab_size, num_labels)

    def forward(self, bow_vec):
        return F.log_softmax(self.linear(bow_vec), dim=1)


def model():
    return BoWClassifier(NUM_LABELS, VOCAB_SIZE)


def optimizer(net):
    return torch.optim.SGD(net.parameters(), lr=0.1)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, (n, VOCAB_SIZE)).astype(np.float32), rng.integers(0, NUM_LABELS, n)
