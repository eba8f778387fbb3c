import numpy as np
import pytest

from dlbench.data.batches import BatchPlan
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.errors import InputError
from dlbench.network.init import initial_weights
from dlbench.network import Dense, Sequential

DATASETS = {info.name: info for info in BUILTIN_DATASETS}
GENERATED = ["xor", "moons", "spirals", "blobs", "digits", "synthetic"]


@pytest.mark.parametrize("name", GENERATED)
def test_datasets_are_seeded_float32_with_integer_labels(name):
    info = DATASETS[name]
    a, b = info.load(0, {}), info.load(0, {})
    c = info.load(1, {})
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert set(np.unique(a.y_train)) <= set(range(a.n_classes))
    total = len(a.x_train) + len(a.x_test)
    assert len(a.x_test) == round(total * 0.2)


@pytest.mark.parametrize("name", ["diabetes", "regression"])
def test_regression_datasets_are_seeded_float32_with_float_targets(name):
    info = DATASETS[name]
    a, b, c = info.load(0, {}), info.load(0, {}), info.load(1, {})
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.float32 and a.n_classes == 0 and a.regression
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_train, c.y_train)  # another seed: another split (and teacher)
    targets = np.concatenate([a.y_train, a.y_test])
    assert abs(targets.mean()) < 0.5 and 0.5 < targets.std() < 2  # on the scale of unit-variance outputs


def test_digits_are_the_bundled_8x8_images_scaled_to_unit_range():
    data = DATASETS["digits"].load(0, {})
    assert data.input_shape == (64,) and data.n_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0


def test_synthetic_options_shape_the_data():
    data = DATASETS["synthetic"].load(0, {"n_samples": 100, "n_features": 7, "n_classes": 4})
    assert data.input_shape == (7,) and data.n_classes == 4 and len(data.x_train) == 80


def test_unknown_or_mistyped_dataset_options_are_rejected():
    with pytest.raises(InputError, match="unknown option 'size' for dataset 'xor'; expected one of"):
        DATASETS["xor"].load(0, {"size": 3})
    with pytest.raises(InputError, match="must be of type int"):
        DATASETS["xor"].load(0, {"n_samples": "many"})
    with pytest.raises(InputError, match=r"must be in \(0, 1\)"):
        DATASETS["digits"].load(0, {"test_fraction": 1.5})


def test_initial_weights_are_glorot_uniform_with_zero_bias_and_seeded():
    spec = Sequential([Dense(300, "relu", input_shape=(200,)), Dense(1, "sigmoid")]).compile("binary_crossentropy")
    w = initial_weights(spec, 0)
    limit = np.sqrt(6 / (200 + 300))
    kernel = w[0]["kernel"]
    assert kernel.shape == (200, 300) and kernel.dtype == np.float32
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.01 * limit
    assert not w[0]["bias"].any()
    np.testing.assert_array_equal(kernel, initial_weights(spec, 0)[0]["kernel"])
    assert not np.array_equal(kernel, initial_weights(spec, 1)[0]["kernel"])


def test_batch_plan_covers_each_epoch_once_in_seeded_order():
    plan = BatchPlan(n_samples=10, batch_size=4, epochs=2, seed=0)
    batches = list(plan.batches())
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert plan.steps_per_epoch == 3 and plan.total_steps == 6
    first_epoch = np.concatenate(batches[:3])
    assert sorted(first_epoch) == list(range(10))
    assert not np.array_equal(first_epoch, np.concatenate(batches[3:]))
    again = list(BatchPlan(10, 4, 2, 0).batches())
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_drop_last_and_max_steps():
    assert [len(b) for b in BatchPlan(10, 4, 2, 0, drop_last=True).batches()] == [4, 4, 4, 4]
    plan = BatchPlan(10, 4, 3, 0, max_steps=4)
    assert plan.total_steps == 4 and len(list(plan.batches())) == 4


def test_windows_hold_equal_batches_within_one_epoch():
    windows = list(BatchPlan(10, 2, 2, 0).windows(max_window_steps=3))
    assert [(w.epoch, w.first_step, w.steps) for w in windows] == [(0, 0, 3), (0, 3, 2), (1, 5, 3), (1, 8, 2)]
    flat = np.concatenate([w.indices.reshape(-1) for w in windows])
    expected = np.concatenate(list(BatchPlan(10, 2, 2, 0).batches()))
    np.testing.assert_array_equal(flat, expected)
