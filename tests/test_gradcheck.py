"""fastgd.gradcheck.check_grad: passes right gradients, catches wrong ones, stays cheap."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der

from fastgd.gradcheck import GradCheckResult, check_grad


def quadratic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    A = M @ M.T + n * np.eye(n)
    b = rng.standard_normal(n)
    return (lambda x: 0.5 * x @ A @ x - b @ x), (lambda x: A @ x - b)


def point(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, n)


@pytest.mark.parametrize("n", [2, 5, 50])
def test_rosenbrock_passes(n):
    r = check_grad(rosen, rosen_der, point(n))
    assert isinstance(r, GradCheckResult)
    assert r.ok()
    assert r.max_rel_error < 1e-7
    np.testing.assert_array_equal(r.coords, np.arange(n))
    assert r.worst.size == min(n, 10)
    assert r.errors[0] == r.max_rel_error
    assert np.all(np.diff(r.errors) <= 0)  # worst first
    np.testing.assert_allclose(r.analytic, rosen_der(point(n))[r.worst])
    np.testing.assert_allclose(r.numeric, r.analytic, rtol=1e-7)


def test_quadratic_passes():
    f, g = quadratic(30)
    r = check_grad(f, g, point(30))
    assert r.ok(1e-6)


def test_jac_true():
    f, g = quadratic(8)
    r = check_grad(lambda x: (f(x), g(x)), True, point(8))
    assert r.ok()


def test_any_shape_and_dtype():
    x = point(12).reshape(3, 4).astype(np.float32)
    r = check_grad(lambda z: float(np.sum(np.sin(z))), lambda z: np.cos(z), x)
    assert r.ok()
    assert r.coords.max() == 11


@pytest.mark.parametrize("bad", [6, 13])
def test_wrong_factor_is_caught(bad):
    def wrong(x):
        g = rosen_der(x)
        g[bad] *= 1.5
        return g

    r = check_grad(rosen, wrong, point(20))
    assert not r.ok()
    assert r.worst[0] == bad
    assert r.max_rel_error == pytest.approx(1 / 3, rel=1e-6)  # |1.5a - a| / |1.5a|
    assert r.analytic[0] == pytest.approx(1.5 * r.numeric[0], rel=1e-7)
    assert r.errors[1] < 1e-7  # only that coordinate is wrong


def test_sign_error_is_caught():
    f, g = quadratic(10)
    r = check_grad(f, lambda x: -g(x), point(10))
    assert not r.ok()
    assert r.max_rel_error == pytest.approx(2.0)
    assert set(r.worst.tolist()) == set(range(10))


def test_small_wrong_entry_is_caught_despite_floor():
    # the error of an entry below the floor is measured against the floor
    f, g = quadratic(6)
    x = point(6)
    shift = np.zeros(6)
    shift[3] = 1e-3

    r = check_grad(f, lambda z: g(z) + shift, x)
    assert not r.ok()
    assert r.worst[0] == 3


def test_near_zero_entry_does_not_false_alarm():
    # a coordinate f does not depend on: the quotient is round-off only
    def f(x):
        return 1e3 * np.sum(np.cosh(x[1:])) + 0.0 * x[0]

    def jac(x):
        return np.concatenate([[0.0], 1e3 * np.sinh(x[1:])])

    r = check_grad(f, jac, point(5))
    assert r.ok()


def test_sampling_touches_only_sampled_coordinates():
    n = 1_000_000
    x = np.random.default_rng(0).standard_normal(n)
    x_before = x.copy()
    d = np.linspace(1.0, 10.0, n)
    touched = set()
    calls = []

    def f(z):
        diff = np.flatnonzero(z != x_before)
        assert diff.size <= 1  # one coordinate perturbed at a time, then restored
        touched.update(diff.tolist())
        calls.append(1)
        return 0.5 * float(np.dot(d * z, z))

    r = check_grad(f, lambda z: d * z, x, n_coords=25, seed=7)

    assert r.ok()
    assert r.coords.size == 25 and np.unique(r.coords).size == 25
    assert np.all(np.diff(r.coords) > 0)
    assert touched == set(r.coords.tolist())
    assert len(calls) == 2 * 25 + 1
    np.testing.assert_array_equal(x, x_before)

    def cheap(z):
        return float(z[0])

    def cheap_grad(z):
        return np.eye(1, n).ravel()

    again = check_grad(cheap, cheap_grad, x, n_coords=25, seed=7)
    np.testing.assert_array_equal(again.coords, r.coords)
    other = check_grad(cheap, cheap_grad, x, n_coords=25, seed=8)
    assert not np.array_equal(other.coords, r.coords)


def test_sampling_costs_no_o_n_work_per_coordinate():
    # f reads three entries, so the check's own cost is all that is measured:
    # one float64 copy of x and the gradient, then O(1) per coordinate
    n = 10_000_000
    x = np.ones(n, np.float32)
    probe = np.array([0, 12345, n - 1])
    grad = np.zeros(n)
    grad[probe] = 2.0

    def f(z):
        return float(np.sum(z[probe] ** 2))

    tracemalloc.start()
    start = time.perf_counter()
    r = check_grad(f, lambda z: grad, x, n_coords=2000, seed=0)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert r.ok() and r.coords.size == 2000
    assert peak < 1.5 * 8 * n  # the float64 copy, and nothing else of size n
    assert elapsed < 3.0  # ~0.1 s on a quiet 2-core machine


def test_point_is_restored_bit_exactly():
    # values whose +-eps round, so a "restore by subtracting" would drift
    x = np.array([0.1, 1e8 + 0.3, -7.7e-3, 3.0, np.pi])
    before = x.tobytes()
    seen = []

    def f(z):
        seen.append(z.copy())
        return float(np.sum(z**2))

    check_grad(f, lambda z: 2 * z, x)
    assert x.tobytes() == before
    for z in seen:  # every call sees x except at most one coordinate
        assert np.count_nonzero(z != x) <= 1
    assert seen[0].tobytes() == before


def test_float32_input_is_not_modified_and_checked_in_float64():
    x = point(4).astype(np.float32)
    before = x.copy()
    dtypes = set()

    def f(z):
        dtypes.add(z.dtype)
        return float(np.sum(z**3))

    assert check_grad(f, lambda z: 3 * z**2, x).ok()
    assert dtypes == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x, before)


def test_nan_is_worst():
    def jac(x):
        g = 2 * x
        g[2] = np.nan
        return g

    r = check_grad(lambda x: float(np.sum(x**2)), jac, point(5))
    assert np.isnan(r.max_rel_error)
    assert not r.ok()
    assert r.worst[0] == 2


def test_n_coords_at_least_n_checks_all():
    r = check_grad(rosen, rosen_der, point(4), n_coords=100)
    np.testing.assert_array_equal(r.coords, np.arange(4))


def test_repr_names_worst():
    f, g = quadratic(5)
    r = check_grad(f, lambda x: g(x) * np.array([1, 1, 2, 1, 1]), point(5))
    assert "max_rel_error" in repr(r) and "2:" in repr(r)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(eps=0.0), ValueError),
        (dict(eps=-1e-5), ValueError),
        (dict(eps=np.inf), ValueError),
        (dict(eps="1e-5"), ValueError),
        (dict(n_coords=0), ValueError),
        (dict(n_coords=2.5), ValueError),
        (dict(floor=0.0), ValueError),
        (dict(x=np.zeros(0)), ValueError),
        (dict(x=np.ones(3, complex)), ValueError),
        (dict(jac=lambda x: np.ones(4)), ValueError),
        (dict(jac=None), TypeError),
        (dict(fun=None), TypeError),
        (dict(fun=lambda x: x), ValueError),
        (dict(fun=lambda x: "a"), ValueError),
        (dict(fun=lambda x: 1.0, jac=True), ValueError),
        (dict(x=np.array([1e30, 0.0, 0.0])), ValueError),  # eps vanishes at 1e30
    ],
    ids=lambda v: repr(v)[:40] if not isinstance(v, type) else v.__name__,
)
def test_bad_input(kwargs, error):
    args = dict(fun=lambda x: float(np.sum(x**2)), jac=lambda x: 2 * x, x=np.ones(3))
    args.update(kwargs)
    with pytest.raises(error):
        check_grad(args.pop("fun"), args.pop("jac"), args.pop("x"), **args)
