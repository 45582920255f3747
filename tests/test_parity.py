"""Numerical parity of every rule and option.

* fastgd against the float64 NumPy reference (``tests/reference.py``), for
  every case of ``tests/cases.py`` x dtype x CPU backend x gradient kind;
* fastgd (and the reference) against torch.optim's for-loop implementation;
* NaN and inf gradients: the same non-finite elements as the reference and torch;
* the serial and parallel loops bit for bit;
* the functional API against the optimizer classes bit for bit.

Cases come from the registry in ``tests/cases.py``: a new rule needs cases
there and a formula in ``tests/reference.py``, no new test code.

Tolerances, relative to the float64 reference: ``rtol`` per element plus an
``atol`` of ``atol_scale * max|expected|`` per array, because momentum sums,
parameters and first moments cross zero and lose their relative accuracy
there while staying accurate at the scale of the array.

* float64 ``rtol=1e-10, atol_scale=1e-12``: the implementations differ only in
  rounding order (``m + (1 - b1) * (g - m)`` vs ``b1 * m + (1 - b1) * g``,
  host-folded scalars), a few ulp per step.
* float32 ``rtol=1e-4, atol_scale=1e-5``: 30 steps of float32 rounding
  (~6e-8 each, amplified a little by divisions by ``sqrt(v) + eps``) stay well
  below that (the worst case measured used 5% of it); a wrong formula, a
  missing bias correction or a misplaced eps is off by far more.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
from cases import (
    ALL_CASES,
    CASES,
    TORCH_CLASSES,
    all_case_params,
    case_id,
    torch_class,
    torch_kwargs,
)
from reference import COMMON, DEFAULTS, Reference

import fastgd
from fastgd import functional

SHAPE = (20, 50)
#: Prime, so the parallel loop's chunks are uneven; large enough for every thread.
PARALLEL_SIZE = 100_003
#: Enough for every branch: RAdam rectifies from step 6 with its default betas.
PARALLEL_STEPS = 10
STEPS = 30
SEED = 20240611
TOLERANCES = {  # dtype -> (rtol, atol as a fraction of max |expected|)
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-10, 1e-12),
}
GRADIENT_KINDS = ("random", "zeros", "large")

TORCH_CASES = [p for p in all_case_params() if torch_kwargs(*p.values) is not None]


def initial_params(shape) -> np.ndarray:
    return np.random.default_rng(SEED).standard_normal(shape)


@functools.cache
def gradients(kind: str, shape, dtype=np.float64, steps: int = STEPS) -> tuple[np.ndarray, ...]:
    """``steps`` gradients, a new one each step: generated in float64, then cast
    to ``dtype``. Read-only, as fastgd only reads them; cached across tests.

    ``"large"`` is standard normal times 1e8: its square, 1e16, is far from
    float32's overflow at 3.4e38, but a loss of precision in ``g * g`` or a
    missing normalization shows.
    """
    rng = np.random.default_rng(SEED + 1)
    scale = {"random": 1.0, "large": 1e8}.get(kind)
    grads = tuple(
        np.zeros(shape, dtype)
        if kind == "zeros"
        else (rng.standard_normal(shape) * scale).astype(dtype)
        for _ in range(steps)
    )
    for g in grads:
        g.flags.writeable = False
    return grads


def assert_close(actual, expected, dtype, what: str) -> None:
    rtol, atol_scale = TOLERANCES[np.dtype(dtype)]
    expected = np.asarray(expected, dtype=np.float64)
    atol = atol_scale * float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol, err_msg=what
    )


def assert_identical(a: dict, b: dict, what: str) -> None:
    """Same keys, and bitwise equal arrays (NaN equal to NaN)."""
    assert a.keys() == b.keys(), what
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{what}: {name}", strict=True)


# -- the registry is complete --------------------------------------------------


def test_every_rule_has_cases():
    assert set(CASES) == set(fastgd.OPTIMIZERS)
    assert set(TORCH_CLASSES) == set(fastgd.OPTIMIZERS)
    for rule, cases in CASES.items():
        assert cases and cases[0] == {}, f"{rule}: the first case must be the defaults"


@pytest.mark.parametrize("rule", sorted(fastgd.OPTIMIZERS))
def test_reference_has_every_hyperparameter(rule):
    """The reference implements every option of the class, with the same defaults."""
    cls = fastgd.OPTIMIZERS[rule]
    assert set(DEFAULTS[rule]) | set(COMMON) == set(cls.hyperparameter_names())
    signature = inspect.signature(cls.__init__).parameters
    for name, default in {**DEFAULTS[rule], **COMMON}.items():
        if name in signature:
            assert signature[name].default == default, f"{rule}.{name}"


@pytest.mark.parametrize("rule", [r for r in sorted(CASES) if TORCH_CLASSES[r]])
def test_reference_defaults_are_torch(rule):
    """The reference's defaults (and so, above, fastgd's) are torch.optim's."""
    signature = inspect.signature(torch_class(rule).__init__).parameters
    for name, default in DEFAULTS[rule].items():
        if name in signature:
            assert signature[name].default == default, f"{rule}.{name}"


@pytest.mark.parametrize("rule", sorted(fastgd.OPTIMIZERS))
def test_cases_cover_every_option(rule):
    """Each constructor argument is set by at least one case (the storage
    choices have their own tests for every rule: test_state_dtype.py,
    test_low_precision.py)."""
    cls = fastgd.OPTIMIZERS[rule]
    skip = {"self", "params", "backend", "state_dtype", "kahan", "stochastic_rounding", "seed"}
    options = set(inspect.signature(cls.__init__).parameters) - skip
    used = {name for hp in CASES[rule] for name in hp}
    assert options <= used, f"{rule}: no case sets {sorted(options - used)}"


def test_case_ids_are_unique():
    ids = [f"{rule}-{case_id(hp)}" for rule, hp in ALL_CASES]
    assert len(ids) == len(set(ids))


# -- fastgd vs the NumPy reference ---------------------------------------------


@pytest.mark.parametrize("kind", GRADIENT_KINDS)
@pytest.mark.parametrize("backend", ["serial", "parallel"])
@pytest.mark.parametrize(("rule", "hp"), all_case_params())
def test_matches_reference(rule, hp, backend, kind, dtype):
    p_ref = initial_params(SHAPE)
    p = p_ref.astype(dtype)
    opt = fastgd.OPTIMIZERS[rule](p, backend=backend, **hp)
    ref = Reference(rule, SHAPE, **hp)
    for t, g in enumerate(gradients(kind, SHAPE, dtype), start=1):
        opt.step(g)
        ref.step(p_ref, g.astype(np.float64))
        if t in (1, STEPS):  # step 1 is special (SGD's buffer = g, RAdam unrectified)
            assert opt.state.keys() == ref.state.keys()
            assert_close(p, p_ref, dtype, f"params after step {t}")
            for name in ref.state:
                assert_close(opt.state[name], ref.state[name], dtype, f"{name} after step {t}")
    assert opt.steps == STEPS
    # the case's learning rate keeps the run finite and bounded
    assert np.isfinite(p_ref).all() and np.abs(p_ref - initial_params(SHAPE)).max() < 1e9


@pytest.mark.parametrize("rule", sorted(CASES))
def test_changing_lr_mid_run_matches_reference(rule):
    """Assigning ``opt.lr`` takes effect at the next step (a learning-rate schedule)."""
    p_ref = initial_params(SHAPE)
    p = p_ref.copy()
    opt = fastgd.OPTIMIZERS[rule](p, backend="serial")
    ref = Reference(rule, SHAPE)
    for t, g in enumerate(gradients("random", SHAPE), start=1):
        if t % 10 == 0:
            opt.lr = ref.hp["lr"] = ref.hp["lr"] * 0.5
        opt.step(g)
        ref.step(p_ref, g)
    assert_close(p, p_ref, np.float64, "params")
    for name in ref.state:
        assert_close(opt.state[name], ref.state[name], np.float64, name)


# -- fastgd and the reference vs torch.optim ------------------------------------


def run_torch(rule: str, hp: dict, p0: np.ndarray, grads) -> tuple[np.ndarray, dict]:
    """``STEPS`` steps of torch.optim's for-loop implementation: params and state."""
    import torch

    p = torch.from_numpy(p0.copy())
    opt = torch_class(rule)([p], **torch_kwargs(rule, hp))
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    state = {k: v.numpy() for k, v in opt.state[p].items() if k not in ("step", "mu_product")}
    return p.numpy(), state


@pytest.mark.parametrize(("rule", "hp"), TORCH_CASES)
def test_matches_torch(rule, hp, dtype, torch_default_dtype):
    grads = gradients("random", SHAPE, dtype)
    p = initial_params(SHAPE).astype(dtype)
    expected_p, expected_state = run_torch(rule, hp, p, grads)
    opt = fastgd.OPTIMIZERS[rule](p, backend="serial", **hp)
    for g in grads:
        opt.step(g)
    assert opt.state.keys() == expected_state.keys()
    assert_close(p, expected_p, dtype, "params")
    for name, value in expected_state.items():
        assert_close(opt.state[name], value, dtype, name)


@pytest.mark.parametrize("dtype", [np.dtype(np.float64)], ids=["float64"])
@pytest.mark.parametrize(("rule", "hp"), TORCH_CASES)
def test_reference_matches_torch(rule, hp, torch_default_dtype):
    """The float64 reference itself agrees with torch (no fastgd involved)."""
    grads = gradients("random", SHAPE)
    p = initial_params(SHAPE)
    expected_p, expected_state = run_torch(rule, hp, p, grads)
    ref = Reference(rule, SHAPE, **hp)
    for g in grads:
        ref.step(p, g)
    assert ref.state.keys() == expected_state.keys()
    assert_close(p, expected_p, np.float64, "params")
    for name, value in expected_state.items():
        assert_close(ref.state[name], value, np.float64, name)


# -- non-finite gradients propagate element-wise --------------------------------


def poisoned_gradients() -> list[np.ndarray]:
    """Random float64 gradients with NaN, +inf and -inf in 5 elements each at step 3."""
    grads = [g.copy() for g in gradients("random", SHAPE)]
    for k, value in enumerate((np.nan, np.inf, -np.inf)):
        grads[2].flat[5 * k : 5 * k + 5] = value
    return grads


def assert_same_nonfinite(actual, expected, what: str, exact: bool) -> None:
    """Same non-finite elements (``exact``: the same NaN / +inf / -inf), close elsewhere."""
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), finite, err_msg=f"{what}: finite mask")
    if exact:
        np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg=what)
    assert_close(actual[finite], expected[finite], np.float64, what)


@pytest.mark.parametrize(("rule", "hp"), all_case_params())
def test_nonfinite_gradient_matches_reference(rule, hp):
    """Non-finite gradients propagate element-wise, as the reference's formulas
    make them (``fastgd.Optimizer`` Notes): same non-finite elements in the
    params and every state array, every other element as a finite gradient leaves it."""
    p_ref = initial_params(SHAPE)
    p = p_ref.copy()
    opt = fastgd.OPTIMIZERS[rule](p, backend="serial", **hp)
    ref = Reference(rule, SHAPE, **hp)
    with np.errstate(invalid="ignore", over="ignore"):
        for g in poisoned_gradients():
            opt.step(g)
            ref.step(p_ref, g)
    # NaN poisons for good; inf may not (Lion's sign(inf) is finite); the rest is untouched
    assert np.isnan(p.flat[:5]).all() and np.isfinite(p.flat[15:]).all()
    # the reference's b1 * m + (1 - b1) * g keeps an inf where torch's lerp makes NaN
    assert_same_nonfinite(p, p_ref, "params", exact=False)
    for name in ref.state:
        assert_same_nonfinite(opt.state[name], ref.state[name], name, exact=False)


@pytest.mark.parametrize("dtype", [np.dtype(np.float64)], ids=["float64"])
@pytest.mark.parametrize(("rule", "hp"), TORCH_CASES)
def test_nonfinite_gradient_matches_torch(rule, hp, torch_default_dtype):
    """Exactly torch's NaN and inf pattern (NaN where torch has NaN, inf where inf)."""
    grads = poisoned_gradients()
    p = initial_params(SHAPE)
    expected_p, expected_state = run_torch(rule, hp, p, grads)
    opt = fastgd.OPTIMIZERS[rule](p, backend="serial", **hp)
    for g in grads:
        opt.step(g)
    assert_same_nonfinite(p, expected_p, "params", exact=True)
    for name, value in expected_state.items():
        assert_same_nonfinite(opt.state[name], value, name, exact=True)


# -- serial and parallel loops agree bit for bit -------------------------------


@pytest.mark.parametrize(("rule", "hp"), all_case_params())
def test_serial_equals_parallel(rule, hp, dtype):
    p0 = initial_params(PARALLEL_SIZE).astype(dtype)
    results = {}
    for backend in ("serial", "parallel"):
        p = p0.copy()
        opt = fastgd.OPTIMIZERS[rule](p, backend=backend, **hp)
        for g in gradients("random", PARALLEL_SIZE, dtype, PARALLEL_STEPS):
            opt.step(g)
        results[backend] = {"params": p, **opt.state}
    assert_identical(results["serial"], results["parallel"], f"{rule} serial vs parallel")


# -- functional API vs the optimizer classes -----------------------------------


@pytest.mark.parametrize(("rule", "hp"), all_case_params())
def test_functional_equals_class(rule, hp, dtype):
    p_class = initial_params(SHAPE).astype(dtype)
    p_func = p_class.copy()
    opt = fastgd.OPTIMIZERS[rule](p_class, **hp)
    states = {k: v.astype(dtype) for k, v in Reference(rule, SHAPE, **hp).state.items()}
    update = getattr(functional, rule)
    host = None
    for t, g in enumerate(gradients("random", SHAPE, dtype), start=1):
        opt.step(g)
        host = update(p_func, g, step=t, host=host, **states, **hp)
        assert isinstance(host, dict)
        assert_identical(
            {"params": p_func, **states}, {"params": p_class, **opt.state}, f"step {t}"
        )
