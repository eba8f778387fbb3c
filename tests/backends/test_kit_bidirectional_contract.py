"""The shipped kit's tests of :mod:`dlbench.plugin.testing.test_bidirectional_contract`, run here over the built-ins."""

from dlbench.plugin.testing.test_bidirectional_contract import *  # noqa: F401,F403
