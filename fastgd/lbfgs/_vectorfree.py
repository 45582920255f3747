"""The vector-free L-BFGS direction: the two-loop recursion on a Gram matrix.

Chen, Wang, Zhou & Gao, "Large-scale L-BFGS using MapReduce" (NeurIPS 2014,
"VL-BFGS"): with the basis ``b = [s_1..s_k, y_1..y_k, g]`` every vector of
the two-loop recursion is a combination ``sum_j delta_j b_j``, and every dot
product it takes is ``delta' G e_i`` with ``G = B' B`` (the basis' Gram
matrix). :class:`Gram` keeps ``G`` (float64, ``(2m + 1)^2``, indexed like the
ring: ``s`` of row ``r`` at ``r``, ``y`` of row ``r`` at ``m + r``, ``g`` at
``2m``); the recursion runs on ``2k + 1`` scalars on the host
(:func:`_coefficients`) and touches the vectors in two fused passes:

=========  ==============================================  ======================
pass       work                                            vectors (k = count)
=========  ==============================================  ======================
direction  ``d = -sum delta_j b_j``; ``d.b_j`` for every    read 2k + 1, write 1
           ``j`` (``d.g`` is the line search's slope),
           ``g.g`` and ``g.s_newest`` (a guard)
push       ``s = stp d``, ``y = g_new - g_old`` into the    read 3 + 2k', write 2
           ring; ``s.s, s.y, y.y, s.g', y.g', g'.g'``;
           ``g'.b_j`` for the ``2k'`` kept vectors
           (``k' = k - 1`` at a full ring), ``g_old.g_old``
=========  ==============================================  ======================

``4k + 5`` vectors per iteration at a full ring (``4k + 7`` below it)
against the two-loop's ``(8k + 2) + 5``. The old basis vectors are streamed
once per pass; the dots against them are taken per block of
:data:`BLOCK` elements whose ``d`` (or ``s, y, g'``) stays in L1.

Exactness: every entry of ``G`` is a dot product of stored vectors computed
directly in one of the passes (float64, :data:`BLOCK` elementwise lanes
summed in order per chunk, chunks summed in order), or one operation away
from two such: ``s.b_j = stp (d.b_j)`` (``s`` is ``stp d`` rounded to the
dtype: a relative ``2^-53`` or, float32, ``2^-24`` apart) and ``y.b_j =
g_new.b_j - g_old.b_j``. No entry is derived from a derived entry, so ``G``
does not drift over a run and is never recomputed. Directions agree with the
textbook float64 two-loop to about 1e-14 relative over 200-iteration runs
(tests/test_lbfgs_history.py).

Speed (2-core AMD EPYC VM, float64, m = 10, full ring, direction + push per
iteration, interleaved medians): n = 1e6: 19.7 ms against the two-loop's
11.5 ms; n = 1e7: 178 ms against 142 ms. Half the bytes, but each pass
streams ``2k + 1`` rows at once, and this machine reads 21 concurrent
streams at ~23 GB/s against ~40-50 GB/s for the two-loop's 3-4; the same
sums over a tiled layout (``(n / B, 2m + 1, B)``: one stream) ran at
37 GB/s. Hence :class:`fastgd.lbfgs.History` defaults to ``"two_loop"``.

Guard: the direction's ``g`` must be the last push's ``g_new`` (the driver's
copy of it). The direction pass recomputes ``g.g`` and ``g.s_newest`` with
the push's summation order and compares them bit for bit with ``G``; on a
mismatch (another ``g``) it takes ``g``'s dots in one more pass and forms
``d`` again. A push whose ``d`` is not the last direction's takes ``s.b_j``
directly, one whose ``g_old`` is not the direction's ``g`` (address, then
``g_old.g_old`` bit for bit) ``y.b_j``: more flops, the same traffic.

Partition, lanes and reductions are those of :mod:`fastgd.lbfgs._kernels`
(the same fixed chunks; per chunk partial sums in a preallocated scratch,
added in chunk order): serial and parallel agree bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np

from fastgd.lbfgs._kernels import _CHUNKS, _bounds, _chunking, _njit

#: Elements per block: the dots of a block are taken while its ``d`` (or the
#: new pair and ``g_new``) is in L1. A multiple of the four lanes, so the
#: lanes' assignment does not depend on the blocks.
BLOCK = 128


# Element loops index with unsigned integers: numba then emits no negative-index
# wraparound, and LLVM vectorizes them (each is elementwise: no sum is reassociated).
_u = numba.uint64


@_njit()
def _acc(P, j, a, b, b0, b1):
    """Lane ``i - b0`` of ``P[j]`` += ``a_i b_i`` (float64) for ``i`` in ``[b0, b1)``."""
    p, lo = P[j], _u(b0)
    for i in range(lo, _u(b1)):
        p[i - lo] += np.float64(a[i]) * np.float64(b[i])


@_njit()
def _acc2(P, j1, j2, b, u, v, b0, b1):
    """:func:`_acc` of ``b.u`` into ``P[j1]`` and ``b.v`` into ``P[j2]``, ``b`` read once."""
    p, q, lo = P[j1], P[j2], _u(b0)
    for i in range(lo, _u(b1)):
        x = np.float64(b[i])
        p[i - lo] += x * np.float64(u[i])
        q[i - lo] += x * np.float64(v[i])


@_njit()
def _axpy(buf, c, a, b0, b1, first):
    """``buf[i - b0] (= or +=) c a_i`` in float64."""
    lo = _u(b0)
    if first:
        for i in range(lo, _u(b1)):
            buf[i - lo] = c * np.float64(a[i])
    else:
        for i in range(lo, _u(b1)):
            buf[i - lo] += c * np.float64(a[i])


@_njit()
def _store(d, buf, b0, b1):
    lo = _u(b0)
    for i in range(lo, _u(b1)):
        d[i] = buf[i - lo]


@_njit()
def _pair(s, y, t, d, gn, go, b0, b1):
    for i in range(_u(b0), _u(b1)):
        s[i] = t * d[i]
        y[i] = gn[i] - go[i]


@_njit()
def _fold(P, w, out):
    """``out[j] = sum_t P[j, t]`` in lane order, for ``j < w``."""
    for j in range(w):
        t = 0.0
        for i in range(P.shape[1]):
            t += P[j, i]
        out[j] = t


# -- the direction pass -------------------------------------------------------------------


@_njit()
def _form_chunk(g, S, Y, rows, k, cs, cy, cg, d, buf, out, lo, hi):
    """``d = cg g + sum cs_j S[rows_j] + cy_j Y[rows_j]`` on ``[lo, hi)`` (in
    float64, rounded once); ``out`` = ``[d.S_j.., d.Y_j.., d.g, g.g, g.S_0]``."""
    P = np.zeros((2 * k + 3, BLOCK))
    b0 = max(lo, 0)
    while b0 < hi:
        b1 = min(b0 + BLOCK, hi)
        _axpy(buf, cg, g, b0, b1, True)
        for j in range(k):
            _axpy(buf, cs[j], S[rows[j]], b0, b1, False)
        for j in range(k):
            _axpy(buf, cy[j], Y[rows[j]], b0, b1, False)
        _store(d, buf, b0, b1)
        _acc2(P, 0, 2 * k + 2, S[rows[0]], d, g, b0, b1)
        for j in range(1, k):
            _acc(P, j, S[rows[j]], d, b0, b1)
        for j in range(k):
            _acc(P, k + j, Y[rows[j]], d, b0, b1)
        _acc2(P, 2 * k, 2 * k + 1, g, d, g, b0, b1)
        b0 = b1
    _fold(P, 2 * k + 3, out)


@_njit(parallel=True)
def _form_parallel(g, S, Y, rows, k, cs, cy, cg, d, buf, part, total):
    n = g.shape[0]
    chunks, size = _chunking(n)
    w = 2 * k + 3
    for c in numba.prange(chunks):
        lo, hi = _bounds(n, size, c)
        _form_chunk(g, S, Y, rows, k, cs, cy, cg, d, buf[c], part[c], lo, hi)
    total[:w] = 0.0
    for c in range(chunks):
        for j in range(w):
            total[j] += part[c, j]


@_njit()
def _form_serial(g, S, Y, rows, k, cs, cy, cg, d, buf, part, total):
    n = g.shape[0]
    chunks, size = _chunking(n)
    w = 2 * k + 3
    total[:w] = 0.0
    for c in range(chunks):
        lo, hi = _bounds(n, size, c)
        _form_chunk(g, S, Y, rows, k, cs, cy, cg, d, buf[0], part[0], lo, hi)
        for j in range(w):
            total[j] += part[0, j]


# -- the push pass (and g's dots alone) ---------------------------------------------------


@_njit()
def _push_chunk(pair, stp, d, gn, go, s, y, S, Y, rows, k, direct, out, lo, hi):
    """With ``pair``: ``s = stp d``, ``y = gn - go`` on ``[lo, hi)`` and
    ``out`` = ``[s.s, s.y, y.y, s.gn, y.gn, gn.gn, gn.S_j.., gn.Y_j.., y.S_j..,
    y.Y_j.., s.S_j.., s.Y_j.., go.go]``, the ``y.`` dots only if ``direct > 0``,
    the ``s.`` dots only if ``direct > 1``; without: ``gn.gn, gn.S_j.., gn.Y_j..``."""
    t = d.dtype.type(stp)
    w = 7 + 6 * k
    P = np.zeros((w, BLOCK))
    b0 = max(lo, 0)
    while b0 < hi:
        b1 = min(b0 + BLOCK, hi)
        if pair:
            _pair(s, y, t, d, gn, go, b0, b1)
            _acc2(P, 0, 1, s, s, y, b0, b1)
            _acc2(P, 2, 4, y, y, gn, b0, b1)
            _acc2(P, 5, 3, gn, gn, s, b0, b1)
            _acc(P, w - 1, go, go, b0, b1)
        else:
            _acc(P, 5, gn, gn, b0, b1)
        for j in range(k):
            sr, yr = S[rows[j]], Y[rows[j]]
            if direct > 0:
                _acc2(P, 6 + j, 6 + 2 * k + j, sr, gn, y, b0, b1)
                _acc2(P, 6 + k + j, 6 + 3 * k + j, yr, gn, y, b0, b1)
                if direct > 1:
                    _acc2(P, 6 + 4 * k + j, 6 + 5 * k + j, s, sr, yr, b0, b1)
            else:
                _acc2(P, 6 + j, 6 + k + j, gn, sr, yr, b0, b1)
        b0 = b1
    _fold(P, w, out)


@_njit(parallel=True)
def _push_parallel(pair, stp, d, gn, go, s, y, S, Y, rows, k, direct, part, total):
    n = gn.shape[0]
    chunks, size = _chunking(n)
    w = 7 + 6 * k
    for c in numba.prange(chunks):
        lo, hi = _bounds(n, size, c)
        _push_chunk(pair, stp, d, gn, go, s, y, S, Y, rows, k, direct, part[c], lo, hi)
    total[:w] = 0.0
    for c in range(chunks):
        for j in range(w):
            total[j] += part[c, j]


@_njit()
def _push_serial(pair, stp, d, gn, go, s, y, S, Y, rows, k, direct, part, total):
    n = gn.shape[0]
    chunks, size = _chunking(n)
    w = 7 + 6 * k
    total[:w] = 0.0
    for c in range(chunks):
        lo, hi = _bounds(n, size, c)
        _push_chunk(pair, stp, d, gn, go, s, y, S, Y, rows, k, direct, part[0], lo, hi)
        for j in range(w):
            total[j] += part[0, j]


# -- the recursion on scalars -------------------------------------------------------------


@_njit()
def _coefficients(G, rho, rows, k, gamma, m, alpha, cs, cy):
    """The two-loop recursion (Nocedal & Wright, Algorithm 7.4) on the
    coefficients of ``q``/``r`` over ``[s_rows.., y_rows.., g]``; returns the
    coefficient of ``g`` in ``d = -r`` and fills ``cs``, ``cy`` (of ``d``)."""
    idx = np.empty(2 * k + 1, np.int64)
    for j in range(k):
        idx[j] = rows[j]
        idx[k + j] = m + rows[j]
    idx[2 * k] = 2 * m
    delta = np.zeros(2 * k + 1)
    delta[2 * k] = 1.0
    for j in range(k):  # newest to oldest: alpha = rho s.q; q -= alpha y
        a = 0.0
        for i in range(2 * k + 1):
            a += delta[i] * G[idx[j], idx[i]]
        alpha[j] = rho[rows[j]] * a
        delta[k + j] -= alpha[j]
    for i in range(2 * k + 1):
        delta[i] *= gamma
    for j in range(k - 1, -1, -1):  # oldest to newest: beta = rho y.r; r += (alpha - beta) s
        b = 0.0
        for i in range(2 * k + 1):
            b += delta[i] * G[idx[k + j], idx[i]]
        delta[j] += alpha[j] - rho[rows[j]] * b
    for j in range(k):
        cs[j] = -delta[j]
        cy[j] = -delta[k + j]
    return -delta[2 * k]


# -- the state ----------------------------------------------------------------------------


class Gram:
    """``G`` of a :class:`fastgd.lbfgs.History`'s ring and ``g``, and the
    scratch of the two passes (made once)."""

    def __init__(self, m: int, n: int):
        self.m = m
        self.G = np.zeros((2 * m + 1, 2 * m + 1))
        self.g_known = False  # G's row 2m holds the dots of the last push's g_new
        self.dots = np.zeros(2 * m + 1)  # d.b of the last direction, by G's index
        self.d_known = False  # dots and rows describe the vector in History.d
        self.g_dir = None  # the last direction's g
        self.rows = np.zeros(m, np.int64)  # the last direction's rows, newest first
        self.k = 0
        self.alpha = np.zeros(m)
        self.cs = np.zeros(m)
        self.cy = np.zeros(m)
        chunks = min(_chunking(n)[0], _CHUNKS) if n else 1
        self.part = np.zeros((max(chunks, 1), 7 + 6 * m))
        self.total = np.zeros(7 + 6 * m)
        self.buf = np.zeros((max(chunks, 1), BLOCK))

    def clear(self) -> None:
        self.d_known = False

    # -- direction -------------------------------------------------------------

    def direction(self, h, g: np.ndarray, parallel: bool) -> float:
        """``h.d = -H g`` over ``h``'s first ``h.count`` rows of ``h.order``
        (``count > 0``); returns ``g.d``."""
        k, m = h.count, self.m
        rows = self.rows
        rows[:k] = h.order[:k]
        self.k = k
        for _ in range(2):
            cg = _coefficients(self.G, h.rho, rows, k, h.gamma, m, self.alpha, self.cs, self.cy)
            form = _form_parallel if parallel else _form_serial
            t = self.total
            form(g, h.S, h.Y, rows, k, self.cs, self.cy, cg, h.d, self.buf, self.part, t)
            G = self.G
            if self.g_known and (t[2 * k + 1], t[2 * k + 2]) == (G[-1, -1], G[-1, rows[0]]):
                break  # bit for bit the push's g_new.g_new and g_new.s_newest
            self.g_dots(h, g, parallel)  # another g: its dots, then d again
        self.dots[rows[:k]] = t[:k]
        self.dots[m + rows[:k]] = t[k : 2 * k]
        self.dots[2 * m] = t[2 * k]
        self.d_known = True
        self.g_dir = g.ctypes.data  # where the g whose dots G's last row holds is
        return float(t[2 * k])

    def g_dots(self, h, g: np.ndarray, parallel: bool) -> None:
        """``G``'s row of ``g`` against ``h``'s valid rows, in one pass."""
        k, rows = h.count, self.rows
        rows[:k] = h.order[:k]
        t = self.total
        push = _push_parallel if parallel else _push_serial
        push(False, 0.0, g, g, g, g, g, h.S, h.Y, rows, k, 0, self.part, t)
        self._set_g(rows[:k], t[6 : 6 + k], t[6 + k : 6 + 2 * k], t[5])

    def _set_g(self, rows, gs, gy, gg) -> None:
        G, m = self.G, self.m
        G[2 * m, rows] = G[rows, 2 * m] = gs
        G[2 * m, m + rows] = G[m + rows, 2 * m] = gy
        G[2 * m, 2 * m] = gg
        self.g_known = True

    # -- push ------------------------------------------------------------------

    def push(self, h, stp, d, g_new, g_old, row: int, parallel: bool):
        """Write the pair into ring row ``row`` and take its dots and
        ``g_new``'s; returns ``(s.y, y.y, commit)``, ``commit(accepted)``
        updating ``G`` once the caller has decided."""
        m = self.m
        kept = h.order[: h.count]
        kept = kept[kept != row]
        k = kept.shape[0]
        rows = np.ascontiguousarray(kept)
        same_d = d.ctypes.data == h.d.ctypes.data
        derive = self.d_known and same_d and np.all(np.isin(rows, self.rows[: self.k]))
        t = self.total
        push = _push_parallel if parallel else _push_serial
        s, y = h.S[row], h.Y[row]
        # y.b = g_new.b - g_old.b needs G's row of g_old: that of the direction's g
        derive_y = derive and self.g_known and g_old.ctypes.data == self.g_dir
        direct = 0 if derive_y else (1 if derive else 2)
        push(True, stp, d, g_new, g_old, s, y, h.S, h.Y, rows, k, direct, self.part, t)
        if direct == 0 and not t[6 + 6 * k] == self.G[-1, -1]:  # g_old was changed
            direct = 1
            push(True, stp, d, g_new, g_old, s, y, h.S, h.Y, rows, k, direct, self.part, t)
        self.d_known = False
        self.g_dir = None
        sy, yy = float(t[1]), float(t[2])
        tot = t[: 6 + 6 * k].copy()
        if direct == 0:
            tot[6 + 2 * k : 6 + 3 * k] = tot[6 : 6 + k] - self.G[-1, rows]
            tot[6 + 3 * k : 6 + 4 * k] = tot[6 + k : 6 + 2 * k] - self.G[-1, m + rows]

        def commit(accepted: bool) -> None:
            G = self.G
            gs, gy = tot[6 : 6 + k], tot[6 + k : 6 + 2 * k]
            self._set_g(rows, gs, gy, tot[5])
            if not accepted:
                return
            ys, yyk = tot[6 + 2 * k : 6 + 3 * k], tot[6 + 3 * k : 6 + 4 * k]
            if direct < 2:
                ss, sy_k = stp * self.dots[rows], stp * self.dots[m + rows]
            else:
                ss, sy_k = tot[6 + 4 * k : 6 + 5 * k], tot[6 + 5 * k : 6 + 6 * k]
            s_, y_, g_ = row, m + row, 2 * m
            G[s_, rows] = G[rows, s_] = ss
            G[s_, m + rows] = G[m + rows, s_] = sy_k
            G[y_, rows] = G[rows, y_] = ys
            G[y_, m + rows] = G[m + rows, y_] = yyk
            G[s_, s_] = tot[0]
            G[s_, y_] = G[y_, s_] = tot[1]
            G[y_, y_] = tot[2]
            G[s_, g_] = G[g_, s_] = tot[3]
            G[y_, g_] = G[g_, y_] = tot[4]

        return sy, yy, commit
