"""Adversarial inputs for schedules, clipping, check_grad, the test problems and pack.

Every input is either handled exactly or refused with ``TypeError`` /
``ValueError`` whose message names the argument; in-place functions leave
their inputs untouched when they refuse.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import fastgd
from fastgd import backends
from fastgd import problems as P
from fastgd import schedules as S
from fastgd.clip import clip_grad_norm_, clip_grad_value_
from fastgd.gradcheck import check_grad

BIG = 10**400  # float(BIG) raises OverflowError


def table(*rows):
    """``pytest.param(*row[1:], id=row[0])`` for each row."""
    return [pytest.param(*row[1:], id=row[0]) for row in rows]


def masked(data, mask):
    return np.ma.MaskedArray(np.asarray(data, dtype=float), mask=mask)


def matrix(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(a)


def readonly(a):
    a.setflags(write=False)
    return a


# -- schedules: constructor arguments ---------------------------------------------

BAD_SCHEDULE_ARGS = table(
    ("lr-nan", lambda: S.StepLR(math.nan, 2), ValueError, "lr"),
    ("lr-inf", lambda: S.StepLR(math.inf, 2), ValueError, "lr"),
    ("lr-negative", lambda: S.ExponentialLR(-0.1, 0.9), ValueError, "lr"),
    ("lr-bool", lambda: S.StepLR(True, 2), ValueError, "lr"),
    ("lr-str", lambda: S.StepLR("0.1", 2), ValueError, "lr"),
    ("lr-None", lambda: S.StepLR(None, 2), ValueError, "lr"),
    ("lr-huge-int", lambda: S.StepLR(BIG, 2), ValueError, "lr"),
    ("lr-complex", lambda: S.StepLR(0.1 + 0j, 2), ValueError, "lr"),
    ("step_size-bool", lambda: S.StepLR(0.1, True), ValueError, "step_size"),
    ("step_size-huge", lambda: S.StepLR(0.1, BIG), ValueError, "step_size"),
    ("step_size-np-float", lambda: S.StepLR(0.1, np.float64(2.0)), ValueError, "step_size"),
    ("gamma-negative", lambda: S.StepLR(0.1, 2, -0.1), ValueError, "gamma"),
    ("gamma-huge-int", lambda: S.ExponentialLR(0.1, BIG), ValueError, "gamma"),
    ("gamma-np-bool", lambda: S.ExponentialLR(0.1, np.True_), ValueError, "gamma"),
    ("milestones-None", lambda: S.MultiStepLR(0.1, None), ValueError, "milestones"),
    ("milestones-str", lambda: S.MultiStepLR(0.1, "123"), ValueError, "milestones"),
    ("milestones-negative", lambda: S.MultiStepLR(0.1, [3, -1]), ValueError, r"milestones\[1\]"),
    ("milestones-huge", lambda: S.MultiStepLR(0.1, [BIG]), ValueError, r"milestones\[0\]"),
    ("milestones-bool", lambda: S.MultiStepLR(0.1, [True]), ValueError, r"milestones\[0\]"),
    ("T_max-0", lambda: S.CosineAnnealingLR(0.1, 0), ValueError, "T_max"),
    ("T_max-huge", lambda: S.CosineAnnealingLR(0.1, BIG), ValueError, "T_max"),
    ("eta_min-inf", lambda: S.CosineAnnealingLR(0.1, 5, math.inf), ValueError, "eta_min"),
    ("T_mult-huge", lambda: S.CosineAnnealingWarmRestarts(0.1, 2, BIG), ValueError, "T_mult"),
    ("power-nan", lambda: S.PolynomialLR(0.1, 5, math.nan), ValueError, "power"),
    ("start_factor-bool", lambda: S.LinearLR(0.1, True), ValueError, "start_factor"),
    ("base_lr-huge", lambda: S.CyclicLR(BIG, 1.0), ValueError, "base_lr"),
    ("step_size_down-huge", lambda: S.CyclicLR(0.1, 1.0, 5, BIG), ValueError, "step_size_down"),
    ("total_steps-0", lambda: S.OneCycleLR(0.1, 0), ValueError, "total_steps"),
    ("total_steps-bool", lambda: S.OneCycleLR(0.1, True), ValueError, "total_steps"),
    ("epochs-huge", lambda: S.OneCycleLR(0.1, epochs=BIG, steps_per_epoch=2), ValueError, "epochs"),
    (
        "epochs-times-steps-huge",
        lambda: S.OneCycleLR(0.1, epochs=2**62, steps_per_epoch=4),
        ValueError,
        "epochs",
    ),
    (
        "div_factor-overflows",
        lambda: S.OneCycleLR(0.1, 100, div_factor=1e-310),
        ValueError,
        "div_factor",
    ),  # fmt: skip
    (
        "final_div_factor-overflows",
        lambda: S.OneCycleLR(1e300, 100, div_factor=1.0, final_div_factor=1e-10),
        ValueError,
        "final_div_factor",
    ),  # fmt: skip
    ("pct_start-str", lambda: S.OneCycleLR(0.1, 10, pct_start="0.3"), ValueError, "pct_start"),
    (
        "three_phase-str",
        lambda: S.OneCycleLR(0.1, 10, three_phase="no"),
        ValueError,
        "three_phase",
    ),  # fmt: skip
    ("schedules-None", lambda: S.SequentialLR(None, []), ValueError, "schedules"),
    ("schedules-str", lambda: S.SequentialLR("ab", [1]), ValueError, "schedules"),
    (
        "seq-milestones-None",
        lambda: S.SequentialLR([S.StepLR(0.1, 1)], None),
        ValueError,
        "milestones",
    ),  # fmt: skip
    ("decay_steps-huge", lambda: S.InverseTimeDecay(0.1, 0.5, BIG), ValueError, "decay_steps"),
    ("staircase-int", lambda: S.InverseTimeDecay(0.1, 0.5, staircase=1), ValueError, "staircase"),
    ("warmup_steps-bool", lambda: S.WarmupCosine(0.1, True, 10), ValueError, "warmup_steps"),
    ("plateau-factor-huge", lambda: S.ReduceLROnPlateau(0.1, factor=BIG), ValueError, "factor"),
    (
        "plateau-patience-huge",
        lambda: S.ReduceLROnPlateau(0.1, patience=BIG),
        ValueError,
        "patience",
    ),  # fmt: skip
    (
        "plateau-threshold-inf",
        lambda: S.ReduceLROnPlateau(0.1, threshold=math.inf),
        ValueError,
        "threshold",
    ),  # fmt: skip
    ("plateau-mode-None", lambda: S.ReduceLROnPlateau(0.1, mode=None), ValueError, "mode"),
    ("values-n-huge", lambda: S.StepLR(0.1, 1).values(BIG), ValueError, "n"),
    ("values-n-bool", lambda: S.StepLR(0.1, 1).values(True), ValueError, "n"),
)


@pytest.mark.parametrize(("make", "error", "name"), BAD_SCHEDULE_ARGS)
def test_schedule_bad_arguments(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_schedule_numpy_scalars_are_exact():
    a = S.StepLR(np.float32(0.5), np.int64(3), np.float64(0.25))
    b = S.StepLR(float(np.float32(0.5)), 3, 0.25)
    assert a.values(10) == b.values(10)
    assert all(type(v) is float for v in a.values(10))
    m = S.MultiStepLR(0.1, np.array([4, 2], dtype=np.int32))
    assert m.milestones == (2, 4) and all(type(v) is int for v in m.milestones)


# -- schedules: the step argument -------------------------------------------------

BAD_STEPS = table(
    ("negative", -1, ValueError),
    ("np-negative", np.int64(-2), ValueError),
    ("huge", BIG, ValueError),
    ("uint64-max", np.uint64(2**64 - 1), ValueError),
    ("2**63", 2**63, ValueError),
    ("float", 3.0, TypeError),
    ("np-float", np.float32(3.0), TypeError),
    ("bool", True, TypeError),
    ("np-bool", np.True_, TypeError),
    ("str", "3", TypeError),
    ("None", None, TypeError),
    ("1-d-array", np.array([3]), TypeError),
)


@pytest.mark.parametrize(("t", "error"), BAD_STEPS)
@pytest.mark.parametrize(
    "sched",
    [
        S.StepLR(0.1, 3),
        S.CosineAnnealingLR(0.1, 10),
        S.CyclicLR(0.01, 0.1, 4),
        S.SequentialLR([S.LinearLR(0.1), S.ExponentialLR(0.1, 0.9)], [5]),
    ],  # fmt: skip
    ids=lambda s: type(s).__name__,
)
def test_schedule_bad_step(sched, t, error):
    with pytest.raises(error, match="step t"):
        sched(t)


# -- schedules: never NaN, OverflowError or a silent negative rate ---------------


def test_schedule_overflow_is_inf_or_zero_like_torchs_product():
    # torch multiplies lr by gamma each step: the product saturates at inf (or stays 0)
    assert S.ExponentialLR(0.1, 1.5)(10_000) == math.inf
    assert S.ExponentialLR(0.0, 1.5)(10_000) == 0.0
    assert S.StepLR(0.1, 1, 1e200)(3) == math.inf
    assert S.MultiStepLR(0.0, [1, 2], 1e200)(5) == 0.0
    assert S.ExponentialLR(0.1, 0.5)(10**6) == 0.0
    big_t = 2**63 - 1
    for sched in (S.StepLR(0.1, 7), S.CosineAnnealingLR(0.1, 10), S.PolynomialLR(0.1),
                  S.CosineAnnealingWarmRestarts(0.1, 3, 2), S.InverseTimeDecay(0.1, 0.5),
                  S.WarmupCosine(0.1, 5, 50), S.LinearLR(0.1)):  # fmt: skip
        lr = sched(big_t)
        assert type(lr) is float and 0.0 <= lr <= 0.1, (sched, lr)
    # warmup computes lr * (t / w): no overflow for a large (finite) peak rate
    assert S.WarmupCosine(1e308, 4, 10)(3) == pytest.approx(0.75e308)


def test_cyclic_lr_scale_is_checked():
    exp = S.CyclicLR(0.1, 0.2, 5, mode="exp_range", gamma=2.0)
    assert exp(2000) == 0.1  # h == 0 at a cycle start: no 0 * inf = NaN
    assert exp(2001) == math.inf
    with pytest.raises(ValueError, match="gamma"):
        S.CyclicLR(0.2, 0.1, 5, mode="exp_range", gamma=2.0)(2001)  # would be -inf
    for bad, name in [(math.nan, "scale_fn"), ("a", "scale_fn"), (True, "scale_fn"),
                      (BIG, "scale_fn"), (-5.0, "scale_fn")]:  # fmt: skip
        sched = S.CyclicLR(0.1, 0.2, 5, scale_fn=lambda x, bad=bad: bad)
        with pytest.raises(ValueError, match=name):
            sched(3)
    # a scale above 1 (torch allows it) or a numpy scalar is used as given
    assert S.CyclicLR(0.2, 0.1, 5, scale_fn=lambda x: 1.5)(3) == pytest.approx(0.2 - 0.06 * 1.5)
    assert type(S.CyclicLR(0.1, 0.2, 5, scale_fn=lambda x: np.float64(0.5))(3)) is float


def test_reduce_on_plateau_bad_metric_changes_nothing():
    sched = S.ReduceLROnPlateau(0.1, patience=0)
    sched.step(1.0)
    before = sched.state_dict()
    bad = [("1.5", TypeError), (True, TypeError), (np.True_, TypeError), (None, TypeError),
           (1 + 0j, TypeError), (np.complex128(1.0), TypeError), (np.array([1.0]), TypeError),
           (np.array(1.0 + 0j), TypeError), (masked([1.0], [True])[0], TypeError),
           ([1.0], TypeError), (BIG, ValueError)]  # fmt: skip
    for metric, error in bad:
        with pytest.raises(error, match="metric"):
            sched.step(metric)
        assert sched.state_dict() == before, metric
    # numbers, 0-d arrays and NaN are metrics (a NaN never improves)
    assert sched.step(np.array(0.5)) == 0.1 and sched.best == 0.5
    assert sched.step(np.int8(0)) == 0.1 and sched.best == 0.0
    assert sched.step(math.nan) == pytest.approx(0.01)


# -- clip: scalar arguments --------------------------------------------------------

BAD_CLIP_ARGS = table(
    ("max_norm-huge", clip_grad_norm_, dict(max_norm=BIG), "max_norm"),
    ("max_norm-neg-huge", clip_grad_norm_, dict(max_norm=-BIG), "max_norm"),
    ("max_norm-nan", clip_grad_norm_, dict(max_norm=math.nan), "max_norm"),
    ("max_norm-negative", clip_grad_norm_, dict(max_norm=-1.0), "max_norm"),
    ("max_norm-bool", clip_grad_norm_, dict(max_norm=True), "max_norm"),
    ("max_norm-np-bool", clip_grad_norm_, dict(max_norm=np.False_), "max_norm"),
    ("max_norm-str", clip_grad_norm_, dict(max_norm="1"), "max_norm"),
    ("max_norm-None", clip_grad_norm_, dict(max_norm=None), "max_norm"),
    ("norm_type-huge", clip_grad_norm_, dict(max_norm=1.0, norm_type=BIG), "norm_type"),
    ("norm_type-0", clip_grad_norm_, dict(max_norm=1.0, norm_type=0), "norm_type"),
    ("norm_type-bool", clip_grad_norm_, dict(max_norm=1.0, norm_type=True), "norm_type"),
    ("norm_type--inf-str", clip_grad_norm_, dict(max_norm=1.0, norm_type="-inf"), "norm_type"),
    ("norm_type-complex", clip_grad_norm_, dict(max_norm=1.0, norm_type=2j), "norm_type"),
    (
        "error_if_nonfinite-str",
        clip_grad_norm_,
        dict(max_norm=1.0, error_if_nonfinite="no"),
        "error_if_nonfinite",
    ),  # fmt: skip
    (
        "error_if_nonfinite-int",
        clip_grad_norm_,
        dict(max_norm=1.0, error_if_nonfinite=1),
        "error_if_nonfinite",
    ),  # fmt: skip
    ("clip_value-huge", clip_grad_value_, dict(clip_value=BIG), "clip_value"),
    ("clip_value-negative", clip_grad_value_, dict(clip_value=-0.5), "clip_value"),
    ("clip_value-bool", clip_grad_value_, dict(clip_value=True), "clip_value"),
    ("clip_value-nan", clip_grad_value_, dict(clip_value=math.nan), "clip_value"),
)


@pytest.mark.parametrize(("fn", "kwargs", "name"), BAD_CLIP_ARGS)
def test_clip_bad_arguments_change_nothing(fn, kwargs, name):
    g = np.array([3.0, -4.0, np.inf])
    with pytest.raises(ValueError, match=name):
        fn(g, **kwargs)
    np.testing.assert_array_equal(g, [3.0, -4.0, np.inf])


def test_clip_negative_zero_bound_is_zero():
    g = np.array([3.0, -4.0])
    clip_grad_norm_(g, -0.0)
    assert [math.copysign(1, v) for v in g] == [1, -1]  # torch's signs: g * (+0.0)
    g = np.array([0.5, -0.5])
    clip_grad_value_(g, -0.0)
    assert [math.copysign(1, v) for v in g] == [1, -1]


# -- clip: arrays -----------------------------------------------------------------

BAD_GRADS = table(
    ("masked", lambda: masked([3.0, 4.0, 100.0], [0, 0, 1]), "masked"),
    ("read-only", lambda: readonly(np.array([3.0, 4.0])), "read-only"),
    ("strided", lambda: np.array([3.0, 0.0, 4.0, 0.0])[::2], "C-contiguous"),
    ("fortran", lambda: np.asfortranarray(np.ones((3, 4)) * 3), "C-contiguous"),
    ("int", lambda: np.array([3, 4]), "grad"),
    ("bool", lambda: np.array([True, False]), "grad"),
    ("complex", lambda: np.array([3.0 + 0j, 4.0]), "complex"),
    ("object", lambda: np.array([3.0, 4.0], dtype=object), "grad"),
    ("float16", lambda: np.array([3.0, 4.0], np.float16), "grad"),
    ("list", lambda: [3.0, 4.0], "grad"),
    ("None", lambda: None, "grad"),
)


@pytest.mark.parametrize(("make", "match"), BAD_GRADS)
@pytest.mark.parametrize("fn", [clip_grad_norm_, clip_grad_value_])
def test_clip_bad_arrays_change_nothing(fn, make, match):
    g = make()
    before = np.array(np.ma.getdata(g), dtype=object).tolist()
    with pytest.raises(TypeError, match=match):
        fn(g, 1.0)
    assert np.array(np.ma.getdata(g), dtype=object).tolist() == before
    if isinstance(g, np.ma.MaskedArray):
        assert g.mask.tolist() == [False, False, True]


def test_clip_subclasses_are_exact(tmp_path):
    plain = np.array([[3.0, 4.0]])
    clip_grad_norm_(plain, 1.0)
    m = matrix([[3.0, 4.0]])
    assert clip_grad_norm_(m, 1.0) == 5.0
    assert type(m) is np.matrix and np.array_equal(np.asarray(m), plain)
    mm = np.memmap(tmp_path / "g.dat", dtype=np.float64, mode="w+", shape=(1, 2))
    mm[:] = [[3.0, 4.0]]
    clip_grad_norm_(mm, 1.0)
    assert np.array_equal(np.asarray(mm), plain)
    v = matrix([[3.0, -4.0]])
    clip_grad_value_(v, 1.0)
    assert v.tolist() == [[1.0, -1.0]]


def test_clip_backend_is_decided_by_backends_select(monkeypatch):
    calls = []

    def spy(n_bytes, backend):
        calls.append((n_bytes, backend))
        return "parallel"

    monkeypatch.setattr(backends, "select", spy)
    g = np.random.default_rng(0).standard_normal(1000)
    serial = g.copy()
    clip_grad_norm_(g, 1.0)
    clip_grad_value_(g, 0.01)
    assert calls == [(8000, "auto"), (16000, "auto"), (16000, "auto")]
    monkeypatch.setattr(backends, "select", lambda n, b: "serial")
    clip_grad_norm_(serial, 1.0)
    clip_grad_value_(serial, 0.01)
    np.testing.assert_array_equal(g, serial)


# -- check_grad ---------------------------------------------------------------------


def _f(x):
    return float(np.sum(x**2))


def _g(x):
    return 2 * x


BAD_GRADCHECK = table(
    ("eps-huge", dict(eps=BIG), ValueError, "eps"),
    ("eps-bool", dict(eps=True), ValueError, "eps"),
    ("eps-nan", dict(eps=math.nan), ValueError, "eps"),
    ("eps-None", dict(eps=None), ValueError, "eps"),
    ("floor-huge", dict(floor=BIG), ValueError, "floor"),
    ("floor-inf", dict(floor=math.inf), ValueError, "floor"),
    ("n_coords-bool", dict(n_coords=True), ValueError, "n_coords"),
    ("n_coords-negative", dict(n_coords=-1), ValueError, "n_coords"),
    ("seed-bool", dict(seed=True), TypeError, "seed"),
    ("seed-negative", dict(seed=-1), ValueError, "seed"),
    ("seed-float", dict(seed=1.5), TypeError, "seed"),
    ("seed-str", dict(seed="a"), TypeError, "seed"),
    ("x-masked", dict(x=masked([1.0, 2.0], [0, 1])), TypeError, "x is a masked"),
    ("x-bool", dict(x=np.array([True, False])), ValueError, "x must be real"),
    ("x-object", dict(x=np.array([1.0, 2.0], dtype=object)), ValueError, "x must be real"),
    ("x-str", dict(x="ab"), ValueError, "x must be real"),
    ("x-None", dict(x=None), ValueError, "x must be real"),
    ("x-ragged", dict(x=[[1.0, 2.0], [3.0]]), ValueError, "x must be"),
    ("x-inf", dict(x=np.array([np.inf, 1.0])), ValueError, "x must be finite"),
    ("x-nan", dict(x=np.array([np.nan, 1.0])), ValueError, "x must be finite"),
    ("x-empty", dict(x=np.zeros((2, 0))), ValueError, "x is empty"),
    ("jac-masked", dict(jac=lambda x: masked(2 * x, [0, 1])), TypeError, re.escape("jac(x)")),
    ("jac-bool", dict(jac=lambda x: x > 0), ValueError, re.escape("jac(x)")),
    ("jac-huge-int", dict(jac=lambda x: [BIG, 0]), ValueError, re.escape("jac(x)")),
    ("jac-np-bool", dict(fun=lambda x: (1.0, x), jac=np.True_), TypeError, "jac"),
    ("fun-bool", dict(fun=lambda x: True), ValueError, "fun"),
    ("fun-masked", dict(fun=lambda x: np.ma.masked), ValueError, "fun"),
    ("fun-complex", dict(fun=lambda x: 1j), ValueError, "fun"),
    (
        "fun-jac-true-masked-grad",
        dict(fun=lambda x: (_f(x), masked(2 * x, [0, 1])), jac=True),
        TypeError,
        "the gradient",
    ),  # fmt: skip
)


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_GRADCHECK)
def test_check_grad_bad_input(kwargs, error, match):
    args = dict(fun=_f, jac=_g, x=np.array([1.0, 2.0]))
    args.update(kwargs)
    x = args["x"]
    before = np.ma.getdata(x).tobytes() if isinstance(x, np.ndarray) else None
    with pytest.raises(error, match=match):
        check_grad(args.pop("fun"), args.pop("jac"), args.pop("x"), **args)
    if before is not None:
        assert np.ma.getdata(x).tobytes() == before


def test_check_grad_subclasses_and_scalars_are_exact():
    x = np.array([[1.0, 2.0]])
    ref = check_grad(_f, _g, x)
    for same in (matrix(x), x.astype(np.float32), [[1, 2]]):
        r = check_grad(_f, _g, same)
        assert r.max_rel_error == ref.max_rel_error
        assert np.array_equal(r.numeric, ref.numeric)
    r = check_grad(_f, lambda z: matrix(2 * z), x, eps=np.float32(1e-3), seed=np.int64(1))
    assert r.ok()


# -- problems -----------------------------------------------------------------------

BAD_PROBLEM_ARGS = table(
    ("n-huge", lambda: P.Rosenbrock(BIG), "n"),
    ("n-bool", lambda: P.Rosenbrock(True), "n"),
    ("n-np-float", lambda: P.IllConditionedQuadratic(np.float64(5)), "n"),
    ("tol-str", lambda: P.Rosenbrock(tol="1e-6"), "tol"),
    ("tol-negative", lambda: P.Rosenbrock(tol=-1.0), "tol"),
    ("tol-nan", lambda: P.IllConditionedQuadratic(5, tol=math.nan), "tol"),
    ("tol-bool", lambda: P.LogisticRegression(10, 2, tol=True), "tol"),
    ("tol-huge", lambda: P.SoftmaxRegression(10, 2, 2, tol=BIG), "tol"),
    ("condition-bool", lambda: P.IllConditionedQuadratic(5, True), "condition"),
    ("condition-str", lambda: P.IllConditionedQuadratic(5, "10"), "condition"),
    ("condition-huge", lambda: P.IllConditionedQuadratic(5, BIG), "condition"),
    ("condition-inf", lambda: P.IllConditionedQuadratic(5, math.inf), "condition"),
    ("noise-negative", lambda: P.LeastSquares(5, 2, noise=-0.1), "noise"),
    ("noise-str", lambda: P.LeastSquares(5, 2, noise="0.1"), "noise"),
    ("noise-inf", lambda: P.LeastSquares.line_fit(noise=math.inf), "noise"),
    ("slope-nan", lambda: P.LeastSquares.line_fit(slope=math.nan), "slope"),
    ("intercept-bool", lambda: P.LeastSquares.line_fit(intercept=True), "intercept"),
    ("l2-str", lambda: P.LogisticRegression(10, 2, l2="1e-3"), "l2"),
    ("l2-bool", lambda: P.SoftmaxRegression(10, 2, 2, l2=True), "l2"),
    ("l2-huge", lambda: P.LogisticRegression(10, 2, l2=BIG), "l2"),
    ("n_classes-huge", lambda: P.SoftmaxRegression(10, 2, BIG), "n_classes"),
    ("X-nan", lambda: P.LeastSquares.from_data([[np.nan, 1.0], [1.0, 2.0]], [1.0, 2.0]), "X"),
    ("y-inf", lambda: P.LeastSquares.from_data([[0.0, 1.0], [1.0, 2.0]], [1.0, np.inf]), "y"),
    ("X-ragged", lambda: P.LeastSquares.from_data([[1.0, 2.0], [3.0]], [1.0, 2.0]), "X"),
)


@pytest.mark.parametrize(("make", "name"), BAD_PROBLEM_ARGS)
def test_problem_bad_construction(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: P.IllConditionedQuadratic(5, seed=True), TypeError, id="bool"),
        pytest.param(lambda: P.LeastSquares(5, 2, seed=-1), ValueError, id="negative"),
        pytest.param(lambda: P.LogisticRegression(5, 2, seed=1.5), TypeError, id="float"),
    ],
)
def test_problem_bad_seed(make, error):
    """One seed check for every entry point (fastgd._checks.rng): TypeError for
    the wrong kind, ValueError for a negative value, naming seed."""
    with pytest.raises(error, match="^seed must be None, an int >= 0"):
        make()


BAD_DATA = table(
    ("X-masked", lambda: masked(np.ones((3, 2)), np.eye(3, 2)), np.ones(3), "X"),
    ("X-complex", lambda: np.ones((3, 2), complex), np.ones(3), "X"),
    ("X-bool", lambda: np.ones((3, 2), bool), np.ones(3), "X"),
    ("X-object", lambda: np.array([[1.0, None]] * 3), np.ones(3), "X"),
    ("y-masked", lambda: np.ones((3, 2)), masked([1, 2, 3], [0, 1, 0]), "y"),
)


@pytest.mark.parametrize(("make_X", "y", "name"), BAD_DATA)
def test_problem_bad_data_types(make_X, y, name):
    with pytest.raises(TypeError, match=name):
        P.LeastSquares.from_data(make_X(), y)


BAD_POINTS = table(
    ("masked", masked([1.0, 2.0, 3.0], [0, 1, 0]), TypeError, "x is a masked"),
    ("bool", np.array([True, False, True]), TypeError, "x must be real"),
    ("object", np.array([1.0, 2.0, 3.0], dtype=object), TypeError, "x must be real"),
    ("complex", np.ones(3, complex), TypeError, "x must be real"),
    ("str", "abc", TypeError, "x must be real"),
    ("None", None, TypeError, "x must be real"),
    ("ragged", [[1.0, 2.0], [3.0]], ValueError, "x must be"),
    ("matrix", matrix([[1.0, 2.0, 3.0]]), ValueError, "x must have shape"),
    ("0-d", np.array(1.0), ValueError, "x must have shape"),
    ("empty", np.zeros(0), ValueError, "x must have shape"),
)


@pytest.mark.parametrize(("x", "error", "match"), BAD_POINTS)
@pytest.mark.parametrize("method", ["f", "grad", "fun_and_grad", "hessp"])
def test_problem_bad_points(method, x, error, match):
    p = P.Rosenbrock(3)
    args = (x, np.ones(3)) if method == "hessp" else (x,)
    with pytest.raises(error, match=match):
        getattr(p, method)(*args)
    with pytest.raises(error, match=match.replace("x ", "v ")):
        p.hessp(np.ones(3), x)


def test_problem_points_handled_exactly():
    p = P.Rosenbrock(3)
    ref = p.fun_and_grad(np.array([1.0, 2.0, 3.0]))
    strided = np.array([1.0, 0.0, 2.0, 0.0, 3.0])[::2]
    for x in ([1, 2, 3], np.array([1, 2, 3], np.int8), strided, readonly(np.array([1.0, 2, 3]))):
        f, g = p.fun_and_grad(x)
        assert f == ref[0] and np.array_equal(g, ref[1]) and g.dtype == np.float64


BAD_BATCHES = table(
    ("negative", [-1], ValueError, "idx"),
    ("too-large", [10], ValueError, "idx"),
    ("masked", np.ma.MaskedArray([0, 1], mask=[0, 1]), TypeError, "idx"),
    ("bool", np.array([True, False]), TypeError, "idx"),
    ("float", [1.0], TypeError, "idx"),
    ("object", np.array([0], dtype=object), TypeError, "idx"),
    ("huge", [BIG], TypeError, "idx"),
    ("2-d", [[0]], TypeError, "idx"),
    ("ragged", [[0], [1, 2]], TypeError, "idx"),
    ("empty-list", [], ValueError, "idx"),
)


@pytest.mark.parametrize(("idx", "error", "match"), BAD_BATCHES)
def test_problem_bad_batches(idx, error, match):
    p = P.LeastSquares(10, 3)
    with pytest.raises(error, match=match):
        p.f(np.zeros(3), idx)
    with pytest.raises(error, match=match):
        p.hessp(np.zeros(3), np.ones(3), idx)


def test_problem_batch_out_of_range_is_also_an_index_error():
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        P.LeastSquares(10, 3).grad(np.zeros(3), np.array([3, 10], np.uint64))


# -- pack ----------------------------------------------------------------------------


class FakeCudaArray:
    """Claims to be a CUDA array; pack must refuse it next to host arrays
    before touching it."""

    __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "data": (0, False), "version": 3}


BAD_PACKS = table(
    ("None", None, {}, TypeError, "arrays"),
    ("single-ndarray", np.ones((3, 2)), {}, TypeError, "arrays"),
    ("str", "ab", {}, TypeError, "arrays"),
    ("dict", {"w": np.ones(2)}, {}, TypeError, "arrays"),
    ("masked", [masked([1.0, 2.0], [0, 1])], {}, TypeError, r"arrays\[0\]"),
    ("ragged", [np.ones(2), [[1.0, 2.0], [3.0]]], {}, ValueError, r"arrays\[1\]"),
    (
        "object",
        [np.array([1.0], dtype=object)],
        dict(dtype=np.float64),
        TypeError,
        r"arrays\[0\]",
    ),  # fmt: skip
    ("None-element", [None], dict(dtype=np.float64), TypeError, r"arrays\[0\]"),
    ("str-element", [np.ones(1), "1.0"], dict(dtype=np.float64), TypeError, r"arrays\[1\]"),
    ("bool", [np.array([True])], dict(dtype=np.float32), TypeError, r"arrays\[0\]"),
    (
        "complex",
        [np.ones(2), np.ones(2, complex)],
        dict(dtype=np.float64),
        TypeError,
        r"arrays\[1\]",
    ),  # fmt: skip
    ("int-without-dtype", [np.ones(2), np.arange(3)], {}, TypeError, r"arrays\[1\].*dtype="),
    ("mixed-float", [np.ones(2, np.float32), np.ones(2)], {}, TypeError, "dtype"),
    (
        "float32-overflow",
        [np.array([1.0, 1e300])],
        dict(dtype=np.float32),
        ValueError,
        r"arrays\[0\]",
    ),  # fmt: skip
    ("dtype-str", [np.ones(2)], dict(dtype="abc"), TypeError, "dtype"),
    ("dtype-bool", [np.ones(2)], dict(dtype=True), TypeError, "dtype"),
    ("dtype-int", [np.ones(2)], dict(dtype=np.int64), TypeError, "dtype"),
    (
        "mixed-host-cuda",
        [np.ones(2, np.float32), FakeCudaArray()],
        {},
        TypeError,
        r"arrays\[0\].*arrays\[1\]",
    ),  # fmt: skip
)


@pytest.mark.parametrize(("arrays", "kwargs", "error", "match"), BAD_PACKS)
def test_pack_bad_input(arrays, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastgd.pack(arrays, **kwargs)


def test_pack_handles_exactly():
    m = matrix([[1.0, 2.0]])
    ro = readonly(np.array([3.0, 4.0]))
    strided = np.array([5.0, 0.0, 6.0])[::2]
    flat, views = fastgd.pack([m, ro, strided, [[7.0], [8.0]], 9.0, np.zeros((0, 3))])
    assert flat.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert [type(v) for v in views] == [np.ndarray] * 6
    assert [v.shape for v in views] == [(1, 2), (2,), (2,), (2, 1), (), (0, 3)]
    flat, views = fastgd.pack((a for a in [np.arange(2), np.float32([np.inf])]), np.float32)
    assert flat.tolist() == [0.0, 1.0, np.inf]
    base = np.arange(5.0)
    flat, views = fastgd.pack([base[:3], base[1:], base[::-2]])  # overlapping inputs
    assert flat.tolist() == [0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 4.0, 2.0, 0.0]
    again, _ = fastgd.pack(views)  # views of a packed buffer, packed again: a new copy
    assert again.tolist() == flat.tolist() and not np.shares_memory(again, flat)
    flat, views = fastgd.pack([], dtype="float64")
    assert flat.dtype == np.float64 and flat.size == 0 and views == []
