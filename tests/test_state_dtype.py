"""``state_dtype``: float32 parameters with bfloat16 / float16 optimizer state.

Accuracy against the float64 NumPy reference (``tests/reference.py``) over
100 steps. The tolerance is derived from the storage precision by a second,
independent reference: the same float64 reference with its state arrays
rounded to the 16-bit dtype (by ml_dtypes / NumPy) after every step. Its
distance from the exact float64 run is what storing the state in 16 bits
costs; fastgd's 16-bit run (float32 arithmetic, state rounded to nearest by
its own kernels) must be no further from the float64 run than 1.5 times
that, plus float32 rounding. So the error is what the storage implies and
does not accumulate beyond it. Also: the state's own error, bit-identical
resume and copies, refusals, and ``minimize`` converging to within 1% of the
float32 loss.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS
from storage_reference import (
    assert_copies_resume_bit_identically,
    assert_same_bits,
    assert_within_storage_cost,
    emulated_runs,
)

import fastgd
from fastgd import problems

STEPS = 100
N = 2000
UNIT = {"bfloat16": 2.0**-9, "float16": 2.0**-12}  # unit roundoff, to nearest
DTYPES = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}
RULES = sorted(fastgd.OPTIMIZERS)


def config(rule):
    hp = dict(EXTRA_STATE_CONFIGS.get(rule, {}))
    if rule == "adadelta":
        hp["lr"] = 0.5
    return hp


def run(rule, hp, state_dtype, seed=0, steps=STEPS, n=N, backend="serial"):
    """fastgd's run and the float64 reference runs (exact, and with the state
    rounded to ``state_dtype`` after every step)."""
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(n)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(steps)]
    p = p0.astype(np.float32)
    opt = fastgd.OPTIMIZERS[rule](p, backend=backend, state_dtype=state_dtype, **hp)
    for g in grads:
        opt.step(g)
    store = DTYPES.get(state_dtype, np.float64)
    return opt, p, emulated_runs(rule, hp, p0, grads, np.float64, store)


@pytest.mark.parametrize("kind", sorted(UNIT))
@pytest.mark.parametrize("rule", RULES)
def test_16_bit_state_costs_what_its_storage_implies(rule, kind):
    opt, p, runs = run(rule, config(rule), kind)
    assert opt.state_dtype == DTYPES[kind]
    assert all(a.dtype == DTYPES[kind] for a in opt.state.values())
    moved = np.linalg.norm(runs[0] - np.random.default_rng(0).standard_normal(N))
    storage_cost = assert_within_storage_cost(opt, p, runs, moved)
    # and it is small: a few units of the storage's roundoff per unit of movement
    # (float16's subnormals below 6e-5 cost more for the tiny second moments)
    assert storage_cost <= (0.5 if kind == "float16" else 0.1) * moved


@pytest.mark.parametrize("rule", ["adam", "rmsprop", "lion"])
def test_serial_and_parallel_agree_and_copies_resume_bit_identically(rule):
    hp = config(rule)
    a, pa, _ = run(rule, hp, "bfloat16", steps=5, n=300_001, backend="serial")
    b, pb, _ = run(rule, hp, "bfloat16", steps=5, n=300_001, backend="parallel")
    assert_same_bits(a, b)
    # state_dict into a new optimizer, deepcopy and pickle: the same next steps
    resumed = fastgd.OPTIMIZERS[rule](pa.copy(), state_dtype=ml_dtypes.bfloat16, **hp)
    g = np.random.default_rng(9).standard_normal(pa.size).astype(np.float32)
    assert_copies_resume_bit_identically(a, resumed, g)
    assert resumed.state_dtype == a.state_dtype


def test_refusals_name_the_argument_and_change_nothing():
    p32 = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="float64 parameters"):
        fastgd.Adam(np.ones(4), state_dtype="bfloat16")
    with pytest.raises(ValueError, match="float32 with float64"):
        fastgd.Adam(np.ones(4), state_dtype="float32")
    for bad in ("bf16", "int8", True, 3, np.int32):
        with pytest.raises(TypeError, match="state_dtype"):
            fastgd.Adam(p32, state_dtype=bad)
    opt = fastgd.Adam(p32, state_dtype="float16")
    with pytest.raises(AttributeError, match="no settable attribute 'state_dtype'"):
        opt.state_dtype = "bfloat16"
    assert fastgd.Adam(p32, state_dtype=np.float32).state_dtype == np.float32  # the same dtype
    # a checkpoint of another state dtype: refused, nothing changes
    other = fastgd.Adam(p32.copy())
    other.step(np.ones(4, np.float32))
    opt.step(np.ones(4, np.float32))
    before = {k: v.copy() for k, v in opt.state.items()}
    with pytest.raises(TypeError, match="state_dtype"):
        opt.load_state_dict(other.state_dict())
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(TypeError, match="no state_dtype"):
        fastgd.functional.adam(p32, p32, step=1, state_dtype="bfloat16")
    assert "state_dtype=float16" in repr(opt)


@pytest.mark.parametrize("kind", sorted(UNIT))
@pytest.mark.parametrize("name", ["quadratic", "logistic"])
def test_minimize_with_16_bit_state_reaches_the_float32_loss(name, kind):
    p = problems.PROBLEMS[name]()
    losses = {}
    for state_dtype in (None, kind):
        options = dict(lr=0.05, maxiter=300, gtol=0.0)
        if state_dtype:
            options["state_dtype"] = state_dtype
        res = fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method="adam", dtype=np.float32,
                              options=options)  # fmt: skip
        losses[state_dtype] = res.fun - p.f_star
    assert losses[kind] <= 1.01 * losses[None] + 1e-3 * abs(p.f_star) + 1e-6


def test_adapters_do_not_offer_state_dtype_yet():
    import inspect

    torch = pytest.importorskip("torch")
    import fastgd.dask
    import fastgd.torch

    for cls in (fastgd.torch.Adam, fastgd.dask.Adam):
        assert "state_dtype" not in inspect.signature(cls).parameters
    with pytest.raises(TypeError, match="state_dtype"):
        fastgd.torch.Adam([torch.nn.Parameter(torch.ones(3))], state_dtype="bfloat16")
