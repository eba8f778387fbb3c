"""FLOP counts of residual blocks whose shortcut is a chain (ResNet's projection shortcut) and of ResNet-20."""

from dlbench.network import SGD, BatchNormalization, Conv2D, Flatten, Dense, Residual, Sequential
from dlbench.network.flops import training_step_flops
from dlbench.scenario import resolve_scenario


def _conv_step(batch: int, positions: int, fan_in: int, filters: int) -> int:
    """One bias-free convolution's training step, not the first layer: forward, dW and dX matmuls."""
    return 3 * 2 * batch * positions * fan_in * filters


def test_a_projection_shortcut_counts_its_conv_and_batchnorm_beside_the_inner_chain():
    # (8, 8, 4) -> a block halving the map to (4, 4, 6); a head to make it trainable
    inner = [Conv2D(6, 3, strides=2, padding=1, use_bias=False), BatchNormalization()]
    projection = [Conv2D(6, 1, strides=2, use_bias=False), BatchNormalization()]
    head = [Flatten(), Dense(2, "softmax")]
    plain = Sequential([Conv2D(4, 1, use_bias=False, input_shape=(8, 8, 4)), *head])
    blocked = Sequential([Conv2D(4, 1, use_bias=False, input_shape=(8, 8, 4)),
                          Residual(inner, shortcut=projection), *head])
    batch, out = 3, 4 * 4 * 6
    flops = {name: training_step_flops(spec.compile("categorical_crossentropy", SGD(0.1)), batch)
             for name, spec in (("plain", plain), ("blocked", blocked))}
    inner_flops = _conv_step(batch, 16, 9 * 4, 6) + 20 * batch * out
    shortcut_flops = _conv_step(batch, 16, 1 * 4, 6) + 20 * batch * out
    add = 2 * batch * out
    head_difference = (3 * 2 * batch * (out - 8 * 8 * 4) * 2)  # the dense head reads 96 features, not 256
    params = 9 * 4 * 6 + 2 * 6 + 4 * 6 + 2 * 6 + (out - 8 * 8 * 4) * 2  # kernels, gammas and betas
    assert flops["blocked"] - flops["plain"] == inner_flops + shortcut_flops + add + head_difference + 2 * params


def test_resnet20_counts_six_times_its_forward_multiply_adds_per_sample():
    # He et al. 2016: ResNet-20 is about 41M multiply-adds forward (option A); the two
    # projection shortcuts add 16*16*16*32 + 8*8*32*64 = 262144. A training step is ~3 forwards.
    scenario = resolve_scenario("resnet20-cifar")
    macs = (32 * 32 * 27 * 16 + 6 * 32 * 32 * 144 * 16 + 16 * 16 * 144 * 32 + 5 * 16 * 16 * 288 * 32
            + 8 * 8 * 288 * 64 + 5 * 8 * 8 * 576 * 64 + 64 * 10 + 16 * 16 * 16 * 32 + 8 * 8 * 32 * 64)
    matmuls = 6 * macs - 2 * 32 * 32 * 27 * 16  # the first conv computes no input gradient
    per_sample = training_step_flops(scenario.model, 128) / 128
    assert 40.5e6 < macs < 41.5e6
    assert matmuls < per_sample < 1.04 * matmuls  # BatchNorm, ReLU, adds and the update: a few percent
