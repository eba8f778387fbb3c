"""The backend kit's helpers (:mod:`dlbench.plugin.testing.helpers`) under the
name the repository's tests import them by: a backend or an honest skip, and a
small seeded data set."""

from dlbench.plugin.testing.helpers import require_backend, toy_data

__all__ = ["require_backend", "toy_data"]
