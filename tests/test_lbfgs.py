"""``minimize(method="lbfgs")`` against SciPy's L-BFGS-B (same memory ``m``,
``ftol`` and ``gtol``) on every problem of :mod:`fastgd.problems`, and the
properties the algorithm promises: strong Wolfe steps, restarts, skipped
pairs, failures reported clearly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

import fastgd
from fastgd.driver import Status
from fastgd.lbfgs import History
from fastgd.problems import PROBLEMS

PROBLEM_ARGS = {
    "rosenbrock": dict(n=10),
    "quadratic": dict(n=200, condition=1e3),
    "least_squares": dict(),
    "line_fit": dict(),
    "logistic": dict(),
    "softmax": dict(),
}


def make(name):
    factory = PROBLEMS[name]
    try:
        return factory(**PROBLEM_ARGS[name])
    except TypeError:
        return factory()


def scipy_lbfgsb(p, m=10, gtol=1e-5, maxiter=1000):
    return scipy.optimize.minimize(
        p.fun_and_grad, p.x0, jac=True, method="L-BFGS-B",
        options=dict(maxcor=m, gtol=gtol, maxiter=maxiter),
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_same_minimizer_and_iterations_as_scipy(name):
    p = make(name)
    ref = scipy_lbfgsb(p)
    res = fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs")
    assert res.success, res.message
    assert ref.success, ref.message
    # the same minimum (both stop on gtol or ftol)
    assert res.fun == pytest.approx(ref.fun, rel=1e-6, abs=1e-9)
    if p.x_star is not None:
        np.testing.assert_allclose(res.x, p.x_star, rtol=1e-3, atol=1e-3)
    # comparable work: within 1.3x of SciPy's iterations (+2 for tiny counts)
    assert res.nit <= 1.3 * ref.nit + 2, (res.nit, ref.nit)
    assert res.nfev <= 1.5 * ref.nfev + 3, (res.nfev, ref.nfev)


def test_strong_wolfe_conditions_hold_at_every_step():
    p = make("rosenbrock")
    evaluations = {}

    def fun(x):
        f, g = p.fun_and_grad(x)
        evaluations[x.tobytes()] = (f, g.copy())
        return f, g

    points = []
    res = fastgd.minimize(
        fun, p.x0, jac=True, method="lbfgs",
        callback=lambda x: points.append(x.copy()),
    )  # fmt: skip
    assert res.success and len(points) == res.nit
    xs = [p.x0, *points]
    for k, (a, b) in enumerate(zip(xs, xs[1:], strict=False)):
        stp = res.history["lr"][k]
        d = (b - a) / stp
        fa, ga = evaluations[a.tobytes()]
        fb, gb = evaluations[b.tobytes()]
        dg0 = ga @ d
        assert dg0 < 0
        assert fb <= fa + 1e-3 * stp * dg0 + 1e-12 * abs(fa)  # sufficient decrease
        assert abs(gb @ d) <= 0.9 * abs(dg0) * (1 + 1e-9)  # curvature (strong)


def test_zero_gradient_at_x0():
    res = fastgd.minimize(lambda x: (0.0, np.zeros_like(x)), np.ones(4), jac=True, method="lbfgs")
    assert res.status == Status.GTOL and res.nit == 0 and res.nfev == 1


def test_non_finite_loss_in_the_search_backtracks():
    """f is +inf beyond |x| > 2: the first trial step (1/||g||... then 1)
    lands there, the search backtracks and the run converges."""

    def fun(x):
        if np.max(np.abs(x)) > 2.0:
            return np.inf, np.full_like(x, np.nan)
        return float(np.sum((x - 1.5) ** 2)), 2 * (x - 1.5)

    res = fastgd.minimize(fun, np.zeros(3), jac=True, method="lbfgs")
    assert res.success, res.message
    np.testing.assert_allclose(res.x, 1.5, atol=1e-6)


def test_non_finite_everywhere_but_x0_fails_clearly():
    def fun(x):
        if np.any(x != 0):
            return np.nan, np.full_like(x, np.nan)
        return 1.0, np.ones_like(x)

    res = fastgd.minimize(fun, np.zeros(3), jac=True, method="lbfgs")
    assert not res.success
    assert res.status == Status.LINE_SEARCH
    assert "Line search failed at iteration 0" in res.message
    np.testing.assert_array_equal(res.x, 0.0)  # x never moved


def test_pairs_with_non_positive_curvature_are_skipped():
    h = History(4, np.float64, m=3, backend="serial")
    d = np.array([1.0, 0.0, 0.0, 0.0])
    g_old = np.zeros(4)
    assert not h.push(1.0, d, np.array([-1.0, 0.0, 0.0, 0.0]), g_old)  # s.y = -1
    assert h.count == 0 and h.skipped == 1
    assert h.push(1.0, d, np.array([2.0, 0.0, 0.0, 0.0]), g_old)  # s.y = 2
    assert h.count == 1 and h.gamma == pytest.approx(0.5)


def test_history_ring_wraps_and_matches_a_dense_bfgs_inverse():
    """After more than m pairs the direction is the two-loop recursion over the
    last m pairs: checked against the dense BFGS inverse Hessian built from them."""
    rng = np.random.default_rng(0)
    n, m = 6, 3
    A = rng.standard_normal((n, n))
    A = A @ A.T + n * np.eye(n)  # SPD: s.y > 0 for every pair
    h = History(n, np.float64, m=m, backend="serial")
    pairs = []
    for _ in range(5):
        d = rng.standard_normal(n)
        stp = 0.5
        g_old = rng.standard_normal(n)
        g_new = g_old + A @ (stp * d)
        assert h.push(stp, d, g_new, g_old)
        pairs.append((stp * d, g_new - g_old))
    g = rng.standard_normal(n)
    s, y = pairs[-1]
    H = (s @ y) / (y @ y) * np.eye(n)
    for s, y in pairs[-m:]:  # oldest to newest
        rho = 1 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    np.testing.assert_allclose(h.direction(g), -H @ g, rtol=1e-12, atol=1e-12)


def test_float32_converges_to_float32_tolerances():
    p = make("quadratic")
    res = fastgd.minimize(
        p.fun_and_grad, p.x0.astype(np.float32), jac=True, method="lbfgs", dtype=np.float32,
        options=dict(gtol=1e-3),
    )  # fmt: skip
    assert res.x.dtype == np.float32
    assert res.success, res.message
    assert p.f(res.x.astype(np.float64)) - p.f_star <= 1e-4 * max(1.0, abs(p.f_star))


def test_options_and_refusals():
    p = make("rosenbrock")
    res = fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs",
                          options=dict(m=3, maxls=5, maxiter=5))  # fmt: skip
    assert res.status == Status.MAXITER and res.nit == 5
    for kwargs, what in [
        (dict(schedule=lambda t: 0.1), "schedule"),
        (dict(clip_norm=1.0), "clip_norm"),
        (dict(l1=0.1), "l1"),
        (dict(batch_size=2, n_samples=4), "batch_size"),
    ]:
        with pytest.raises(ValueError, match=f"lbfgs.*{what}"):
            fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs", **kwargs)
    with pytest.raises(ValueError, match="Unknown options"):
        fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs", options=dict(lr=0.1))
    with pytest.raises(ValueError, match="m"):
        fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs", options=dict(m=0))


def test_scipy_method_lbfgs_and_bounds_point_to_lbfgsb():
    p = make("quadratic")
    method = fastgd.scipy_method("lbfgs")
    res = scipy.optimize.minimize(p.fun_and_grad, p.x0, jac=True, method=method)
    assert res.success
    with pytest.raises(ValueError, match="L-BFGS-B"):
        scipy.optimize.minimize(
            p.fun_and_grad, p.x0, jac=True, method=method, bounds=[(0, 1)] * p.n
        )


def test_a_rejected_pair_in_a_full_ring_drops_the_oldest():
    """The rejected pair was written over the oldest row: that row leaves the
    memory rather than being used with the old rho."""
    n, m = 3, 2
    h = History(n, np.float64, m=m, backend="serial")
    e = np.eye(n)
    assert h.push(1.0, e[0], 2 * e[0], np.zeros(n))
    assert h.push(1.0, e[1], 3 * e[1], np.zeros(n))
    assert h.count == 2
    assert not h.push(1.0, e[2], -e[2], np.zeros(n))  # s.y < 0: rejected
    assert h.count == 1  # only the newest pair (e1, 3 e1) is left
    g = np.ones(n)
    # H from the one pair: gamma = s.y / y.y = 1/3, then the BFGS update
    s, y = e[1], 3 * e[1]
    H = (1 / 3) * np.eye(n)
    rho = 1 / (s @ y)
    V = np.eye(n) - rho * np.outer(y, s)
    H = V.T @ H @ V + rho * np.outer(s, s)
    np.testing.assert_allclose(h.direction(g), -H @ g, rtol=1e-14)


def test_vector_free_form_takes_the_same_steps():
    """options=dict(form="vector_free"): the direction from the Gram matrix of
    the basis (one pass to form d, one to update the dots) equals the
    two-loop recursion's to rounding, so the runs agree."""
    p = make("quadratic")
    a = fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs")
    b = fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs",
                        options=dict(form="vector_free"))  # fmt: skip
    assert a.success and b.success
    assert abs(a.nit - b.nit) <= 2
    np.testing.assert_allclose(b.x, a.x, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="form"):
        fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="lbfgs", options=dict(form="x"))
