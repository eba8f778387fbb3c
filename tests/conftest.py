import os

import pytest

# One thread for every framework in this test process, set before any of them
# is imported: XLA fixes its thread pool when JAX starts, and the order of
# floating-point sums (hence the last bits of a parity check) depends on it.
for _name, _value in {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                      "PJRT_NPROC": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}.items():
    os.environ.setdefault(_name, _value)

from dlbench.plugin.testing.fixtures import data_cache  # noqa: E402,F401  (one copy of each dataset per process)


@pytest.fixture(autouse=True, scope="session")
def _private_peak_cache(tmp_path_factory):
    """Runs measure and cache the machine peak; keep that cache out of the user's home."""
    old = os.environ.get("DLBENCH_CACHE")
    os.environ["DLBENCH_CACHE"] = str(tmp_path_factory.mktemp("dlbench-cache"))
    yield
    if old is None:
        os.environ.pop("DLBENCH_CACHE", None)
    else:
        os.environ["DLBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def _path_without_srun(tmp_path_factory):
    """PATH with every folder that holds ``srun`` replaced by a copy of its
    links without it: a machine without Slurm, as submitit and dlbench judge
    it (an ``srun`` on the PATH), where Slurm is installed (CI installs it)."""
    path = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and os.path.exists(os.path.join(folder, "srun")):
            shadow = tmp_path_factory.mktemp("path-without-srun")
            for name in os.listdir(folder):
                if name != "srun":
                    os.symlink(os.path.join(folder, name), shadow / name)
            folder = str(shadow)
        path.append(folder)
    return os.pathsep.join(path)


@pytest.fixture(autouse=True)
def _no_slurm_unless_asked(request, monkeypatch, _path_without_srun):
    """Every test sees a machine without Slurm but those of a real cluster
    (the ``slurm`` fixture of tests/scale/test_slurm_cluster.py)."""
    if "slurm" not in request.fixturenames:
        monkeypatch.setenv("PATH", _path_without_srun)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """A real NumPy run of the default scenarios, as ``dlbench run`` writes it."""
    from click.testing import CliRunner

    from dlbench.cli import main

    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(main, ["run", "--backend", "numpy", "--steps", "40", "--in-process",
                                       "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return next(out.glob("*/*.json"))


@pytest.fixture
def mutants(monkeypatch):
    """The deliberately wrong backends of ``mutant_plugins`` registered (in this process and its workers)."""
    from dlbench.plugin import manager

    monkeypatch.setenv("DLBENCH_PLUGINS", "mutant_plugins")
    manager.get_plugins.cache_clear()
    yield
    manager.get_plugins.cache_clear()
