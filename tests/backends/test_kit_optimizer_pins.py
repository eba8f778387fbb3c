"""The shipped kit's tests of :mod:`dlbench.plugin.testing.test_optimizer_pins`, run here over the built-ins."""

from dlbench.plugin.testing.test_optimizer_pins import *  # noqa: F401,F403
