"""The repository's run of the backend contract suite: the shipped kit's
tests (:mod:`dlbench.plugin.testing`, collected here through the
``test_kit_*.py`` modules, once each) and the framework-specific tests of this
folder run under the four built-ins, or the backends ``--dlbench-backend``
names (an installed plugin's kit run is a process of its own:
tests/test_paddle_kit.py). Unlike a plugin author's kit run, nothing a
built-in does not implement is skipped: a NotImplementedError fails. A backend whose framework
is missing is skipped; one whose plugin failed to load fails."""

import importlib.util

import pytest

from backend_helpers import BUILT_INS  # checked in-process unless --dlbench-backend names others
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.testing.fixtures import OPTION_DEST, backend, compared_backend  # noqa: F401
from dlbench.plugin.testing.fixtures import parametrize_backends, selected_backends
from dlbench.plugin.testing.networks import BUILD_CASES
from dlbench.network.init import initial_weights
from dlbench.errors import InputError




def pytest_generate_tests(metafunc):
    named = metafunc.config.getoption(OPTION_DEST, default=None)
    names = selected_backends(metafunc.config)
    parametrize_backends(metafunc, names if named else [name for name in names if name in BUILT_INS])


@pytest.fixture
def restore_process_settings(compared_backend):
    """Precision and determinism are process-wide in torch and TensorFlow: after
    the test, a default build pins them back, and TensorFlow's determinism,
    which no build switches off, is switched off, so later tests run as usual."""
    yield
    spec = BUILD_CASES["tanh-adam"]
    compared_backend.build(spec, initial_weights(spec, 0), TrainerOptions())
    if compared_backend.name == "tensorflow":
        from tensorflow.python.framework import config  # the only way back; the public API has none

        config.disable_op_determinism()


@pytest.fixture
def also_imported() -> dict[str, tuple[str, ...]]:
    """What importing each built-in's framework brings in besides ``Backend.module``."""
    return {"tensorflow": ("keras",)}


@pytest.fixture
def gpu_refusals() -> dict[str, tuple]:
    """How each built-in refuses a GPU it does not have."""
    return {"torch": (InputError, "no CUDA GPU"), "tensorflow": (RuntimeError, "no GPU"),
            "jax": (RuntimeError, "no gpu device")}


@pytest.fixture(autouse=True, scope="module")
def _jax_compiles_each_program_once(tmp_path_factory):
    """JAX compiles a trainer's programs anew for every trainer (new closures), a
    second or two per network, and this suite builds the same network again and
    again (the same seed twice, state round trips, settings, one evaluation per
    trainer): with JAX's persistent compilation cache, in a folder of this
    session, an identical program compiles once. A cache hit is the executable
    the compile would give. On only while this suite's modules run: the other
    tests, subprocesses and the product compile as they always do."""
    if importlib.util.find_spec("jax") is None:
        yield
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.getbasetemp() / "jax-compilation-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
