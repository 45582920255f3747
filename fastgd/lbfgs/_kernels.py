"""The fused vector kernels of L-BFGS, float32 and float64, serial or parallel.

Layout (what :class:`fastgd.lbfgs.History` keeps):

- ``S``, ``Y``: C-contiguous ``(m, n)`` arrays of the vectors' dtype, ring
  buffers: row ``r`` holds one pair ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k``.
- ``rho``: float64 ``(m,)``, ``rho[r] = 1 / (s_r . y_r)``; ``alpha``: float64
  ``(m,)`` scratch, ``alpha[r]`` receives the first loop's coefficient of row ``r``.
- ``order``: int64 ``(>= count,)``, the valid rows newest first: ``order[0]``
  is the newest pair, ``order[count - 1]`` the oldest (rows not listed are
  never read, so a rejected pair may sit in an unlisted row).

Each kernel is one pass over memory per reduction it needs (:func:`two_loop`:
``2 count + 1``), allocates nothing (parallel partial sums go to a per-thread
scratch made once) and runs the serial or the ``prange`` loop as
:func:`fastgd.backends.select` decides for the bytes one pass moves.

Determinism: every reduction splits ``[0, n)`` into fixed chunks (a function
of ``n`` alone, :func:`_chunking`), sums each chunk in a fixed number of
interleaved float64 lanes (4 in the two-loop passes, 2 elsewhere) combined in
a fixed order, then adds the chunk sums in chunk order: the serial loop as it
walks the chunks, the parallel loop after computing them concurrently into the
scratch. No fastmath flag is set (no reassociation, no FMA contraction), so
the compiled order is the written one: serial and parallel agree bit for bit,
whatever the thread count. (The loops stay scalar, numba leaving LLVM's SLP
vectorizer off; the lanes hide the add latency, enough for the memory ceiling
in float64.)

Precision: element arithmetic is in the arrays' dtype (float64 scalars such
as ``alpha``, ``gamma``, ``stp`` are rounded to it once per pass); only the
reductions are float64: each product of two elements is formed in float64
(exact for float32 inputs) and accumulated in float64.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from fastgd import _checks, backends, kernel_cache

__all__ = [
    "copy_and_measure",
    "dot",
    "dot_and_maxabs",
    "max_abs",
    "negate",
    "step_to",
    "two_loop",
    "update_pair",
]

#: Most chunks, fewest elements per chunk of every reduction's partition;
#: fixed, so the summation order (and its rounding) is the same serial or
#: parallel, whatever the number of threads.
_CHUNKS = 256
_MIN_CHUNK = 2048

_jit = dict(error_model="numpy", cache=True, nogil=True)


def _njit(**options):
    def wrap(f):
        return kernel_cache.repair_on_damage(numba.njit(**_jit, **options)(f))

    return wrap


@_njit()
def _chunking(n):
    """``(chunks, size)`` of the fixed partition of ``[0, n)``: at most
    :data:`_CHUNKS` chunks of at least :data:`_MIN_CHUNK` elements (so a
    small array costs few chunk calls); a function of ``n`` alone."""
    size = max((n + _CHUNKS - 1) // _CHUNKS, _MIN_CHUNK)
    return (n + size - 1) // size, size


@_njit()
def _bounds(n, size, c):
    return c * size, min((c + 1) * size, n)


# -- the element arithmetic, written once: compiled here and by fastgd.lbfgs._cuda ----------


def axpy_scale(d, x, cx, sc):
    """A two-loop pass's element: ``(d + cx x) sc``."""
    return (d + cx * x) * sc


def scale(x, sc):
    """A two-loop pass's element without ``d``: ``x sc``."""
    return x * sc


def step(x0, t, d):
    """A trial point's element: ``x0 + t d``."""
    return x0 + t * d


def difference(a, b):
    """``y``'s element: ``a - b``."""
    return a - b


#: The element functions above as inlined Numba functions for the CPU loops.
_e_axpy_scale, _e_scale, _e_step, _e_difference = (
    numba.njit(inline="always", error_model="numpy")(f)
    for f in (axpy_scale, scale, step, difference)
)


# -- the two-loop pass: d = (d + cx x) * sc (or x * sc), returning w . d ---------------


@_njit()
def _axpy_chunk(d, x, w, cx, sc, lo, hi):
    # all loads before the stores (d overlaps neither x nor w): cheaper code
    a0 = a1 = a2 = a3 = 0.0
    i = max(lo, 0)  # lets LLVM drop numba's negative-index wraparound
    while i + 4 <= hi:
        d0, d1, d2, d3 = d[i], d[i + 1], d[i + 2], d[i + 3]
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
        t0 = _e_axpy_scale(d0, x0, cx, sc)
        t1 = _e_axpy_scale(d1, x1, cx, sc)
        t2 = _e_axpy_scale(d2, x2, cx, sc)
        t3 = _e_axpy_scale(d3, x3, cx, sc)
        d[i], d[i + 1], d[i + 2], d[i + 3] = t0, t1, t2, t3
        a0 += np.float64(w0) * np.float64(t0)
        a1 += np.float64(w1) * np.float64(t1)
        a2 += np.float64(w2) * np.float64(t2)
        a3 += np.float64(w3) * np.float64(t3)
        i += 4
    while i < hi:
        t = _e_axpy_scale(d[i], x[i], cx, sc)
        d[i] = t
        a0 += np.float64(w[i]) * np.float64(t)
        i += 1
    return (a0 + a1) + (a2 + a3)


@_njit()
def _scale_chunk(d, x, w, sc, lo, hi):
    a0 = a1 = a2 = a3 = 0.0
    i = max(lo, 0)
    while i + 4 <= hi:
        t0, t1 = _e_scale(x[i], sc), _e_scale(x[i + 1], sc)
        t2, t3 = _e_scale(x[i + 2], sc), _e_scale(x[i + 3], sc)
        w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
        d[i], d[i + 1], d[i + 2], d[i + 3] = t0, t1, t2, t3
        a0 += np.float64(w0) * np.float64(t0)
        a1 += np.float64(w1) * np.float64(t1)
        a2 += np.float64(w2) * np.float64(t2)
        a3 += np.float64(w3) * np.float64(t3)
        i += 4
    while i < hi:
        t = _e_scale(x[i], sc)
        d[i] = t
        a0 += np.float64(w[i]) * np.float64(t)
        i += 1
    return (a0 + a1) + (a2 + a3)


@_njit()
def _pass_chunk(d, x, w, cx, sc, axpy, lo, hi):
    """``d = (d + cx x) sc`` (``axpy``) or ``d = x sc`` on ``[lo, hi)``;
    returns ``w . d`` of the new ``d``, summed in four float64 lanes."""
    dt = d.dtype.type
    if axpy:
        return _axpy_chunk(d, x, w, dt(cx), dt(sc), lo, hi)
    return _scale_chunk(d, x, w, dt(sc), lo, hi)


@_njit(parallel=True)
def _pass_parallel(d, x, w, cx, sc, axpy, part):
    n = d.shape[0]
    chunks, size = _chunking(n)
    for c in numba.prange(chunks):
        lo, hi = _bounds(n, size, c)
        part[0, c] = _pass_chunk(d, x, w, cx, sc, axpy, lo, hi)
    total = 0.0
    for c in range(chunks):
        total += part[0, c]
    return total


@_njit()
def _pass(d, x, w, cx, sc, axpy, part, parallel):
    """One pass over ``n``: ``d = (d + cx x) sc`` (``axpy``) or ``d = x sc``,
    returning ``w . d`` (of the new ``d``) in float64."""
    if parallel:
        return _pass_parallel(d, x, w, cx, sc, axpy, part)
    n = d.shape[0]
    total = 0.0
    chunks, size = _chunking(n)
    for c in range(chunks):
        lo, hi = _bounds(n, size, c)
        total += _pass_chunk(d, x, w, cx, sc, axpy, lo, hi)
    return total


#: Where :func:`two_loop_pass` takes a pass's vectors from: ``g``, a row of
#: ``S`` or a row of ``Y``.
G, S_ROW, Y_ROW = 0, 1, 2


@_njit()
def two_loop_pass(p, dot, rho, order, count, gamma, alpha):
    """Pass ``p`` of the fused two-loop recursion (see :func:`two_loop`), given
    ``dot``, the float64 result of pass ``p - 1`` (unused for ``p = 0``):
    ``(x_from, x_row, w_from, w_row, cx, sc, axpy)`` for the pass
    ``d = (d + cx x) sc`` (``axpy``) or ``d = x sc``, returning ``w . d``;
    ``x_from``/``w_from`` is :data:`G`, :data:`S_ROW` or :data:`Y_ROW`. Sets
    ``alpha`` of the first loop on the way. The recursion, written once for
    every backend: the CPU loop (:func:`_two_loop`) and the CUDA one
    (:mod:`fastgd.lbfgs._cuda`) only run the passes it names, ``p = 0 .. 2
    count``.

    Nocedal & Wright, Algorithm 7.4, newest pair first: loop 1 ``alpha_i =
    rho_i s_i.q; q -= alpha_i y_i``, then ``r = gamma q``, loop 2 ``beta_i =
    rho_i y_i.r; r += (alpha_i - beta_i) s_i``, oldest first; ``d = -r``.
    """
    if count == 0:  # d = -gamma g, then g.d
        return G, 0, G, 0, 0.0, -gamma, False
    if p == 0:  # q = g, then s_0.q
        return G, 0, S_ROW, order[0], 0.0, 1.0, False
    if p <= count:  # loop 1, pair j = p - 1 (newest first)
        j = p - 1
        r = order[j]
        alpha[r] = rho[r] * dot
        if j + 1 < count:  # q -= alpha_j y_j, then s_{j+1}.q
            return Y_ROW, r, S_ROW, order[j + 1], -alpha[r], 1.0, True
        # the oldest: r = gamma (q - alpha y), then y.r (loop 2's first dot)
        return Y_ROW, r, Y_ROW, r, -alpha[r], gamma, True
    j = 2 * count - p  # loop 2, pair j (oldest first)
    r = order[j]
    c = alpha[r] - rho[r] * dot
    if j > 0:  # r += c s_j, then y_{j-1}.r
        return S_ROW, r, Y_ROW, order[j - 1], c, 1.0, True
    return S_ROW, r, G, 0, c, -1.0, True  # the newest: d = -(r + c s), then g.d


@_njit()
def _pick(which, row, g, S, Y):
    if which == S_ROW:
        return S[row]
    if which == Y_ROW:
        return Y[row]
    return g


@_njit()
def _two_loop(g, S, Y, rho, order, count, gamma, d, alpha, part, parallel):
    m = S.shape[0]
    for j in range(count):
        if order[j] < 0 or order[j] >= m:
            raise IndexError("order holds a row outside [0, m)")
    dot = 0.0
    for p in range(2 * count + 1):
        xf, xr, wf, wr, cx, sc, axpy = two_loop_pass(p, dot, rho, order, count, gamma, alpha)
        x, w = _pick(xf, xr, g, S, Y), _pick(wf, wr, g, S, Y)
        dot = _pass(d, x, w, cx, sc, axpy, part, parallel)
    return dot


# -- the new pair: s = stp d, y = g_new - g_old, returning (s.y, y.y) ------------------


@_njit()
def _pair_chunk(stp, d, gn, go, s, y, lo, hi):
    t = d.dtype.type(stp)
    a0 = a1 = b0 = b1 = 0.0
    i = max(lo, 0)
    while i + 2 <= hi:
        s0, s1 = _e_scale(d[i], t), _e_scale(d[i + 1], t)
        y0, y1 = _e_difference(gn[i], go[i]), _e_difference(gn[i + 1], go[i + 1])
        s[i], s[i + 1], y[i], y[i + 1] = s0, s1, y0, y1
        a0 += np.float64(s0) * np.float64(y0)
        a1 += np.float64(s1) * np.float64(y1)
        b0 += np.float64(y0) * np.float64(y0)
        b1 += np.float64(y1) * np.float64(y1)
        i += 2
    if i < hi:
        s0, y0 = _e_scale(d[i], t), _e_difference(gn[i], go[i])
        s[i], y[i] = s0, y0
        a0 += np.float64(s0) * np.float64(y0)
        b0 += np.float64(y0) * np.float64(y0)
    return a0 + a1, b0 + b1


@_njit()
def _pair_serial(stp, d, gn, go, s, y, part):
    n = d.shape[0]
    sy = yy = 0.0
    chunks, size = _chunking(n)
    for c in range(chunks):
        lo, hi = _bounds(n, size, c)
        p, q = _pair_chunk(stp, d, gn, go, s, y, lo, hi)
        sy += p
        yy += q
    return sy, yy


@_njit(parallel=True)
def _pair_parallel(stp, d, gn, go, s, y, part):
    n = d.shape[0]
    chunks, size = _chunking(n)
    for c in numba.prange(chunks):
        lo, hi = _bounds(n, size, c)
        part[0, c], part[1, c] = _pair_chunk(stp, d, gn, go, s, y, lo, hi)
    sy = yy = 0.0
    for c in range(chunks):
        sy += part[0, c]
        yy += part[1, c]
    return sy, yy


# -- line search: x_out = x0 + stp d; (g.d, max |g|) -----------------------------------


@_njit()
def _step_serial(x0, d, stp, out):
    t = d.dtype.type(stp)
    for i in range(d.shape[0]):
        out[i] = _e_step(x0[i], t, d[i])


@_njit(parallel=True)
def _step_parallel(x0, d, stp, out):
    t = d.dtype.type(stp)
    for i in numba.prange(d.shape[0]):
        out[i] = _e_step(x0[i], t, d[i])


@_njit()
def _dm_chunk(g, d, out, copy, lo, hi):
    """``(sum g d, max |g|)`` of ``[lo, hi)``, copying ``g`` into ``out`` when
    ``copy``; the max is NaN if any ``g`` is NaN."""
    a0 = a1 = m0 = m1 = 0.0
    nan = False
    i = max(lo, 0)
    while i + 2 <= hi:
        gi, gj = g[i], g[i + 1]
        if copy:
            out[i], out[i + 1] = gi, gj
        u = np.float64(gi)
        v = np.float64(gj)
        a0 += u * np.float64(d[i])
        a1 += v * np.float64(d[i + 1])
        nan = nan | (u != u) | (v != v)
        m0 = max(m0, abs(u))
        m1 = max(m1, abs(v))
        i += 2
    if i < hi:
        gi = g[i]
        if copy:
            out[i] = gi
        u = np.float64(gi)
        a0 += u * np.float64(d[i])
        nan = nan | (u != u)
        m0 = max(m0, abs(u))
    return a0 + a1, np.nan if nan else max(m0, m1)


@_njit()
def _dm_add(s, m, p, q):
    """Fold one chunk's ``(p, q)`` into ``(s, m)``, NaN in ``q`` propagating."""
    if m != m or q != q:
        return s + p, np.nan
    return s + p, max(m, q)


@_njit()
def _dm_serial(g, d, out, copy, part):
    n = g.shape[0]
    s = m = 0.0
    chunks, size = _chunking(n)
    for c in range(chunks):
        lo, hi = _bounds(n, size, c)
        p, q = _dm_chunk(g, d, out, copy, lo, hi)
        s, m = _dm_add(s, m, p, q)
    return s, m


@_njit(parallel=True)
def _dm_parallel(g, d, out, copy, part):
    n = g.shape[0]
    chunks, size = _chunking(n)
    for c in numba.prange(chunks):
        lo, hi = _bounds(n, size, c)
        part[0, c], part[1, c] = _dm_chunk(g, d, out, copy, lo, hi)
    s = m = 0.0
    for c in range(chunks):
        s, m = _dm_add(s, m, part[0, c], part[1, c])
    return s, m


# -- the Python entry points --------------------------------------------------------------

_local = threading.local()


def _part() -> np.ndarray:
    """This thread's scratch for the parallel partial sums, made once."""
    part = getattr(_local, "part", None)
    if part is None:
        part = _local.part = np.zeros((2, _CHUNKS))
    return part


def _parallel(pass_bytes: int, backend: str) -> bool:
    if backend not in ("auto", "serial", "parallel"):
        raise ValueError(f"backend must be 'auto', 'serial' or 'parallel', got {backend!r}")
    return backends.select(pass_bytes, backend) == "parallel"


def _vec(a, what: str, shape=None, dtype=None, write: bool = False) -> np.ndarray:
    """``a`` checked: a C-contiguous ndarray of ``shape`` and ``dtype`` (1-D,
    float32 or float64 when not given), writeable when ``write``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, got {type(a).__name__}")
    if dtype is None:
        _checks.check_dtype(a.dtype, what)
    if not (
        a.flags.c_contiguous
        and (a.ndim == 1 if shape is None else a.shape == shape)
        and (dtype is None or a.dtype == dtype)
    ):
        raise ValueError(
            f"{what} must be a C-contiguous array of shape {shape or '(n,)'} and dtype "
            f"{dtype or 'float32/float64'}, got {a.shape} {a.dtype}"
        )
    if write and not a.flags.writeable:
        raise ValueError(f"{what} must be writeable")
    return a.view(np.ndarray) if type(a) is not np.ndarray else a


def _apart(out: np.ndarray, what: str, *others) -> None:
    for name, a in others:
        if np.may_share_memory(out, a):
            raise ValueError(f"{what} must not overlap {name}")


def two_loop(g, S, Y, rho, order, count, gamma, d, alpha, backend="auto") -> float:
    """``d = -H g`` by the L-BFGS two-loop recursion, ``H0 = gamma I``; returns ``g . d``.

    ``H`` is the BFGS inverse Hessian built from ``H0`` by the pairs
    ``(S[order[j]], Y[order[j]])``, ``j = count - 1`` (oldest) down to ``0``
    (newest) (Nocedal & Wright, Algorithm 7.4); ``count = 0`` gives
    ``d = -gamma g``. ``alpha[order[j]]`` receives the first loop's
    coefficients; ``S``, ``Y``, ``rho``, ``g`` are only read. Returns the
    float64 ``g . d`` (the line search's initial slope), computed in the last pass.

    Fused passes (``k = count``, ``N`` = the bytes of one vector): ``d`` is the
    work vector ``q``/``r`` throughout.

    1. ``q = g``, ``s_0 . q``                                  read g, s_0; write d
    2. ``k - 1`` passes ``q -= alpha_j y_j``, ``s_{j+1} . q``  read d, y_j, s_{j+1}; write d
    3. ``r = gamma (q - alpha y_{k-1})``, ``y_{k-1} . r``      read d, y_{k-1}; write d
    4. ``k - 1`` passes ``r += c_j s_j``, ``y_{j-1} . r``      read d, s_j, y_{j-1}; write d
    5. ``d = -(r + c_0 s_0)``, ``g . d``                       read d, s_0, g; write d

    ``2k + 1`` passes moving ``(8k + 2) N`` bytes, the slope included; each
    history vector is read twice. The textbook form (a dot and an axpy per
    pair and loop, the copy, the scaling, the negation, the slope's dot) is
    ``4k + 4`` passes moving ``(10k + 8) N``, more with NumPy's temporaries.

    ``g`` (n,) float32/float64 and ``d`` (n,) its dtype, not overlapping;
    ``S``, ``Y`` (m, n) C-contiguous, ``g``'s dtype; ``rho``, ``alpha`` (m,)
    float64; ``order`` int64, the valid rows newest first, its first
    ``0 <= count <= m`` entries used (each in ``[0, m)``, else ``IndexError``).
    ``backend="auto"`` asks :func:`fastgd.backends.select` with one pass's
    bytes (4 vectors); serial and parallel results are identical.
    """
    g = _vec(g, "g")
    n, dt = g.shape[0], g.dtype
    d = _vec(d, "d", (n,), dt, write=True)
    m = S.shape[0] if isinstance(S, np.ndarray) and S.ndim == 2 else -1
    S = _vec(S, "S", (m, n), dt)
    Y = _vec(Y, "Y", (m, n), dt)
    rho = _vec(rho, "rho", (m,), np.float64)
    alpha = _vec(alpha, "alpha", (m,), np.float64, write=True)
    order = np.asarray(order)
    if order.dtype != np.int64 or order.ndim != 1:
        raise ValueError("order must be a 1-D int64 array")
    count = _checks.integer("count", count, 0, min(m, order.shape[0]))
    _apart(d, "d", ("g", g), ("S", S), ("Y", Y))
    parallel = _parallel(4 * g.nbytes, backend)
    return float(_two_loop(g, S, Y, rho, order, count, float(gamma), d, alpha, _part(), parallel))


def negate(g, d, backend="auto") -> float:
    """``d = -g`` (the direction without history), one pass; returns ``g . d`` in float64."""
    g = _vec(g, "g")
    d = _vec(d, "d", g.shape, g.dtype, write=True)
    _apart(d, "d", ("g", g))
    return float(_pass(d, g, g, 0.0, -1.0, False, _part(), _parallel(2 * g.nbytes, backend)))


def update_pair(stp, d, g_new, g_old, s_row, y_row, backend="auto") -> tuple[float, float]:
    """Write the new pair ``s = stp d``, ``y = g_new - g_old`` into ring rows
    ``s_row``, ``y_row`` (``S[r]``, ``Y[r]``) in one pass (reads 3 vectors,
    writes 2) and return ``(s . y, y . y)`` accumulated in float64.

    ``s = stp d`` rather than ``x_new - x_old`` (SciPy's L-BFGS-B does the
    same): it saves reading two vectors and needs no copy of the old point.
    The rows are overwritten before the caller can test ``s . y``: a caller
    that rejects the pair must stop listing row ``r`` in ``order`` (if ``r``
    was the oldest pair's row, that pair is gone).
    """
    d = _vec(d, "d")
    n, dt = d.shape[0], d.dtype
    g_new = _vec(g_new, "g_new", (n,), dt)
    g_old = _vec(g_old, "g_old", (n,), dt)
    s_row = _vec(s_row, "s_row", (n,), dt, write=True)
    y_row = _vec(y_row, "y_row", (n,), dt, write=True)
    inputs = (("d", d), ("g_new", g_new), ("g_old", g_old))
    _apart(s_row, "s_row", ("y_row", y_row), *inputs)
    _apart(y_row, "y_row", *inputs)
    kernel = _pair_parallel if _parallel(5 * d.nbytes, backend) else _pair_serial
    sy, yy = kernel(float(stp), d, g_new, g_old, s_row, y_row, _part())
    return float(sy), float(yy)


def step_to(x0, d, stp, x_out, backend="auto") -> None:
    """``x_out = x0 + stp d`` in the arrays' dtype, one pass (reads 2 vectors, writes 1).

    ``x_out`` may be ``x0`` itself (an in-place step) but must not overlap ``d``.
    """
    d = _vec(d, "d")
    x0 = _vec(x0, "x0", d.shape, d.dtype)
    x_out = _vec(x_out, "x_out", d.shape, d.dtype, write=True)
    _apart(x_out, "x_out", ("d", d))
    if np.may_share_memory(x_out, x0) and x_out.ctypes.data != x0.ctypes.data:
        raise ValueError("x_out must be x0 itself or not overlap it")
    kernel = _step_parallel if _parallel(3 * d.nbytes, backend) else _step_serial
    kernel(x0, d, float(stp), x_out)


def dot_and_maxabs(g, d, backend="auto") -> tuple[float, float]:
    """``(g . d, max_i |g_i|)`` in float64, one pass reading ``g`` and ``d``.

    The max is NaN if any ``g_i`` is NaN (SciPy's ``gtol`` test then fails),
    and 0 for empty arrays.
    """
    g = _vec(g, "g")
    d = _vec(d, "d", g.shape, g.dtype)
    kernel = _dm_parallel if _parallel(2 * g.nbytes, backend) else _dm_serial
    s, m = kernel(g, d, g, False, _part())
    return float(s), float(m)


def dot(g, d, backend="auto") -> float:
    """``g . d`` accumulated in float64, one pass (see :func:`dot_and_maxabs`)."""
    return dot_and_maxabs(g, d, backend)[0]


def max_abs(g, backend="auto") -> float:
    """``max_i |g_i|`` in float64 (NaN if any ``g_i`` is NaN), one pass over ``g``."""
    g = _vec(g, "g")
    kernel = _dm_parallel if _parallel(g.nbytes, backend) else _dm_serial
    return float(kernel(g, g, g, False, _part())[1])


def copy_and_measure(g, out, backend="auto") -> tuple[float, float]:
    """``out = g`` and ``(g . g, max_i |g_i|)`` in float64, one pass (reads 1
    vector, writes 1): the driver's copy of the gradient at ``x`` and its
    measures together. The max is NaN if any ``g_i`` is NaN."""
    g = _vec(g, "g")
    out = _vec(out, "out", g.shape, g.dtype, write=True)
    _apart(out, "out", ("g", g))
    kernel = _dm_parallel if _parallel(2 * g.nbytes, backend) else _dm_serial
    s, m = kernel(g, g, out, True, _part())
    return float(s), float(m)
