"""fastgd.minimize and fastgd.scipy_method on bad input and misbehaving callables:
every refusal names the culprit, and nothing ends with success=True by mistake."""

from __future__ import annotations

import copy
import math
import tracemalloc

import numpy as np
import pytest
import scipy.optimize

from fastgd import driver
from fastgd.driver import Status, minimize, scipy_method
from fastgd.schedules import ReduceLROnPlateau


def bowl(x):
    """f = 0.5 ||x - 1||^2, minimum 0 at ones."""
    d = x - 1.0
    return 0.5 * float(d @ d), d.copy()


def bowl_f(x):
    return bowl(x)[0]


def bowl_g(x):
    return bowl(x)[1]


def never(x, *args):
    raise AssertionError("fun must not be called")


def after(k, bad, good):
    """A function returning ``good(x)`` for its first ``k`` calls, then ``bad``."""
    calls = []

    def fn(x, *args):
        calls.append(1)
        return good(x) if len(calls) <= k else bad

    return fn


class Mean:
    """Mini-batch loss 0.5 mean((x0 - data[idx])^2) that records every idx."""

    def __init__(self, n_samples):
        self.n = n_samples
        self.calls = []

    def data(self, idx):
        return (idx % 7) / 7.0

    def __call__(self, x, idx):
        self.calls.append(idx)
        d = x[0] - self.data(idx)
        return 0.5 * float(np.mean(d * d)), np.array([np.mean(d)])


# -- 1. val_fun ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
@pytest.mark.parametrize("early", [None, dict(patience=1), dict(patience=2, restore_best=False)])
def test_non_finite_val_loss_is_divergence(bad, early):
    val = after(2, bad, bowl_f)  # improving until it fails
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(lr=0.1, maxiter=50),
                   val_fun=val, early_stopping=early)  # fmt: skip
    assert res.status == Status.DIVERGED == 4 and not res.success
    assert res.nit == 3
    assert f"Diverged at iteration 3: val_fun returned {float(bad)}" in res.message
    assert len(res.history["val_loss"]) == 3 and not math.isfinite(res.history["val_loss"][-1])
    assert res.fun == bowl(res.x)[0] and np.all(np.isfinite(res.x))


def test_non_finite_val_loss_is_divergence_in_mini_batch_mode():
    val = after(1, math.nan, lambda x: 1.0)
    res = minimize(Mean(6), [0.0], jac=True, method="sgd", options=dict(maxiter=100), batch_size=3,
                   n_samples=6, val_fun=val, early_stopping=dict(patience=5))  # fmt: skip
    assert res.status == Status.DIVERGED and not res.success
    assert res.nit == 4  # two epochs of two batches; checked after each epoch
    assert "iteration 4: val_fun returned nan" in res.message


@pytest.mark.parametrize(
    "bad, match",
    [
        (None, "val_fun returned None at iteration 2"),
        ("0.5", r"val_fun returned str '0.5' at iteration 2"),
        (np.ones(2), r"val_fun returned an array of shape \(2,\) .* at iteration 2.*vector"),
        (np.ones(0), r"val_fun returned an array of shape \(0,\)"),
        (True, "val_fun returned bool True at iteration 2"),
        (1 + 1j, r"val_fun returned complex \(1\+1j\)"),
    ],
)
def test_val_fun_returning_a_non_number_raises(bad, match):
    val = after(1, bad, lambda x: 1.0)
    with pytest.raises(TypeError, match=match):
        minimize(bowl, np.zeros(2), jac=True, method="sgd", val_fun=val)


@pytest.mark.parametrize("value", [np.float32(0.25), np.array(0.25), np.array([0.25]), 1])
def test_val_fun_real_scalars_are_accepted(value):
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(maxiter=3),
                   val_fun=lambda x: value)  # fmt: skip
    assert res.status == Status.MAXITER
    np.testing.assert_array_equal(res.history["val_loss"], [np.asarray(value).item()] * 3)


# -- 2. fun and jac ------------------------------------------------------------------


BAD_LOSSES = [
    (None, "None"),
    ("1.5", "str '1.5'"),
    (np.ones(2), r"an array of shape \(2,\) and dtype float64"),
    (np.ones((2, 1)), r"an array of shape \(2, 1\) and dtype float64"),
    (True, "bool True"),
    (np.bool_(False), "bool np.False_"),
    (2 + 0j, r"complex \(2\+0j\)"),
    (np.array(["1"]), r"an array of shape \(1,\) and dtype <U1"),
    ({}, "dict {}"),
]


@pytest.mark.parametrize("bad, what", BAD_LOSSES)
def test_fun_returning_a_non_number_raises(bad, what):
    with pytest.raises(
        TypeError, match=rf"^fun returned {what} at iteration 0; expected a float \(the loss\)"
    ):
        minimize(lambda x: bad, np.zeros(2), jac=bowl_g)
    with pytest.raises(TypeError, match=rf"^fun returned f = {what} at iteration 0; expected"):
        minimize(lambda x: (bad, bowl_g(x)), np.zeros(2), jac=True)


def test_fun_returning_a_non_number_later_names_that_iteration():
    fun = after(3, None, bowl_f)
    with pytest.raises(TypeError, match="fun returned None at iteration 3"):
        minimize(fun, np.zeros(2), jac=bowl_g, method="sgd")


def test_a_vector_loss_or_a_pair_gets_a_hint():
    with pytest.raises(TypeError, match="a vector of losses is not"):
        minimize(lambda x: x - 1.0, np.zeros(2), jac=bowl_g)
    with pytest.raises(TypeError, match=r"a tuple of length 2 .*; pass jac=True if fun returns"):
        minimize(bowl, np.zeros(2), jac=bowl_g)


@pytest.mark.parametrize(
    "out, what",
    [
        (1.0, "float 1.0"),
        ((1.0,), "a tuple of length 1"),
        ((1.0, np.zeros(2), 3), "a tuple of length 3"),
        ("ab", "str 'ab'"),
        (np.array([1.0, 2.0]), r"an array of shape \(2,\)"),
        (None, "None"),
        ({"f": 1.0, "g": 2.0}, "dict"),
    ],
)
def test_jac_true_needs_a_pair(out, what):
    with pytest.raises(
        TypeError,
        match=rf"^fun returned {what}.* at iteration 0; with jac=True fun must return \(f, g\)",
    ):
        minimize(lambda x: out, np.zeros(2), jac=True)


def test_jac_true_pair_may_be_a_list():
    a = minimize(lambda x: list(bowl(x)), np.zeros(2), jac=True, options=dict(maxiter=5))
    b = minimize(bowl, np.zeros(2), jac=True, options=dict(maxiter=5))
    np.testing.assert_array_equal(a.x, b.x)


BAD_GRADIENTS = [
    (None, TypeError, "None"),
    ("ab", TypeError, "str 'ab'"),
    (
        np.zeros(2, complex),
        TypeError,
        r"an array of shape \(2,\) and dtype complex128 at "
        r"iteration 0; expected the gradient: an array of real numbers of x's shape \(2,\) "
        r"\(complex gradients are not supported\)",
    ),
    (
        [1j, 2.0],
        TypeError,
        r"a list of length 2 \(as an array: dtype complex128\) at "
        r"iteration 0; .*\(complex gradients are not supported\)",
    ),
    ((1j,) * 2, TypeError, r"a tuple of length 2 \(as an array: dtype complex128\)"),
    (1j, TypeError, r"complex 1j \(as an array: dtype complex128\) .*\(complex gradients"),
    ([None, None], TypeError, r"a list of length 2 \(as an array: dtype object\)"),
    (np.array([1.0, None]), TypeError, r"an array of shape \(2,\) and dtype object"),
    (np.array([True, False]), TypeError, r"an array of shape \(2,\) and dtype bool"),
    ([[1.0], [2.0, 3.0]], TypeError, "a list of length 2"),
    (np.ones(3), ValueError, r"an array of shape \(3,\) .*x's shape \(2,\)"),
    (0.5, ValueError, r"float 0.5 at iteration 0; the gradient must have x's shape \(2,\)"),
]


@pytest.mark.parametrize("bad, error, what", BAD_GRADIENTS)
def test_bad_gradient_names_jac(bad, error, what):
    with pytest.raises(error, match=rf"^jac returned {what}"):
        minimize(bowl_f, np.zeros(2), jac=lambda x: bad)
    with pytest.raises(error, match=rf"^fun's g \(of \(f, g\)\) returned {what}"):
        minimize(lambda x: (1.0, bad), np.zeros(2), jac=True)


def test_bad_gradient_later_names_that_iteration():
    jac = after(2, None, bowl_g)
    with pytest.raises(TypeError, match="jac returned None at iteration 2"):
        minimize(bowl_f, np.zeros(2), jac=jac)


def test_bad_gradient_in_mini_batch_mode():
    with pytest.raises(ValueError, match=r"jac returned an array of shape \(3,\).* iteration 0"):
        minimize(lambda x, idx: 1.0, [0.0, 0.0], jac=lambda x, idx: np.ones(3), batch_size=2,
                 n_samples=4)  # fmt: skip


@pytest.mark.parametrize(
    "loss", [np.array(0.5), np.array([0.5]), np.array([[0.5]]), np.float32(0.5), 1, np.int64(1)]
)
def test_loss_as_0d_or_one_element_array_or_scalar(loss):
    res = minimize(lambda x: loss, np.zeros(2), jac=lambda x: np.full(2, 0.5), method="sgd",
                   options=dict(lr=0.1, maxiter=2))  # fmt: skip
    assert res.fun == np.asarray(loss).item() and type(res.fun) is float
    np.testing.assert_allclose(res.x, -0.1)


def test_gradient_as_list_or_ints_is_converted():
    a = minimize(bowl_f, np.zeros(2), jac=lambda x: [-1, -1], method="sgd",
                 options=dict(lr=0.5, maxiter=2))  # fmt: skip
    b = minimize(bowl_f, np.zeros(2), jac=lambda x: np.array([-1, -1]), method="sgd",
                 options=dict(lr=0.5, maxiter=2))  # fmt: skip
    np.testing.assert_array_equal(a.x, [1.0, 1.0])
    np.testing.assert_array_equal(b.x, [1.0, 1.0])


# -- 3. schedule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, error, shown",
    [
        (math.nan, ValueError, "nan; a learning rate must be finite and >= 0"),
        (math.inf, ValueError, "inf; a learning rate must be finite and >= 0"),
        (-0.1, ValueError, "-0.1; a learning rate must be finite and >= 0"),
        (np.float32(-1), ValueError, "-1.0; a learning rate must be finite"),
        (None, TypeError, "None; a learning rate must be a real number"),
        ("0.1", TypeError, "str '0.1'; a learning rate must be a real number"),
        (True, TypeError, "bool True"),
        (np.array([0.1, 0.2]), TypeError, r"an array of shape \(2,\)"),
    ],
)
def test_bad_schedule_value_raises_before_the_step(bad, error, shown):
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.x, intermediate_result.x.copy()))

    def schedule(t):
        return 0.1 if t < 3 else bad

    with pytest.raises(error, match=rf"^schedule\(3\) returned {shown}"):
        minimize(bowl, np.zeros(2), jac=True, method="sgd", schedule=schedule, callback=callback)
    assert len(seen) == 3
    live, after_step_3 = seen[-1]  # a view of the parameters, and a copy
    np.testing.assert_array_equal(live, after_step_3)  # step 3 did not move x
    np.testing.assert_allclose(after_step_3, 1 - 0.9**3)


@pytest.mark.parametrize("lr", [0, 0.0, np.float32(0.25), np.array(0.25), np.int64(0)])
def test_schedule_real_values_are_accepted(lr):
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(maxiter=2, gtol=0),
                   schedule=lambda t: lr)  # fmt: skip
    np.testing.assert_array_equal(res.history["lr"], [np.asarray(lr).item()] * 2)


# -- 4. x0 and dtype -------------------------------------------------------------------


@pytest.mark.parametrize(
    "x0, where",
    [
        ([0.0, 1.0, math.nan], r"index 2: nan"),
        (np.array([math.inf, 0.0]), r"index 0: inf"),
        ([[0.0, 1.0], [-math.inf, 2.0]], r"index \(1, 0\): -inf"),
        (math.nan, "index 0: nan"),
    ],
)
def test_non_finite_x0_is_refused_before_fun(x0, where):
    with pytest.raises(ValueError, match=rf"^x0 contains NaN/inf \(first at {where}\)"):
        minimize(never, x0, jac=True)


def test_x0_overflowing_float32_is_refused():
    with pytest.raises(ValueError, match=r"x0 at index 1 is .*1e\+300.* overflows float32"):
        minimize(never, [0.0, 1e300], jac=True, dtype=np.float32)


@pytest.mark.parametrize(
    "x0, error, match",
    [
        (np.array([1 + 1j, 0]), TypeError, "x0 must be real.*complex numbers are not supp"),
        ([1.0, None], TypeError, "x0 must be real.*dtype object"),
        (["1", "2"], TypeError, "x0 must be real.*dtype <U1"),
        ("12", TypeError, "x0 must be an array_like of real numbers, got str"),
        (b"12", TypeError, "x0 must be an array_like"),
        (np.array([True, False]), TypeError, "x0 must be real.*dtype bool"),
        ([[1.0, 2.0], [3.0]], ValueError, "x0 must be an array of real numbers"),
        ([], ValueError, r"x0 is empty \(shape \(0,\)\)"),
        (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), TypeError, "x0 is a masked array"),
        (np.zeros((3, 0)), ValueError, r"x0 is empty \(shape \(3, 0\)\)"),
    ],
)
def test_bad_x0_is_refused_before_fun(x0, error, match):
    with pytest.raises(error, match=match):
        minimize(never, x0, jac=True)


@pytest.mark.parametrize("dtype", [int, np.float16, complex, "junk", np.int32, object])
def test_dtype_must_be_float32_or_float64(dtype):
    with pytest.raises(TypeError, match="^dtype must be float32 or float64"):
        minimize(never, np.zeros(2), jac=True, dtype=dtype)


def test_x0_shapes_and_kinds_that_are_fine():
    res = minimize(bowl, 0.0, jac=True, method="sgd", options=dict(lr=0.5, maxiter=1))
    assert res.x.shape == (1,) and res.x[0] == 0.5  # a scalar becomes shape (1,), as SciPy
    res = minimize(bowl, np.array(0), jac=True, method="sgd", options=dict(lr=0.5, maxiter=1))
    assert res.x.shape == (1,) and res.x.dtype == np.float64
    grid = [[0, 0], [0, 0]]  # a list of lists of ints keeps its shape

    def f(x):
        assert x.shape == (2, 2)
        return 0.5 * float(np.sum((x - 1) ** 2)), x - 1.0

    res = minimize(
        f, grid, jac=True, method="sgd", options=dict(lr=0.5, maxiter=1), dtype="float32"
    )
    assert res.x.shape == (2, 2) and res.x.dtype == np.float32
    np.testing.assert_array_equal(res.x, 0.5)


def test_non_finite_loss_at_x0_does_not_blame_the_step_size():
    res = minimize(lambda x: (math.log(0.0) if x[0] > 0 else -math.inf, x), np.zeros(2), jac=True)
    assert res.status == Status.DIVERGED and res.nit == 0 and not res.success
    assert res.message.startswith("Diverged at iteration 0: the loss is non-finite at x0")
    assert "The step size is not the cause" in res.message and "smaller lr" not in res.message


# -- 5. flags and seed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(early_stopping=dict(patience=2, restore_best="no")), "restore_best"),
        (dict(early_stopping=dict(patience=2, restore_best=0)), "restore_best"),
        (dict(shuffle="no"), "shuffle"),
        (dict(shuffle=0, batch_size=1, n_samples=2), "shuffle"),
        (dict(progress="yes"), "progress"),
        (dict(progress=1), "progress"),
        (dict(options=dict(disp="no")), "disp"),
        (dict(options=dict(disp=1)), "disp"),
    ],
)
def test_flags_must_be_bools(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be True or False, got"):
        minimize(never, np.zeros(2), jac=True, **kwargs)


def test_numpy_bools_are_bools():
    res = minimize(Mean(4), [0.0], jac=True, method="sgd", options=dict(maxiter=2, disp=np.False_),
                   batch_size=2, n_samples=4, shuffle=np.False_, progress=np.False_,
                   early_stopping=dict(patience=3, restore_best=np.True_))  # fmt: skip
    assert res.status == Status.MAXITER


@pytest.mark.parametrize(
    "seed, error",
    [(-1, ValueError), ([1, -2], ValueError), ("abc", TypeError), (1.5, TypeError),
     (True, TypeError), (np.float64(2.0), TypeError)],
)  # fmt: skip
@pytest.mark.parametrize("batched", [False, True])
def test_bad_seed_is_refused(seed, error, batched):
    kwargs = dict(batch_size=1, n_samples=2) if batched else {}
    with pytest.raises(error, match=r"^seed must be None, an int >= 0.*; got"):
        minimize(never, np.zeros(2), jac=True, seed=seed, **kwargs)


@pytest.mark.parametrize(
    "seed", [None, 0, np.uint32(5), [1, 2], np.random.SeedSequence(3), np.random.PCG64(4)]
)
def test_seeds_default_rng_accepts(seed):
    res = minimize(Mean(4), [0.0], jac=True, method="sgd", options=dict(maxiter=3), batch_size=2,
                   n_samples=4, seed=seed)  # fmt: skip
    assert res.nit == 3


def test_a_generator_seed_is_used_as_is():
    fun = Mean(5)
    rng = np.random.default_rng(11)
    minimize(fun, [0.0], jac=True, method="sgd", options=dict(maxiter=5), batch_size=5, n_samples=5,
             seed=rng)  # fmt: skip
    replay = np.random.default_rng(11)
    for idx in fun.calls[:5]:
        np.testing.assert_array_equal(idx, replay.permutation(5))
    assert rng.bit_generator.state == replay.bit_generator.state


# -- 6. mini-batches over huge n_samples -------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
def test_huge_n_samples_runs_in_bounded_memory(shuffle):
    n = 10**12
    fun = Mean(n)
    # compile and import everything first
    minimize(Mean(10), [1.0], jac=True, options=dict(maxiter=2), batch_size=4, n_samples=10)
    tracemalloc.start()
    try:
        res = minimize(fun, [1.0], jac=True, method="sgd", options=dict(maxiter=3), batch_size=4,
                       n_samples=n, seed=0, shuffle=shuffle)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # bytes; permutation(n) or arange(n) would be 8 TB
    assert res.nit == 3 and res.nfev == res.njev == 3  # no evaluation on all samples
    assert res.status == Status.MAXITER and not res.success
    assert [len(idx) for idx in fun.calls] == [4, 4, 4]
    seen = np.concatenate(fun.calls)
    assert len(np.unique(seen)) == 12 and seen.min() >= 0 and seen.max() < n
    assert all(idx.dtype == np.int64 and not idx.flags.writeable for idx in fun.calls)
    if shuffle:
        np.testing.assert_array_equal(seen, np.random.default_rng(0).choice(n, 12, replace=False))
    else:
        np.testing.assert_array_equal(seen, np.arange(12))
    assert res.fun == np.mean(res.history["loss"]) and res.jac is None
    assert "fun is the mean batch loss of the last epoch (3 batches of 250000000000, cut short " \
        "by maxiter) and jac is None" in res.message  # fmt: skip
    assert "FULL_EVALUATION_LIMIT" in res.message


def test_an_epoch_cut_short_draws_only_what_it_uses():
    n, size = 10, 3
    fun = Mean(n)
    res = minimize(fun, [0.0], jac=True, method="sgd", options=dict(maxiter=6), batch_size=size,
                   n_samples=n, seed=5)  # fmt: skip
    rng = np.random.default_rng(5)
    full = rng.permutation(n)  # epoch 0: 4 batches, completed
    rest = rng.choice(n, size=2 * size, replace=False)  # epoch 1: room for 2 batches only
    np.testing.assert_array_equal(np.concatenate(fun.calls[:4]), full)
    np.testing.assert_array_equal(np.concatenate(fun.calls[4:6]), rest)
    np.testing.assert_array_equal(fun.calls[6], np.arange(n))  # the final evaluation
    assert len(res.history["epoch_loss"]) == 1


def test_unshuffled_batches_are_read_only_aranges():
    fun = Mean(7)
    minimize(fun, [0.0], jac=True, method="sgd", options=dict(maxiter=4), batch_size=3,
             n_samples=7, shuffle=False)  # fmt: skip
    expected = [np.arange(0, 3), np.arange(3, 6), np.arange(6, 7), np.arange(0, 3), np.arange(7)]
    assert len(fun.calls) == len(expected)
    for idx, want in zip(fun.calls, expected, strict=True):
        np.testing.assert_array_equal(idx, want)
        assert idx.dtype == np.int64 and not idx.flags.writeable


def test_above_the_full_evaluation_limit_fun_is_the_last_epochs_mean(monkeypatch):
    monkeypatch.setattr(driver, "FULL_EVALUATION_LIMIT", 5)
    fun = Mean(6)
    res = minimize(fun, [0.0], jac=True, method="sgd", options=dict(maxiter=4), batch_size=3,
                   n_samples=6, seed=1)  # fmt: skip
    assert len(fun.calls) == res.nfev == 4 and res.nit == 4
    assert res.fun == res.history["epoch_loss"][-1] == np.mean(res.history["loss"][2:])
    assert res.jac is None
    assert "the last epoch (2 batches) and jac is None: n_samples = 6 is above " \
        "FULL_EVALUATION_LIMIT = 5" in res.message  # fmt: skip
    empty = minimize(Mean(6), [0.0], jac=True, options=dict(maxiter=0), batch_size=3, n_samples=6)
    assert empty.nfev == 0 and math.isnan(empty.fun) and empty.jac is None
    assert "no batch (none was evaluated)" in empty.message


def test_above_the_limit_restore_best_reports_the_best_epochs_loss(monkeypatch):
    monkeypatch.setattr(driver, "FULL_EVALUATION_LIMIT", 5)
    val = iter([3.0, 1.0, 2.0, 2.0, 2.0])
    res = minimize(Mean(6), [0.0], jac=True, method="sgd", options=dict(maxiter=100), batch_size=3,
                   n_samples=6, val_fun=lambda x: next(val),
                   early_stopping=dict(patience=3))  # fmt: skip
    assert res.status == Status.EARLY_STOPPING and res.nit == 10
    assert res.fun == res.history["epoch_loss"][1] and res.jac is None
    assert "restored x from iteration 4" in res.message
    assert "mean batch loss of the best epoch (iteration 4)" in res.message


# -- 7. everything else ---------------------------------------------------------------


@pytest.mark.parametrize("method", [None, 3, ["adam"], b"adam"])
def test_method_must_be_a_string(method):
    expected = r"^method must be a str, one of sgd, .*nesterov, lbfgs; got"
    with pytest.raises(TypeError, match=expected):
        minimize(never, np.zeros(2), jac=True, method=method)
    with pytest.raises(TypeError, match="^method must be a str"):
        scipy_method(method)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(options=dict(maxiter=True)), ValueError, "maxiter must be an integer, got True"),
        (dict(options=dict(maxiter=5.0)), ValueError, "maxiter must be an integer"),
        (dict(options=dict(gtol=math.nan)), ValueError, "gtol must be a real number, not NaN"),
        (dict(options=dict(ftol="0")), ValueError, "ftol must be a real number"),
        (dict(options=dict(f_target=math.inf)), ValueError, "f_target"),
        (dict(options=[("lr", 0.1)]), TypeError, "options must be a dict"),
        (dict(clip_norm=math.nan), ValueError, "clip_norm must be a real number, not NaN"),
        (dict(clip_norm=-1.0), ValueError, "clip_norm"),
        (dict(clip_value=True), ValueError, "clip_value must be a real number"),
        (dict(l1="0.1"), ValueError, "l1 must be a real number"),
        (dict(l1=-1.0), ValueError, "l1"),
        (dict(l1=math.nan), ValueError, "l1 must be a real number, not NaN"),
        (dict(l1_mode="lasso"), ValueError, "l1_mode"),
        (dict(callback=3), TypeError, "callback must be callable"),
        (dict(val_fun="val"), TypeError, "val_fun must be callable"),
        (dict(schedule=0.1), TypeError, "schedule must be a callable"),
        (dict(early_stopping=3), TypeError, "early_stopping must be a dict"),
        (dict(early_stopping=dict(patience=True)), ValueError, "patience must be an integer"),
        (dict(early_stopping=dict(patience=2, min_delta=math.nan)), ValueError, "min_delta"),
        (dict(batch_size=0, n_samples=3), ValueError, "batch_size"),
        (dict(batch_size=2, n_samples=2.0), ValueError, "n_samples must be an integer"),
        (dict(jac=1), ValueError, "needs the gradient"),
        (dict(backend="gpu"), ValueError, "backend"),
    ],
)
def test_bad_arguments_are_refused_before_fun(kwargs, error, match):
    kwargs = {"jac": True, **kwargs}
    with pytest.raises(error, match=match):
        minimize(never, np.zeros(2), **kwargs)


def test_a_refused_call_mutates_nothing():
    x0 = np.array([0.5, 2.0])
    options = dict(lr=0.1, maxiter=10)
    early = dict(patience=2)
    plateau = ReduceLROnPlateau(0.1, patience=1)
    saved = copy.deepcopy((x0, options, early))
    state = copy.deepcopy(plateau.__dict__)
    for bad in (dict(seed=-1), dict(dtype=int), dict(progress="yes")):
        with pytest.raises((TypeError, ValueError)):
            minimize(never, x0, jac=True, options=options, early_stopping=early, schedule=plateau,
                     **bad)  # fmt: skip
    np.testing.assert_array_equal(x0, saved[0])
    assert (options, early) == saved[1:]
    assert plateau.__dict__.keys() == state.keys()
    assert all(np.all(plateau.__dict__[k] == v) for k, v in state.items())


def test_a_callback_return_value_is_ignored_as_in_scipy():
    res = minimize(bowl, np.zeros(2), jac=True, method="sgd", options=dict(maxiter=4),
                   callback=lambda xk: True)  # fmt: skip
    assert res.nit == 4 and res.status == Status.MAXITER


def test_numpy_true_is_jac_true():
    a = minimize(bowl, np.zeros(2), jac=np.True_, options=dict(maxiter=3))
    b = minimize(bowl, np.zeros(2), jac=True, options=dict(maxiter=3))
    np.testing.assert_array_equal(a.x, b.x)


def test_a_non_finite_loss_after_a_step_is_divergence_not_early_stopping():
    def fun(x):  # finite at x0 only
        return (1.0 if x[0] == 0 else math.nan), np.ones_like(x)

    plateau = ReduceLROnPlateau(0.1, patience=0)
    res = minimize(fun, np.zeros(2), jac=True, method="sgd", early_stopping=dict(patience=1),
                   schedule=plateau)  # fmt: skip
    assert res.status == Status.DIVERGED and not res.success and res.nit == 1
    assert plateau.last_epoch == 0  # never stepped with the NaN


def test_scipy_method_refuses_the_same():
    method = scipy_method("adam")
    with pytest.raises(ValueError, match="^disp must be True or False"):
        scipy.optimize.minimize(bowl, np.zeros(2), jac=True, method=method,
                                options=dict(disp="no"))  # fmt: skip
    with pytest.raises(TypeError, match="^fun returned f = None at iteration 0"):
        scipy.optimize.minimize(lambda x: (None, x), np.zeros(2), jac=True, method=method)
    with pytest.raises(ValueError, match=r"^schedule\(0\) returned -1.0"):
        scipy.optimize.minimize(bowl, np.zeros(2), jac=True, method=scipy_method(
            "sgd", schedule=lambda t: -1.0))  # fmt: skip
    with pytest.raises(TypeError, match="^x0 must be real.*complex numbers are not supported"):
        scipy.optimize.minimize(bowl_f, np.zeros(2, complex), jac=bowl_g, method=method)


def test_loss_beyond_float64_is_divergence_and_decimal_is_a_number():
    from decimal import Decimal

    res = minimize(lambda x: 10**400, np.zeros(2), jac=lambda x: np.ones(2))
    assert res.status == Status.DIVERGED and res.fun == math.inf and not res.success
    res = minimize(lambda x: Decimal("0.5"), np.zeros(2), jac=lambda x: np.ones(2),
                   options=dict(maxiter=1))  # fmt: skip
    assert res.fun == 0.5 and type(res.fun) is float
