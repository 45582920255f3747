"""fastgd.minimize and fastgd.scipy_method: the driver loop around the optimizers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize

from fastgd.driver import METHODS, Status, minimize, scipy_method
from fastgd.problems import IllConditionedQuadratic, LeastSquares, Rosenbrock
from fastgd.schedules import ReduceLROnPlateau, StepLR


def bowl(x):
    """f = 0.5 ||x - 1||^2, minimum 0 at ones."""
    d = x - 1.0
    return 0.5 * float(d @ d), d.copy()


def nag_reference(grad, x0, lr, mu, steps):
    """Textbook Nesterov accelerated gradient in plain float64 NumPy."""
    x, v = np.array(x0, dtype=np.float64), np.zeros(len(x0))
    points = []
    for _ in range(steps):
        y = x + mu * v
        points.append(y)
        v = mu * v - lr * grad(y)
        x = x + v
    return x, points


# -- convergence ------------------------------------------------------------------

QUADRATIC = IllConditionedQuadratic(200, condition=100.0, seed=1)
CONVERGENCE = [
    (Rosenbrock(2), "nesterov", dict(lr=1e-3, momentum=0.96)),
    (Rosenbrock(2), "adam", dict(lr=0.1)),
    (QUADRATIC, "sgd", dict(lr=1e-2)),
    (QUADRATIC, "nesterov", dict(lr=1e-2, momentum=0.8)),
    (QUADRATIC, "momentum", dict(lr=1e-2, momentum=0.8)),
    (QUADRATIC, "adam", dict(lr=0.05)),
    (QUADRATIC, "adamax", dict(lr=0.1)),
    (QUADRATIC, "adamw", dict(lr=0.1, weight_decay=0.0)),
    (LeastSquares(200, 10, seed=2), "sgd", dict(lr=0.5)),
    (LeastSquares(200, 10, seed=2), "adam", dict(lr=0.1)),
    (LeastSquares(200, 10, seed=2), "adagrad", dict(lr=0.5)),
    (LeastSquares.line_fit(), "nesterov", dict(lr=0.5, momentum=0.5)),
]


@pytest.mark.parametrize(
    "problem, method, options",
    CONVERGENCE,
    ids=[f"{p.name}-{m}" for p, m, _ in CONVERGENCE],
)
def test_converges(problem, method, options):
    res = minimize(problem.fun_and_grad, problem.x0, jac=True, method=method,
                   options=dict(maxiter=20_000, **options))  # fmt: skip
    assert res.success, res.message
    assert res.status == Status.GTOL
    assert res.fun - problem.f_star <= problem.tol
    assert np.max(np.abs(res.jac)) <= 1e-5
    assert res.fun == problem.f(res.x)


def test_result_fields():
    res = minimize(bowl, np.zeros(3), jac=True, method="sgd", options=dict(lr=0.5, maxiter=4))
    for field in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message"):
        assert field in res
    assert res.nit == 4 and res.nfev == res.njev == 5
    assert res.status == Status.MAXITER == 1 and not res.success
    assert "Maximum number of iterations" in res.message
    assert set(res.history) == {"loss", "lr", "grad_norm"}
    assert all(len(v) == 4 and v.dtype == np.float64 for v in res.history.values())
    np.testing.assert_allclose(res.history["lr"], 0.5)
    # the x_k are 1 - 0.5**k: grad norm sqrt(3) * 0.5**k, loss 1.5 * 0.25**k
    k = np.arange(4)
    np.testing.assert_allclose(res.history["grad_norm"], math.sqrt(3) * 0.5**k)
    np.testing.assert_allclose(res.history["loss"], 1.5 * 0.25**k)
    np.testing.assert_allclose(res.x, 1 - 0.5**4)


def test_x0_is_copied_and_dtype():
    x0 = np.zeros(3, np.float32)
    res = minimize(bowl, x0, jac=True, method="adam", options=dict(lr=0.1, maxiter=5))
    assert res.x.dtype == np.float64 and not np.shares_memory(res.x, x0)
    assert np.all(x0 == 0)
    # float64 gradients for float32 parameters are converted every step
    res32 = minimize(bowl, x0, jac=True, method="adam", options=dict(lr=0.1, maxiter=5),
                     dtype=np.float32)  # fmt: skip
    assert res32.x.dtype == np.float32
    np.testing.assert_allclose(res32.x, res.x, rtol=1e-6)


def test_jac_true_equals_jac_callable():
    p = Rosenbrock(4)

    def f(x):
        return p.fun_and_grad(x)[0]

    def g(x):
        return p.fun_and_grad(x)[1]

    a = minimize(p.fun_and_grad, p.x0, jac=True, method="adam", options=dict(lr=0.01, maxiter=300))
    b = minimize(f, p.x0, jac=g, method="adam", options=dict(lr=0.01, maxiter=300))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.fun == b.fun and a.nfev == b.nfev and a.njev == b.njev
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key])


# -- mini-batches -----------------------------------------------------------------


class Recorder:
    """A mean-of-squares data loss that records every idx it is called with."""

    def __init__(self, n_samples):
        self.data = np.linspace(-1.0, 1.0, n_samples)
        self.calls = []

    def __call__(self, x, idx):
        self.calls.append(idx.copy())
        d = x[0] - self.data[idx]
        return 0.5 * float(np.mean(d * d)), np.array([np.mean(d)])


@pytest.mark.parametrize("batch_size", [1, 4])
def test_mini_batch_epochs_are_seeded_permutations(batch_size):
    n, seed, epochs = 10, 7, 3
    steps_per_epoch = -(-n // batch_size)
    fun = Recorder(n)
    res = minimize(fun, [3.0], jac=True, method="sgd", options=dict(lr=0.1,
                   maxiter=epochs * steps_per_epoch), batch_size=batch_size, n_samples=n,
                   seed=seed)  # fmt: skip
    assert res.nit == epochs * steps_per_epoch
    assert len(fun.calls) == res.nit + 1 == res.nfev  # + the final full evaluation
    assert all(idx.dtype == np.int64 for idx in fun.calls)
    assert [len(i) for i in fun.calls[:steps_per_epoch]] == [
        min(batch_size, n - s) for s in range(0, n, batch_size)
    ]
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        epoch = fun.calls[e * steps_per_epoch : (e + 1) * steps_per_epoch]
        np.testing.assert_array_equal(np.concatenate(epoch), rng.permutation(n))
    np.testing.assert_array_equal(fun.calls[-1], np.arange(n))
    assert len(res.history["loss"]) == res.nit
    assert len(res.history["epoch_loss"]) == epochs
    np.testing.assert_allclose(
        res.history["epoch_loss"][0], np.mean(res.history["loss"][:steps_per_epoch])
    )
    assert res.fun == fun(res.x, np.arange(n))[0]


def test_mini_batch_reproducible_and_unshuffled():
    runs = [
        minimize(Recorder(12), [3.0], jac=True, method="adam",
                 options=dict(lr=0.1, maxiter=20), batch_size=5, n_samples=12, seed=s)
        for s in (3, 3, 4)
    ]  # fmt: skip
    assert runs[0].x[0] == runs[1].x[0] != runs[2].x[0]
    fun = Recorder(6)
    minimize(fun, [0.0], jac=True, method="sgd", options=dict(maxiter=6), batch_size=2,
             n_samples=6, shuffle=False)  # fmt: skip
    np.testing.assert_array_equal(np.concatenate(fun.calls[:3]), np.arange(6))
    np.testing.assert_array_equal(np.concatenate(fun.calls[3:6]), np.arange(6))


def test_mini_batch_sgd_converges_with_jac_callable():
    p = LeastSquares(200, 5, noise=0.01, seed=3)
    seen = []

    def jac(x, idx):
        seen.append(len(idx))
        return p.grad(x, idx)

    res = minimize(p.f, p.x0, jac=jac, method="sgd", options=dict(lr=0.1, maxiter=2000),
                   batch_size=20, n_samples=p.n_samples, seed=0)  # fmt: skip
    assert res.nit == 2000 and res.status == Status.MAXITER
    assert set(seen[:-1]) == {20} and seen[-1] == 200
    assert res.fun - p.f_star < 1e-4


# -- schedules, clipping, L1 --------------------------------------------------------


def test_schedule_sets_lr_before_each_step():
    sched = StepLR(0.4, step_size=3, gamma=0.5)
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(maxiter=10, gtol=0),
                   schedule=sched)  # fmt: skip
    np.testing.assert_array_equal(res.history["lr"], sched.values(10))
    x = np.zeros(2)
    for lr in sched.values(10):
        x -= lr * (x - 1.0)
    np.testing.assert_allclose(res.x, x, rtol=1e-15)


def test_reduce_lr_on_plateau_driven_by_the_loss():
    def flat(x):  # a constant loss never improves
        return 1.0, np.full_like(x, 1e-3)

    plateau = ReduceLROnPlateau(0.1, factor=0.5, patience=2)
    res = minimize(flat, np.zeros(2), jac=True, method="sgd", options=dict(maxiter=12, lr=99.0),
                   schedule=plateau)  # fmt: skip
    replay = ReduceLROnPlateau(0.1, factor=0.5, patience=2)
    expected = [0.1] + [replay.step(1.0) for _ in range(11)]
    np.testing.assert_allclose(res.history["lr"], expected)
    assert res.history["lr"][-1] < 0.1 / 4
    assert plateau.last_epoch == 12  # stepped after every step


def test_reduce_lr_on_plateau_steps_per_epoch_in_mini_batch_mode():
    plateau = ReduceLROnPlateau(0.1, patience=100)
    minimize(Recorder(10), [1.0], jac=True, method="sgd", options=dict(maxiter=15),
             schedule=plateau, batch_size=5, n_samples=10)  # fmt: skip
    assert plateau.last_epoch == 7  # 15 steps of 2 per epoch: 7 full epochs


def steep(x):
    """f = 0.5 * 1e4 * x^2: with lr = 1e-3 plain GD multiplies x by -9 per step."""
    g = 1e4 * x
    steep.last = g
    return 0.5 * 1e4 * float(x @ x), g


def test_clip_norm_keeps_an_exploding_run_finite():
    x0 = np.full(3, 0.1)
    with np.errstate(all="ignore"):
        bad = minimize(steep, x0, jac=True, method="sgd", options=dict(lr=1e-3, maxiter=1000))
    assert bad.status == Status.DIVERGED and not bad.success
    good = minimize(steep, x0, jac=True, method="sgd", options=dict(lr=1e-3, maxiter=1000),
                    clip_norm=1.0)  # fmt: skip
    assert good.status == Status.MAXITER
    assert np.all(np.isfinite(good.x)) and np.max(np.abs(good.x)) < 1e-2
    # clipping works on a private copy: the array fun returned is untouched
    np.testing.assert_array_equal(steep.last, 1e4 * good.x)
    assert good.history["grad_norm"][0] == pytest.approx(1e3 * math.sqrt(3))


def test_clip_value():
    seen = []
    res = minimize(steep, np.ones(2), jac=True, method="sgd", options=dict(lr=1e-4, maxiter=3),
                   clip_value=0.5, callback=lambda xk: seen.append(xk))  # fmt: skip
    np.testing.assert_allclose(seen[0], 1 - 1e-4 * 0.5)
    assert res.nit == 3


def test_l1_proximal_gives_exact_zeros():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 20))
    w_true = np.zeros(20)
    w_true[:4] = [2.0, -1.5, 1.0, 0.5]
    p = LeastSquares.from_data(X, X @ w_true + 0.01 * rng.standard_normal(200))
    res = minimize(p.fun_and_grad, p.x0, jac=True, method="sgd",
                   options=dict(lr=0.3, maxiter=5000), l1=0.05, l1_mode="proximal")  # fmt: skip
    assert res.success and res.status == Status.GTOL, res.message
    assert "subgradient" in res.message
    assert np.all(res.x[4:] == 0.0)  # exact zeros
    assert np.all(res.x[:4] != 0.0)
    sub = minimize(p.fun_and_grad, p.x0, jac=True, method="sgd",
                   options=dict(lr=0.3, maxiter=300), l1=0.05)  # fmt: skip
    assert np.count_nonzero(sub.x[4:] == 0.0) < 16  # the subgradient form only hovers


# -- Nesterov ---------------------------------------------------------------------------


def test_nesterov_evaluates_at_the_look_ahead_point_and_matches_reference():
    p = Rosenbrock(4)
    points = []

    def jac(x):
        points.append(x.copy())
        return p.grad(x)

    lr, mu = 1e-3, 0.9
    res = minimize(p.f, p.x0, jac=jac, method="nesterov",
                   options=dict(lr=lr, momentum=mu, maxiter=20, gtol=0))  # fmt: skip
    x_ref, points_ref = nag_reference(p.grad, p.x0, lr, mu, 20)
    assert res.nit == 20 and len(points) == 21 + 1  # 21 look-aheads + the final x
    np.testing.assert_allclose(np.array(points[:20]), np.array(points_ref), rtol=1e-13)
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-13)
    np.testing.assert_array_equal(points[-1], res.x)  # fun/jac reported at x
    assert res.fun == p.f(res.x)
    assert not np.allclose(points[5], points_ref[4])  # look-ahead differs from the iterate


# -- early stopping, divergence, vanishing gradients ------------------------------------


def test_early_stopping_restores_the_best_x():
    trajectory = []

    def val(x):  # improves while x[0] < 0.5, then gets worse
        trajectory.append(x.copy())
        return float((x[0] - 0.5) ** 2)

    res = minimize(bowl, np.zeros(1), jac=True, method="sgd", options=dict(lr=0.1, maxiter=500),
                   val_fun=val, early_stopping=dict(patience=3))  # fmt: skip
    assert res.status == Status.EARLY_STOPPING and res.success
    vals = [float((x[0] - 0.5) ** 2) for x in trajectory]
    best = int(np.argmin(vals))
    assert len(vals) == best + 1 + 3  # stopped 3 checks after the best
    np.testing.assert_array_equal(res.x, trajectory[best])
    assert res.fun == bowl(res.x)[0]
    np.testing.assert_array_equal(res.history["val_loss"], vals)
    assert "restored x" in res.message

    kept = minimize(bowl, np.zeros(1), jac=True, method="sgd", options=dict(lr=0.1, maxiter=500),
                    val_fun=lambda x: float((x[0] - 0.5) ** 2),
                    early_stopping=dict(patience=3, restore_best=False))  # fmt: skip
    np.testing.assert_array_equal(kept.x, trajectory[-1])


def test_early_stopping_on_training_loss_with_min_delta():
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(lr=0.01, maxiter=10_000),
                   early_stopping=dict(patience=5, min_delta=1e-4))  # fmt: skip
    assert res.status == Status.EARLY_STOPPING and res.nit < 10_000


def test_divergence_is_reported_with_iteration_and_advice():
    with np.errstate(all="ignore"):
        res = minimize(bowl, np.zeros(3), jac=True, method="sgd",
                       options=dict(lr=1e6, maxiter=1000))  # fmt: skip
    assert not res.success and res.status == Status.DIVERGED == 4
    assert f"iteration {res.nit}" in res.message
    assert "smaller lr" in res.message and "clip_norm" in res.message
    assert not math.isfinite(res.fun) or not np.all(np.isfinite(res.jac))
    assert len(res.history["loss"]) == res.nit


def test_nan_gradient_is_divergence():
    def nan_grad(x):
        return 1.0, np.full_like(x, np.nan)

    res = minimize(nan_grad, np.zeros(2), jac=True, method="adam")
    assert res.status == Status.DIVERGED and res.nit == 0
    assert "iteration 0" in res.message and "gradient" in res.message


def test_vanishing_gradient_with_f_target():
    def saturated(x):  # 1 - exp(-x^2): flat far from 0
        e = math.exp(-(x[0] ** 2))
        return 1.0 - e, np.array([2 * x[0] * e])

    res = minimize(saturated, [9.0], jac=True, method="sgd", options=dict(f_target=0.5))
    assert res.status == Status.VANISHING_GRADIENT and not res.success
    assert "Vanishing gradient" in res.message and "f_target" in res.message
    plain = minimize(saturated, [9.0], jac=True, method="sgd")
    assert plain.status == Status.GTOL and plain.success  # no target: converged, as in SciPy


def test_ftol_stops():
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd",
                   options=dict(lr=0.01, ftol=1e-3, gtol=0, maxiter=10_000))  # fmt: skip
    assert res.status == Status.FTOL and res.success and res.nit < 1000


def test_maxiter_zero_and_converged_start():
    res = minimize(bowl, np.zeros(2), jac=True, options=dict(maxiter=0))
    assert res.nit == 0 and res.nfev == 1 and res.status == Status.MAXITER
    res = minimize(bowl, np.ones(2), jac=True)
    assert res.nit == 0 and res.status == Status.GTOL


# -- callbacks and progress ---------------------------------------------------------------


def test_callback_xk_gets_copies():
    seen = []
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(lr=0.5, maxiter=3),
                   callback=lambda xk: seen.append(xk))  # fmt: skip
    assert len(seen) == 3
    np.testing.assert_allclose([s[0] for s in seen], [0.5, 0.75, 0.875])
    assert not any(np.shares_memory(s, res.x) for s in seen)


def test_callback_intermediate_result():
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.x.copy(), intermediate_result.fun))
        assert not intermediate_result.x.flags.writeable

    minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(lr=0.5, maxiter=3),
             callback=callback)  # fmt: skip
    assert len(seen) == 3
    for x, f in seen:
        assert f == bowl(x)[0]


def test_callback_stop_iteration_as_scipy():
    def callback(intermediate_result):
        if intermediate_result.nit == 4:
            raise StopIteration

    res = minimize(bowl, np.zeros(2), jac=True, method="adam", callback=callback)
    assert res.nit == 4 and res.status == 99 and not res.success
    assert res.message == "`callback` raised `StopIteration`."


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    res = minimize(bowl, np.zeros(2), jac=True, method="adam", options=dict(maxiter=20, gtol=0),
                   progress=True)  # fmt: skip
    assert res.nit == 20
    assert "fastgd adam" in capsys.readouterr().err


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(jac=None), "needs the gradient"),
        (dict(jac="2-point"), "needs the gradient"),
        (dict(method="newton"), "Unknown method"),
        (dict(options=dict(learning_rate=0.1)), r"Unknown options \['learning_rate'\]"),
        (dict(options=dict(maximize=True)), "negate fun"),
        (dict(options=dict(tol=1e-3)), "gtol"),
        (dict(method="sgd", options=dict(betas=(0.9, 0.9))), "betas"),
        (dict(method="nesterov", options=dict(nesterov=True)), "nesterov"),
        (dict(options=dict(maxiter=-1)), "maxiter"),
        (dict(options=dict(gtol=-1.0)), "gtol"),
        (dict(options=dict(lr=-1.0)), "lr"),
        (dict(early_stopping=dict(patience=0)), "patience"),
        (dict(early_stopping=dict(wait=3)), "early_stopping"),
        (dict(batch_size=4), "both batch_size and n_samples"),
        (dict(clip_norm=-1.0), "clip_norm"),
    ],
)
def test_bad_input_raises_before_fun_is_called(kwargs, match):
    def fun(x):
        raise AssertionError("fun must not be called")

    kwargs = {"jac": True, **kwargs}
    with pytest.raises(ValueError, match=match):
        minimize(fun, np.zeros(2), **kwargs)


def test_bad_fun_output():
    with pytest.raises(TypeError, match=r"return \(f, g\)"):
        minimize(lambda x: 1.0, np.zeros(2), jac=True)
    with pytest.raises(ValueError, match="shape"):
        minimize(lambda x: (1.0, np.zeros(3)), np.zeros(2), jac=True)


def test_every_method_runs():
    for method in METHODS:
        res = minimize(bowl, np.zeros(3), jac=True, method=method, options=dict(maxiter=3))
        if method == "lbfgs":  # exact on a quadratic bowl: the gradient is 0 after 2 steps
            assert res.success and res.nit == 2 and res.fun == bowl(res.x)[0], res.message
        else:
            assert res.nit == 3, method
        assert np.all(np.isfinite(res.x)), method


# -- SciPy ----------------------------------------------------------------------------


def test_scipy_method_honours_maxiter_and_callback():
    p = Rosenbrock(2)
    calls = []
    seen = []

    def fun(x):
        calls.append(1)
        return p.fun_and_grad(x)

    res = scipy.optimize.minimize(fun, p.x0, jac=True, method=scipy_method("adam", lr=0.05),
                                  options=dict(maxiter=7), callback=seen.append)  # fmt: skip
    assert isinstance(res, scipy.optimize.OptimizeResult)
    assert res.nit == 7 and len(seen) == 7 and not res.success
    assert len(calls) == res.nfev == 8  # fun itself, not SciPy's memoizing wrapper
    ref = minimize(p.fun_and_grad, p.x0, jac=True, method="adam", options=dict(lr=0.05, maxiter=7))
    np.testing.assert_array_equal(res.x, ref.x)


def test_scipy_method_converges_with_args_tol_and_stop_iteration():
    def fun(x, a):
        return float((x - a) @ (x - a))

    def jac(x, a):
        return 2 * (x - a)

    method = scipy_method("nesterov", lr=0.1, momentum=0.5)
    res = scipy.optimize.minimize(fun, np.zeros(3), args=(2.0,), jac=jac, method=method,
                                  tol=1e-9, options=dict(maxiter=10_000))  # fmt: skip
    assert res.success and np.max(np.abs(res.jac)) <= 1e-9
    np.testing.assert_allclose(res.x, 2.0, atol=1e-9)

    def stop(intermediate_result):
        raise StopIteration

    res = scipy.optimize.minimize(fun, np.zeros(3), args=(2.0,), jac=jac, method=method,
                                  callback=stop)  # fmt: skip
    assert res.status == 99 and res.nit == 1


def test_scipy_method_validation():
    with pytest.raises(ValueError, match="Unknown method"):
        scipy_method("bfgs")
    with pytest.raises(ValueError, match="Unknown options"):
        scipy_method("adam", momentum=0.9)
    with pytest.raises(ValueError, match="bounds"):
        scipy.optimize.minimize(bowl, np.zeros(2), jac=True, method=scipy_method("adam"),
                                bounds=[(0, 1), (0, 1)])  # fmt: skip
    with pytest.warns(RuntimeWarning, match="Hessian"):
        scipy.optimize.minimize(bowl, np.zeros(2), jac=True, method=scipy_method("adam"),
                                hessp=lambda x, v: v, options=dict(maxiter=1))  # fmt: skip
