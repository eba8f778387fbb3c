"""The backend contract suite runs every test under every registered backend
(as Keras 3's ops tests run under each backend): ``backend`` is each of them,
``compared_backend`` each but the NumPy reference, for the tests that compare
a backend with it. A backend whose framework is missing is skipped; one whose
plugin failed to load fails (see ``backend_helpers.require_backend``)."""

import importlib.util

import pytest

from backend_helpers import require_backend
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.network.init import initial_weights
from networks import BUILD_CASES

BACKENDS = list(get_plugins().backends)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return require_backend(request.param)


@pytest.fixture(params=[name for name in BACKENDS if name != REFERENCE_BACKEND])
def compared_backend(request):
    return require_backend(request.param)


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
