"""Deliberately wrong data-parallel engines, for the mutation test of the
certificate across replicas (``tests/scale/test_data_parallel.py``): each is a real
backend with one slip of the kind a distributed engine can make. Each runs in
its own worker process, so patching the backend's module there touches no
other backend."""

import dlbench

from dlbench_backends.jax import JaxBackend
from dlbench_backends.torch import TorchBackend


class SummingAllReduce(JaxBackend):
    """Gradients summed over the replicas instead of averaged (N times the update under SGD)."""

    name = "mutant-dp-sum"

    def build(self, spec, weights, options):
        from jax import lax

        from dlbench_backends.jax import trainer

        def summed(value, stats, grads):
            return (*lax.pmean((value, stats), trainer.REPLICA_AXIS), lax.psum(grads, trainer.REPLICA_AXIS))

        trainer.replica_mean = summed
        return super().build(spec, weights, options)


class DriftingReplica(JaxBackend):
    """The last layer's gradients never all-reduced: each replica updates it
    from its own slice, and the replicas drift apart."""

    name = "mutant-dp-drift"

    def build(self, spec, weights, options):
        from jax import lax

        from dlbench_backends.jax import trainer

        def partial(value, stats, grads):
            last = max(i for i, layer in enumerate(grads) if layer)
            value, stats, synced = lax.pmean((value, stats, grads[:last]), trainer.REPLICA_AXIS)
            return value, stats, [*synced, *grads[last:]]

        trainer.replica_mean = partial
        return super().build(spec, weights, options)


class RepeatedSlice(TorchBackend):
    """Every replica takes the first slice of the global batch: samples repeat, the rest are never seen."""

    name = "mutant-dp-repeat"

    def build(self, spec, weights, options):
        from dlbench_backends.torch import trainer

        first = trainer.replica_slice
        trainer.replica_slice = lambda indices, rank, replicas: first(indices, 0, replicas)
        return super().build(spec, weights, options)


MUTANTS = (SummingAllReduce, DriftingReplica, RepeatedSlice)


@dlbench.hookimpl
def dlbench_register_backends(registry):
    for mutant in MUTANTS:
        registry.add(mutant)
