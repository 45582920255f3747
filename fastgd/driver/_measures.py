"""The per-step gradient bookkeeping of :func:`fastgd.driver.minimize` as one
fused Numba kernel (also the finiteness test of ``x0``).

:func:`_gradient_partials` is the pass itself and returns the sum of squares
rather than the norm, so partial results of several pieces of an array (the
chunks of a dask array, :func:`fastgd.dask.gradient_measures`) combine into the
measures of the whole; :func:`_gradient_measures` is the pass over one array.
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np

from fastgd import backends, kernel_cache
from fastgd.lbfgs._kernels import _CHUNKS, _chunking


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


@kernel_cache.repair_on_damage
@numba.njit(error_model="numpy", cache=True, nogil=True)
def _chunk_partials(x, g, l1, part, c, size):
    n = g.shape[0]
    lo, hi = c * size, min((c + 1) * size, n)
    finite, optimality, sq = _gradient_partials(x[lo:hi], g[lo:hi], l1)
    part[0, c] = 1.0 if finite else 0.0
    part[1, c] = optimality
    part[2, c] = sq


@kernel_cache.repair_on_damage
@numba.njit(error_model="numpy", cache=True, nogil=True)
def _combine(part, chunks):
    """The chunks' partials in chunk order: all finite, the largest
    optimality, the sum of squares."""
    finite = True
    optimality = 0.0
    sq = 0.0
    for c in range(chunks):
        finite = finite and part[0, c] == 1.0
        optimality = max(optimality, part[1, c])
        sq += part[2, c]
    return finite, optimality, sq


@kernel_cache.repair_on_damage
@numba.njit(error_model="numpy", cache=True, nogil=True)
def _partials_serial(x, g, l1, part):
    chunks, size = _chunking(g.shape[0])
    for c in range(chunks):
        _chunk_partials(x, g, l1, part, c, size)
    return _combine(part, chunks)


@kernel_cache.repair_on_damage
@numba.njit(error_model="numpy", cache=True, nogil=True, parallel=True)
def _partials_parallel(x, g, l1, part):
    chunks, size = _chunking(g.shape[0])
    for c in numba.prange(chunks):
        _chunk_partials(x, g, l1, part, c, size)
    return _combine(part, chunks)


_local = threading.local()


def _gradient_measures(x, g, l1):
    """``(finite, optimality, l2)`` of the gradient ``g`` at ``x`` (1-D arrays),
    in float64, with ``l2 = sqrt(sumsq)``, the gradient's L2 norm
    (``math.sqrt`` rounds correctly).

    One pass of :func:`_gradient_partials` per chunk of the fixed partition of
    :func:`fastgd.lbfgs._kernels._chunking` (a function of ``n`` alone: up to
    256 chunks of at least 2048 elements), the chunks' sums added in chunk
    order: the ``prange`` loop (from :data:`fastgd.config.PARALLEL_MIN_BYTES`
    of gradient, as :func:`fastgd.backends.select` decides) and the serial
    one give the same bits, whatever the number of threads.
    """
    part = getattr(_local, "part", None)
    if part is None:
        part = _local.part = np.zeros((3, _CHUNKS))
    parallel = backends.select(g.nbytes, "auto") == "parallel"
    kernel = _partials_parallel if parallel else _partials_serial
    finite, optimality, sq = kernel(x, g, l1, part)
    return finite, optimality, math.sqrt(sq)
