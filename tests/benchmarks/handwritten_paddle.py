"""A plain PaddlePaddle training loop, as someone would write it by hand, for the
overhead-benchmark networks. The harness's paddle backend must be at least as fast.

``make_loop(kind, weights, x_train, y_train)`` returns ``train(indices) -> losses``:
one optimizer step per row of ``indices``, losses as a host array.
* ``mlp``: 64-256-256-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1 (digits-mlp);
* ``xor``: 2-10-1 ReLU net, sigmoid binary cross-entropy, Adam (xor-mlp; the
  spec's epsilon 1e-7, not Paddle's default 1e-8);
* ``tiny``: 64-10-10 ReLU MLP, softmax cross-entropy, SGD lr 0.1, at batch 1;
* ``fcn``: 512-1024-1024-10 ReLU MLP, softmax cross-entropy, SGD lr 0.05 with
  momentum 0.9 (``paddle.optimizer.Momentum``: ``v = 0.9 v + g; W -= lr v``), batch 1024 (synthetic-fcn).

Idiomatic dygraph code: ``nn.Sequential``, ``paddle.optimizer``, ``backward /
step / clear_grad``, the batch gathered by index from tensors made once, the
losses kept as tensors and read once per call. ``nn.Linear``'s weight is
(in, out), so the canonical kernels go in as they are.
"""

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn


def make_loop(kind, weights, x_train, y_train):
    paddle.set_device("cpu")
    layers = []
    for i, w in enumerate(weights):
        linear = nn.Linear(*w["kernel"].shape)
        linear.weight.set_value(w["kernel"])
        linear.bias.set_value(w["bias"])
        layers.append(linear)
        if i < len(weights) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    x = paddle.to_tensor(np.asarray(x_train, np.float32))
    if kind in ("mlp", "tiny"):
        y = paddle.to_tensor(np.asarray(y_train, np.int64))
        optimizer = paddle.optimizer.SGD(learning_rate=0.1, parameters=model.parameters())
        loss_fn = F.cross_entropy
    elif kind == "fcn":
        y = paddle.to_tensor(np.asarray(y_train, np.int64))
        optimizer = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=model.parameters())
        loss_fn = F.cross_entropy
    else:
        y = paddle.to_tensor(np.asarray(y_train, np.float32).reshape(-1, 1))
        optimizer = paddle.optimizer.Adam(learning_rate=0.001, epsilon=1e-7, parameters=model.parameters())
        loss_fn = F.binary_cross_entropy_with_logits

    def train(indices):
        losses = []
        for idx in paddle.to_tensor(np.asarray(indices, np.int64)):
            loss = loss_fn(model(paddle.gather(x, idx)), paddle.gather(y, idx))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(loss.detach())
        return paddle.stack(losses).numpy()

    return train
