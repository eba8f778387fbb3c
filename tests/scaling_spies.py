"""Real data-parallel engines that also say what their trainers were handed,
for the end-to-end scaling tests (``tests/scale/test_scaling_end_to_end.py``):
each is a real backend (``spy-jax`` is JAX's engine, ...) whose trainer
records the global batch of every step the core gave it, and reports those
batches, the steps and the samples in its row's ``distributed`` entry beside
the engine's own facts. The row's batch, samples/s and scaling efficiency
are then checked against what the workers trained, not against what the
row says of itself."""

import dlbench
from dlbench_backends.jax import JaxBackend
from dlbench_backends.tensorflow import TensorflowBackend
from dlbench_backends.torch import TorchBackend


def recording(trainer):
    """``trainer`` with ``train`` recording each window's global batch, and
    ``distributed()`` reporting them: ``trained_batches`` (the distinct global
    batches), ``trained_steps`` and ``trained_samples``."""
    train, distributed, seen = trainer.train, trainer.distributed, []

    def recorded_train(indices):
        seen.append(tuple(indices.shape))
        return train(indices)

    def recorded_distributed():
        info = distributed()
        if info is None:
            return None
        return {**info, "trained_batches": sorted({batch for _, batch in seen}),
                "trained_steps": sum(steps for steps, _ in seen),
                "trained_samples": sum(steps * batch for steps, batch in seen)}

    trainer.train, trainer.distributed = recorded_train, recorded_distributed
    return trainer


def spy(base):
    class Spy(base):
        name = f"spy-{base.name}"

        def build(self, spec, weights, options):
            return recording(super().build(spec, weights, options))

    Spy.__name__ = Spy.__qualname__ = f"Spy{base.__name__}"
    return Spy


SPIES = tuple(spy(base) for base in (JaxBackend, TorchBackend, TensorflowBackend))


@dlbench.hookimpl
def dlbench_register_backends(registry):
    for backend in SPIES:
        registry.add(backend)
