"""The backend kit's helpers (:mod:`dlbench.plugin.testing.helpers`) under the
name the repository's tests import them by: a backend or an honest skip, and a
small seeded data set."""

from dlbench.plugin.testing.helpers import require_backend, toy_data

__all__ = ["BUILT_INS", "in_process_backends", "require_backend", "toy_data"]

#: the backends this suite runs inside its own test processes. An installed plugin runs in processes of its
#: own (tests/test_paddle_kit.py): Paddle 3.3.1's library segfaults loading into a process that has imported
#: TensorFlow, and the test processes import every built-in framework.
BUILT_INS = ("numpy", "torch", "tensorflow", "jax")


def in_process_backends() -> list[str]:
    """The registered backends this suite may build in its own processes: the built-ins."""
    from dlbench.pytest_plugin import registered_backends

    return [name for name in registered_backends() if name in BUILT_INS]
