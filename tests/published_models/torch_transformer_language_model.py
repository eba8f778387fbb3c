"""The Transformer language model of pytorch/examples.

Source: https://github.com/pytorch/examples, word_language_model/model.py (classes
PositionalEncoding and TransformerModel, a subclass of nn.Transformer). Refused by torch.fx itself:
its forward branches on its ``has_mask`` argument (``if has_mask:``), control flow on an input that
symbolic tracing cannot follow; beyond that it is built of nn.TransformerEncoder layers and a
sinusoidal encoding added from a buffer, which the reader does not take apart.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMEWORK = "torch"
NTOKENS = 50
INPUT_SHAPE = (35,)
LOSS = nn.NLLLoss()
OUTPUT = "log_softmax"
PARTS = 1  # parts the one error lists
REFUSED = ["torch.fx cannot trace TransformerModel.forward", "control flow"]


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        x = x + self.pe[:x.size(0), :]
        return self.dropout(x)


class TransformerModel(nn.Transformer):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
        super().__init__(d_model=ninp, nhead=nhead, dim_feedforward=nhid, num_encoder_layers=nlayers)
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        self.input_emb = nn.Embedding(ntoken, ninp)
        self.ninp = ninp
        self.decoder = nn.Linear(ninp, ntoken)

    def _generate_square_subsequent_mask(self, sz):
        mask = (torch.triu(torch.ones(sz, sz)) == 1).transpose(0, 1)
        return mask.float().masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, float(0.0))

    def forward(self, src, has_mask=True):
        if has_mask:
            if self.src_mask is None or self.src_mask.size(0) != len(src):
                self.src_mask = self._generate_square_subsequent_mask(len(src)).to(src.device)
        else:
            self.src_mask = None
        src = self.input_emb(src) * math.sqrt(self.ninp)
        src = self.pos_encoder(src)
        output = self.encoder(src, mask=self.src_mask)
        output = self.decoder(output)
        return F.log_softmax(output, dim=-1)


def model():
    return TransformerModel(NTOKENS, 32, 2, 64, 2, 0.2)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, NTOKENS, (n, *INPUT_SHAPE)), rng.integers(0, NTOKENS, n)
