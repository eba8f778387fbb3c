"""The JAX backend's hand-written gradients, for XLA:CPU.

Gradients (option ``custom_vjp``, on CPU by default): XLA:CPU runs a
convolution on its Eigen kernels only in the form the forward pass uses
(batch first, features last, kernel (..., in, out)). JAX's transpose rules for the
gradients emit batch/feature-swapped dimension numbers, which XLA:CPU
rewrites into that form in the entry computation only: inside the
window's while loop they ran as naive loops, 9-13x slower per step on the
shipped CNNs. So the conv's VJP is written as two more convolutions in that
form with explicit transposes (see :func:`make_conv`), and the max-pool's
(whose select_and_scatter XLA:CPU expands into a slow scatter) as strided
pads of where(first maximum, g, 0) (see :func:`make_max_pool`); both equal
JAX's own gradients, first-maximum tie rule included. On GPUs JAX's rules
are kept: XLA maps them to cuDNN's backward kernels.
"""

import itertools

import jax
import jax.numpy as jnp
from jax import lax


def make_conv(in_shape, kernel_size, strides, pads, precision, custom_vjp: bool = True):
    """conv(x, kernel) for x (batch, *spatial, C) and kernel (*kernel_size, C, F).

    With ``custom_vjp``, the gradients are written as two more convolutions
    in the same channels-last form (batch first, features last, kernel
    (*spatial, in, out), no window reversal), with explicit transposes:

        dE/dx: conv(dE/dy, flip(K) with in/out swapped), input dilated by the
               strides, padded by (k - 1 - before, ...), i.e. the transposed conv;
        dE/dK: conv(x as (C, *spatial, batch), dE/dy as (*out, batch, F)),
               kernel dilated by the strides -> (C, *k, F), transposed back.

    XLA:CPU runs only that form on its Eigen convolution kernels; JAX's own
    transpose rules emit feature/batch-swapped dimension numbers, which XLA
    rewrites to that form in the entry computation only, so inside the
    window's while loop they ran as naive loops, several times slower.
    """
    nd = len(kernel_size)
    numbers = ("NWC", "WIO", "NWC") if nd == 1 else ("NHWC", "HWIO", "NHWC")
    spatial = tuple(in_shape[:-1])
    out = tuple((n + pb + pa - k) // s + 1 for n, k, s, (pb, pa) in zip(spatial, kernel_size, strides, pads))
    # padded input positions the windows reach: the rest gets a zero gradient
    used = tuple((o - 1) * s + k for o, k, s in zip(out, kernel_size, strides))

    def forward(x, kernel):
        return precision.conv(x, kernel, strides, pads, dimension_numbers=numbers)

    if not custom_vjp:
        return forward

    def grad_input(g, kernel):
        flipped = jnp.swapaxes(jnp.flip(kernel, axis=tuple(range(nd))), -1, -2)  # (*k, F, C)
        lo = [k - 1 - pb for k, (pb, _) in zip(kernel_size, pads)]
        hi = [k - 1 + n + pb - u for k, n, (pb, _), u in zip(kernel_size, spatial, pads, used)]
        dx = precision.conv(g, flipped, (1,) * nd, [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)],
                            lhs_dilation=strides, dimension_numbers=numbers)
        if any(a < 0 or b < 0 for a, b in zip(lo, hi)):  # padding wider than the kernel: crop instead
            dx = dx[(slice(None), *(slice(max(-a, 0), max(-a, 0) + n) for a, n in zip(lo, spatial)))]
        return dx

    def grad_kernel(x, g):
        # the windows read padded positions [0, used): x's part of them, padded
        before = [min(pb, u) for u, (pb, _) in zip(used, pads)]
        ends = [min(max(u - pb, 0), n) for n, u, (pb, _) in zip(spatial, used, pads)]
        if 0 in ends:  # every window lies in the padding
            return jnp.zeros((*kernel_size, x.shape[-1], g.shape[-1]), g.dtype)
        if any(e < n for e, n in zip(ends, spatial)):
            x = x[(slice(None), *(slice(0, e) for e in ends))]
        padding = [(b, u - b - e) for u, b, e in zip(used, before, ends)]
        lhs = jnp.transpose(x, (nd + 1, *range(1, nd + 1), 0))  # (C, *spatial, B)
        rhs = jnp.transpose(g, (*range(1, nd + 1), 0, nd + 1))  # (*out, B, F)
        dk = precision.conv(lhs, rhs, (1,) * nd, padding, rhs_dilation=strides,
                            dimension_numbers=numbers)  # (C, *k, F)
        return jnp.transpose(dk, (*range(1, nd + 1), 0, nd + 1))

    conv = jax.custom_vjp(forward)
    conv.defvjp(lambda x, kernel: (forward(x, kernel), (x, kernel)),
                lambda res, g: (grad_input(g, res[1]), grad_kernel(res[0], g)))
    return conv


def make_max_pool(in_shape, pool_size, strides, custom_vjp: bool = True):
    """pool(x): the maximum of every window, lax.reduce_window.

    Its gradient goes to the first maximum of each window in row-major
    order, as NumPy's argmax. JAX's own rule (XLA select_and_scatter with >=,
    also the first maximum) is expanded by XLA:CPU into a scatter that took
    most of a small CNN's step; with ``custom_vjp`` the gradient is instead
    found offset by offset (the first offset holding the window's maximum,
    by strict comparisons of the window's own slices) and put back with
    strided (interior) lax.pads: pool_size elementwise passes that XLA fuses.
    """
    window, wstrides = (1, *pool_size, 1), (1, *strides, 1)
    spatial = tuple(in_shape[:-1])
    out = tuple((n - k) // s + 1 for n, k, s in zip(spatial, pool_size, strides))

    def forward(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, window, wstrides, "VALID")

    if not custom_vjp:
        return forward

    def backward(x, g):
        # which offset of each window holds its first maximum, found from the window
        # slices themselves (strictly greater wins, so ties go to the first): never by
        # equality with the forward's maximum, which XLA may compute in a fusion of its
        # own, one rounding away (after a BatchNormalization, say), dropping gradients
        offsets = list(itertools.product(*(range(k) for k in pool_size)))
        slices = []
        for offset in offsets:
            extent = [a + (o - 1) * s + 1 for a, o, s in zip(offset, out, strides)]
            slices.append((offset, extent, lax.slice(x, (0, *offset, 0), (x.shape[0], *extent, x.shape[-1]),
                                                     wstrides)))
        best, first = slices[0][2], jnp.zeros(slices[0][2].shape, jnp.int32)
        for k, (_, _, values) in enumerate(slices[1:], start=1):
            better = values > best
            best, first = jnp.where(better, values, best), jnp.where(better, k, first)
        dx = None
        for k, (offset, extent, _) in enumerate(slices):
            spread = lax.pad(jnp.where(first == k, g, 0.0), jnp.zeros((), g.dtype),
                             [(0, 0, 0), *((a, n - e, s - 1) for a, n, e, s in zip(offset, spatial, extent, strides)),
                              (0, 0, 0)])
            dx = spread if dx is None else dx + spread
        return (dx,)

    def forward_with_residuals(x):
        return forward(x), x

    pool = jax.custom_vjp(forward)
    pool.defvjp(forward_with_residuals, backward)
    return pool
