"""The word-level LSTM language model of pytorch/examples, with tied encoder/decoder weights.

Source: https://github.com/pytorch/examples, word_language_model/model.py (class RNNModel, built by
main.py as ``RNNModel('LSTM', ntokens, 200, 200, 2, 0.2, tie_weights=True)`` when ``--tied``;
``nn.NLLLoss()``). Refused, every part named at once: its forward takes the hidden state as a second
input (the state is carried from batch to batch), the LSTM is sequence-first, and the decoder's
weight *is* the encoder's (one parameter in two places, which a spec cannot express).
"""

import numpy as np
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
NTOKENS = 50
INPUT_SHAPE = (35,)
LOSS = nn.NLLLoss()
OUTPUT = "log_softmax"
PARTS = 3  # parts the one error lists
REFUSED = ["a second input", "batch_first=False", "its weight is also the weight of 'encoder'"]


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder (LSTM / GRU variants)."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def init_weights(self):
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


def model():
    return RNNModel("LSTM", NTOKENS, 200, 200, 2, 0.2, tie_weights=True)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, NTOKENS, (n, *INPUT_SHAPE)), rng.integers(0, NTOKENS, n)
