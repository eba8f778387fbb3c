"""A minimal dlbench backend: dense networks in plain NumPy, written from the
contract alone (``dlbench.plugin.backend``; nothing from ``dlbench_backends``).

It passes the core tier of the backend kit (weights in and out, options,
training like the NumPy reference, the optimizer update) and declares nothing
more, so the kit skips the rest, saying why: no ``"inference"`` in ``modes``
(no ``predict``), no bf16/fp16 in ``precisions``, no training state exported
(no certificate tier), and a ``NotImplementedError`` naming any layer but
``dense`` and ``activation``. Check it with::

    pytest --pyargs dlbench.plugin.testing --dlbench-backend template
"""

from __future__ import annotations

import dlbench
from dlbench.network import ModelSpec
from dlbench.plugin.backend import Backend, Trainer, TrainerOptions


class TemplateBackend(Backend):
    name = "template"
    module = "numpy"  # the framework it imports: its availability is that package's
    distributions = ("dlbench-template-backend", "numpy")
    pip_install = "pip install ./examples/template_backend"
    description = "the kit's template: dense networks in plain NumPy"
    modes = ("train",)
    precisions = ("fp32", "tf32")  # tf32 is fp32 on a CPU

    def build(self, spec: ModelSpec, weights, options: TrainerOptions) -> Trainer:
        from dlbench_template.trainer import TemplateTrainer

        self.check_options(options.extra)  # none: any option is refused, naming it
        return TemplateTrainer(spec, weights, options)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    registry.add(TemplateBackend)
