"""The name-nationality classifier of the PyTorch tutorial "NLP From Scratch: Classifying Names
with a Character-Level RNN".

Source: https://github.com/pytorch/tutorials, intermediate_source/char_rnn_classification_tutorial.py
(class CharRNN, ``CharRNN(58, 128, 18)``, ``nn.NLLLoss()``, ``torch.optim.SGD(lr=0.15)``). Refused: its
nn.RNN takes (time, batch, features) (``batch_first=False``, names are fed one at a time as
``(len(name), 1, 58)``), while every dlbench sequence is batch-first.
"""

import numpy as np
from torch import nn

FRAMEWORK = "torch"
INPUT_SHAPE = (10, 58)
LOSS = nn.NLLLoss()
OUTPUT = "log_softmax"
PARTS = 1  # parts the one error lists
REFUSED = ["layer 0 ('rnn', RNN", "batch_first=False: the spec's sequences are (batch, time, features)"]


class CharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        rnn_out, hidden = self.rnn(line_tensor)
        output = self.h2o(hidden[0])
        return self.softmax(output)


def model():
    return CharRNN(58, 128, 18)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 18, n)
