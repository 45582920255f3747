"""bfloat16 / float16 parameters and gradients in the optimizer classes, with
Kahan compensation and stochastic rounding.

Accuracy against the float64 NumPy reference (``tests/reference.py``) over
100 steps, with the tolerance derived from the storage precision as in
``test_state_dtype.py``: a second reference, the same float64 arithmetic
with the parameters and every state array rounded to the 16-bit dtype (by
ml_dtypes / NumPy) after each step, says what the storage costs; fastgd's
16-bit run (float32 arithmetic, its own rounding) must be no further from the
exact run than 1.5 times that. Then: plain 16-bit parameters stalling where
Kahan compensation and stochastic rounding do not, stochastic rounding
unbiased and reproducible, bit-identical resume, refusals, and softmax
regression on scikit-learn's digits within 1% of the float32 loss.
"""

from __future__ import annotations

import inspect

import ml_dtypes
import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS
from storage_reference import (
    assert_copies_resume_bit_identically,
    assert_same_bits,
    assert_within_storage_cost,
    emulated_runs,
    rounded,
)

import fastgd
from fastgd import problems

STEPS = 100
N = 2000
DTYPES = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}
ULP_AT_1 = {"bfloat16": 2.0**-7, "float16": 2.0**-10}  # the spacing just above 1
RULES = sorted(fastgd.OPTIMIZERS)


def config(rule):
    """The rule's every-state configuration, with steps large enough to move
    16-bit parameters (an lr far below half an ulp only tests the stall)."""
    hp = dict(EXTRA_STATE_CONFIGS.get(rule, {}))
    hp["lr"] = {"adadelta": 1.0, "lion": 1e-2, "sgd": 0.05, "momentum": 0.05}.get(rule, 0.02)
    return hp


def run(
    rule, hp, kind, state_dtype=None, steps=STEPS, n=N, backend="serial", data_seed=0, **storage
):
    """fastgd's 16-bit run, on 16-bit gradients, and the float64 reference runs
    (exact, and with the parameters and state rounded to their storage)."""
    dtype = DTYPES[kind]
    rng = np.random.default_rng(data_seed)
    p0 = rounded(rng.standard_normal(n), dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(steps)]
    p = p0.astype(dtype)
    opt = fastgd.OPTIMIZERS[rule](p, backend=backend, state_dtype=state_dtype, **hp, **storage)
    for g in grads:
        opt.step(g)
    state_store = opt.state_dtype
    return opt, p, emulated_runs(rule, hp, p0, grads, dtype, state_store)


@pytest.mark.parametrize("kind", sorted(DTYPES))
@pytest.mark.parametrize("rule", RULES)
def test_16_bit_params_cost_what_their_storage_implies(rule, kind):
    opt, p, runs = run(rule, config(rule), kind)
    assert p.dtype == DTYPES[kind] and opt.state_dtype == DTYPES[kind]
    assert all(a.dtype == DTYPES[kind] for a in opt.state.values())
    assert_within_storage_cost(opt, p, runs, np.linalg.norm(runs[0]))


@pytest.mark.parametrize("rule", ["adam", "sgd", "lion"])
def test_16_bit_params_with_float32_state(rule):
    opt, p, runs = run(rule, config(rule), "bfloat16", state_dtype="float32")
    assert all(a.dtype == np.float32 for a in opt.state.values())
    assert_within_storage_cost(opt, p, runs, np.linalg.norm(runs[0]))


# -- past the half-ulp stall ------------------------------------------------------------


def sgd_from_one(kind, steps, lr, n=512, **storage):
    """SGD from p = 1 with gradient 1 and ``lr`` far below half an ulp at 1:
    the float64 answer is ``1 - steps * lr``."""
    p = np.ones(n, DTYPES[kind])
    g = np.ones(n, DTYPES[kind])
    opt = fastgd.SGD(p, lr=lr, **storage)
    for _ in range(steps):
        opt.step(g)
    return p.astype(np.float64), opt


@pytest.mark.parametrize("kind", sorted(DTYPES))
@pytest.mark.parametrize("steps, fraction", [(2000, 1 / 39), (10_000, 1 / 390)])
def test_plain_16_bit_stalls_and_kahan_and_stochastic_rounding_do_not(kind, steps, fraction):
    ulp = ULP_AT_1[kind] / 2  # the spacing just below 1, where p walks
    lr = fraction * ulp
    exact = 1.0 - steps * lr
    plain, _ = sgd_from_one(kind, steps, lr)
    assert np.all(plain == 1.0)  # every update below half an ulp: lost
    kahan, opt = sgd_from_one(kind, steps, lr, kahan=True)
    assert opt.state["kahan_comp"].dtype == DTYPES[kind]
    # the compensation is 16-bit too (as in optimi): it drifts by a few ulps at most
    assert np.all(np.abs(kahan - exact) <= 3 * ulp), np.abs(kahan - exact).max() / ulp
    sr, _ = sgd_from_one(kind, steps, lr, stochastic_rounding=True, seed=11)
    assert np.all(sr < 1.0)  # no element stalled
    # unbiased: the mean of 512 independent walks is near the exact answer
    assert abs(sr.mean() - exact) < 0.5 * ulp


@pytest.mark.parametrize("kind", sorted(DTYPES))
def test_stochastic_rounding_is_unbiased_and_reproducible(kind):
    """100,000 roundings of one float32 value (torchao's test): the mean within
    3e-5 relative; the same seed the same bits, another seed other bits."""
    dtype = DTYPES[kind]
    n = 100_000
    g = np.full(n, -0.00123, dtype)  # p = 1 - 1 * g, between two 16-bit values
    target = np.float32(1) - np.float32(1) * g[0].astype(np.float32)
    outs = []
    for seed in (5, 5, 6):
        p = np.ones(n, dtype)
        fastgd.SGD(p, lr=1.0, stochastic_rounding=True, seed=seed).step(g)
        outs.append(p)
    values = outs[0].astype(np.float64)
    low, high = np.unique(values)  # the two 16-bit neighbours of the target, nothing else
    assert low < float(target) < high
    assert abs(values.mean() - float(target)) <= 3e-5 * float(target)
    np.testing.assert_array_equal(outs[0].view(np.uint16), outs[1].view(np.uint16))
    assert not np.array_equal(outs[0].view(np.uint16), outs[2].view(np.uint16))


@pytest.mark.parametrize("storage", [{}, {"kahan": True}, {"stochastic_rounding": True}])
def test_serial_and_parallel_agree_and_copies_resume_bit_identically(storage):
    hp = config("adamw")
    a, pa, _ = run("adamw", hp, "bfloat16", steps=4, n=300_001, backend="serial", **storage)
    seed = {"seed": a.seed} if a.stochastic_rounding else {}
    b, pb, _ = run("adamw", hp, "bfloat16", steps=4, n=300_001, backend="parallel",
                    **storage, **seed)  # fmt: skip
    assert_same_bits(a, b)
    assert set(a.state) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"} | (
        {"kahan_comp"} if storage.get("kahan") else set()
    )
    # state_dict into a new optimizer (another seed: the checkpoint's wins), deepcopy, pickle
    other = {"seed": a.seed + 1} if a.stochastic_rounding else {}
    sd = a.state_dict()
    assert sd["dtype"] == "bfloat16" and sd["storage"]["seed"] == a.seed
    g = np.random.default_rng(9).standard_normal(pa.size).astype(ml_dtypes.bfloat16)
    resumed = fastgd.AdamW(pa.copy(), **hp, **{**storage, **other})
    assert_copies_resume_bit_identically(a, resumed, g)
    assert resumed.seed == a.seed


def test_refusals_name_the_argument_and_change_nothing():
    bf = DTYPES["bfloat16"]
    p = np.ones(8, bf)
    with pytest.raises(ValueError, match="kahan=True rounds 16-bit parameters"):
        fastgd.Adam(np.ones(8, np.float32), kahan=True)
    with pytest.raises(ValueError, match="stochastic_rounding=True rounds 16-bit"):
        fastgd.Adam(np.ones(8), stochastic_rounding=True)
    with pytest.raises(ValueError, match="choose one"):
        fastgd.Adam(p, kahan=True, stochastic_rounding=True)
    with pytest.raises(ValueError, match="seed applies to stochastic_rounding"):
        fastgd.Adam(p, seed=1)
    with pytest.raises(ValueError, match="seed"):
        fastgd.Adam(p, stochastic_rounding=True, seed=-1)
    with pytest.raises(ValueError, match="kahan must be True or False"):
        fastgd.Adam(p, kahan=1)
    with pytest.raises(ValueError, match="state_dtype=float64 with bfloat16"):
        fastgd.Adam(p, state_dtype="float64")
    with pytest.raises(TypeError, match=r"float32 or float64 \(or bfloat16, float16\)"):
        fastgd.Adam(np.ones(8, np.int16))
    opt = fastgd.Adam(p, kahan=True)
    for name in ("kahan", "stochastic_rounding", "seed"):
        with pytest.raises(AttributeError, match=f"no settable attribute '{name}'"):
            setattr(opt, name, True)
    with pytest.raises(TypeError, match="grad dtype float32 differs from params dtype bfloat16"):
        opt.step(np.ones(8, np.float32))
    with pytest.raises(TypeError, match="grad dtype float16 differs from params dtype bfloat16"):
        opt.step(np.ones(8, np.float16))
    assert opt.steps == 0 and np.all(p == 1)
    # checkpoints: another storage is refused, and nothing changes
    opt.step(np.ones(8, bf))
    sd = opt.state_dict()
    plain = fastgd.Adam(np.ones(8, bf))
    with pytest.raises(ValueError, match="saved with kahan=True"):
        plain.load_state_dict(sd)
    with pytest.raises(ValueError, match="unknown state 'kahan_comp'"):
        plain.load_state_dict({**sd, "storage": plain.state_dict()["storage"]})
    lacking = {**sd, "state": {k: v for k, v in sd["state"].items() if k != "kahan_comp"}}
    with pytest.raises(ValueError, match="lacks \\['kahan_comp'\\]"):
        fastgd.Adam(np.ones(8, bf), kahan=True).load_state_dict(lacking)
    f32_state = fastgd.Adam(np.ones(8, bf), state_dtype="float32", kahan=True)
    with pytest.raises(TypeError, match="saved with state_dtype=bfloat16"):
        f32_state.load_state_dict(sd)
    assert plain.steps == 0 and not plain.state
    # fastgd.functional takes float32/float64 arrays and no storage options
    with pytest.raises(TypeError, match="takes float32 or float64 params"):
        fastgd.functional.sgd(np.ones(8, bf), np.ones(8, bf), step=1, lr=0.1)
    with pytest.raises(TypeError, match="takes no kahan"):
        fastgd.functional.sgd(np.ones(8), np.ones(8), step=1, kahan=True)
    assert "kahan" not in inspect.signature(fastgd.functional.adam).parameters
    # minimize runs float32/float64: the rounding options are not its options
    quadratic = problems.PROBLEMS["quadratic"]()
    for option, hint in (("kahan", "16-bit parameters"), ("seed", "mini-batch order")):
        with pytest.raises(ValueError, match=f"Unknown options \\['{option}'\\].*{hint}"):
            fastgd.minimize(quadratic.fun_and_grad, quadratic.x0, jac=True, method="adam",
                            options={option: 1})  # fmt: skip


def test_repr_and_traffic_show_the_storage():
    opt = fastgd.AdamW(np.ones(4, DTYPES["float16"]), stochastic_rounding=True, seed=3)
    assert "float16" in repr(opt) and "stochastic_rounding=True, seed=3" in repr(opt)
    assert fastgd.backends.traffic_bytes(2, 2, 2, kahan=True) == 5 * 2 + 2 * 2 * 2


# -- a real problem: softmax regression on scikit-learn's digits -----------------------


def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x = np.hstack([x / 16.0, np.ones((len(x), 1))]).astype(np.float32)  # a bias column
    return x, np.eye(10, dtype=np.float32)[y]


def softmax_loss_and_grad(w, x, onehot):
    """Mean cross-entropy of softmax(x w) and its gradient, in float32."""
    z = x @ w
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    prob = e / e.sum(axis=1, keepdims=True)
    loss = float(-(onehot * np.log(prob + 1e-30)).sum(axis=1).mean())
    return loss, x.T @ (prob - onehot) / len(x)


def train_digits(dtype, steps=300, lr=0.01, **storage):
    """Full-batch Adam from ``W = 0``; the final float32 loss."""
    x, onehot = digits()
    w = np.zeros((x.shape[1], 10), dtype)
    opt = fastgd.Adam(w, lr=lr, **storage)
    for _ in range(steps):
        _, grad = softmax_loss_and_grad(w.astype(np.float32), x, onehot)
        opt.step(grad.astype(dtype))
    return softmax_loss_and_grad(w.astype(np.float32), x, onehot)[0]


#: 16-bit configurations that train as float32 does (within 1% of its loss).
GOOD = {
    "bf16-kahan": ("bfloat16", {"kahan": True}),
    "bf16-stochastic": ("bfloat16", {"stochastic_rounding": True, "seed": 0}),
    "f16-f32state": ("float16", {"state_dtype": "float32"}),
    "f16-f32state-stochastic": ("float16", {"state_dtype": "float32",
                                            "stochastic_rounding": True, "seed": 0}),
    "f16-bf16state-kahan": ("float16", {"state_dtype": "bfloat16", "kahan": True}),
}  # fmt: skip


@pytest.fixture(scope="module")
def float32_digits_loss():
    return train_digits(np.float32)


@pytest.mark.parametrize("kind, storage", list(GOOD.values()), ids=list(GOOD))
def test_softmax_regression_on_digits_reaches_the_float32_loss(kind, storage, float32_digits_loss):
    assert float32_digits_loss < 0.2  # it learned: log(10) = 2.3 at the start
    loss = train_digits(DTYPES[kind], **storage)
    assert loss <= 1.01 * float32_digits_loss, (loss, float32_digits_loss)


def test_digits_show_why_the_options_exist(float32_digits_loss):
    """Plain bfloat16 parameters lose the late, small Adam steps (the loss
    stays 10% or more above float32's, where Kahan reaches it); float16
    state loses Adam's second moment (``(1 - beta2) g**2`` underflows below
    float16's smallest subnormal, 6e-8), whatever the parameters' rounding."""
    plain = train_digits(DTYPES["bfloat16"])
    assert plain > 1.1 * float32_digits_loss
    for storage in ({}, {"kahan": True}):
        assert train_digits(DTYPES["float16"], **storage) > 1.5 * float32_digits_loss


@pytest.mark.parametrize("name", ["quadratic", "logistic"])
def test_compare_problems_reach_the_float32_loss_with_bfloat16_params(name):
    p = problems.PROBLEMS[name]()
    losses = {}
    for dtype in (np.float32, DTYPES["bfloat16"]):
        x = p.x0.astype(dtype)
        opt = fastgd.Adam(x, lr=0.05, **({"kahan": True} if dtype != np.float32 else {}))
        for _ in range(300):
            _, grad = p.fun_and_grad(x.astype(np.float64))
            opt.step(grad.astype(dtype))
        losses[np.dtype(dtype).name] = p.f(x.astype(np.float64)) - p.f_star
    assert losses["bfloat16"] <= 1.01 * losses["float32"] + 1e-3 * abs(p.f_star) + 1e-6, losses


def test_cuda_array_interface_bfloat16_is_read_as_its_bits(monkeypatch):
    """torch exports bfloat16 CUDA tensors with the untyped typestr ``"<V2"``:
    fastgd hands numba the same memory as ``"<u2"`` (owned by the tensor)
    and views it as bfloat16; without 16-bit storage it is refused."""
    pytest.importorskip("numba.cuda")
    from fastgd import cuda as fastgd_cuda

    class Numba:  # what numba.cuda.as_cuda_array returns, reduced to what is used
        def __init__(self, obj):
            self.obj, self.dtype = obj, np.dtype(obj.__cuda_array_interface__["typestr"])

        def view(self, dtype):
            self.dtype = np.dtype(dtype)
            return self

    monkeypatch.setattr(fastgd_cuda.cuda, "as_cuda_array", Numba)

    class TorchBf16:
        __cuda_array_interface__ = {
            "typestr": "<V2", "shape": (2, 3), "strides": None, "data": (4096, False),
            "version": 3,
        }  # fmt: skip

    x = TorchBf16()
    arr = fastgd_cuda.device_array(x, low=True)
    assert arr.dtype == DTYPES["bfloat16"] and arr.obj.owner is x
    cai = arr.obj.__cuda_array_interface__
    assert cai == {**TorchBf16.__cuda_array_interface__, "typestr": "<u2"}
    with pytest.raises(TypeError, match="must be float32 or float64"):
        fastgd_cuda.device_array(x)
