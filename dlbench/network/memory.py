"""How much memory training a spec needs at least, known before anything is allocated.

The estimate is a lower bound in float32 (4 bytes a value), so a model it
refuses cannot fit, whatever the framework:

* parameters: every parameter (moving statistics included) once, plus one
  gradient and the optimizer's state per trained parameter: 0 extra copies for
  plain SGD, 1 for SGD with momentum, 2 for Adam (first and second moments);
* activations: for one batch, the input and every layer's output, each kept for
  backpropagation, and one gradient of the same size as the largest of them.

Frameworks add workspace, caches and their own code on top; a model that
passes may still fail at run time, which ``--max-memory`` caps.
"""

from __future__ import annotations

import math

from dlbench.network.layers import is_trained

BYTES_PER_VALUE = 4


def optimizer_state_copies(optimizer) -> int:
    """Values of optimizer state per trained parameter."""
    return len(optimizer.slots)


def training_memory_bytes(spec, batch_size: int) -> dict[str, int]:
    """{"parameters": ..., "activations": ..., "total": ...} in bytes."""
    trained = other = 0
    for shapes in spec.param_shapes():
        for name, shape in shapes.items():
            if is_trained(name):
                trained += math.prod(shape)
            else:
                other += math.prod(shape)
    parameters = (trained * (2 + optimizer_state_copies(spec.optimizer)) + other) * BYTES_PER_VALUE
    sizes = [math.prod(spec.input_shape)] + [math.prod(out) for _, out in spec.shapes]
    activations = (sum(sizes) + max(sizes)) * batch_size * BYTES_PER_VALUE
    return {"parameters": parameters, "activations": activations, "total": parameters + activations}
