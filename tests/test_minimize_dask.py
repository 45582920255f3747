"""fastgd.minimize with a dask x0: the loop runs a fastgd.dask optimizer on the
workers of the current distributed client, and gives NumPy's results.

The references are minimize on NumPy arrays of the same data. On element-wise
problems the gradients are the same numbers (element-wise arithmetic is the
same on a block as on the whole array) and each chunk steps with the same
kernel, so the iterates are bit-identical; where dask sums (least squares,
losses, norms) the order of the sums differs, so results agree to rounding.
Each iteration costs a few scheduler round trips: the runs are short.
"""

from __future__ import annotations

import math
import subprocess
import sys

import dask
import dask.array as da
import distributed
import numpy as np
import pytest

import fastgd
from fastgd.driver import Status, minimize
from fastgd.problems import LeastSquares
from fastgd.schedules import ReduceLROnPlateau, StepLR

pytestmark = pytest.mark.usefixtures("dask_client")

SHAPE, CHUNKS = (6, 4), (3, 2)  # 4 chunks
_rng = np.random.default_rng(7)
TARGET = _rng.standard_normal(SHAPE)
SCALE = _rng.uniform(0.5, 2.0, SHAPE)
X0 = _rng.standard_normal(SHAPE)


def dask_of(a, chunks=CHUNKS):
    return da.from_array(np.asarray(a), chunks=chunks)


def quadratic(t, c):
    """f = 0.5 sum c (x - t)^2 and g = c (x - t), for NumPy or dask ``t``, ``c``."""

    def fun(x):
        g = c * (x - t)
        return 0.5 * (g * (x - t)).sum(), g

    return fun


NP_QUAD = quadratic(TARGET, SCALE)
DASK_QUAD = quadratic(dask_of(TARGET), dask_of(SCALE))


def bowl(x):
    """f = 0.5 ||x - 1||^2 (NumPy or dask)."""
    d = x - 1.0
    return 0.5 * (d * d).sum(), d


def both(fun_np, fun_dask, x0, chunks=CHUNKS, **kwargs):
    """minimize on NumPy and on dask from the same x0: (NumPy result, dask result)."""
    ref = minimize(fun_np, np.array(x0), jac=True, **kwargs)
    res = minimize(fun_dask, dask_of(x0, chunks), jac=True, **kwargs)
    return ref, res


def assert_same_run(ref, res, rtol=0.0):
    assert isinstance(res.x, da.Array) and isinstance(res.jac, da.Array)
    assert (res.status, res.nit, res.nfev, res.njev) == (ref.status, ref.nit, ref.nfev, ref.njev)
    assert res.message == ref.message or rtol  # messages quote norms, rounded
    assert res.x.dtype == ref.x.dtype and res.x.shape == ref.x.shape
    x = res.x.compute()
    if rtol == 0.0:
        np.testing.assert_array_equal(x, ref.x)
    else:
        np.testing.assert_allclose(x, ref.x, rtol=rtol, atol=0)
    np.testing.assert_array_equal(res.history["lr"], ref.history["lr"])
    for key in ("loss", "grad_norm"):  # dask sums in another order
        np.testing.assert_allclose(res.history[key], ref.history[key], rtol=max(rtol, 1e-13))


# -- results as NumPy's ---------------------------------------------------------------


def test_least_squares_reaches_numpys_x(dask_client):
    p = LeastSquares(200, 10, seed=2)
    X, y = dask_of(p.X, (100, 5)), dask_of(p.y, 100)

    def fun(w):
        r = X @ w - y
        return 0.5 * (r * r).sum() / 200, X.T @ r / 200

    options = dict(lr=0.5, maxiter=60)
    ref = minimize(p.fun_and_grad, p.x0, jac=True, method="sgd", options=options)
    res = minimize(fun, dask_of(p.x0, 5), jac=True, method="sgd", options=options)
    assert ref.status == res.status == Status.GTOL and ref.nit < 60
    assert_same_run(ref, res, rtol=1e-10)
    assert res.fun == pytest.approx(ref.fun, rel=1e-12)
    np.testing.assert_allclose(res.jac.compute(), ref.jac, rtol=1e-6, atol=1e-12)
    assert np.max(np.abs(res.jac.compute())) <= 1e-5
    # the optimizer ran on the fixture's cluster, the current client
    assert distributed.get_client() is dask_client
    assert res.x.chunks == ((5, 5),)


@pytest.mark.parametrize(
    "method, options, dtype",
    [
        ("adam", dict(lr=0.1), np.float64),
        ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True), np.float64),
        ("rmsprop", dict(lr=0.01, centered=True), np.float64),
        ("lion", dict(lr=0.01, weight_decay=0.1), np.float32),
    ],
    ids=["adam", "sgd-nesterov", "rmsprop", "lion-float32"],
)
def test_elementwise_problem_is_bit_identical(method, options, dtype):
    ref, res = both(NP_QUAD, DASK_QUAD, X0, method=method, dtype=dtype,
                    options=dict(maxiter=12, gtol=0, **options))  # fmt: skip
    assert ref.status == Status.MAXITER and ref.nit == 12
    assert_same_run(ref, res)
    assert res.x.dtype == dtype
    assert float(res.fun) == pytest.approx(ref.fun, rel=1e-6 if dtype == np.float32 else 1e-14)


def test_backend_is_passed_to_the_dask_optimizer():
    ref, res = both(NP_QUAD, DASK_QUAD, X0, method="adam", backend="parallel",
                    options=dict(lr=0.1, maxiter=3, gtol=0))  # fmt: skip
    assert_same_run(ref, res)
    with pytest.raises(ValueError, match="'serial', 'parallel' or 'auto'"):
        minimize(never, dask_of(X0), jac=True, backend="cuda")


def test_schedule_sets_lr_before_each_step():
    sched = StepLR(0.4, step_size=3, gamma=0.5)
    ref, res = both(bowl, bowl, np.zeros(4), chunks=2, method="sgd", schedule=sched,
                    options=dict(maxiter=8, gtol=0))  # fmt: skip
    np.testing.assert_array_equal(res.history["lr"], sched.values(8))
    assert_same_run(ref, res)
    x = np.zeros(4)
    for lr in sched.values(8):
        x -= lr * (x - 1.0)
    np.testing.assert_allclose(res.x.compute(), x, rtol=1e-15)


def test_reduce_lr_on_plateau_driven_by_the_loss():
    def flat(x):  # a constant (dask) loss never improves
        return da.ones((), chunks=()), da.full_like(x, 1e-3)

    plateau = ReduceLROnPlateau(0.1, factor=0.5, patience=2)
    res = minimize(flat, da.zeros(4, chunks=2), jac=True, method="sgd",
                   options=dict(maxiter=8, lr=99.0), schedule=plateau)  # fmt: skip
    replay = ReduceLROnPlateau(0.1, factor=0.5, patience=2)
    expected = [0.1] + [replay.step(1.0) for _ in range(7)]
    np.testing.assert_allclose(res.history["lr"], expected)
    assert plateau.last_epoch == 8
    np.testing.assert_allclose(res.x.compute(), -1e-3 * sum(expected), rtol=1e-15)


def steep(x):
    """f = 0.5 * 1e4 * ||x||^2: with lr = 1e-3 plain GD multiplies x by -9 per step."""
    return 0.5 * 1e4 * (x * x).sum(), 1e4 * x


def test_clip_norm_keeps_an_exploding_run_finite():
    ref, res = both(steep, steep, np.full(3, 0.1), chunks=2, method="sgd", clip_norm=1.0,
                    options=dict(lr=1e-3, maxiter=15))  # fmt: skip
    assert res.history["grad_norm"][0] == pytest.approx(1e3 * math.sqrt(3), rel=1e-15)
    # the norm is the measured one, summed per chunk: equal to rounding
    assert_same_run(ref, res, rtol=1e-13)
    # unclipped, x would be multiplied by -9 per step; clipped, each step moves
    # it by lr * clip_norm along -g (torch's coefficient: 1 / (norm + 1e-6))
    np.testing.assert_allclose(res.x.compute(), 0.1 - 15e-3 / math.sqrt(3), rtol=1e-7)


def test_clip_value_is_bit_identical():
    seen = []
    ref, res = both(steep, steep, np.ones(4), chunks=3, method="sgd", clip_value=0.5,
                    options=dict(lr=1e-4, maxiter=3), callback=seen.append)  # fmt: skip
    assert_same_run(ref, res)
    assert isinstance(seen[3], da.Array)  # the dask run's xk: dask arrays
    np.testing.assert_array_equal(seen[3].compute(), seen[0])
    np.testing.assert_allclose(seen[3].compute(), 1 - 1e-4 * 0.5)


def test_clip_norm_and_value_together():
    ref, res = both(NP_QUAD, DASK_QUAD, 10 * X0, method="adam", clip_norm=2.0, clip_value=0.3,
                    options=dict(lr=0.1, maxiter=5, gtol=0))  # fmt: skip
    assert_same_run(ref, res, rtol=1e-14)


def test_l1_proximal_gives_exact_zeros():
    target = TARGET.copy()
    target[:, 0] = [0.01, -0.02, 0.03, 0.0, 0.05, -0.01]  # |t| < l1: the minimum is 0
    ref, res = both(quadratic(target, 1.0), quadratic(dask_of(target), 1.0), X0, method="sgd",
                    l1=0.1, l1_mode="proximal", options=dict(lr=0.5, maxiter=30))  # fmt: skip
    assert ref.status == Status.GTOL and "subgradient" in res.message
    assert_same_run(ref, res)
    x = res.x.compute()
    assert np.all(x[:, 0] == 0.0)  # exact zeros
    # the minimum of 0.5 (x - t)^2 + 0.1 |x|: t soft-thresholded by 0.1
    np.testing.assert_allclose(x, np.sign(target) * np.maximum(np.abs(target) - 0.1, 0), atol=1e-5)


def test_early_stopping_restores_the_best_x():
    trajectory = []

    def val(x):  # improves while x[0] < 0.5, then gets worse; a dask number
        trajectory.append(x)
        return (x[0] - 0.5) ** 2

    res = minimize(bowl, da.zeros(3, chunks=2), jac=True, method="sgd", val_fun=val,
                   options=dict(lr=0.1, maxiter=60), early_stopping=dict(patience=3))  # fmt: skip
    assert res.status == Status.EARLY_STOPPING and res.success
    assert all(isinstance(x, da.Array) for x in trajectory)
    vals = [float((x[0].compute() - 0.5) ** 2) for x in trajectory]
    best = int(np.argmin(vals))
    assert len(vals) == best + 1 + 3 and res.nit == len(vals)
    np.testing.assert_array_equal(res.x.compute(), trajectory[best].compute())
    np.testing.assert_allclose(res.x.compute(), 1 - 0.9 ** (best + 1), rtol=1e-14)
    assert "restored x" in res.message
    assert res.fun == pytest.approx(float(bowl(res.x.compute())[0]), rel=1e-15)
    np.testing.assert_allclose(res.history["val_loss"], vals, rtol=1e-15)


def test_divergence_is_reported_with_iteration_and_advice():
    with np.errstate(all="ignore"):
        ref, res = both(bowl, bowl, np.zeros(3), chunks=2, method="sgd",
                        options=dict(lr=1e120, maxiter=20))  # fmt: skip
    assert res.status == Status.DIVERGED and not res.success and res.nit == 2
    assert_same_run(ref, res)
    assert f"Diverged at iteration {res.nit}" in res.message
    assert "smaller lr" in res.message and "clip_norm" in res.message

    def nan_grad(x):
        return 1.0, da.full_like(x, np.nan)

    res = minimize(nan_grad, da.zeros(3, chunks=2), jac=True, method="adam")
    assert res.status == Status.DIVERGED and res.nit == 0
    assert "iteration 0" in res.message and "gradient" in res.message


def test_gtol_and_ftol_stop_as_on_numpy():
    ref, res = both(bowl, bowl, np.zeros(3), chunks=2, method="sgd",
                    options=dict(lr=0.3, ftol=1e-3, gtol=0, maxiter=60))  # fmt: skip
    assert res.status == Status.FTOL and res.success
    assert_same_run(ref, res)
    ref, res = both(bowl, bowl, np.zeros(3), chunks=2, method="sgd",
                    options=dict(lr=0.5, gtol=1e-3, maxiter=60))  # fmt: skip
    assert res.status == Status.GTOL and res.nit == 10  # |g| = 0.5**k
    assert_same_run(ref, res)


def test_callbacks_receive_dask_snapshots():
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.x, intermediate_result.fun, intermediate_result.nit))
        if intermediate_result.nit == 3:
            raise StopIteration

    res = minimize(bowl, da.zeros(3, chunks=2), jac=True, method="sgd",
                   options=dict(lr=0.5), callback=callback)  # fmt: skip
    assert res.status == 99 and res.nit == 3
    assert [nit for _, _, nit in seen] == [1, 2, 3]
    for x, f, nit in seen:  # each a snapshot of its own step
        assert isinstance(x, da.Array)
        np.testing.assert_array_equal(x.compute(), 1 - 0.5**nit)
        assert f == 1.5 * 0.25**nit
    assert seen[-1][0] is res.x


def test_mini_batches():
    def batch(x, idx):  # a gradient that depends on the batch
        w = float(idx.sum() + 1)
        return 0.5 * w * (x * x).sum(), w * x

    ref, res = both(batch, batch, X0, method="adam", batch_size=2, n_samples=5, seed=3,
                    options=dict(lr=0.1, maxiter=6))  # fmt: skip
    assert_same_run(ref, res)
    assert len(res.history["epoch_loss"]) == 2


# -- refusals ----------------------------------------------------------------------------


def never(x, *args):
    raise AssertionError("fun must not be called")


def test_nesterov_is_refused_before_fun():
    with pytest.raises(ValueError, match=r"method='sgd' with options=dict\(momentum=\.\.\., "):
        minimize(never, dask_of(X0), jac=True, method="nesterov")


def test_bad_x0_is_refused_before_fun():
    x0 = X0.copy()
    x0[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"x0 contains NaN/inf \(first at index \(1, 2\): nan\)"):
        minimize(never, dask_of(x0), jac=True)
    with pytest.raises(ValueError, match=r"x0 at index 3 is .*1e\+300.* overflows float32"):
        minimize(never, dask_of([0.0, 1.0, 2.0, 1e300], 2), jac=True, dtype=np.float32)
    with pytest.raises(TypeError, match="complex"):
        minimize(never, da.zeros(3, dtype=complex), jac=True)
    with pytest.raises(ValueError, match="x0 is empty"):
        minimize(never, da.zeros(0), jac=True)
    with pytest.raises(ValueError, match="Invalid lr"):
        minimize(never, dask_of(X0), jac=True, options=dict(lr=-1.0))


def test_dask_gradient_with_numpy_x0_is_refused():
    def fun(x):
        return 0.0, da.zeros(x.shape, chunks=1)

    with pytest.raises(TypeError, match=r"returned a dask array .* but x0 is not a dask array"):
        minimize(fun, np.zeros(2), jac=True)
    with pytest.raises(TypeError, match="Pass x0 as a dask array"):
        minimize(lambda x: 0.0, np.zeros(2), jac=lambda x: da.zeros(2), method="sgd")


def test_gradient_of_another_kind_with_dask_x0_is_refused():
    with pytest.raises(TypeError, match=r"returned an array of shape \(6, 4\).*x0 is a dask"):
        minimize(lambda x: (0.0, np.zeros(SHAPE)), dask_of(X0), jac=True)
    with pytest.raises(ValueError, match=r"shape \(6, 4\) and chunks .*got shape \(24,\)"):
        minimize(lambda x: (0.0, x.reshape(-1)), dask_of(X0), jac=True)
    chunks = r"chunks \(\(3, 3\), \(2, 2\)\).*got shape \(6, 4\), chunks \(\(2, 2, 2\), \(4,\)\)"
    with pytest.raises(ValueError, match=chunks + "; use g.rechunk"):
        minimize(lambda x: (0.0, x.rechunk((2, 4))), dask_of(X0), jac=True)
    with pytest.raises(TypeError, match="complex gradients are not supported"):
        minimize(lambda x: (0.0, x.astype(complex)), dask_of(X0), jac=True)
    with pytest.raises(TypeError, match=r"^jac returned None at iteration 0"):
        minimize(lambda x: 0.0, dask_of(X0), jac=lambda x: None)


def test_vector_loss_is_refused_without_computing_it():
    def boom():
        raise AssertionError("the loss must not be computed")

    vector = da.from_delayed(dask.delayed(boom)(), shape=(2,), dtype=float)
    with pytest.raises(TypeError, match=r"a dask array of shape \(2,\).*sum or average it"):
        minimize(lambda x: (vector, x), dask_of(X0), jac=True)


def test_import_fastgd_does_not_import_dask():
    code = (
        "import sys, numpy as np, fastgd\n"
        "fastgd.minimize(lambda x: (x @ x, 2 * x), np.ones(3), jac=True, options=dict(maxiter=3))\n"
        "assert not [m for m in sys.modules if m == 'dask' or m.startswith('dask.')]\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert fastgd.minimize is minimize
