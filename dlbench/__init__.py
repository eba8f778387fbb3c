"""dlbench: one network spec, trained identically on NumPy, PyTorch, TensorFlow and JAX.

The core (this package) imports no framework; backends live in
``dlbench_backends`` and are loaded as pluggy plugins.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

from dlbench.spec import (
    Activation,
    Adam,
    Dense,
    ModelSpec,
    SGD,
    Sequential,
)

try:
    __version__ = version("dlbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("dlbench")

__all__ = [
    "Activation",
    "Adam",
    "Dense",
    "ModelSpec",
    "SGD",
    "Sequential",
    "hookimpl",
    "__version__",
]
