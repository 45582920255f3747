"""fastgd.problems: gradients, Hessians, minima, mini-batches and determinism."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.optimize as so

from fastgd import problems
from fastgd.gradcheck import check_grad
from fastgd.problems import (
    HESS_MAX_N,
    PROBLEMS,
    IllConditionedQuadratic,
    LeastSquares,
    LogisticRegression,
    Problem,
    Rosenbrock,
    SoftmaxRegression,
    large_problem,
)

CASES = {
    "rosenbrock-2": lambda: Rosenbrock(2),
    "rosenbrock-7": lambda: Rosenbrock(7),
    "quadratic": lambda: IllConditionedQuadratic(50, condition=1e3, seed=3),
    "least_squares": lambda: LeastSquares(200, 8, noise=0.3, seed=1),
    "line_fit": lambda: LeastSquares.line_fit(),
    "logistic": lambda: LogisticRegression(300, 6, l2=1e-2, seed=2),
    "softmax": lambda: SoftmaxRegression(300, 5, 4, l2=1e-2, seed=4),
}
DATA_CASES = ["least_squares", "line_fit", "logistic", "softmax"]


@pytest.fixture(params=list(CASES), scope="module")
def problem(request) -> Problem:
    return CASES[request.param]()


@pytest.fixture(params=DATA_CASES, scope="module")
def data_problem(request) -> Problem:
    return CASES[request.param]()


def generic_point(p: Problem, seed: int = 0) -> np.ndarray:
    return p.x0 + 0.3 * np.random.default_rng(seed).standard_normal(p.n)


def test_gradient_passes_gradcheck(problem):
    for seed in range(2):
        x = generic_point(problem, seed)
        result = check_grad(problem.f, problem.grad, x)
        assert result.ok(1e-6), result
    assert check_grad(problem.fun_and_grad, True, problem.x0).ok(1e-6)


def test_fun_and_grad_agree_with_f_and_grad(problem):
    x = generic_point(problem)
    f, g = problem.fun_and_grad(x)
    assert isinstance(f, float)
    assert f == pytest.approx(problem.f(x), rel=1e-14)
    np.testing.assert_allclose(g, problem.grad(x), rtol=1e-14)
    assert g.shape == (problem.n,) and g.dtype == np.float64


def test_hessp_matches_finite_differences_of_gradient(problem):
    rng = np.random.default_rng(5)
    x = generic_point(problem)
    for _ in range(3):
        v = rng.standard_normal(problem.n)
        h = 1e-6
        fd = (problem.grad(x + h * v) - problem.grad(x - h * v)) / (2 * h)
        hv = problem.hessp(x, v)
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


def test_dense_hessian_is_symmetric_and_matches_hessp(problem):
    x = generic_point(problem)
    H = problem.hess(x)
    assert H.shape == (problem.n, problem.n)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14 * np.abs(H).max())
    v = np.random.default_rng(6).standard_normal(problem.n)
    np.testing.assert_allclose(H @ v, problem.hessp(x, v), rtol=1e-10, atol=1e-12)


def test_known_minimum(problem):
    x_star, f_star = problem.x_star, problem.f_star
    assert x_star.shape == (problem.n,)
    assert not x_star.flags.writeable
    g = problem.grad(x_star)
    assert np.abs(g).max() < 1e-8
    assert problem.f(x_star) == pytest.approx(f_star, rel=1e-12, abs=1e-15)
    assert problem.f(problem.x0) - f_star > 100 * problem.tol
    rng = np.random.default_rng(7)
    for _ in range(3):  # a minimum: nearby points are no better
        assert problem.f(x_star + 1e-3 * rng.standard_normal(problem.n)) > f_star


def test_scipy_reaches_target_from_x0(problem):
    res = so.minimize(
        problem.fun_and_grad, problem.x0, jac=True, method="L-BFGS-B",
        options=dict(maxiter=10_000, ftol=0.0, gtol=1e-10),
    )  # fmt: skip
    assert res.fun - problem.f_star <= problem.tol
    assert res.fun >= problem.f_star - 1e-12


def test_x0_is_fresh_and_deterministic(problem):
    x = problem.x0
    x += 1.0
    np.testing.assert_array_equal(problem.x0, x - 1.0)
    again = problem.x0
    assert again.dtype == np.float64 and again.shape == (problem.n,)


def test_float32_point_gives_float32_gradient(problem):
    x = generic_point(problem).astype(np.float32)
    f, g = problem.fun_and_grad(x)
    assert g.dtype == np.float32
    assert problem.grad(x).dtype == np.float32
    assert problem.hessp(x, np.ones(problem.n)).dtype == np.float32
    np.testing.assert_allclose(g, problem.grad(x.astype(np.float64)), rtol=1e-6, atol=1e-6)
    assert f == problem.f(x.astype(np.float64))


def test_wrong_shape_raises(problem):
    with pytest.raises(ValueError, match="shape"):
        problem.f(np.zeros(problem.n + 1))
    with pytest.raises(ValueError, match="shape"):
        problem.hessp(problem.x0, np.zeros(problem.n + 1))
    with pytest.raises(TypeError):
        problem.grad(np.zeros(problem.n, complex))


# -- mini-batches ---------------------------------------------------------------


def test_batch_of_all_samples_is_full_batch(data_problem):
    p = data_problem
    x = generic_point(p)
    idx = np.arange(p.n_samples, dtype=np.int64)
    assert p.f(x, idx) == pytest.approx(p.f(x), rel=1e-13)
    np.testing.assert_allclose(p.grad(x, idx), p.grad(x), rtol=1e-12, atol=1e-15)
    f, g = p.fun_and_grad(x, idx[::-1].copy())  # order does not matter
    assert f == pytest.approx(p.f(x), rel=1e-13)
    v = np.ones(p.n)
    np.testing.assert_allclose(p.hessp(x, v, idx), p.hessp(x, v), rtol=1e-12)


def test_mean_over_equal_batches_is_full_batch(data_problem):
    p = data_problem
    x = generic_point(p)
    m = p.n_samples - p.n_samples % 5
    perm = np.random.default_rng(0).permutation(p.n_samples)[:m]
    batches = perm.reshape(5, -1)
    fs = [p.f(x, b) for b in batches]
    gs = [p.grad(x, b) for b in batches]
    f_all, g_all = p.fun_and_grad(x, perm)
    assert np.mean(fs) == pytest.approx(f_all, rel=1e-12)
    np.testing.assert_allclose(np.mean(gs, axis=0), g_all, rtol=1e-10, atol=1e-14)
    if isinstance(p, LeastSquares):  # a batch is the problem on those samples
        assert LeastSquares.from_data(p.X[perm], p.y[perm]).f(x) == pytest.approx(f_all, rel=1e-12)


def test_batch_gradient_passes_gradcheck(data_problem):
    p = data_problem
    idx = np.random.default_rng(1).choice(p.n_samples, 17, replace=False)
    x = generic_point(p)
    assert check_grad(lambda z: p.f(z, idx), lambda z: p.grad(z, idx), x).ok(1e-6)


def test_bad_batches(data_problem):
    x = data_problem.x0
    with pytest.raises(ValueError):
        data_problem.f(x, np.zeros(0, np.int64))
    with pytest.raises(TypeError):
        data_problem.grad(x, np.array([0.5, 1.0]))
    with pytest.raises(IndexError):
        data_problem.f(x, np.array([data_problem.n_samples]))


# -- determinism ----------------------------------------------------------------

SEEDED = {
    "quadratic": lambda seed: IllConditionedQuadratic(40, seed=seed),
    "least_squares": lambda seed: LeastSquares(50, 4, seed=seed),
    "line_fit": lambda seed: LeastSquares.line_fit(seed=seed),
    "logistic": lambda seed: LogisticRegression(60, 4, seed=seed),
    "softmax": lambda seed: SoftmaxRegression(60, 4, 3, seed=seed),
}


@pytest.mark.parametrize("make", SEEDED.values(), ids=SEEDED.keys())
def test_same_seed_same_problem(make):
    a, b, c = make(11), make(11), make(12)
    x = generic_point(a)
    assert a.f(x) == b.f(x)
    np.testing.assert_array_equal(a.grad(x), b.grad(x))
    np.testing.assert_array_equal(a.x0, b.x0)
    assert a.f(x) != c.f(x)


def test_rosenbrock_matches_scipy():
    p = Rosenbrock(9)
    x = generic_point(p)
    v = np.random.default_rng(2).standard_normal(9)
    assert p.f(x) == pytest.approx(so.rosen(x), rel=1e-14)
    np.testing.assert_allclose(p.grad(x), so.rosen_der(x), rtol=1e-13)
    np.testing.assert_allclose(p.hess(x), so.rosen_hess(x), rtol=1e-13)
    np.testing.assert_allclose(p.hessp(x, v), so.rosen_hess_prod(x, v), rtol=1e-12)
    np.testing.assert_array_equal(p.x0, [-1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1, -1.2])
    assert p.f_star == 0.0 and p.f(p.x_star) == 0.0


def test_quadratic_spectrum():
    p = IllConditionedQuadratic(100, condition=1e5)
    H = p.hess(p.x0)
    eig = np.diag(H)
    assert eig.min() == pytest.approx(1.0) and eig.max() == pytest.approx(1e5)
    assert np.linalg.cond(H) == pytest.approx(1e5)
    np.testing.assert_allclose(p.grad(p.x0), -p.b)
    assert IllConditionedQuadratic(1).diag.tolist() == [1.0]


def test_line_fit_recovers_the_line():
    p = LeastSquares.line_fit(n_samples=1000, slope=-3.0, intercept=0.5, noise=0.01)
    assert p.n == 2 and p.n_samples == 1000 and p.name == "line_fit"
    np.testing.assert_allclose(p.x_star, [-3.0, 0.5], atol=5e-3)
    assert "slope=-3.0" in repr(p)


def test_logistic_labels_and_loss_at_zero():
    p = LogisticRegression(500, 5)
    assert set(np.unique(p.y)) == {0.0, 1.0}
    assert p.f(np.zeros(5)) == pytest.approx(np.log(2.0))


def test_logistic_is_stable_for_large_margins():
    p = LogisticRegression(100, 3)
    f, g = p.fun_and_grad(np.full(3, 1e3))
    assert np.isfinite(f) and np.all(np.isfinite(g))


def test_softmax_shapes_and_loss_at_zero():
    p = SoftmaxRegression(400, 6, 4)
    assert p.n == 24 and set(np.unique(p.labels)) == {0, 1, 2, 3}
    assert p.f(np.zeros(24)) == pytest.approx(np.log(4.0))
    f, g = p.fun_and_grad(np.full(24, 1e3))
    assert np.isfinite(f) and np.all(np.isfinite(g))


def test_registry():
    for name, factory in PROBLEMS.items():
        p = factory()
        assert isinstance(p, Problem)
        assert p.name == name
        assert np.isfinite(p.f(p.x0))
        assert name.split("_")[0] in repr(p).lower() or isinstance(p, LeastSquares)


def test_large_problem():
    p = large_problem()
    assert p.n >= 1_000_000
    x = p.x0.astype(np.float32)
    start = time.perf_counter()
    f, g = p.fun_and_grad(x)
    elapsed = time.perf_counter() - start
    assert g.dtype == np.float32 and f == 0.0
    np.testing.assert_allclose(g, -p.b, rtol=1e-6)
    assert elapsed < 3.0  # ~10 ms on a quiet machine
    assert p.f(p.x_star) == pytest.approx(p.f_star, rel=1e-12)
    with pytest.raises(ValueError, match="hessp"):
        p.hess(p.x0)
    result = check_grad(p.f, p.grad, generic_point(p), eps=1e-3, n_coords=10, seed=0)
    assert result.ok(1e-5), result


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rosenbrock(1),
        lambda: Rosenbrock(2.0),
        lambda: IllConditionedQuadratic(0),
        lambda: IllConditionedQuadratic(5, condition=0.5),
        lambda: LeastSquares(0, 3),
        lambda: LeastSquares.from_data(np.ones((3, 2)), np.ones(4)),
        lambda: LogisticRegression(10, 2, l2=0.0),
        lambda: SoftmaxRegression(10, 2, n_classes=1),
        lambda: SoftmaxRegression(10, 2, l2=-1.0),
    ],
)
def test_bad_construction(make):
    with pytest.raises(ValueError):
        make()


def test_hess_limit(monkeypatch):
    assert HESS_MAX_N >= 1000
    monkeypatch.setattr(problems, "HESS_MAX_N", 8)
    assert Rosenbrock(8).hess(Rosenbrock(8).x0).shape == (8, 8)
    for p in (Rosenbrock(9), IllConditionedQuadratic(9), SoftmaxRegression(20, 3, 3)):
        with pytest.raises(ValueError, match="hessp"):
            p.hess(p.x0)
