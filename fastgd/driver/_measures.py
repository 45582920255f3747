"""The per-step gradient bookkeeping of :func:`fastgd.driver.minimize` as one
fused Numba kernel (also the finiteness test of ``x0``).

:func:`_gradient_partials` is the pass itself and returns the sum of squares
rather than the norm, so partial results of several pieces of an array (the
chunks of a dask array, :func:`fastgd.dask.gradient_measures`) combine into the
measures of the whole; :func:`_gradient_measures` is the pass over one array.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from fastgd import kernel_cache


# The per-step bookkeeping, fused into one pass. ``reassoc`` lets LLVM vectorize
# the float64 sum; it changes only the summation order, never NaN semantics.
@kernel_cache.repair_on_damage
@numba.njit(error_model="numpy", cache=True, nogil=True, fastmath={"reassoc"})
def _gradient_partials(x, g, l1):
    """``(finite, optimality, sumsq)`` of the gradient ``g`` at ``x``, in float64.

    ``finite``: every ``g_i`` is finite. ``sumsq``: ``sum g_i**2``.
    ``optimality``: ``||g||_inf``, or for ``l1 > 0`` the inf-norm of the
    minimum-norm subgradient of ``f + l1 ||x||_1``: ``g_i + l1 sign(x_i)``
    where ``x_i != 0`` and ``max(|g_i| - l1, 0)`` where ``x_i == 0``.
    """
    big = 0.0
    sq = 0.0
    nan = False
    n = g.shape[0]
    for i in range(n):
        a = abs(np.float64(g[i]))
        nan = nan | (a != a)
        big = max(big, a)
        sq += a * a
    optimality = big
    if l1 > 0.0:
        optimality = 0.0
        for i in range(n):
            gi = np.float64(g[i])
            xi = x[i]
            if xi > 0:
                r = abs(gi + l1)
            elif xi < 0:
                r = abs(gi - l1)
            else:
                r = max(abs(gi) - l1, 0.0)
            optimality = max(optimality, r)
    return (not nan) and big < np.inf, optimality, sq


def _gradient_measures(x, g, l1):
    """``(finite, optimality, l2)`` of the gradient ``g`` at ``x`` (1-D arrays),
    in float64: :func:`_gradient_partials` with ``l2 = sqrt(sumsq)``, the
    gradient's L2 norm (``math.sqrt`` rounds correctly, as the kernel's did)."""
    finite, optimality, sq = _gradient_partials(x, g, l1)
    return finite, optimality, math.sqrt(sq)
