"""The L-BFGS vector kernels on CUDA arrays (numba.cuda), float32 and float64.

The same passes as :mod:`fastgd.lbfgs._kernels`, from the same element
functions and the same recursion (:func:`fastgd.lbfgs._kernels.two_loop_pass`):
each kernel is a grid-stride loop (:func:`fastgd.cuda.grid_size` blocks of
``config.CUDA_THREADS_PER_BLOCK`` threads) whose element arithmetic is in the
arrays' dtype (scalars are cast to it on the host, so a float32 kernel has no
float64 arithmetic but its sums) and whose reductions are float64: each
thread sums its elements in order, each block sums its threads in shared
memory in a fixed tree, and the host adds the blocks' partial sums
(``math.fsum``: correctly rounded). The result is a function of ``n`` and the
launch configuration only: the same bits on every run, and equal to the CPU
kernels' up to the summation order (about 1e-16 relative in float64).

Each reduction ends with a device-to-host copy of the blocks' partial sums
(a synchronization): the two-loop recursion needs ``2k + 1`` of them per
direction, since each pass's coefficient depends on the previous pass's dot
product. The buffers are preallocated (:class:`Scratch`): an iteration
allocates nothing.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the same kernels run on
the CPU; that is how they are tested without a GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from fastgd import config
from fastgd.cuda import grid_size
from fastgd.lbfgs import _kernels

#: The largest block the kernels' shared-memory reductions hold
#: (``config.CUDA_THREADS_PER_BLOCK`` is at most this).
MAX_THREADS = 1024

_axpy_scale, _scale, _step, _difference = (
    cuda.jit(device=True)(f)
    for f in (_kernels.axpy_scale, _kernels.scale, _kernels.step, _kernels.difference)
)


@cuda.jit(device=True)
def _block_reduce(sh, v, largest):
    """The block's sum of ``v`` (or, ``largest``, its max; ``v >= 0``, no NaN),
    in a fixed tree; thread 0's value is valid."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    sh[t] = v
    cuda.syncthreads()
    s = 1
    while s < nt:
        s *= 2
    s //= 2
    while s > 0:
        if t < s and t + s < nt:
            if not largest:
                sh[t] += sh[t + s]
            elif sh[t + s] > sh[t]:
                sh[t] = sh[t + s]
        cuda.syncthreads()
        s //= 2
    return sh[0]


@cuda.jit
def _pass_kernel(d, x, w, cx, sc, axpy, part):
    """``d = (d + cx x) sc`` (``axpy``) or ``d = x sc``; ``part[block, 0]`` =
    the block's float64 ``w . d``."""
    sh = cuda.shared.array(MAX_THREADS, np.float64)
    i, stride = cuda.grid(1), cuda.gridsize(1)
    acc = 0.0
    while i < d.shape[0]:
        if axpy:
            t = _axpy_scale(d[i], x[i], cx, sc)
        else:
            t = _scale(x[i], sc)
        d[i] = t
        acc += np.float64(w[i]) * np.float64(t)
        i += stride
    total = _block_reduce(sh, acc, False)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x, 0] = total


@cuda.jit
def _pair_kernel(t, d, gn, go, s, y, part):
    """``s = t d``, ``y = gn - go``; ``part[block]`` = ``(s.y, y.y)``."""
    sh = cuda.shared.array(MAX_THREADS, np.float64)
    i, stride = cuda.grid(1), cuda.gridsize(1)
    a = b = 0.0
    while i < d.shape[0]:
        si = _scale(d[i], t)
        yi = _difference(gn[i], go[i])
        s[i] = si
        y[i] = yi
        a += np.float64(si) * np.float64(yi)
        b += np.float64(yi) * np.float64(yi)
        i += stride
    a = _block_reduce(sh, a, False)
    cuda.syncthreads()
    b = _block_reduce(sh, b, False)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x, 0] = a
        part[cuda.blockIdx.x, 1] = b


@cuda.jit
def _step_kernel(x0, d, t, out):
    i, stride = cuda.grid(1), cuda.gridsize(1)
    while i < d.shape[0]:
        out[i] = _step(x0[i], t, d[i])
        i += stride


@cuda.jit
def _cast_kernel(src, dst):
    i, stride = cuda.grid(1), cuda.gridsize(1)
    while i < dst.shape[0]:
        dst[i] = src[i]
        i += stride


@cuda.jit
def _dm_kernel(g, d, out, copy, part):
    """``part[block]`` = ``(g.d, max |g|, NaNs in g)``, float64; ``out = g``
    when ``copy``."""
    sh = cuda.shared.array(MAX_THREADS, np.float64)
    i, stride = cuda.grid(1), cuda.gridsize(1)
    a = big = nan = 0.0
    while i < g.shape[0]:
        gi = g[i]
        if copy:
            out[i] = gi
        u = np.float64(gi)
        a += u * np.float64(d[i])
        if u != u:
            nan += 1.0
        elif abs(u) > big:
            big = abs(u)
        i += stride
    a = _block_reduce(sh, a, False)
    cuda.syncthreads()
    big = _block_reduce(sh, big, True)
    cuda.syncthreads()
    nan = _block_reduce(sh, nan, False)
    if cuda.threadIdx.x == 0:
        part[cuda.blockIdx.x, 0] = a
        part[cuda.blockIdx.x, 1] = big
        part[cuda.blockIdx.x, 2] = nan


class Scratch:
    """The blocks' partial sums: a device buffer and its host copy, made once."""

    def __init__(self):
        self.blocks = 0
        self.device = None
        self.host = None

    def launch(self, n: int):
        """``(blocks, threads)`` for ``n`` elements (the configuration read now)."""
        tpb = config.CUDA_THREADS_PER_BLOCK
        blocks = grid_size(n, tpb)
        if blocks > self.blocks:
            self.blocks = blocks
            self.device = cuda.device_array((blocks, 3), np.float64)
            self.host = np.zeros((blocks, 3))
        return blocks, tpb

    def sums(self, blocks: int, width: int) -> np.ndarray:
        """The partial sums of the last kernel, copied back (this synchronizes)."""
        self.device.copy_to_host(self.host)
        return self.host[:blocks, :width]


def _cast(a, value):
    return np.dtype(a.dtype).type(value)


def _pass(d, x, w, cx, sc, axpy, scratch) -> float:
    blocks, tpb = scratch.launch(d.shape[0])
    _pass_kernel[blocks, tpb](d, x, w, _cast(d, cx), _cast(d, sc), axpy, scratch.device)
    return math.fsum(scratch.sums(blocks, 1)[:, 0])


def two_loop(g, S, Y, rho, order, count, gamma, d, alpha, scratch) -> float:
    """:func:`fastgd.lbfgs._kernels.two_loop` on device arrays ``g``, ``S``,
    ``Y``, ``d`` (host ``rho``, ``order``, ``alpha``): ``d = -H g``, returns ``g.d``."""
    dot = 0.0
    rows = {_kernels.G: lambda r: g, _kernels.S_ROW: S.__getitem__, _kernels.Y_ROW: Y.__getitem__}
    for p in range(2 * count + 1):
        xf, xr, wf, wr, cx, sc, axpy = _kernels.two_loop_pass(
            p, dot, rho, order, count, gamma, alpha
        )
        dot = _pass(d, rows[xf](xr), rows[wf](wr), cx, sc, axpy, scratch)
    return dot


def update_pair(stp, d, g_new, g_old, s_row, y_row, scratch) -> tuple[float, float]:
    """:func:`fastgd.lbfgs._kernels.update_pair` on device arrays."""
    blocks, tpb = scratch.launch(d.shape[0])
    _pair_kernel[blocks, tpb](_cast(d, stp), d, g_new, g_old, s_row, y_row, scratch.device)
    part = scratch.sums(blocks, 2)
    return math.fsum(part[:, 0]), math.fsum(part[:, 1])


def step_to(x0, d, stp, out, scratch) -> None:
    """``out = x0 + stp d`` on device arrays."""
    blocks, tpb = scratch.launch(d.shape[0])
    _step_kernel[blocks, tpb](x0, d, _cast(d, stp), out)


def dot_and_maxabs(g, d, scratch, out=None) -> tuple[float, float]:
    """``(g.d, max |g|)`` in float64 on device arrays; the max is NaN if any
    ``g`` is NaN (as :func:`fastgd.lbfgs._kernels.dot_and_maxabs`). With
    ``out``: also ``out = g`` in the same pass."""
    blocks, tpb = scratch.launch(g.shape[0])
    _dm_kernel[blocks, tpb](g, d, g if out is None else out, out is not None, scratch.device)
    part = scratch.sums(blocks, 3)
    if part[:, 2].any():
        return math.fsum(part[:, 0]), math.nan
    return math.fsum(part[:, 0]), float(part[:, 1].max())


def cast_to(src, dst, scratch) -> None:
    """``dst = src`` converted to ``dst``'s dtype (round to nearest), on the device."""
    blocks, tpb = scratch.launch(dst.shape[0])
    _cast_kernel[blocks, tpb](src, dst)
