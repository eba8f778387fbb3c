from dlbench.spec.flops import training_step_flops
from dlbench.spec import SGD, Activation, Dense, Sequential


def test_mlp_step_flops_by_hand():
    # 4 -> 3 (relu) -> 2 (softmax), batch 5, plain SGD
    spec = Sequential([Dense(3, "relu", input_shape=(4,)), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    B = 5
    first = (2 * B * 4 * 3 + B * 3) + (2 * B * 4 * 3 + B * 3)  # forward + dW/db, no dX
    relu = 2 * B * 3
    second = (2 * B * 3 * 2 + B * 2) + (2 * B * 3 * 2 + B * 2 + 2 * B * 3 * 2)
    loss = 6 * B * 2
    update = 2 * (4 * 3 + 3 + 3 * 2 + 2)
    assert training_step_flops(spec, B) == first + relu + second + loss + update


def test_optimizer_and_activation_layers_count():
    base = Sequential([Dense(3, input_shape=(4,)), Activation("tanh"), Dense(1, "sigmoid")])
    sgd = training_step_flops(base.compile("binary_crossentropy", SGD(0.1)), 1)
    momentum = training_step_flops(base.compile("binary_crossentropy", SGD(0.1, 0.9)), 1)
    adam = training_step_flops(base.compile("binary_crossentropy", "adam"), 1)
    n_params = 4 * 3 + 3 + 3 + 1
    assert momentum - sgd == 2 * n_params
    assert adam - sgd == 10 * n_params


def test_flops_scale_with_batch_for_matmul_heavy_nets():
    spec = Sequential([Dense(256, "relu", input_shape=(64,)), Dense(256, "relu"), Dense(10, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    per_sample_small = training_step_flops(spec, 8) / 8
    per_sample_big = training_step_flops(spec, 512) / 512
    matmul_per_sample = 2 * (64 * 256 * 2 + 256 * 256 * 3 + 256 * 10 * 3)
    assert per_sample_small > per_sample_big  # the update is amortized over the batch
    assert abs(per_sample_big - matmul_per_sample) / matmul_per_sample < 0.02


def test_conv_flops_by_hand():
    from dlbench.spec import Conv1D, Flatten

    spec = Sequential([Conv1D(4, 3, input_shape=(10, 2)), Flatten(), Dense(2, "softmax")]).compile(
        "categorical_crossentropy", SGD(0.1))
    B, positions = 3, 3 * 8
    conv = 2 * (2 * positions * 6 * 4 + positions * 4)  # forward + dK/db, no dX for the first layer
    dense = 2 * B * 32 * 2 * 3 + 2 * B * 2
    update = 2 * (3 * 2 * 4 + 4 + 32 * 2 + 2)
    assert training_step_flops(spec, B) == conv + dense + 6 * B * 2 + update
