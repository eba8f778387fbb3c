"""The backend kit: dlbench's contract suite, shipped so that a backend
plugin's author runs the very tests the built-ins pass::

    pytest --pyargs dlbench.plugin.testing --dlbench-backend NAME
    python -m dlbench.plugin.testing NAME          # the same

Every test runs under each backend picked (``--dlbench-backend``, repeatable
or a comma list; default: every registered backend): weights in and out,
options, training like the NumPy reference (dense, conv, pooling,
BatchNormalization, dropout, sequence, Transformer, residual and
bidirectional layers), the optimizer update, the training state the
certificate needs, inference, mixed precision. A test needing what a backend
does not declare (a mode, a precision, a layer it cannot build, a training
state it does not export) skips, saying which and why
(:mod:`~dlbench.plugin.testing.fixtures`). The modules import no framework.

Helpers for a plugin's own tests: :mod:`~dlbench.plugin.testing.helpers`
(``require_backend``, ``toy_data``), :mod:`~dlbench.plugin.testing.like_numpy`
(``assert_trains_like_numpy``), :mod:`~dlbench.plugin.testing.networks`.
"""
