"""fastgd.lbfgs._kernels against independent float64 NumPy references.

Two references for the direction: the textbook two-loop recursion (Nocedal &
Wright, Algorithm 7.4) written plainly below, and the BFGS inverse Hessian
built densely from the same pairs. The kernels' serial and parallel loops must
agree bit for bit (fixed chunking, fixed summation order).
"""

from __future__ import annotations

import numpy as np
import pytest

from fastgd.lbfgs import _kernels as K

BACKENDS = ("serial", "parallel")
#: 0 and 1; odd sizes, multiples neither of the lanes nor of the chunk size;
#: 300_003 spans 147 chunks, the last one partial, and in float64 (2.4 MB) is
#: above PARALLEL_MIN_BYTES.
SIZES = [0, 1, 7, 1001, 300_003]
#: (m, count, head): count < m with and without wrap-around, count == m with
#: the newest pair in the middle of the ring, and no pairs at all.
RINGS = [(1, 1, 0), (3, 2, 0), (3, 3, 1), (10, 4, 7), (10, 10, 4), (10, 10, 9), (3, 0, 0)]


def reference_two_loop(g, pairs, gamma):
    """``-H g`` (float64) by the textbook two-loop recursion; ``pairs`` newest first."""
    q = g.astype(np.float64)
    alphas = []
    for s, y in pairs:
        rho = 1.0 / np.dot(s, y)
        a = rho * np.dot(s, q)
        q = q - a * y
        alphas.append(a)
    r = gamma * q
    for (s, y), a in reversed(list(zip(pairs, alphas, strict=True))):
        rho = 1.0 / np.dot(s, y)
        b = rho * np.dot(y, r)
        r = r + (a - b) * s
    return -r, alphas


def dense_inverse_hessian(pairs, gamma, n):
    """The BFGS inverse Hessian from ``H0 = gamma I`` and the pairs, oldest first."""
    H = gamma * np.eye(n)
    eye = np.eye(n)
    for s, y in reversed(pairs):
        rho = 1.0 / np.dot(s, y)
        V = eye - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def make_ring(m, count, head, n, dtype, seed=0):
    """Ring buffers with ``count`` valid pairs (``s.y > 0``), the newest in row
    ``head``; unlisted rows hold NaN (they must never be read)."""
    rng = np.random.default_rng(seed)
    S = np.full((m, n), np.nan, dtype)
    Y = np.full((m, n), np.nan, dtype)
    rho = np.full(m, np.nan)
    order = np.array([(head - j) % m for j in range(m)], np.int64)
    for r in order[:count]:
        s = rng.standard_normal(n)
        y = s * rng.uniform(0.5, 2.0, n) + 0.1 * rng.standard_normal(n)
        S[r], Y[r] = s, y
        sy = np.dot(S[r].astype(np.float64), Y[r].astype(np.float64))
        if n and sy <= 0:  # keep the pair positive-curvature
            Y[r] = S[r]
            sy = np.dot(S[r].astype(np.float64), Y[r].astype(np.float64))
        rho[r] = 1.0 / sy if n else 1.0
    g = rng.standard_normal(n).astype(dtype)
    pairs = [(S[r].astype(np.float64), Y[r].astype(np.float64)) for r in order[:count]]
    return g, S, Y, rho, order, pairs


def run_two_loop(g, S, Y, rho, order, count, gamma, backend):
    d = np.full_like(g, np.nan)
    alpha = np.full(S.shape[0], np.nan)
    gd = K.two_loop(g, S, Y, rho, order, count, gamma, d, alpha, backend)
    return d, alpha, gd


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("m, count, head", RINGS)
def test_two_loop_matches_textbook(m, count, head, n, dtype):
    g, S, Y, rho, order, pairs = make_ring(m, count, head, n, dtype, seed=n + m + count)
    gamma = 0.7
    copies = [a.copy() for a in (g, S, Y, rho)]
    # (with n = 0 every product is 0 and the textbook's rho = 1 / 0)
    ref, ref_alpha = reference_two_loop(g, pairs, gamma) if n else (np.zeros(0), [])
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    out = {b: run_two_loop(g, S, Y, rho, order, count, gamma, b) for b in BACKENDS}
    d, alpha, gd = out["serial"]
    assert d.dtype == dtype and d.shape == (n,)
    scale = max(np.abs(ref).max(initial=0.0), 1e-300)
    assert np.abs(d - ref).max(initial=0.0) <= rtol * scale
    if count and n:
        assert np.allclose(alpha[order[:count]], ref_alpha, rtol=rtol * 10, atol=rtol * scale)
    # the returned slope is g.d of the stored d, accumulated in float64
    exact = float(np.dot(g.astype(np.float64), d.astype(np.float64)))
    assert gd == pytest.approx(exact, rel=1e-12, abs=1e-300)
    if n:
        assert gd < 0  # a descent direction
    # serial and parallel: identical, bit for bit
    dp, alphap, gdp = out["parallel"]
    assert dp.tobytes() == d.tobytes() and gdp == gd
    assert np.array_equal(alphap[order[:count]], alpha[order[:count]])
    for before, after in zip(copies, (g, S, Y, rho), strict=True):
        assert np.array_equal(before, after, equal_nan=True)  # inputs only read


@pytest.mark.parametrize("m, count, head", [(1, 1, 0), (3, 3, 1), (5, 4, 1), (10, 10, 4)])
def test_two_loop_is_the_dense_bfgs_inverse_hessian(m, count, head):
    n = 12
    g, S, Y, rho, order, pairs = make_ring(m, count, head, n, np.float64, seed=m)
    gamma = 1.3
    H = dense_inverse_hessian(pairs, gamma, n)
    expected = -H @ g
    for backend in BACKENDS:
        d, _, gd = run_two_loop(g, S, Y, rho, order, count, gamma, backend)
        assert np.allclose(d, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
        assert gd == pytest.approx(-g @ H @ g, rel=1e-12)
    # H satisfies the newest secant equation H y = s
    s, y = pairs[0]
    assert np.allclose(H @ y, s, rtol=1e-10, atol=1e-12)


def test_two_loop_without_pairs_is_scaled_steepest_descent(dtype):
    g = np.random.default_rng(3).standard_normal(1001).astype(dtype)
    S = np.zeros((4, 1001), dtype)
    for backend in BACKENDS:
        d, _, gd = run_two_loop(g, S, S.copy(), np.ones(4), np.zeros(4, np.int64), 0, 0.5, backend)
        assert np.array_equal(d, -dtype.type(0.5) * g)
        assert gd == pytest.approx(float(-0.5 * (g.astype(np.float64) ** 2).sum()), rel=1e-12)


def test_two_loop_serial_parallel_identical_float32_large():
    g, S, Y, rho, order, _ = make_ring(10, 10, 3, 1_000_003, np.float32, seed=7)
    d_s, a_s, gd_s = run_two_loop(g, S, Y, rho, order, 10, 0.9, "serial")
    d_p, a_p, gd_p = run_two_loop(g, S, Y, rho, order, 10, 0.9, "parallel")
    assert d_s.tobytes() == d_p.tobytes() and a_s.tobytes() == a_p.tobytes() and gd_s == gd_p


@pytest.mark.parametrize("n", [*SIZES, 1_000_003, 10**7 + 1])
def test_chunking_partitions_the_range(n):
    chunks, size = K._chunking(n)
    assert chunks <= K._CHUNKS and (n == 0 or size >= K._MIN_CHUNK)
    assert chunks * size >= n and (chunks == 0 or (chunks - 1) * size < n)


@pytest.mark.parametrize("n", SIZES)
def test_update_pair(n, dtype):
    rng = np.random.default_rng(n)
    d, gn, go = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    stp = 0.37
    S = np.full((2, n), np.nan, dtype)
    Y = np.full((2, n), np.nan, dtype)
    results = [K.update_pair(stp, d, gn, go, S[k], Y[k], b) for k, b in enumerate(BACKENDS)]
    s = dtype.type(stp) * d  # the kernel's arithmetic: the dtype's
    y = gn - go
    for k in range(2):
        assert S[k].tobytes() == s.tobytes() and Y[k].tobytes() == y.tobytes()
    sy, yy = results[0]
    s64, y64 = s.astype(np.float64), y.astype(np.float64)
    assert sy == pytest.approx(float(s64 @ y64), rel=1e-12, abs=1e-300)
    assert yy == pytest.approx(float(y64 @ y64), rel=1e-12, abs=1e-300)
    assert results[0] == results[1]


@pytest.mark.parametrize("n", SIZES)
def test_step_to(n, dtype):
    rng = np.random.default_rng(n)
    x0, d = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    expected = x0 + dtype.type(-1.7) * d
    for backend in BACKENDS:
        out = np.full_like(x0, np.nan)
        K.step_to(x0, d, -1.7, out, backend)
        assert out.tobytes() == expected.tobytes()
    x = x0.copy()
    K.step_to(x, d, -1.7, x)  # in place
    assert x.tobytes() == expected.tobytes()


@pytest.mark.parametrize("n", SIZES)
def test_dot_and_maxabs(n, dtype):
    rng = np.random.default_rng(n)
    g, d = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    g64, d64 = g.astype(np.float64), d.astype(np.float64)
    got = [K.dot_and_maxabs(g, d, b) for b in BACKENDS]
    assert got[0] == got[1]
    gd, mx = got[0]
    assert gd == pytest.approx(float(g64 @ d64), rel=1e-12, abs=1e-300)
    assert mx == float(np.abs(g64).max(initial=0.0))
    for b in BACKENDS:
        assert K.dot(g, d, b) == gd and K.max_abs(g, b) == mx
    if n:
        h = np.empty_like(g)
        assert K.negate(g, h) == pytest.approx(-float(g64 @ g64), rel=1e-12)
        assert np.array_equal(h, -g)


@pytest.mark.parametrize("where", [0, 1000, -1])  # first chunk, a middle one, the tail
def test_max_abs_propagates_nan_and_inf(where, dtype):
    g = np.linspace(-1, 1, 300_003).astype(dtype)
    g[where] = np.inf
    for b in BACKENDS:
        assert K.max_abs(g, b) == np.inf
    g[where] = np.nan
    g[5] = -np.inf
    for b in BACKENDS:
        assert np.isnan(K.max_abs(g, b))
        gd, mx = K.dot_and_maxabs(g, np.ones_like(g), b)
        assert np.isnan(gd) and np.isnan(mx)


def test_lbfgs_on_a_quadratic_converges():
    """A minimal L-BFGS loop built from the kernels (exact line search on a
    convex quadratic) reaches the minimizer."""
    rng = np.random.default_rng(0)
    n, m = 60, 5
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T / n + np.eye(n)
    b = rng.standard_normal(n)
    x = np.zeros(n)
    g = A @ x - b
    S, Y = np.zeros((m, n)), np.zeros((m, n))
    rho, alpha, order = np.zeros(m), np.zeros(m), np.zeros(m, np.int64)
    d, xt = np.empty(n), np.empty(n)
    count, head, gamma = 0, 0, 1.0
    for _ in range(200):
        if K.max_abs(g) < 1e-10:
            break
        gd = K.two_loop(g, S, Y, rho, order, count, gamma, d, alpha)
        assert gd < 0
        stp = -gd / float(d @ A @ d)
        K.step_to(x, d, stp, xt)
        g_new = A @ xt - b
        sy, yy = K.update_pair(stp, d, g_new, g, S[head], Y[head])
        assert sy > 0
        rho[head], gamma = 1.0 / sy, sy / yy
        count = min(count + 1, m)
        order[:count] = (head - np.arange(count)) % m
        head = (head + 1) % m
        x, xt, g = xt, x, g_new
    assert K.max_abs(g) < 1e-10
    assert np.allclose(x, np.linalg.solve(A, b), atol=1e-9)


def test_errors():
    g, S, Y, rho, order, _ = make_ring(3, 3, 0, 10, np.float64)
    alpha = np.zeros(3)
    with pytest.raises(ValueError, match="overlap"):
        K.two_loop(g, S, Y, rho, order, 3, 1.0, g, alpha)
    with pytest.raises(IndexError, match="order"):
        K.two_loop(g, S, Y, rho, np.array([0, 5, 1]), 3, 1.0, np.empty(10), alpha)
    with pytest.raises(ValueError, match="count"):
        K.two_loop(g, S, Y, rho, order, 4, 1.0, np.empty(10), alpha)
    with pytest.raises(ValueError, match="float32"):
        K.two_loop(g, S, Y, rho, order, 3, 1.0, np.empty(10, np.float32), alpha)
    with pytest.raises(ValueError, match="backend"):
        K.dot(g, g, "gpu")
    with pytest.raises(ValueError, match="overlap"):
        K.step_to(g, g, 1.0, g)
    with pytest.raises(ValueError, match="overlap"):
        K.update_pair(1.0, g, g, g, S[0], S[0])
    with pytest.raises(TypeError):
        K.dot(g.astype(np.int64), g)


@pytest.mark.parametrize("n", SIZES)
def test_copy_and_measure_copies_and_measures_in_one_pass(n, dtype):
    g = np.random.default_rng(n).standard_normal(n).astype(dtype)
    out = {b: np.full_like(g, np.nan) for b in BACKENDS}
    res = {b: K.copy_and_measure(g, out[b], b) for b in BACKENDS}
    assert res["serial"] == res["parallel"]  # bit for bit
    for b in BACKENDS:
        np.testing.assert_array_equal(out[b], g)
    sumsq, big = res["serial"]
    f64 = g.astype(np.float64)
    assert sumsq == pytest.approx(np.dot(f64, f64), rel=1e-13, abs=0.0)
    assert big == np.abs(f64).max(initial=0.0)
    if n > 1:
        g[n // 2] = np.nan
        assert np.isnan(K.copy_and_measure(g, out["serial"], "parallel")[1])
        assert np.isnan(out["serial"][n // 2])
        with pytest.raises(ValueError, match="overlap"):
            K.copy_and_measure(g, g)
