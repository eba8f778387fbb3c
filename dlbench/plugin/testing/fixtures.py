"""The pytest side of the kit: which backends a run checks, and the fixtures
and hooks that run every contract test under each of them (as Keras 3 runs
one ops test under each of its backends).

``--dlbench-backend NAME`` (repeatable, or a comma list; registered by the
``dlbench`` pytest plugin) picks the backends; without it, every registered
backend, those whose plugin failed to load included (so that the failure
shows). ``backend`` is each of them, ``compared_backend`` each but the NumPy
reference, for the tests that compare a backend with it.

The tiers: a test needing what a backend does not declare skips, saying
which tier and why (:func:`~dlbench.plugin.testing.helpers.require_precision`,
:func:`~dlbench.plugin.testing.helpers.require_mode`, and
:func:`skip_what_is_not_implemented` for the ``NotImplementedError`` the
contract raises for a layer a backend cannot build or a training state it
does not export); a backend whose framework is missing skips; one whose
plugin failed to load fails.
"""

from __future__ import annotations

import os

import pytest

from dlbench.network.init import initial_weights
from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.plugin.testing.helpers import require_backend
from dlbench.plugin.testing.networks import BUILD_CASES

#: pytest's destination of ``--dlbench-backend`` (see :mod:`dlbench.pytest_plugin`)
OPTION_DEST = "dlbench_backend"


def selected_backends(config: pytest.Config) -> list[str]:
    """The backends ``--dlbench-backend`` names, in the order given, or every
    registered one; a name no plugin registers is a usage error naming those that are."""
    plugins = get_plugins()
    known = [*plugins.backends, *(name for name in plugins.load_errors if name not in plugins.backends)]
    given = [name.strip() for value in config.getoption(OPTION_DEST, default=None) or []
             for name in value.split(",") if name.strip()]
    unknown = [name for name in given if name not in known]
    if unknown:
        raise pytest.UsageError(f"--dlbench-backend: no backend named {unknown[0]!r} is registered; "
                                f"registered: {', '.join(known)}")
    return list(dict.fromkeys(given)) or known


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that takes the kit's ``backend`` or ``compared_backend`` runs
    once per backend picked (a test module with a ``backend`` fixture of its
    own, one framework's, keeps it)."""
    parametrize_backends(metafunc, selected_backends(metafunc.config))


def parametrize_backends(metafunc: pytest.Metafunc, names: list[str]) -> None:
    """Parametrize the kit's ``backend`` fixture over ``names`` and ``compared_backend`` over all but the reference."""
    if is_the_kits(metafunc, "backend"):
        metafunc.parametrize("backend", names, indirect=True)
    if is_the_kits(metafunc, "compared_backend"):
        metafunc.parametrize("compared_backend", [name for name in names if name != REFERENCE_BACKEND],
                             indirect=True)


def is_the_kits(metafunc: pytest.Metafunc, fixture: str) -> bool:
    """Whether the test takes ``fixture`` and it resolves to this module's (the closest definition wins)."""
    definitions = metafunc._arg2fixturedefs.get(fixture) if fixture in metafunc.fixturenames else None
    return bool(definitions) and definitions[-1].func.__module__ == __name__


@pytest.fixture
def backend(request):
    """Each selected backend (a skip when its framework is missing, a failure when its plugin did not load)."""
    return require_backend(request.param)


@pytest.fixture
def compared_backend(request):
    """Each selected backend but the NumPy reference, for the tests that compare a backend with it."""
    return require_backend(request.param)


@pytest.fixture
def restore_process_settings(compared_backend):
    """Precision and determinism can be process-wide in a framework (torch's
    are): after the test, a default build pins them back, so later tests run
    as usual."""
    yield
    spec = BUILD_CASES["tanh-adam"]
    compared_backend.build(spec, initial_weights(spec, 0), TrainerOptions())


@pytest.fixture
def also_imported() -> dict[str, tuple[str, ...]]:
    """What importing a backend's framework brings in besides ``Backend.module``,
    by backend: none known here (the repository's conftest says keras for tensorflow)."""
    return {}


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> str:
    """The data folder a run's workers share (:mod:`dlbench.data.cache`), for the
    rows a test process runs in-process: each dataset is generated or read once
    per process, as once per run, instead of once per row."""
    return str(tmp_path_factory.mktemp("data-cache"))


@pytest.fixture
def gpu_refusals() -> dict[str, tuple]:
    """How a backend refuses a GPU it does not have, (error types, message
    pattern) by backend; unnamed ones may raise any InputError or RuntimeError
    (the repository's conftest names the built-ins')."""
    return {}


def backend_under_test(item: pytest.Function):
    return item.funcargs.get("backend") or item.funcargs.get("compared_backend")


def raised_by_predict(error: BaseException) -> bool:
    """Whether ``error`` was raised inside a ``predict`` (the innermost frame of its traceback)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "predict"


@pytest.hookimpl(wrapper=True)
def skip_what_is_not_implemented(pyfuncitem: pytest.Function):
    """The contract's NotImplementedError (a layer the backend cannot build, a
    training state it does not export, inference it does not run) is a tier
    the backend does not declare: a skip that quotes it. Not for the reference,
    nor for ``predict`` of a backend that lists ``"inference"`` in its modes."""
    try:
        return (yield)
    except NotImplementedError as error:
        backend = backend_under_test(pyfuncitem)
        if backend is None or backend.name == REFERENCE_BACKEND or (
                "inference" in backend.modes and raised_by_predict(error)):
            raise
        pytest.skip(f"{backend.name} does not implement this: {error}")


def pin_thread_pools(names: list[str]) -> None:
    """One thread in every pool the selected backends' frameworks read from the
    environment, before any of them starts (as ``dlbench run`` pins a worker's):
    the order of floating-point sums, hence the last bits compared, depends on
    it. Variables the user set are kept. ("gpu": the pools only, no device hidden.)"""
    plugins = get_plugins()
    for name in names:
        if name in plugins.backends:
            for key, value in plugins.backends[name].thread_environment(1, "gpu").items():
                os.environ.setdefault(key, value)
