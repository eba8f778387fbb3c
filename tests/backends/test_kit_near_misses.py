"""The shipped kit's tests of :mod:`dlbench.plugin.testing.test_near_misses`, run here over the built-ins."""

from dlbench.plugin.testing.test_near_misses import *  # noqa: F401,F403
