"""The NumPy backend's mixed precision (:mod:`dlbench.network.precision`), the
reference every framework's is judged against.

:class:`Arithmetic` is how the network's matmuls round and sum: at bf16/fp16
every matmul and convolution operand is rounded to bfloat16/float16
(``ml_dtypes``), the products are exact in float32 and accumulate there;
parameters, optimizer state, the loss, BatchNorm statistics and the update
stay float32. The parity certificate's twins are other Arithmetics (another
summation order; matmul results and what flows between layers stored in
bf16/fp16; at tf32, every matmul operand rounded to TF32 as a GPU's tensor
cores do, :func:`round_tf32`).

:class:`LossScaler` is fp16's dynamic loss scaling: the gradient of the loss
is multiplied by the scale before backpropagation (so the rounded operands of
the backward matmuls are the scaled ones, as in every framework), the
gradients are checked for inf/NaN, divided by the scale and applied, or the
step is skipped; the scale follows the core's schedule (the trainer's
``_scaled_step``).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from dlbench.network.precision import LOSS_SCALE


def round_tf32(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to TF32 (float32's exponent, 10 of its 23 mantissa bits),
    to nearest with ties away from zero (the PTX conversion cuBLAS uses,
    ``cvt.rna.tf32.f32``), in ``x``'s own dtype. A product of two TF32 numbers
    is exact in float32, so operands rounded this way and multiplied in
    float32 are what a tensor core computes."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return rounded.astype(x.dtype, copy=False)


class Arithmetic:
    """How the network's matmuls (convolutions included, as im2col matmuls) and
    batch sums round: the reference's own, and the parity certificate's twins.

    * ``operands``: at mixed precision ("bfloat16" or "float16"), every matmul
      operand rounded to that dtype first (``ml_dtypes``); the products are then
      exact in float32 and accumulate there, the policy of
      :mod:`dlbench.network.precision`. "tfloat32": rounded to TF32 likewise (the
      certificate's twin at tf32; nothing else is stored rounded). None:
      operands as they are.
    * ``rounding``: at mixed precision, what else is stored in that dtype, as
      torch autocast and Keras's mixed policies keep it between layers (the
      certificate's twins; the reference is "operands"):

      - "operands": nothing else (the reference);
      - "results": every matmul result, every bias gradient (the frameworks
        take it from the same backward kernels), every layer's output and the
        gradient going into every layer's backward;
      - "outputs": the same but the matmul results, so a layer's output is
        rounded once, after its bias (the fused matmul-and-bias kernels);

      the layers inside a residual block are not rounded apart.
    * ``reverse``: every shared axis and batch sum taken in the opposite order,
      the same sums with other roundings, as another BLAS would give (and a
      max-pool's tied maximum routed to the last offset, not the first).
    * ``blocks``: every shared axis and batch sum cut into that many blocks,
      each summed on its own and the partial sums added pairwise: the order
      of a multi-threaded or vectorised kernel (TensorFlow's and XLA's
      reductions, oneDNN's), whose rounding of a long sum is not the
      sequential one's (0: not blocked). With ``reverse`` and float64, three
      blockings (3, 4, 16) give the certificate five samples of "another
      honest order": the near-ties each one flips are different ones.
    """

    def __init__(self, operands: str | None = None, rounding: str = "operands", reverse: bool = False,
                 blocks: int = 0):
        self.tf32 = operands == "tfloat32"
        self.operands = None if operands is None or self.tf32 else np.dtype(getattr(ml_dtypes, operands, operands))
        rounding = rounding if self.operands is not None else "operands"
        self.round_results = rounding == "results"
        self.round_outputs = rounding in ("results", "outputs")
        self.reverse, self.blocks = reverse, blocks
        #: operands as they are, sums in NumPy's own order (the reference at fp32, and float64):
        #: matmul and sum call NumPy at once, without the checks the others need (a batch-1 step is ~35 us)
        self.is_plain = self.operands is None and not self.tf32 and not reverse and not blocks

    def round(self, x: np.ndarray) -> np.ndarray:
        """``x`` rounded to the operand dtype (to nearest even; TF32 as tensor cores round), in ``x``'s own dtype."""
        if self.tf32:
            return round_tf32(x)
        return x if self.operands is None else x.astype(self.operands).astype(x.dtype)

    def store(self, x: np.ndarray) -> np.ndarray:
        """A layer's output, or the gradient going into a layer's backward, as
        the network keeps it: rounded unless ``rounding`` is "operands"."""
        return self.round(x) if self.round_outputs else x

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """a @ b (batched over leading axes), into ``out`` when given."""
        if self.is_plain:
            return np.matmul(a, b, out=out)
        a, b = self.round(a), self.round(b)
        if self.reverse:
            a, b = a[..., ::-1], b[..., ::-1, :]
        if self.blocks and a.shape[-1] >= self.blocks:
            z = _pairwise([np.matmul(a[..., part], b[..., part, :])
                           for part in _blocks(a.shape[-1], self.blocks)])
            if out is not None:
                out[...] = z
                z = out
        else:
            z = np.matmul(a, b, out=out)
        if self.round_results:
            z[...] = self.round(z)
        return z

    def sum(self, a: np.ndarray, axis, keepdims: bool = False) -> np.ndarray:
        """np.sum over ``axis`` (one axis or several), in the opposite order with ``reverse``."""
        if self.is_plain:  # np.sum's own reduction, without its Python wrappers
            return np.add.reduce(a, axis, keepdims=keepdims)
        if self.reverse:
            axes = (axis,) if isinstance(axis, int) else axis
            a = a[tuple(slice(None, None, -1) if i in axes or i - a.ndim in axes else slice(None)
                        for i in range(a.ndim))]
        if self.blocks:
            return _blocked_sum(a, axis, keepdims, self.blocks)
        return np.sum(a, axis=axis, keepdims=keepdims)

    def bias_grad(self, dz: np.ndarray) -> np.ndarray:
        """dE/db = sum over the batch of dE/dz (2-D), rounded like a layer's
        output unless ``rounding`` is "operands": the frameworks take it from
        the same backward kernel, in bf16/fp16."""
        g = self.sum(dz, 0)
        return self.round(g) if self.round_outputs else g


def _blocks(n: int, blocks: int) -> list[slice]:
    """``blocks`` consecutive slices covering range(n) (the first ones one longer)."""
    edges = [i * n // blocks for i in range(blocks + 1)]
    return [slice(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]


def _pairwise(parts: list[np.ndarray]) -> np.ndarray:
    """The partial sums added pairwise: ((p0 + p1) + (p2 + p3))."""
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _blocked_sum(a: np.ndarray, axis, keepdims: bool, blocks: int) -> np.ndarray:
    """np.sum over ``axis`` with the reduced elements cut into ``blocks`` blocks, summed pairwise."""
    axes = tuple(sorted(ax % a.ndim for ax in ((axis,) if isinstance(axis, int) else axis)))
    kept = [i for i in range(a.ndim) if i not in axes]
    flat = np.moveaxis(a, axes, range(len(axes))).reshape(-1, *[a.shape[i] for i in kept])
    total = _pairwise([flat[part].sum(axis=0) for part in _blocks(len(flat), blocks)])
    return np.expand_dims(total, axes) if keepdims else total


#: float32 (or float64) as it is: the reference at fp32
PLAIN = Arithmetic()


class LossScaler:
    """fp16's loss scale and the steps it takes (the module API's loss scaler,
    ``docs/backends/module-api.md``): ``scale(loss)`` is what backpropagation
    differentiates (this backend backpropagates by hand, seeding the gradient
    of the logits with ``scale(1.0)``), ``unscale(grads)`` divides the flat
    gradient buffer by the scale in place when all of it is finite and says
    whether it overflowed, ``update(overflow)`` moves the scale on the core's
    schedule; ``state()`` is (scale, finite steps in a row), ``load`` sets it."""

    def __init__(self):
        self.current = LOSS_SCALE.start()

    def scale(self, loss):
        return loss * self.current[0]

    def unscale(self, grads: np.ndarray) -> tuple[np.ndarray, bool]:
        overflow = not bool(np.isfinite(grads).all())
        if not overflow:
            grads *= np.float32(1.0 / self.current[0])
        return grads, overflow

    def update(self, overflow: bool) -> None:
        self.current = LOSS_SCALE.next(*self.current, not overflow)

    def state(self) -> tuple[float, int]:
        return self.current

    def load(self, state: tuple[float, int]) -> None:
        self.current = tuple(state)
