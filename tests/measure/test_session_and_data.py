"""The one trainer set-up, dataset metadata, the run's shared data cache, and
the progress a worker reports."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlbench.data.base import DatasetMeta
from dlbench.data.batches import BatchPlan
from dlbench.data.builtin import BUILTIN_DATASETS
from dlbench.data.cache import cached_load
from dlbench.errors import InputError
from dlbench.plugin.manager import get_plugins
from dlbench.run import isolation
from dlbench.run.checks import check_against_data
from dlbench.run.settings import RunSettings
from dlbench.measure.timing import train_and_measure
from dlbench.run.worker import progress_writer
from dlbench.scenario import resolve_scenario


def write_scenario(folder: Path, data: str, input_shape: list, units: int = 10, name: str = "s") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f"[data]\n{data}\n[model]\ninput_shape = {input_shape}\n"
                    f'layers = [{{ type = "dense", units = {units}, activation = "softmax" }}]\n'
                    '[train]\nloss = "categorical_crossentropy"\nbatch_size = 8\n')
    return path


class SteppingClock:
    """A fake clock that each training step advances by half a second."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class SteppingTrainer:
    def __init__(self, clock):
        self.clock = clock

    def train(self, indices):
        self.clock.now += 0.5 * len(indices)
        return np.zeros(len(indices), np.float32)

DATASETS = {info.name: info for info in BUILTIN_DATASETS}
GENERATED = [(name, options) for name in ("xor", "moons", "spirals", "blobs", "digits", "synthetic", "mnist1d")
             for options in ({}, {"spatial": True}) if options == {} or "spatial" in DATASETS[name].defaults]


@pytest.mark.parametrize("name, options", GENERATED, ids=[f"{n}{'-spatial' if o else ''}" for n, o in GENERATED])
def test_every_builtin_dataset_declares_what_it_loads(name, options):
    info = DATASETS[name]
    assert info.describer is not None
    assert info.describe(3, options) == DatasetMeta.of(info.load(3, options))


@pytest.mark.parametrize("name, options, message", [
    ("xor", {"n_samples": 2}, "data.n_samples: must be at least 4, got 2"),
    ("spirals", {"n_classes": 1}, "data.n_classes: must be at least 2, got 1"),
    ("synthetic", {"test_fraction": 1.5}, "data.test_fraction: must be in (0, 1), got 1.5"),
    ("mnist1d", {"num_samples": 10}, "data.num_samples: must be at least 100, got 10"),
])
def test_a_description_checks_the_options_as_loading_does(name, options, message):
    for step in (DATASETS[name].describe, DATASETS[name].load):
        with pytest.raises(InputError) as err:
            step(0, options)
        assert message in str(err.value)


def _npz(path, **replace):
    arrays = dict(x_train=np.ones((6, 2, 3), np.float32), y_train=np.array([0, 1, 4, 1, 0, 1]),
                  x_test=np.ones((2, 2, 3), np.float32), y_test=np.array([0, 1]))
    np.savez(path, **{**arrays, **replace})
    return str(path)


def test_npz_is_described_from_its_headers_without_loading_the_features(tmp_path, monkeypatch):
    path = _npz(tmp_path / "d.npz")
    loaded = {}
    real_load = np.load

    def spying_load(*args, **kwargs):
        archive = real_load(*args, **kwargs)
        original = archive.__getitem__
        archive.__class__ = type("Spy", (type(archive),), {"__getitem__": lambda self, key: (
            loaded.setdefault(key, True), original(key))[1]})
        return archive

    monkeypatch.setattr(np, "load", spying_load)
    meta = DATASETS["npz"].describe(0, {"path": path})
    assert meta == DatasetMeta((2, 3), 5, 6, 2)
    assert set(loaded) == {"y_train", "y_test"}  # the labels only: the features stay on disk


@pytest.mark.parametrize("replace, message", [
    (dict(x_train=np.zeros((0, 3), np.float32), y_train=np.zeros(0, np.int64)), "x_train has no samples"),
    (dict(x_test=np.array([["a", "b"]] * 2)), "x_test holds <U1 values; expected numbers"),  # no regex specials
    (dict(y_train=np.array([0, 1, 2])), "6 train samples but 3 labels"),
    (dict(y_test=np.array([-1, 1])), "test labels must be a 1-D array of non-negative integers"),
    (dict(y_test=np.array([0.5, 1.0])), "y_train holds int64 and y_test float64 values; both class labels"),
    (dict(y_train=np.ones((6, 2, 2))), r"y_train has shape \(6, 2, 2\); float targets are \(samples,\) or"),
    (dict(y_train=np.full(6, np.nan)), "y_train holds NaN or infinite values"),
    (dict(x_train=np.array([object()] * 6, dtype=object)), "cannot read .npz file: .*allow_pickle"),
])
def test_npz_description_refuses_what_loading_refuses(tmp_path, replace, message):
    path = _npz(tmp_path / "d.npz", **replace)
    for step in (DATASETS["npz"].describe, DATASETS["npz"].load):
        with pytest.raises(InputError, match=message):
            step(0, {"path": path})


def test_a_file_that_is_not_an_archive_is_an_input_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="bad.npz: cannot read .npz file"):
        DATASETS["npz"].describe(0, {"path": str(tmp_path / "bad.npz")})


@pytest.mark.parametrize("compress", [False, True])
def test_idx_is_described_from_its_headers(tmp_path, compress):
    from test_datafiles import mnist_folder

    mnist_folder(tmp_path, compress)
    for spatial, shape in ((True, (4, 5, 1)), (False, (20,))):
        options = {"path": str(tmp_path), "spatial": spatial}
        assert DATASETS["idx"].describe(0, options) == DatasetMeta.of(DATASETS["idx"].load(0, options))
        assert DATASETS["idx"].describe(0, options).input_shape == shape
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    raw = (tmp_path / name).read_bytes()
    import gzip
    data = gzip.decompress(raw) if compress else raw
    truncated = data[:-7]
    (tmp_path / name).write_bytes(gzip.compress(truncated) if compress else truncated)
    with pytest.raises(InputError, match=f"IDX data holds {len(truncated) - 16} bytes, its header says 120"):
        DATASETS["idx"].describe(0, {"path": str(tmp_path)})


def test_the_runner_checks_a_scenario_without_making_its_data(tmp_path, monkeypatch):
    plugins = get_plugins()

    def no_loading(*args, **kwargs):
        raise AssertionError("the runner loaded the data set")

    monkeypatch.setitem(plugins.datasets, "synthetic", dataclasses.replace(plugins.datasets["synthetic"],
                                                                           loader=no_loading))
    path = write_scenario(tmp_path, data='name = "synthetic"\nn_samples = 1000000\nn_features = 256',
                          input_shape=[256])
    check_against_data(resolve_scenario(str(path)), plugins)
    wrong = write_scenario(tmp_path, data='name = "synthetic"\nn_samples = 1000000\nn_features = 256',
                           input_shape=[255], name="wrong")
    with pytest.raises(InputError, match=r"\(255,\) does not match dataset 'synthetic', whose samples have "
                                         r"shape \(256,\)"):
        check_against_data(resolve_scenario(str(wrong)), plugins)


def test_the_cache_makes_a_dataset_once_and_maps_it_copy_on_write(tmp_path):
    calls = []
    info = dataclasses.replace(DATASETS["synthetic"], loader=lambda seed, **o: calls.append(seed) or
                               DATASETS["synthetic"].loader(seed, **o))
    first = cached_load(info, 1, {"n_samples": 100}, tmp_path)
    second = cached_load(info, 1, {"n_samples": 100}, tmp_path)
    other = cached_load(info, 2, {"n_samples": 100}, tmp_path)
    assert calls == [1, 2]
    direct = DATASETS["synthetic"].load(1, {"n_samples": 100})
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, name), getattr(direct, name))
        assert type(getattr(second, name)) is np.ndarray and getattr(second, name).dtype == getattr(direct, name).dtype
    assert second.n_classes == direct.n_classes and not np.array_equal(other.x_train, direct.x_train)
    first.x_train[:] = 0  # a backend writing to its arrays changes nothing for the next worker
    np.testing.assert_array_equal(cached_load(info, 1, {"n_samples": 100}, tmp_path).x_train, direct.x_train)
    assert not list(tmp_path.glob("*.partial"))


def test_a_run_makes_its_data_once_for_every_backend_and_repeat(tmp_path):
    log = tmp_path / "loads.log"
    scenario = write_scenario(tmp_path, data='name = "counted"', input_shape=[8], units=3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "DLBENCH_PLUGINS": "data_plugins",
           "DLBENCH_TEST_LOAD_LOG": str(log)}
    out = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", str(scenario), "--backend",
                          "numpy,torch", "--repeat", "2", "--steps", "4", "--threads", "1", "--format", "json",
                          "--out", str(tmp_path / "results")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["results"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    loads = log.read_text().split()
    assert len(loads) == 1, f"the data set was made {len(loads)} times"
    assert int(loads[0]) != os.getpid()  # and by a worker, not the runner


def test_training_reports_its_progress_after_each_window_outside_the_timer():
    clock, seen = SteppingClock(), []
    plan = BatchPlan(100, 10, epochs=2, seed=0)

    def progress(steps):
        seen.append(steps)
        clock.now += 100.0  # a slow progress report must not count as training time

    m = train_and_measure(SteppingTrainer(clock), plan, 4, clock=clock, progress=progress)
    assert seen == [1, 4, 8, 10, 14, 18, 20]  # the first step alone, the rest of its window, windows of 4 per epoch
    assert m.compile_seconds + m.steady_seconds == pytest.approx(20 * 0.5)


def test_the_runner_reads_a_workers_progress_while_it_runs(tmp_path):
    progress_file = tmp_path / "progress"
    writer = progress_writer(str(progress_file), 40)
    writer(10)
    assert progress_file.read_text() == "10 40"
    assert progress_writer("", 40) is None
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    seen = []
    assert isolation._wait(proc, None, progress_file, lambda done, total: seen.append((done, total)))
    assert seen and set(seen) == {(10, 40)}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not isolation._wait(proc, 0.3, progress_file, None)  # the timeout still holds
    finally:
        proc.kill()
        proc.wait()


def test_run_settings_derive_every_request_and_trainer_option():
    settings = RunSettings(scenarios={"xor-mlp": "xor-mlp"}, backends=["torch", "numpy"],
                           overrides={"max_steps": 5}, threads=2, precision="tf32", deterministic=True,
                           backend_options={"torch": {"compile": True}}, sweep={"batch_size": [4, 8]},
                           max_memory_mib=900, scenario_digests={"xor-mlp": "abc"})
    jobs = settings.jobs()
    assert [(j.request.backend, j.sweep_point) for j in jobs] == [
        ("numpy", {"batch_size": 4}), ("torch", {"batch_size": 4}),
        ("numpy", {"batch_size": 8}), ("torch", {"batch_size": 8})]
    torch_job = jobs[1].request
    assert torch_job.overrides == {"max_steps": 5, "batch_size": 4}
    assert (torch_job.threads, torch_job.max_memory_mib, torch_job.scenario_digest) == (2, 900, "abc")
    assert jobs[0].request.backend_options == {} and torch_job.backend_options == {"compile": True}
    options = torch_job.trainer_options("cpu", seed=7)
    assert (options.precision, options.deterministic, options.seed, options.extra) == ("tf32", True, 7,
                                                                                       {"compile": True})
