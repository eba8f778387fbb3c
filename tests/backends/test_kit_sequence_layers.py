"""The shipped kit's tests of :mod:`dlbench.plugin.testing.test_sequence_layers`, run here over the built-ins."""

from dlbench.plugin.testing.test_sequence_layers import *  # noqa: F401,F403
