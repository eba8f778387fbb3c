"""The shipped kit's tests of :mod:`dlbench.plugin.testing.test_training_state`, run here over the built-ins."""

from dlbench.plugin.testing.test_training_state import *  # noqa: F401,F403
