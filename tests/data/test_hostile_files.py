"""Data files that are not what they claim: only regular files are opened
(a symlink to /dev/zero, a FIFO, a folder are refused before a byte is
read), and every array's size is checked against its header before its
data is read. A hang would be the bug, so each test runs under an alarm."""

import gzip
import io
import os
import signal
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.data.sequences import read_token_file
from dlbench.errors import InputError

DATASETS = {info.name: info for info in BUILTIN_DATASETS}
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def no_hang():
    """Fail, instead of hanging, where a read would never finish."""
    def timed_out(*_):
        raise TimeoutError("the read did not finish in 20 s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def idx_bytes(shape, data: bytes) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + data


def idx_folder(folder, replace: dict | None = None):
    shapes = {"train-images-idx3-ubyte": (4, 2, 2), "train-labels-idx1-ubyte": (4,),
              "t10k-images-idx3-ubyte": (2, 2, 2), "t10k-labels-idx1-ubyte": (2,)}
    for name, shape in shapes.items():
        if name not in (replace or {}):
            (folder / name).write_bytes(idx_bytes(shape, bytes(int(np.prod(shape)))))
    for name, make in (replace or {}).items():
        make(folder / name)
    return folder


def fifo(path):
    os.mkfifo(path)


def to_dev_zero(path):
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
@pytest.mark.parametrize("make, kind", [(to_dev_zero, "a character device"), (fifo, "a FIFO"),
                                        (os.mkdir, "a folder")], ids=["dev-zero", "fifo", "folder"])
def test_idx_files_that_are_not_regular_files_are_refused(tmp_path, name, make, kind):
    folder = idx_folder(tmp_path, {name: make})
    for read in (DATASETS["idx"].describe, DATASETS["idx"].load):
        with pytest.raises(InputError, match=f"{name}: IDX file is {kind}; expected a regular file"):
            read(0, {"path": str(folder)})


def test_a_symlink_to_a_regular_idx_file_is_read(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    idx_folder(real)
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in IDX_NAMES:
        (linked / name).symlink_to(real / name)
    assert DATASETS["idx"].load(0, {"path": str(linked)}).x_train.shape == (4, 2, 2, 1)


def test_a_gzip_idx_longer_than_its_header_says_is_refused_without_reading_it_all(tmp_path):
    bomb = gzip.compress(idx_bytes((4, 2, 2), bytes(64 << 20)), compresslevel=1)
    folder = idx_folder(tmp_path, {"train-images-idx3-ubyte.gz": lambda p: p.write_bytes(bomb)})
    (folder / "train-images-idx3-ubyte").unlink()
    with pytest.raises(InputError, match="IDX data holds more than 16 bytes, its header says 16"):
        DATASETS["idx"].describe(0, {"path": str(folder)})


def test_an_idx_header_claiming_more_than_the_file_holds_is_refused(tmp_path):
    folder = idx_folder(tmp_path, {"train-images-idx3-ubyte":
                                   lambda p: p.write_bytes(idx_bytes((2 ** 31 - 1, 2 ** 31 - 1, 2), b"abc"))})
    with pytest.raises(InputError, match="IDX data holds 3 bytes, its header says 9223372028264841218"):
        DATASETS["idx"].load(0, {"path": str(folder)})


def npy_bytes(header: dict, data: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + data


def npz_with(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for key, data in members.items():
            archive.writestr(key + ".npy", data)


def small_arrays() -> dict[str, np.ndarray]:
    return {"x_train": np.ones((4, 3), np.float32), "y_train": np.array([0, 1, 0, 1]),
            "x_test": np.ones((2, 3), np.float32), "y_test": np.array([0, 1])}


@pytest.mark.parametrize("make, kind", [(to_dev_zero, "a character device"), (fifo, "a FIFO"),
                                        (os.mkdir, "a folder")], ids=["dev-zero", "fifo", "folder"])
def test_npz_and_token_files_that_are_not_regular_files_are_refused(tmp_path, make, kind):
    for name in ("d.npz", "tokens.npy", "tokens.npz"):
        make(tmp_path / name)
    for read in (DATASETS["npz"].describe, DATASETS["npz"].load):
        with pytest.raises(InputError, match=f"d.npz: .npz file is {kind}; expected a regular file"):
            read(0, {"path": str(tmp_path / "d.npz")})
    for name in ("tokens.npy", "tokens.npz"):
        with pytest.raises(InputError, match=f"{name}: token file is {kind}; expected a regular file"):
            read_token_file(str(tmp_path / name), 0.1)


def test_an_npz_member_whose_header_claims_terabytes_is_refused_before_reading(tmp_path):
    arrays = small_arrays()
    members = {}
    for key, array in arrays.items():
        out = io.BytesIO()
        np.save(out, array)
        members[key] = out.getvalue()
    members["x_train"] = npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 3)}, bytes(48))
    npz_with(tmp_path / "d.npz", members)
    for read in (DATASETS["npz"].describe, DATASETS["npz"].load):
        with pytest.raises(InputError, match="x_train holds 48 bytes of data, its header says 12000000000000"):
            read(0, {"path": str(tmp_path / "d.npz")})


def test_a_token_stream_whose_header_claims_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes({"descr": "<i8", "fortran_order": False, "shape": (10 ** 12,)}, bytes(16)))
    with pytest.raises(InputError, match="the token stream holds 16 bytes of data, its header says 8000000000000"):
        read_token_file(str(path), 0.1)


def test_a_run_on_a_fifo_npz_is_one_line_and_exit_2(tmp_path):
    os.mkfifo(tmp_path / "d.npz")
    scenario = tmp_path / "s.toml"
    scenario.write_text('[data]\nname = "npz"\npath = "d.npz"\n[model]\ninput_shape = [3]\n'
                        'layers = [{ type = "dense", units = 2, activation = "softmax" }]\n'
                        '[train]\nloss = "categorical_crossentropy"\n')
    result = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", str(scenario), "--backend",
                             "numpy", "--in-process", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "d.npz: .npz file is a FIFO; expected a regular file" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
