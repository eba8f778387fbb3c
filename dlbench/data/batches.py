"""The batch order every backend follows, derived from the scenario seed.

Each epoch is a fresh permutation of the training set, cut into batches of
``batch_size``; the last partial batch is kept unless ``drop_last``.
``max_steps`` stops training after that many optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from dlbench.network.init import STREAM_ORDER, rng_for


@dataclass(frozen=True)
class Window:
    """Consecutive steps of equal batch size inside one epoch: ``indices`` is (steps, batch)."""

    epoch: int
    first_step: int
    indices: np.ndarray

    @property
    def steps(self) -> int:
        return self.indices.shape[0]

    @property
    def batch_size(self) -> int:
        return self.indices.shape[1]

    @property
    def samples(self) -> int:
        return self.indices.size


@dataclass(frozen=True)
class BatchPlan:
    n_samples: int
    batch_size: int
    epochs: int
    seed: int
    drop_last: bool = False
    max_steps: int | None = None

    @property
    def steps_per_epoch(self) -> int:
        full, rest = divmod(self.n_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def total_steps(self) -> int:
        total = self.steps_per_epoch * self.epochs
        return total if self.max_steps is None else min(total, self.max_steps)

    def permutations(self) -> Iterator[np.ndarray]:
        rng = rng_for(self.seed, STREAM_ORDER)
        for _ in range(self.epochs):
            yield rng.permutation(self.n_samples)

    def batches(self) -> Iterator[np.ndarray]:
        """Every step's sample indices, in order."""
        for window in self.windows(max_window_steps=1):
            yield window.indices[0]

    def windows(self, max_window_steps: int) -> Iterator[Window]:
        """Steps grouped into windows of at most ``max_window_steps`` equal-size
        batches; a window never crosses an epoch end or a change of batch size."""
        step = 0
        for epoch, order in enumerate(self.permutations()):
            n_full = self.n_samples // self.batch_size
            full = order[: n_full * self.batch_size].reshape(n_full, self.batch_size)
            groups = [full[i:i + max_window_steps] for i in range(0, n_full, max_window_steps)]
            rest = order[n_full * self.batch_size:]
            if rest.size and not self.drop_last:
                groups.append(rest[None, :])
            for group in groups:
                if self.max_steps is not None:
                    group = group[: self.max_steps - step]
                if group.shape[0] == 0:
                    return
                yield Window(epoch, step, np.ascontiguousarray(group, dtype=np.int64))
                step += group.shape[0]
