"""Learning-rate schedules: value-for-value parity with torch.optim.lr_scheduler.

Each torch case runs torch's scheduler for ``N`` steps on a dummy SGD
optimizer and records ``param_groups[0]["lr"]`` before each ``step()`` (the
rate used at step ``t``) and once after the last; fastgd's ``sched(t)`` must
give the same ``N + 1`` values.

Tolerances:

* ``exact``: bit for bit. torch computes these from ``t`` in closed form
  (CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR; StepLR and MultiStepLR
  multiply by the same ``gamma`` powers), and fastgd performs the same
  operations in the same order.
* ``rtol=1e-12``: torch updates the previous rate recursively (``lr * gamma``,
  ratios of consecutive cosine or polynomial factors); fastgd evaluates the
  closed form the recursion telescopes to. They differ by accumulated rounding,
  a few ulp per step: at most ~1e-13 relative over 1000 steps of
  CosineAnnealingLR (the worst), ~1e-15 for the others over ``N`` steps.
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fastgd import schedules as S

torch = pytest.importorskip("torch")
L = torch.optim.lr_scheduler

N = 150
BASE = 0.1
EXACT = "exact"
RTOL = 1e-12


def torch_lrs(make: Callable, n: int = N, base: float = BASE) -> list[float]:
    """The rate torch uses at steps 0..n, read before each ``scheduler.step()``."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's step-order heuristics
        sched = make(opt)
        lrs = []
        for _ in range(n):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[-1] == sched.get_last_lr()[0]
    return [float(v) for v in lrs]


def case(name: str, ours: Callable[[float], S.Schedule], theirs: Callable, tol=RTOL):
    """One parity case: fastgd factory of the base lr, torch factory of the optimizer."""
    return pytest.param(ours, theirs, tol, id=name)


def cyc(**kw):
    return dict(cycle_momentum=False, **kw)


# fmt: off
TORCH_CASES = [
    case("StepLR-7-0.5", lambda lr: S.StepLR(lr, 7, 0.5), lambda o: L.StepLR(o, 7, 0.5), EXACT),
    case("StepLR-1-0.97", lambda lr: S.StepLR(lr, 1, 0.97), lambda o: L.StepLR(o, 1, 0.97)),
    case("StepLR-default", lambda lr: S.StepLR(lr, 30), lambda o: L.StepLR(o, 30)),
    case("MultiStepLR", lambda lr: S.MultiStepLR(lr, [10, 40, 80], 0.5),
         lambda o: L.MultiStepLR(o, [10, 40, 80], 0.5), EXACT),
    case("MultiStepLR-repeated", lambda lr: S.MultiStepLR(lr, [5, 5, 60]),
         lambda o: L.MultiStepLR(o, [5, 5, 60])),
    case("MultiStepLR-zero-unsorted", lambda lr: S.MultiStepLR(lr, [90, 0, 30], 0.3),
         lambda o: L.MultiStepLR(o, [90, 0, 30], 0.3)),
    case("ExponentialLR-0.97", lambda lr: S.ExponentialLR(lr, 0.97),
         lambda o: L.ExponentialLR(o, 0.97)),
    case("ExponentialLR-0.5", lambda lr: S.ExponentialLR(lr, 0.5),
         lambda o: L.ExponentialLR(o, 0.5)),
    case("ExponentialLR-1.02", lambda lr: S.ExponentialLR(lr, 1.02),
         lambda o: L.ExponentialLR(o, 1.02)),
    case("LinearLR-default", lambda lr: S.LinearLR(lr), lambda o: L.LinearLR(o)),
    case("LinearLR-warmup", lambda lr: S.LinearLR(lr, 0.25, 1.0, 30),
         lambda o: L.LinearLR(o, 0.25, 1.0, 30)),
    case("LinearLR-decay", lambda lr: S.LinearLR(lr, 1.0, 0.1, 50),
         lambda o: L.LinearLR(o, 1.0, 0.1, 50)),
    case("LinearLR-to-zero", lambda lr: S.LinearLR(lr, 1.0, 0.0, 100),
         lambda o: L.LinearLR(o, 1.0, 0.0, 100)),
    case("LinearLR-long", lambda lr: S.LinearLR(lr, 0.5, 0.0, 400),
         lambda o: L.LinearLR(o, 0.5, 0.0, 400)),
    case("CosineAnnealingLR-10", lambda lr: S.CosineAnnealingLR(lr, 10),
         lambda o: L.CosineAnnealingLR(o, 10)),
    case("CosineAnnealingLR-50-eta", lambda lr: S.CosineAnnealingLR(lr, 50, 1e-3),
         lambda o: L.CosineAnnealingLR(o, 50, 1e-3)),
    case("CosineAnnealingLR-37-eta", lambda lr: S.CosineAnnealingLR(lr, 37, 0.05),
         lambda o: L.CosineAnnealingLR(o, 37, 0.05)),
    case("CosineAnnealingLR-200", lambda lr: S.CosineAnnealingLR(lr, 200),
         lambda o: L.CosineAnnealingLR(o, 200)),
    case("CosineAnnealingLR-1", lambda lr: S.CosineAnnealingLR(lr, 1, 0.01),
         lambda o: L.CosineAnnealingLR(o, 1, 0.01)),
    case("CosineAnnealingWarmRestarts-10", lambda lr: S.CosineAnnealingWarmRestarts(lr, 10),
         lambda o: L.CosineAnnealingWarmRestarts(o, 10), EXACT),
    case("CosineAnnealingWarmRestarts-7x2-eta",
         lambda lr: S.CosineAnnealingWarmRestarts(lr, 7, 2, 1e-3),
         lambda o: L.CosineAnnealingWarmRestarts(o, 7, 2, 1e-3), EXACT),
    case("CosineAnnealingWarmRestarts-3x3", lambda lr: S.CosineAnnealingWarmRestarts(lr, 3, 3),
         lambda o: L.CosineAnnealingWarmRestarts(o, 3, 3), EXACT),
    case("CosineAnnealingWarmRestarts-1", lambda lr: S.CosineAnnealingWarmRestarts(lr, 1),
         lambda o: L.CosineAnnealingWarmRestarts(o, 1), EXACT),
    case("PolynomialLR-default", lambda lr: S.PolynomialLR(lr), lambda o: L.PolynomialLR(o)),
    case("PolynomialLR-50-2", lambda lr: S.PolynomialLR(lr, 50, 2.0),
         lambda o: L.PolynomialLR(o, 50, 2.0)),
    case("PolynomialLR-200-0.5", lambda lr: S.PolynomialLR(lr, 200, 0.5),
         lambda o: L.PolynomialLR(o, 200, 0.5)),
    case("PolynomialLR-N", lambda lr: S.PolynomialLR(lr, N), lambda o: L.PolynomialLR(o, N)),
    case("CyclicLR-triangular", lambda lr: S.CyclicLR(0.01, 0.1, 10),
         lambda o: L.CyclicLR(o, 0.01, 0.1, 10, **cyc()), EXACT),
    case("CyclicLR-triangular-asym", lambda lr: S.CyclicLR(0.01, 0.1, 10, 5),
         lambda o: L.CyclicLR(o, 0.01, 0.1, 10, 5, **cyc()), EXACT),
    case("CyclicLR-sawtooth", lambda lr: S.CyclicLR(0.01, 0.1, 9, 0),
         lambda o: L.CyclicLR(o, 0.01, 0.1, 9, 0, **cyc()), EXACT),
    case("CyclicLR-triangular2", lambda lr: S.CyclicLR(0.001, 0.1, 8, 12, "triangular2"),
         lambda o: L.CyclicLR(o, 0.001, 0.1, 8, 12, "triangular2", **cyc()), EXACT),
    case("CyclicLR-exp_range", lambda lr: S.CyclicLR(0.01, 0.1, 7, mode="exp_range", gamma=0.99),
         lambda o: L.CyclicLR(o, 0.01, 0.1, 7, mode="exp_range", gamma=0.99, **cyc()), EXACT),
    case("CyclicLR-scale_fn-cycle",
         lambda lr: S.CyclicLR(0.02, 0.2, 6, scale_fn=lambda x: 0.8**x),
         lambda o: L.CyclicLR(o, 0.02, 0.2, 6, scale_fn=lambda x: 0.8**x, **cyc()), EXACT),
    case("CyclicLR-scale_fn-iterations",
         lambda lr: S.CyclicLR(0.02, 0.2, 6, scale_fn=lambda x: 1 / (1 + 0.01 * x),
                               scale_mode="iterations"),
         lambda o: L.CyclicLR(o, 0.02, 0.2, 6, scale_fn=lambda x: 1 / (1 + 0.01 * x),
                              scale_mode="iterations", **cyc()), EXACT),
    case("OneCycleLR-cos", lambda lr: S.OneCycleLR(lr, N),
         lambda o: L.OneCycleLR(o, BASE, N, **cyc()), EXACT),
    case("OneCycleLR-linear", lambda lr: S.OneCycleLR(lr, N, anneal_strategy="linear"),
         lambda o: L.OneCycleLR(o, BASE, N, anneal_strategy="linear", **cyc()), EXACT),
    case("OneCycleLR-three_phase-cos", lambda lr: S.OneCycleLR(lr, N, three_phase=True),
         lambda o: L.OneCycleLR(o, BASE, N, three_phase=True, **cyc()), EXACT),
    case("OneCycleLR-three_phase-linear",
         lambda lr: S.OneCycleLR(lr, N, pct_start=0.25, anneal_strategy="linear",
                                 three_phase=True),
         lambda o: L.OneCycleLR(o, BASE, N, pct_start=0.25, anneal_strategy="linear",
                                three_phase=True, **cyc()), EXACT),
    case("OneCycleLR-epochs-factors",
         lambda lr: S.OneCycleLR(lr, epochs=10, steps_per_epoch=N // 10, pct_start=0.5,
                                 div_factor=10.0, final_div_factor=100.0),
         lambda o: L.OneCycleLR(o, BASE, epochs=10, steps_per_epoch=N // 10, pct_start=0.5,
                                div_factor=10.0, final_div_factor=100.0, **cyc()), EXACT),
    case("OneCycleLR-longer", lambda lr: S.OneCycleLR(lr, 2 * N, pct_start=0.0),
         lambda o: L.OneCycleLR(o, BASE, 2 * N, pct_start=0.0, **cyc()), EXACT),
    case("SequentialLR-warmup-cosine",
         lambda lr: S.SequentialLR([S.LinearLR(lr, 0.1, 1.0, 10), S.CosineAnnealingLR(lr, 90)],
                                   [10]),
         lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, 10), L.CosineAnnealingLR(o, 90)],
                                  [10])),
    case("SequentialLR-three",
         lambda lr: S.SequentialLR([S.ExponentialLR(lr, 0.9), S.StepLR(lr, 10, 0.5),
                                    S.CosineAnnealingWarmRestarts(lr, 8, 2)], [5, 40]),
         lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.StepLR(o, 10, 0.5),
                                      L.CosineAnnealingWarmRestarts(o, 8, 2)], [5, 40])),
]
# fmt: on


@pytest.mark.parametrize(("ours", "theirs", "tol"), TORCH_CASES)
def test_matches_torch(ours, theirs, tol):
    expected = torch_lrs(theirs)
    sched = ours(BASE)
    got = sched.values(N + 1)
    assert got == [sched(t) for t in range(N + 1)]
    assert all(type(v) is float for v in got)
    if tol == EXACT:
        assert got == expected
    else:
        np.testing.assert_allclose(got, expected, rtol=tol, atol=0)


def test_cosine_annealing_long_run_drift():
    """torch's recursion drifts farthest from the closed form here; still < RTOL."""
    for T, eta_min in [(7, 0.0), (10, 1e-4), (100, 0.09)]:
        expected = torch_lrs(lambda o, T=T, e=eta_min: L.CosineAnnealingLR(o, T, e), n=1000)
        got = S.CosineAnnealingLR(BASE, T, eta_min).values(1001)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)


# -- ReduceLROnPlateau ---------------------------------------------------------


def metric_sequence(seed: int, n: int = 160) -> list[float]:
    """Improvements, long plateaus, tiny (sub-threshold) gains, noise, a NaN."""
    rng = np.random.default_rng(seed)
    levels = np.repeat(np.cumsum(rng.choice([-0.3, 0.0, 0.0, 1e-6, 0.2], 16)), 10)
    noise = rng.normal(0.0, 0.02, n) * rng.choice([0.0, 1.0], n, p=[0.6, 0.4])
    values = 5.0 + levels[:n] + noise
    values[n // 2] = np.nan
    return [float(v) for v in values]


PLATEAU_CASES = [
    pytest.param({}, 0, id="defaults"),
    pytest.param(dict(patience=3, cooldown=2, factor=0.5), 1, id="min-rel-cooldown"),
    pytest.param(dict(threshold_mode="abs", threshold=0.01, patience=2), 2, id="min-abs"),
    pytest.param(dict(mode="max", patience=0, factor=0.5, min_lr=1e-3), 3, id="max-rel-min_lr"),
    pytest.param(
        dict(mode="max", threshold_mode="abs", threshold=0.05, patience=1, cooldown=5),
        4,
        id="max-abs-cooldown",
    ),
    pytest.param(dict(patience=1, factor=0.9, eps=5e-3), 5, id="eps-skips-small-cuts"),
    pytest.param(dict(patience=2, factor=0.0, min_lr=1e-4), 6, id="factor-0"),
]


@pytest.mark.parametrize(("kwargs", "seed"), PLATEAU_CASES)
def test_reduce_on_plateau_matches_torch(kwargs, seed):
    metrics = metric_sequence(seed)
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE)
    theirs = L.ReduceLROnPlateau(opt, **kwargs)
    ours = S.ReduceLROnPlateau(BASE, **kwargs)
    reductions = 0
    for m in metrics:
        assert ours.lr == opt.param_groups[0]["lr"]
        before = ours.lr
        theirs.step(m)
        assert ours.step(m) == ours.lr == opt.param_groups[0]["lr"]
        reductions += ours.lr != before
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == (
            theirs.best,
            theirs.num_bad_epochs,
            theirs.cooldown_counter,
            theirs.last_epoch,
        )
    assert reductions >= 1


def test_reduce_on_plateau_state_dict_roundtrip():
    metrics = metric_sequence(1)
    a = S.ReduceLROnPlateau(BASE, patience=3, cooldown=2, factor=0.5)
    for m in metrics[:70]:
        a.step(m)
    b = S.ReduceLROnPlateau(1.0)
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict()
    assert repr(b) == repr(a)
    assert [a.step(m) for m in metrics[70:]] == [b.step(m) for m in metrics[70:]]


def test_reduce_on_plateau_accepts_numpy_and_tensor_metrics():
    s = S.ReduceLROnPlateau(1.0, patience=0)
    assert s.step(np.float32(1.0)) == 1.0
    assert s.step(torch.tensor(2.0)) == 0.1
    assert s.in_cooldown is False


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"lr": 1.0}, "missing"),
        ({**S.ReduceLROnPlateau(1.0).state_dict(), "extra": 1}, "unexpected"),
        ({**S.ReduceLROnPlateau(1.0).state_dict(), "factor": 2.0}, "factor"),
        ({**S.ReduceLROnPlateau(1.0).state_dict(), "num_bad_epochs": -1}, "num_bad_epochs"),
    ],
)
def test_reduce_on_plateau_bad_state_dict(state, match):
    s = S.ReduceLROnPlateau(0.5, patience=2)
    before = s.state_dict()
    with pytest.raises(ValueError, match=match):
        s.load_state_dict(state)
    assert s.state_dict() == before


# -- schedules torch lacks: hand-computed values --------------------------------


@pytest.mark.parametrize(
    ("sched", "expected"),
    [
        (S.InverseTimeDecay(0.1, 0.5), {0: 0.1, 1: 0.1 / 1.5, 4: 0.1 / 3.0, 10: 0.1 / 6.0}),
        (
            S.InverseTimeDecay(0.1, 0.5, 10),
            {0: 0.1, 5: 0.1 / 1.25, 9: 0.1 / 1.45, 10: 0.1 / 1.5, 25: 0.1 / 2.25},
        ),
        (
            S.InverseTimeDecay(0.1, 0.5, 10, staircase=True),
            {0: 0.1, 5: 0.1, 9: 0.1, 10: 0.1 / 1.5, 25: 0.1 / 2.0, 30: 0.1 / 2.5},
        ),
        (S.InverseTimeDecay(2.0, 0.0, 3), {0: 2.0, 7: 2.0, 10**6: 2.0}),
        (
            S.WarmupCosine(1.0, 4, 12, eta_min=0.1),
            {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 8: 0.55, 12: 0.1, 13: 0.1, 10**9: 0.1},
        ),
        (
            S.WarmupCosine(0.5, 0, 4),
            {0: 0.5, 1: 0.5 * (1 + 0.5**0.5) / 2, 2: 0.25, 3: 0.5 * (1 - 0.5**0.5) / 2, 4: 0.0},
        ),
        (S.WarmupCosine(0.3, 3, 4), {0: 0.0, 1: 0.1, 2: 0.2, 3: 0.3, 4: 0.0, 5: 0.0}),
    ],
    ids=repr,
)
def test_textbook_values(sched, expected):
    for t, lr in expected.items():
        assert sched(t) == pytest.approx(lr, rel=1e-15, abs=1e-17), t


def test_warmup_cosine_matches_transformers_formula():
    """transformers' get_cosine_schedule_with_warmup (eta_min = 0), written out."""
    w, n, lr = 10, 110, 0.3
    sched = S.WarmupCosine(lr, w, n)
    for t in range(n + 1):
        if t < w:
            factor = t / w
        else:
            factor = max(0.0, 0.5 * (1.0 + math.cos(math.pi * (t - w) / (n - w))))
        assert sched(t) == pytest.approx(lr * factor, rel=1e-14, abs=1e-17)


# -- behaviour common to every schedule ----------------------------------------

EVERY = [
    S.StepLR(0.1, 3),
    S.MultiStepLR(0.1, [2, 5]),
    S.ExponentialLR(0.1, 0.9),
    S.LinearLR(0.1),
    S.CosineAnnealingLR(0.1, 10, 0.01),
    S.CosineAnnealingWarmRestarts(0.1, 3, 2),
    S.PolynomialLR(0.1, 10, 2.0),
    S.CyclicLR(0.01, 0.1, 4, mode="triangular2"),
    S.OneCycleLR(0.1, 20, three_phase=True),
    S.SequentialLR([S.LinearLR(0.1), S.ExponentialLR(0.1, 0.9)], [5]),
    S.InverseTimeDecay(0.1, 0.5, 2, staircase=True),
    S.WarmupCosine(0.1, 3, 15, 0.01),
]


def test_every_schedule_is_listed():
    names = {type(s).__name__ for s in EVERY} | {"ReduceLROnPlateau"}
    assert names == set(S.SCHEDULES) == set(S.__all__) - {"Schedule", "SCHEDULES"}


@pytest.mark.parametrize("sched", EVERY, ids=lambda s: type(s).__name__)
def test_step_argument(sched):
    for t in range(15):
        v = sched(t)
        for np_t in (np.int64(t), np.int32(t), np.uint8(t), np.array(t)):
            assert sched(np_t) == v
    with pytest.raises(ValueError, match=">= 0"):
        sched(-1)
    with pytest.raises(ValueError, match=">= 0"):
        sched(np.int64(-3))
    for bad in (1.0, 2.5, "3", None, True, np.float64(1.0)):
        with pytest.raises(TypeError, match="integer"):
            sched(bad)


@pytest.mark.parametrize("sched", EVERY, ids=lambda s: type(s).__name__)
def test_repr_round_trips_and_schedule_is_immutable(sched):
    namespace = {name: getattr(S, name) for name in S.__all__}
    clone = eval(repr(sched), namespace)
    assert type(clone) is type(sched) and repr(clone) == repr(sched)
    assert clone.values(15) == sched.values(15)
    field = type(sched)._fields[0]
    with pytest.raises(AttributeError, match="immutable"):
        setattr(sched, field, 1.0)
    assert pickle.loads(pickle.dumps(sched)).values(15) == sched.values(15)


def test_values_argument():
    assert S.StepLR(0.1, 1).values(0) == []
    with pytest.raises(ValueError, match="n"):
        S.StepLR(0.1, 1).values(-1)


def test_one_cycle_is_defined_up_to_total_steps():
    sched = S.OneCycleLR(0.1, 20)
    sched(20)
    with pytest.raises(ValueError, match="total_steps"):
        sched(21)


def test_sequential_restarts_each_clock():
    a, b = S.ExponentialLR(1.0, 0.5), S.StepLR(2.0, 2)
    seq = S.SequentialLR([a, b], [3])
    assert seq.values(7) == [a(0), a(1), a(2), b(0), b(1), b(2), b(3)]
    assert S.SequentialLR([a], []).values(5) == a.values(5)


# -- argument validation --------------------------------------------------------

BAD: list[tuple[Callable[[], Any], str]] = [
    (lambda: S.StepLR(-0.1, 3), "lr"),
    (lambda: S.StepLR(float("nan"), 3), "lr"),
    (lambda: S.StepLR(0.1, 0), "step_size"),
    (lambda: S.StepLR(0.1, 2.0), "step_size"),
    (lambda: S.StepLR(0.1, 2, -0.5), "gamma"),
    (lambda: S.MultiStepLR(0.1, 5), "milestones"),
    (lambda: S.MultiStepLR(0.1, [3, -1]), "milestones"),
    (lambda: S.MultiStepLR(0.1, [1.5]), "milestones"),
    (lambda: S.ExponentialLR(0.1, -1.0), "gamma"),
    (lambda: S.ExponentialLR(0.1, float("inf")), "gamma"),
    (lambda: S.LinearLR(0.1, start_factor=0.0), "start_factor"),
    (lambda: S.LinearLR(0.1, start_factor=1.5), "start_factor"),
    (lambda: S.LinearLR(0.1, end_factor=-0.1), "end_factor"),
    (lambda: S.LinearLR(0.1, total_iters=0), "total_iters"),
    (lambda: S.CosineAnnealingLR(0.1, 0), "T_max"),
    (lambda: S.CosineAnnealingLR(0.1, 10, -1.0), "eta_min"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 0), "T_0"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 5, 0), "T_mult"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 5, 1.5), "T_mult"),
    (lambda: S.PolynomialLR(0.1, 0), "total_iters"),
    (lambda: S.PolynomialLR(0.1, 5, -1.0), "power"),
    (lambda: S.CyclicLR(0.1, 1.0, 0), "step_size_up"),
    (lambda: S.CyclicLR(0.1, 1.0, 5, -1), "step_size_down"),
    (lambda: S.CyclicLR(0.1, 1.0, mode="sine"), "mode"),
    (lambda: S.CyclicLR(0.1, 1.0, scale_fn=3), "scale_fn"),
    (lambda: S.CyclicLR(0.1, 1.0, scale_fn=abs, scale_mode="epoch"), "scale_mode"),
    (lambda: S.CyclicLR(0.1, -1.0), "max_lr"),
    (lambda: S.OneCycleLR(0.1), "total_steps"),
    (lambda: S.OneCycleLR(0.1, epochs=3), "total_steps"),
    (lambda: S.OneCycleLR(0.1, 0), "total_steps"),
    (lambda: S.OneCycleLR(0.1, epochs=0, steps_per_epoch=3), "epochs"),
    (lambda: S.OneCycleLR(0.1, epochs=2, steps_per_epoch=0), "steps_per_epoch"),
    (lambda: S.OneCycleLR(0.1, 10, pct_start=1.5), "pct_start"),
    (lambda: S.OneCycleLR(0.1, 10, pct_start=0.1), "first phase"),
    (lambda: S.OneCycleLR(0.1, 10, pct_start=1.0), "last phase"),
    (lambda: S.OneCycleLR(0.1, 10, anneal_strategy="exp"), "anneal_strategy"),
    (lambda: S.OneCycleLR(0.1, 10, div_factor=0.0), "div_factor"),
    (lambda: S.OneCycleLR(0.1, 10, final_div_factor=-1.0), "final_div_factor"),
    (lambda: S.OneCycleLR(0.1, 10, three_phase=1), "three_phase"),
    (lambda: S.SequentialLR([], []), "at least one"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 1), lambda t: 0.1], [3]), "Schedule"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 1), S.ReduceLROnPlateau(0.1)], [3]), "metric"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 1), S.StepLR(0.1, 1)], []), "one milestone fewer"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 1)] * 3, [5, 5]), "strictly increasing"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 1)] * 2, [-1]), "milestones"),
    (lambda: S.InverseTimeDecay(0.1, -0.5), "decay_rate"),
    (lambda: S.InverseTimeDecay(0.1, 0.5, 0), "decay_steps"),
    (lambda: S.InverseTimeDecay(0.1, 0.5, staircase="yes"), "staircase"),
    (lambda: S.WarmupCosine(0.1, 10, 10), "must exceed"),
    (lambda: S.WarmupCosine(0.1, -1, 10), "warmup_steps"),
    (lambda: S.WarmupCosine(0.1, 1, 10, eta_min=-0.1), "eta_min"),
    (lambda: S.ReduceLROnPlateau(0.1, mode="avg"), "mode"),
    (lambda: S.ReduceLROnPlateau(0.1, factor=1.0), "factor"),
    (lambda: S.ReduceLROnPlateau(0.1, patience=-1), "patience"),
    (lambda: S.ReduceLROnPlateau(0.1, threshold=-1e-4), "threshold"),
    (lambda: S.ReduceLROnPlateau(0.1, threshold_mode="pct"), "threshold_mode"),
    (lambda: S.ReduceLROnPlateau(0.1, cooldown=0.5), "cooldown"),
    (lambda: S.ReduceLROnPlateau(0.1, min_lr=-1.0), "min_lr"),
    (lambda: S.ReduceLROnPlateau(0.1, eps=float("nan")), "eps"),
]


@pytest.mark.parametrize(("make", "match"), BAD, ids=[f"{i}-{m}" for i, (_, m) in enumerate(BAD)])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
