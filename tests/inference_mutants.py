"""Deliberately wrong predictions, each a slip that makes a backend's
inference faster or merely different, for the mutation test of the outputs
judge (``tests/run/test_inference.py``): a NumPy trainer whose ``predict`` skips
BatchNormalization, normalizes with the batch's statistics (the forgotten
``model.eval()``), or keeps dropout on. On a network with BatchNormalization
and Dropout the judge must say "disagrees" to every one."""

from dataclasses import replace

import numpy as np

from dlbench_backends.numpy import NumpyBackend
from dlbench_backends.numpy.kernels import BatchNormLayer, DropoutLayer
from dlbench_backends.numpy.trainer import NumpyTrainer


class MutantTrainer(NumpyTrainer):
    def layer_training(self, layer) -> bool | None:
        """True/False: run the layer in that mode; None: skip it."""
        return False

    def predict(self, indices):
        x = self.x_test[np.asarray(indices, np.intp)]
        for layer in self.net.layers:
            training = self.layer_training(layer)
            if training is not None:
                x = layer.forward(x, training)
        return x


class SkipsBatchNorm(MutantTrainer):
    def layer_training(self, layer):
        return None if isinstance(layer, BatchNormLayer) else False


class BatchStatistics(MutantTrainer):
    def layer_training(self, layer):
        return isinstance(layer, BatchNormLayer)


class KeepsDropout(MutantTrainer):
    def layer_training(self, layer):
        return isinstance(layer, DropoutLayer)


def mutant(trainer_class):
    class InferenceMutant(NumpyBackend):
        name = f"mutant-predict-{trainer_class.__name__.lower()}"
        description = "test-only: a NumPy backend whose predict computes something else"

        def build(self, spec, weights, options):
            return trainer_class(spec, weights, replace(options, extra=self.check_options(options.extra)))

    return InferenceMutant()


MUTANTS = [mutant(cls) for cls in (SkipsBatchNorm, BatchStatistics, KeepsDropout)]
