"""A plain PyTorch training loop of ResNet-20, as someone would write it by
hand: torchvision's ``BasicBlock`` (two 3x3 convs without bias, BatchNorm,
ReLU, a ``downsample`` Sequential of a strided 1x1 conv and BatchNorm where the
shape changes), NCHW images, ``AdaptiveAvgPool2d``, ``nn.Linear``,
``torch.optim.SGD(momentum, weight_decay)`` with ``CosineAnnealingLR`` stepped per
batch where the scenario has a cosine schedule, ``zero_grad / backward / step``.
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import torch
import torch.nn.functional as F
from torch import nn

from resnet20_weights import batchnorm_settings, parts, sgd_recipe


def _conv(kernel, stride: int) -> nn.Conv2d:
    kh, _, c_in, c_out = kernel.shape
    conv = nn.Conv2d(c_in, c_out, kh, stride=stride, padding=kh // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    return conv


def _norm(weights, settings) -> nn.BatchNorm2d:
    momentum, epsilon = settings
    gamma, beta, mean, variance = weights
    norm = nn.BatchNorm2d(len(gamma), momentum=1 - momentum, eps=epsilon)
    with torch.no_grad():
        for tensor, value in ((norm.weight, gamma), (norm.bias, beta), (norm.running_mean, mean),
                              (norm.running_var, variance)):
            tensor.copy_(torch.from_numpy(value))
    return norm


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock's maths."""

    def __init__(self, w, settings):
        super().__init__()
        self.conv1, self.bn1 = _conv(w["conv1"], w["stride"]), _norm(w["norm1"], settings)
        self.conv2, self.bn2 = _conv(w["conv2"], 1), _norm(w["norm2"], settings)
        self.downsample = None
        if w["shortcut"] is not None:
            kernel, norm = w["shortcut"]
            self.downsample = nn.Sequential(_conv(kernel, w["stride"]), _norm(norm, settings))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet20(nn.Module):
    def __init__(self, weights, settings):
        super().__init__()
        w = parts(weights)
        self.conv1, self.bn1 = _conv(w["stem"][0], 1), _norm(w["stem"][1], settings)
        self.layers = nn.Sequential(*(BasicBlock(block, settings) for block in w["blocks"]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        kernel, bias = w["classifier"]
        self.fc = nn.Linear(*kernel.shape)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(kernel.T))
            self.fc.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def make_loop(weights, x_train, y_train, scenario):
    model = ResNet20(weights, batchnorm_settings(scenario)).train()
    x = torch.tensor(x_train, dtype=torch.float32).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(y_train, dtype=torch.int64)
    sgd = sgd_recipe(scenario)
    optimizer = torch.optim.SGD(model.parameters(), lr=sgd["learning_rate"], momentum=sgd["momentum"],
                                weight_decay=sgd["weight_decay"])
    scheduler = None
    if sgd["decay_steps"]:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=sgd["decay_steps"],
                                                               eta_min=sgd["alpha"] * sgd["learning_rate"])

    def train(indices):
        indices = torch.from_numpy(indices)
        losses = []
        for idx in indices:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return train
