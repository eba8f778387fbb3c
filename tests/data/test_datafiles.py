"""Loading the user's files (tested on small files written here) and MNIST-1D."""

import gzip
import re
import struct

import numpy as np
import pytest

from dlbench.data import files as datafiles
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.errors import InputError
from dlbench.scenario import load_scenario_file

DATASETS = {info.name: info for info in BUILTIN_DATASETS}


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def mnist_folder(tmp_path, compress):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (12, 4, 5), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 12, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 4, 5), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.array([0, 1, 2, 9, 3, 3], np.uint8)}
    for name, array in arrays.items():
        write_idx(tmp_path / (name + (".gz" if compress else "")), array, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_load_as_scaled_images(tmp_path, compress):
    arrays = mnist_folder(tmp_path, compress)
    data = DATASETS["idx"].load(0, {"path": str(tmp_path)})
    assert data.x_train.shape == (12, 4, 5, 1) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train[..., 0], arrays["train-images-idx3-ubyte"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, [0, 1, 2, 9, 3, 3])
    assert data.n_classes == 10
    flat = DATASETS["idx"].load(0, {"path": str(tmp_path), "spatial": False})
    assert flat.x_test.shape == (6, 20)


def test_idx_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'none'}: data.path: no such folder"):
        DATASETS["idx"].load(0, {"path": str(tmp_path / "none")})
    mnist_folder(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match="missing t10k-labels-idx1-ubyte"):
        DATASETS["idx"].load(0, {"path": str(tmp_path)})
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte: IDX data holds 3 bytes, its header says 9"):
        DATASETS["idx"].load(0, {"path": str(tmp_path)})
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(InputError, match="bad magic number"):
        DATASETS["idx"].load(0, {"path": str(tmp_path)})


def test_npz_loads_and_refuses_pickles(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.standard_normal((10, 3)), y_train=rng.integers(0, 3, 10),
             x_test=rng.standard_normal((4, 3)), y_test=np.array([0, 1, 2, 2]))
    data = DATASETS["npz"].load(0, {"path": str(path)})
    assert data.x_train.dtype == np.float32 and data.input_shape == (3,) and data.n_classes == 3
    pickled = tmp_path / "p.npz"
    np.savez(pickled, x_train=np.array([object()], dtype=object), y_train=np.zeros(1, int),
             x_test=np.zeros((1, 3)), y_test=np.zeros(1, int))
    with pytest.raises(InputError, match=f"{pickled}: cannot read .npz file: .*allow_pickle"):
        DATASETS["npz"].load(0, {"path": str(pickled)})
    with pytest.raises(InputError, match="missing arrays y_test"):
        np.savez(tmp_path / "m.npz", x_train=np.zeros((1, 2)), y_train=np.zeros(1, int), x_test=np.zeros((1, 2)))
        DATASETS["npz"].load(0, {"path": str(tmp_path / "m.npz")})
    with pytest.raises(InputError, match="cannot read .npz file"):
        DATASETS["npz"].load(0, {"path": str(tmp_path / "absent.npz")})
    with pytest.raises(InputError, match="data.path: give the path of the .npz file"):
        DATASETS["npz"].load(0, {})


def test_relative_data_paths_are_relative_to_the_scenario_file(tmp_path):
    (tmp_path / "sub").mkdir()
    scenario = tmp_path / "sub" / "s.toml"
    scenario.write_text('[data]\nname = "npz"\npath = "data/d.npz"\n[model]\ninput_shape = [3]\n'
                        'layers = [{ type = "dense", units = 3, activation = "softmax" }]\n'
                        '[train]\nloss = "categorical_crossentropy"\n')
    assert load_scenario_file(scenario).data_options["path"] == str(tmp_path / "sub" / "data" / "d.npz")


def test_mnist1d_is_generated_locally_with_the_reference_split():
    data = DATASETS["mnist1d"].load(0, {})
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.x_train.dtype == np.float32 and data.n_classes == 10
    again = DATASETS["mnist1d"].load(7, {"spatial": True})  # the scenario seed does not change the data
    assert again.input_shape == (40, 1)
    np.testing.assert_array_equal(again.x_train[..., 0], data.x_train)


def test_digits_as_images():
    data = DATASETS["digits"].load(0, {"spatial": True})
    flat = DATASETS["digits"].load(0, {})
    assert data.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(data.x_train.reshape(len(data.x_train), -1), flat.x_train)


@pytest.mark.parametrize("case, arrays, message", [
    ("empty training set", dict(x_train=np.zeros((0, 3), np.float32), y_train=np.zeros(0, np.int64)),
     "x_train has no samples; expected at least one"),
    ("empty test set", dict(x_test=np.zeros((0, 3), np.float32), y_test=np.zeros(0, np.int64)),
     "x_test has no samples; expected at least one"),
    ("string features", dict(x_train=np.array([["a", "b", "c"]] * 4)),
     "x_train holds <U1 values; expected numbers (a float or integer array)"),
], ids=["empty training set", "empty test set", "string features"])
def test_npz_that_cannot_train_is_an_input_error(tmp_path, case, arrays, message):
    good = dict(x_train=np.ones((4, 3), np.float32), y_train=np.array([0, 1, 0, 1]),
                x_test=np.ones((2, 3), np.float32), y_test=np.array([0, 1]))
    path = tmp_path / "data.npz"
    np.savez(path, **{**good, **arrays})
    with pytest.raises(InputError, match=re.escape(message)):
        datafiles.npz(0, str(path))


def test_npz_of_token_ids_stays_integer_with_a_label_per_sequence_or_per_token(tmp_path):
    """``tokens = true``: the ids of an embedding, not real numbers; a language model's labels per token."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 12, (10, 6))
    path = tmp_path / "lm.npz"
    np.savez(path, x_train=x[:8], y_train=np.roll(x, -1, 1)[:8], x_test=x[8:], y_test=np.roll(x, -1, 1)[8:])
    data = DATASETS["npz"].load(0, {"path": str(path), "tokens": True})
    assert data.x_train.dtype == data.y_train.dtype == np.int64 and data.y_train.shape == (8, 6)
    meta = DATASETS["npz"].describe(0, {"path": str(path), "tokens": True})
    assert (meta.input_shape, meta.input_dtype, meta.target_shape, meta.vocab_size) == ((6,), "int64", (6,),
                                                                                         int(x.max()) + 1)
    with pytest.raises(InputError, match="train labels must be a 1-D array"):  # real numbers' labels unless told
        DATASETS["npz"].describe(0, {"path": str(path)})


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=np.full((4, 3), 0.5)), "x_train must hold non-negative integers (token ids, class labels), "
                                         "got float64"),
    (dict(x_test=np.full((2, 3), -1)), "x_test must hold non-negative integers (token ids, class labels), got "
                                       "int64 down to -1"),
    (dict(x_train=np.ones((4, 3, 1), int)), "x_train has shape (4, 3, 1); token ids are (samples, length)"),
    (dict(y_train=np.ones((4, 2), int)), "y_train has shape (4, 2); labels of token ids are one per sequence "
                                         "(4,) or one per token (4, 3)"),
    (dict(x_test=np.ones((2, 5), int), y_test=np.ones(2, int)), "train and test differ in length"),
], ids=["floats", "negative id", "3-d ids", "labels of another length", "test of another length"])
def test_npz_token_ids_that_cannot_train_are_an_input_error(tmp_path, arrays, message):
    good = dict(x_train=np.ones((4, 3), int), y_train=np.array([0, 1, 0, 1]), x_test=np.ones((2, 3), int),
                y_test=np.array([0, 1]))
    path = tmp_path / "tokens.npz"
    np.savez(path, **{**good, **arrays})
    with pytest.raises(InputError, match=re.escape(message)):
        datafiles.npz(0, str(path), tokens=True)
