"""The Moré-Thuente line search (fastgd.lbfgs._linesearch) against SciPy's DCSRCH
(an independent Python translation of MINPACK-2's dcsrch/dcstep) and against the
published results of Moré and Thuente (1994), Tables 1-6."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize._dcsrch import DCSRCH
from scipy.optimize._dcsrch import dcstep as scipy_dcstep

from fastgd.lbfgs._linesearch import MoreThuente, dcstep

# -- the six functions of section 5 of the paper: phi(a) -> (phi, phi')


def _f1(a, beta=2.0):
    return -a / (a * a + beta), (a * a - beta) / (a * a + beta) ** 2


def _f2(a, beta=0.004):
    return (a + beta) ** 5 - 2.0 * (a + beta) ** 4, (5.0 * (a + beta) - 8.0) * (a + beta) ** 3


def _f3(a, beta=0.01, l=39):
    if a <= 1.0 - beta:
        p0, d0 = 1.0 - a, -1.0
    elif a >= 1.0 + beta:
        p0, d0 = a - 1.0, 1.0
    else:
        p0, d0 = (a - 1.0) ** 2 / (2.0 * beta) + beta / 2.0, (a - 1.0) / beta
    c = l * math.pi / 2.0
    return p0 + 2.0 * (1.0 - beta) / (l * math.pi) * math.sin(c * a), d0 + (1.0 - beta) * math.cos(
        c * a
    )


def _yanai(beta1, beta2):
    g1 = math.sqrt(1.0 + beta1 * beta1) - beta1
    g2 = math.sqrt(1.0 + beta2 * beta2) - beta2

    def phi(a):
        u = math.sqrt((1.0 - a) ** 2 + beta2 * beta2)
        v = math.sqrt(a * a + beta1 * beta1)
        return g1 * u + g2 * v, -g1 * (1.0 - a) / u + g2 * a / v

    return phi


#: (function, ftol = mu, gtol = eta) of Tables 1-6
PAPER = {
    1: (_f1, 0.001, 0.1),
    2: (_f2, 0.1, 0.1),
    3: (_f3, 0.1, 0.1),
    4: (_yanai(0.001, 0.001), 0.001, 0.001),
    5: (_yanai(0.01, 0.001), 0.001, 0.001),
    6: (_yanai(0.001, 0.01), 0.001, 0.001),
}
A0 = (1e-3, 1e-1, 1e1, 1e3)
#: Tables 1-6 of the paper: (accepted step, evaluations) from each a0 in A0
TABLES = {
    1: [(1.365, 6), (1.4414, 3), (10.0, 1), (36.888, 4)],
    2: [(1.596, 12), (1.596, 8), (1.596, 8), (1.596, 11)],
    3: [(1.0, 12), (1.0, 12), (1.0, 10), (1.0, 13)],
    4: [(0.085, 4), (0.1, 1), (0.34910, 3), (0.82940, 4)],
    5: [(0.075011, 6), (0.077510, 3), (0.073142, 7), (0.076159, 8)],
    6: [(0.92790, 13), (0.92615, 11), (0.92478, 8), (0.92440, 11)],
}
#: SciPy's task -> our status
TASKS = {
    b"CONVERGENCE": "converged",
    b"WARNING: ROUNDING ERRORS PREVENT PROGRESS": "warning: rounding errors prevent progress",
    b"WARNING: XTOL TEST SATISFIED": "warning: xtol test satisfied",
    b"WARNING: STP = STPMAX": "warning: stp = stpmax",
    b"WARNING: STP = STPMIN": "warning: stp = stpmin",
}


def run(phi, a0, **kw):
    """Drive MoreThuente: (the search, its trial steps)."""
    ls = MoreThuente(**kw)
    stp = ls.start(*phi(0.0), a0)
    trials = []
    while stp is not None:
        trials.append(stp)
        stp = ls.next(*phi(stp))
    assert ls.nfev == len(trials)
    return ls, trials


def run_scipy(phi, a0, ftol, gtol, xtol=0.1, stpmin=0.0, stpmax=1e20, maxiter=100):
    """Drive SciPy's DCSRCH the same way, through its reverse-communication step
    ``_iterate``: (its trial steps, final task, final stp)."""
    ls = DCSRCH(None, None, ftol, gtol, xtol, stpmin, stpmax)
    f, g = phi(0.0)
    stp, f, g, task = ls._iterate(a0, f, g, b"START")
    trials = []
    while task[:2] == b"FG" and len(trials) < maxiter:
        trials.append(float(stp))
        f, g = phi(stp)
        stp, f, g, task = ls._iterate(stp, f, g, task)
    return trials, task, float(stp)


def assert_strong_wolfe(ls, phi, ftol, gtol):
    f0, dg0 = phi(0.0)
    f, dg = phi(ls.stp)
    assert (ls.f, ls.dg) == (f, dg)
    assert ls.stp > 0
    assert f <= f0 + ftol * ls.stp * dg0
    assert abs(dg) <= gtol * abs(dg0)


@pytest.mark.parametrize("xtol", [0.1, 1e-3, 1e-14])
@pytest.mark.parametrize("a0", A0)
@pytest.mark.parametrize("k", sorted(PAPER))
def test_paper_functions_match_scipy_dcsrch(k, a0, xtol):
    phi, ftol, gtol = PAPER[k]
    ls, trials = run(phi, a0, ftol=ftol, gtol=gtol, xtol=xtol, maxiter=100)
    ref, task, ref_stp = run_scipy(phi, a0, ftol, gtol, xtol)
    # the same trial steps, bit for bit, and so the same number of evaluations
    assert trials == ref
    assert ls.status == TASKS[task]
    assert ls.stp == ref_stp == trials[-1]
    if ls.status == "converged":
        assert_strong_wolfe(ls, phi, ftol, gtol)
    else:  # a warning: the best step found, with sufficient decrease
        f0, dg0 = phi(0.0)
        assert ls.f <= f0 + ftol * ls.stp * dg0


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("k", sorted(PAPER))
def test_paper_tables(k, i):
    """The accepted steps and evaluation counts printed in Tables 1-6 (small xtol,
    so that only the Wolfe conditions stop the search)."""
    phi, ftol, gtol = PAPER[k]
    ls, trials = run(phi, A0[i], ftol=ftol, gtol=gtol, xtol=1e-14)
    stp, nfev = TABLES[k][i]
    assert ls.status == "converged"
    assert ls.nfev == nfev
    assert ls.stp == pytest.approx(stp, rel=5e-5)
    assert_strong_wolfe(ls, phi, ftol, gtol)


def _random_phi(rng):
    """A smooth function bounded below with phi'(0) < 0: a convex quadratic or a
    quartic with positive leading coefficient, on scales from 1e-3 to 1e3."""
    scale = 10.0 ** rng.uniform(-3, 3)  # where the minimizer roughly is
    if rng.random() < 0.5:
        c = np.array([rng.uniform(-5, 5), -rng.uniform(0.1, 10), rng.uniform(0.1, 10)])
    else:
        c = np.array([rng.normal(), -rng.uniform(0.1, 10), rng.normal() * 5, rng.normal() * 5])
        c = np.append(c, rng.uniform(0.1, 10))
    c = c / scale ** np.arange(len(c))  # phi(a) = p(a / scale)
    p = np.polynomial.Polynomial(c)
    dp = p.deriv()
    return lambda a: (float(p(a)), float(dp(a)))


@pytest.mark.parametrize("seed", range(4))
def test_random_smooth_functions(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        phi = _random_phi(rng)
        ftol = 10.0 ** rng.uniform(-4, -0.7)
        gtol = rng.uniform(ftol * 1.5, 0.99)
        a0 = 10.0 ** rng.uniform(-4, 4)
        ls, trials = run(phi, a0, ftol=ftol, gtol=gtol, xtol=1e-14, maxiter=100)
        assert ls.status == "converged", (ls.status, trials)
        assert_strong_wolfe(ls, phi, ftol, gtol)
        # and the default xtol, against SciPy
        ls, trials = run(phi, a0, ftol=ftol, gtol=gtol, maxiter=100)
        ref, task, ref_stp = run_scipy(phi, a0, ftol, gtol)
        assert trials == ref
        assert (ls.status, ls.stp) == (TASKS[task], ref_stp)


@pytest.mark.parametrize("seed", range(3))
def test_dcstep_matches_scipy(seed):
    """All four cases of dcstep, bracketed or not, on random valid inputs."""
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        stx, stp = rng.uniform(0, 2, 2)
        sty = stx + rng.choice([-1, 1]) * rng.uniform(0, 2) if rng.random() < 0.5 else stx
        brackt = bool(sty != stx) and min(stx, sty) < stp < max(stx, sty)
        sign = 1.0 if stp > stx else -1.0  # dx < 0 in the direction of the step
        dx = -sign * rng.uniform(0.01, 3)
        fx, fy, fp = rng.normal(size=3)
        dy, dp = rng.normal(size=2) * 3
        args = (stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, 0.0, 5.0)
        out = dcstep(*map(lambda v: v if isinstance(v, bool) else float(v), args))
        with np.errstate(all="ignore"):
            ref = scipy_dcstep(*args)
        np.testing.assert_array_equal(np.array(out, float), np.array(ref, float))


def test_dcstep_division_by_zero_gives_ieee_values():
    # sty == stp in the fourth case: Fortran's 3*(fp - fy)/0 is inf, not an exception
    args = (0.0, 0.0, -1.0, 1.0, 0.5, -1.0, 1.0, -1.0, -2.0, True, 0.0, 5.0)
    out = dcstep(*args)
    with np.errstate(all="ignore"):
        ref = scipy_dcstep(*(np.float64(a) if not isinstance(a, bool) else a for a in args))
    np.testing.assert_array_equal(np.array(out, float), np.array(ref, float))
    assert all(type(v) is float for i, v in enumerate(out) if i != 7)


def test_warnings_stpmax_stpmin():
    ls, trials = run(lambda a: (-a, -1.0), 1.0, stpmax=10.0)
    assert (ls.status, ls.stp, ls.f, trials) == ("warning: stp = stpmax", 10.0, -10.0, [1, 5, 10])
    steep = lambda a: (-a + 1e6 * a * a, -1.0 + 2e6 * a)  # noqa: E731
    ls, trials = run(steep, 1.0, stpmin=0.5)
    assert (ls.status, ls.stp, trials) == ("warning: stp = stpmin", 0.5, [1.0, 0.5])
    for phi, kw in [(lambda a: (-a, -1.0), {"stpmax": 10.0}), (steep, {"stpmin": 0.5})]:
        ref, task, _ = run_scipy(phi, 1.0, 1e-3, 0.9, **kw)
        assert (ref, TASKS[task]) == (run(phi, 1.0, **kw)[1], run(phi, 1.0, **kw)[0].status)


def test_maxiter():
    phi, ftol, gtol = PAPER[2]  # needs 12 evaluations from 1e-3
    ls, trials = run(phi, 1e-3, ftol=ftol, gtol=gtol, xtol=1e-14, maxiter=5)
    assert ls.status == "error: maxiter" and ls.nfev == 5
    assert "maxiter=5" in ls.message
    ref, _, _ = run_scipy(phi, 1e-3, ftol, gtol, 1e-14)
    assert trials == ref[:5]
    # the best step so far, below f(0), which the caller may re-evaluate
    assert ls.stp in trials and (ls.f, ls.dg) == phi(ls.stp) and ls.f < phi(0.0)[0]
    ls, trials = run(phi, 1e-3, ftol=ftol, gtol=gtol, xtol=1e-14, maxiter=12)
    assert ls.status == "converged" and ls.nfev == 12


def _cut(phi, at, bad):
    """phi below ``at``, ``bad`` (non-finite values) from ``at`` on."""
    return lambda a: phi(a) if a < at else bad


def test_nonfinite_first_trial_backtracks():
    def phi(a):  # minimum at 0.3; inf beyond 0.5
        return ((a - 0.3) ** 2 - 0.09, 2.0 * (a - 0.3)) if a <= 0.5 else (math.inf, math.nan)

    for gtol, expected in [(0.9, [1.0, 0.5]), (0.1, [1.0, 0.5, 0.3])]:
        ls, trials = run(phi, 1.0, gtol=gtol)
        assert ls.status == "converged" and trials == expected
        assert_strong_wolfe(ls, phi, 1e-3, gtol)
    # nan in g.d only; several bad steps in a row; and later trials stay short of them
    for bad in [(0.0, math.nan), (math.nan, math.nan), (-math.inf, 0.0)]:
        ls, trials = run(_cut(lambda a: (a * a - a, 2 * a - 1), 0.7, bad), 8.0, gtol=0.1)
        assert trials[:4] == [8.0, 4.0, 2.0, 1.0] and max(trials[4:]) < 0.7
        assert ls.status == "converged" and abs(ls.dg) <= 0.1


def test_nonfinite_below_the_best_step():
    """A bracket [sty, stx] with sty < stx and f not finite inside it."""

    def phi(a):  # minimum at 0.9; nan on (0.5, 0.95)
        return (math.nan, math.nan) if 0.5 < a < 0.95 else ((a - 0.9) ** 2 - 0.81, 2 * (a - 0.9))

    ls, trials = run(phi, 1.0, gtol=0.06)  # at 1: f < f(0), dg = 0.2 > 0.06 * 1.8
    assert trials[0] == 1.0 and 0.5 < trials[1] < 0.95 and trials[2] == (1.0 + trials[1]) / 2
    assert ls.status == "converged" and ls.stp == trials[2]
    assert_strong_wolfe(ls, phi, 1e-3, 0.06)
    # a non-finite value at stpmin: nowhere left to go
    ls, trials = run(lambda a: (math.inf, math.inf) if a else (0.0, -1.0), 1.0, stpmin=1.0)
    assert ls.status == "error: non-finite function value" and trials == [1.0]
    assert (ls.stp, ls.f, ls.dg) == (0.0, 0.0, -1.0)


def test_nonfinite_fails_after_max_nonfinite():
    def phi(a):
        return (0.0, -1.0) if a == 0.0 else (math.nan, math.nan)

    ls, trials = run(phi, 1.0)
    assert ls.status == "error: non-finite function value"
    assert trials == [2.0**-k for k in range(11)] and "max_nonfinite=10" in ls.message
    assert (ls.stp, ls.f, ls.dg) == (0.0, 0.0, -1.0)  # the best step: none
    ls, trials = run(phi, 1.0, max_nonfinite=3)
    assert ls.status == "error: non-finite function value" and ls.nfev == 4
    ls, trials = run(phi, 1.0, maxiter=5)
    assert ls.status == "error: maxiter" and ls.nfev == 5
    # finite and decreasing up to 0.5, inf beyond: no Wolfe step exists
    ls, trials = run(lambda a: (-a, -1.0) if a <= 0.5 else (math.inf, math.inf), 1.0)
    assert ls.status.startswith("error:") and ls.nfev <= 20
    assert ls.stp == 0.5 and ls.f == -0.5 and all(t < 1.0 for t in trials[1:])


def test_nonfinite_trial_step():
    ls = MoreThuente()
    ls.start(-1.7e308, -1.0, 1.0)
    assert ls.next(1.7e308, 1.0) is None  # 3*(fx - fp) overflows: theta/s is nan
    assert ls.status == "error: non-finite trial step"
    assert (ls.stp, ls.f, ls.dg) == (0.0, -1.7e308, -1.0)
    ref = DCSRCH(None, None, 1e-3, 0.9, 0.1, 0.0, 1e20)
    _, f, g, task = ref._iterate(1.0, -1.7e308, -1.0, b"START")
    stp, *_ = ref._iterate(1.0, 1.7e308, 1.0, task)
    assert math.isnan(stp)  # SciPy turns it into a failure as well


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"ftol": -1e-3}, "ftol"),
        ({"ftol": math.nan}, "ftol"),
        ({"gtol": -0.1}, "gtol"),
        ({"xtol": -1.0}, "xtol"),
        ({"stpmin": -1.0}, "stpmin"),
        ({"stpmin": math.inf}, "stpmin"),
        ({"stpmin": 2.0, "stpmax": 1.0}, "stpmax"),
        ({"stpmax": math.nan}, "stpmax"),
        ({"maxiter": 0}, "maxiter"),
        ({"maxiter": 2.5}, "maxiter"),
        ({"max_nonfinite": 0}, "max_nonfinite"),
    ],
)
def test_argument_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        MoreThuente(**kw)


def test_start_validation():
    ls = MoreThuente(stpmin=0.1, stpmax=10.0)
    for dg0 in (0.0, 1.0, math.nan):
        with pytest.raises(ValueError, match="not a descent direction"):
            ls.start(1.0, dg0, 1.0)
    with pytest.raises(ValueError, match="f0"):
        ls.start(math.inf, -1.0, 1.0)
    for stp in (0.0, -1.0, math.nan, math.inf, 0.05, 11.0):
        with pytest.raises(ValueError, match=r"stp must be finite, > 0 and in \[stpmin, stpmax\]"):
            ls.start(1.0, -1.0, stp)
    with pytest.raises(RuntimeError, match="not started"):
        ls.next(0.0, 0.0)
    assert ls.start(0.0, -1.0, 1.0) == 1.0 and ls.status == "searching"
    assert ls.next(-0.5, 0.0) is None and ls.status == "converged"
    with pytest.raises(RuntimeError, match="converged"):
        ls.next(0.0, 0.0)


def test_reuse_across_searches():
    ls = MoreThuente(ftol=0.1, gtol=0.1, xtol=1e-14)
    for k in (2, 3, 2):
        phi = PAPER[k][0]
        stp = ls.start(*phi(0.0), 1e-1)
        while stp is not None:
            stp = ls.next(*phi(stp))
        assert ls.status == "converged" and ls.nfev == TABLES[k][1][1]
