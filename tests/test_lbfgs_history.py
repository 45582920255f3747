"""fastgd.lbfgs.History: the vector-free form (the two-loop recursion on the
Gram matrix of ``[s.., y.., g]``) against the fused two-loop form, a NumPy
float64 textbook two-loop and the dense BFGS inverse, over real L-BFGS runs."""

from __future__ import annotations

import numpy as np
import pytest
from test_lbfgs_kernels import dense_inverse_hessian, reference_two_loop

from fastgd.lbfgs import History


def quadratic(n, cond, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.logspace(0, np.log10(cond), n)) @ Q.T
    return A, rng.standard_normal(n)


def pairs_of(h):
    return [(h.S[r].astype(np.float64), h.Y[r].astype(np.float64)) for r in h.order[: h.count]]


def run(h, A, b, iters, check=None, dtype=np.float64):
    """L-BFGS with exact line searches on ``A x - b``; ``check(h, g, d, it)``
    after each direction. Returns the final gradient's norm."""
    x = np.zeros(A.shape[0])
    g = (A @ x - b).astype(dtype)
    for it in range(iters):
        gc = g.copy()
        d = h.direction(gc)
        if check is not None:
            check(h, gc, d, it)
        stp = -h.dg / float(d.astype(np.float64) @ A @ d.astype(np.float64))
        x = x + stp * d
        g = (A @ x - b).astype(dtype)
        h.push(stp, d, g, gc)
        if np.linalg.norm(g) <= 1e-12 * np.linalg.norm(b):
            break
    return np.linalg.norm(A @ x - b)


def gram(h):
    """The exact Gram matrix of ``[S rows, Y rows, g]`` of the valid rows."""
    rows = h.order[: h.count]
    idx = np.concatenate([rows, h.m + rows, [2 * h.m]])
    return idx, h._gram.G[np.ix_(idx, idx)]


@pytest.mark.parametrize("m", [5, 10])
def test_directions_match_the_textbook_two_loop_and_the_dense_inverse(m):
    n = 80
    A, b = quadratic(n, 1e6)
    worst = {"two_loop": 0.0, "dense": 0.0, "slope": 0.0}

    def check(h, g, d, it):
        if h.count == 0:
            return
        pairs = pairs_of(h)
        ref, _ = reference_two_loop(g, pairs, h.gamma)
        worst["two_loop"] = max(worst["two_loop"], np.linalg.norm(d - ref) / np.linalg.norm(ref))
        if it % 25 == 0:
            dense = -dense_inverse_hessian(pairs, h.gamma, n) @ g
            err = np.linalg.norm(d - dense) / np.linalg.norm(dense)
            worst["dense"] = max(worst["dense"], err)
        worst["slope"] = max(worst["slope"], abs(h.dg - g @ d) / abs(h.dg))

    h = History(n, np.float64, m=m, backend="serial", form="vector_free")
    run(h, A, b, 200, check)
    assert worst["two_loop"] < 1e-10
    assert worst["dense"] < 1e-8  # the dense product rounds more than the recursion
    assert worst["slope"] < 1e-13


@pytest.mark.parametrize("m", [5, 10])
def test_runs_converge_like_the_two_loop_form(m):
    A, b = quadratic(60, 1e3, seed=1)
    res = {}
    for form in ("two_loop", "vector_free"):
        h = History(60, np.float64, m=m, backend="serial", form=form)
        res[form] = run(h, A, b, 300)
    assert res["vector_free"] <= 1e-9 * np.linalg.norm(b)
    assert res["two_loop"] <= 1e-9 * np.linalg.norm(b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gram_matrix_is_the_exact_gram_of_the_stored_vectors(dtype):
    n, m = 1001, 4
    A, b = quadratic(n, 1e3, seed=2)
    seen = []

    def check(h, g, d, it):
        if h.count:
            idx, G = gram(h)
            B = np.vstack([h.S[h.order[: h.count]], h.Y[h.order[: h.count]], g[None]])
            B = B.astype(np.float64)
            exact = B @ B.T
            scale = np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
            tol = 1e-13 if dtype == np.float64 else 1e-6  # s = stp d rounded to float32
            assert np.all(np.abs(G - exact) <= tol * scale)
            seen.append(it)

    h = History(n, dtype, m=m, backend="serial", form="vector_free")
    run(h, A, b, 40, check, dtype)
    assert len(seen) > 10


def test_serial_and_parallel_agree_bit_for_bit():
    n = 300_003
    rng = np.random.default_rng(3)
    a = np.logspace(0, 3, n)
    out = {}
    for backend in ("serial", "parallel"):
        h = History(n, np.float64, m=3, backend=backend, form="vector_free")
        g = -rng.standard_normal(n) if backend == "serial" else out["g0"].copy()
        out.setdefault("g0", g.copy())
        ds = []
        for _ in range(6):
            gc = g.copy()
            d = h.direction(gc)
            ds.append(d.copy())
            stp = -h.dg / float(d @ (a * d))
            g = gc + stp * (a * d)
            h.push(stp, d, g, gc)
        out[backend] = (np.array(ds), h._gram.G.copy(), h.gamma)
    ds, G, gamma = out["serial"]
    dp, Gp, gammap = out["parallel"]
    assert np.array_equal(ds, dp) and np.array_equal(G, Gp) and gamma == gammap


def test_another_gradient_and_another_direction_take_the_exact_paths():
    """direction(g) with a g that is not the last push's (here -g and a fresh
    one) and push with a d that is not the last direction still give the
    textbook direction and the exact Gram matrix."""
    n = 500
    A, b = quadratic(n, 1e4, seed=4)
    h = History(n, np.float64, m=4, backend="serial", form="vector_free")
    run(h, A, b, 8)
    rng = np.random.default_rng(5)
    g_last = h._gram.G[2 * h.m, 2 * h.m]
    for g in (rng.standard_normal(n), -rng.standard_normal(n)):
        d = h.direction(g).copy()
        ref, _ = reference_two_loop(g, pairs_of(h), h.gamma)
        np.testing.assert_allclose(d, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())
        assert h._gram.G[2 * h.m, 2 * h.m] != g_last
    g_old = rng.standard_normal(n)
    d_other = -rng.standard_normal(n)
    g_new = g_old + A @ (0.1 * d_other)
    assert h.push(0.1, d_other, g_new, g_old)
    idx, G = gram(h)
    B = np.vstack([h.S[h.order[: h.count]], h.Y[h.order[: h.count]], g_new[None]])
    np.testing.assert_allclose(G, B @ B.T, rtol=1e-12, atol=1e-12 * np.abs(B @ B.T).max())


def test_rejected_pairs_are_counted_and_drop_the_oldest_of_a_full_ring_like_two_loop():
    n, m = 50, 3
    A, b = quadratic(n, 1e2, seed=6)
    states = {}
    for form in ("two_loop", "vector_free"):
        h = History(n, np.float64, m=m, backend="serial", form=form)
        run(h, A, b, 5)
        assert h.count == m
        g = np.ones(n)
        d = h.direction(g)
        assert not h.push(1.0, d, g - d, g)  # s.y = -d.d < 0: rejected
        states[form] = (h.count, h.skipped, h.order[: h.count].copy())
        ref, _ = reference_two_loop(g - d, pairs_of(h), h.gamma)
        np.testing.assert_allclose(h.direction(g - d), ref, rtol=1e-10)
    assert states["two_loop"][:2] == states["vector_free"][:2] == (m - 1, 1)
    assert np.array_equal(states["two_loop"][2], states["vector_free"][2])


def test_form_is_checked():
    with pytest.raises(ValueError, match="form"):
        History(10, np.float64, form="compact")
