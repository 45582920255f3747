"""``fastgd.torch`` with bfloat16 and float16 parameters.

The tensors live in one flat 16-bit buffer per group and dtype, stepped by
fastgd's 16-bit loops (float32 arithmetic, one rounding per stored value), so
a model stepped through ``fastgd.torch`` must be bit-for-bit the NumPy
optimizer stepped on the same bits. Against torch.optim: torch's ``fused=True``
CPU Adam/AdamW also compute in float32 and store once, and agree bitwise on
generic data; torch's default (for-loop) implementation rounds every
intermediate to 16 bits and is further from a float64 run.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastgd  # noqa: E402
import fastgd.torch as ft  # noqa: E402

LOW = [torch.bfloat16, torch.float16]
NP_DTYPE = {torch.bfloat16: np.dtype(ml_dtypes.bfloat16), torch.float16: np.dtype(np.float16)}
#: One case per rule, with the options that change the math.
CASES = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "momentum": {"lr": 0.05},
    "adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01},
    "rmsprop": {"lr": 1e-3, "centered": True, "momentum": 0.5},
    "adadelta": {"weight_decay": 0.1, "rho": 0.5},
    "adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
    "adamw": {"lr": 0.01, "weight_decay": 0.1},
    "adamax": {"lr": 0.01},
    "nadam": {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1},
    "radam": {"lr": 0.01},
    "lion": {"lr": 1e-3, "weight_decay": 0.1},
}
assert set(CASES) == set(fastgd.OPTIMIZERS)
OPTIONS = {
    "nearest": {},
    "kahan": {"kahan": True},
    "stochastic": {"stochastic_rounding": True, "seed": 12345},
}


class Net(torch.nn.Module):
    """Several tensors of different sizes (and an odd-sized bare parameter)."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(6, 17)
        self.b = torch.nn.Linear(17, 3)
        self.s = torch.nn.Parameter(torch.randn(5))
        self.to(dtype)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))) * self.s[:3]


def loss_of(model, step, dtype):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(9, 6, generator=g).to(dtype)
    return model(x).float().pow(2).mean() + model.s.float().pow(2).sum()


def bits(t: torch.Tensor) -> np.ndarray:
    """A tensor's bits as a flat uint16 array (bfloat16 cannot ``.numpy()``)."""
    return t.detach().reshape(-1).view(torch.int16).numpy().view(np.uint16)


def as_np(t: torch.Tensor) -> np.ndarray:
    """A 16-bit tensor as a flat NumPy array of its dtype (a copy)."""
    return bits(t).copy().view(NP_DTYPE[t.dtype])


def flat_bits(tensors) -> np.ndarray:
    return np.concatenate([bits(t) for t in tensors])


# -- (a) the same bits as the NumPy optimizer --------------------------------------


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("key", list(CASES))
def test_bit_identical_to_numpy_core(key, dtype, option):
    kw = {**CASES[key], **OPTIONS[option]}
    model = Net(dtype)
    flat = np.concatenate([as_np(p) for p in model.parameters()])
    core = fastgd.OPTIMIZERS[key](flat, **kw)
    opt = getattr(ft, type(core).__name__)(model.parameters(), **kw)
    for step in range(4):
        opt.zero_grad()
        loss_of(model, step, dtype).backward()
        core.step(np.concatenate([as_np(p.grad) for p in model.parameters()]))
        opt.step()
        np.testing.assert_array_equal(flat_bits(model.parameters()), flat.view(np.uint16))
    for name, arr in core.state.items():  # every state tensor, kahan_comp included
        got = flat_bits(opt.state[p][name] for p in model.parameters())
        np.testing.assert_array_equal(got, arr.reshape(-1).view(np.uint16), err_msg=name)
    for p in model.parameters():
        assert {v.dtype for v in opt.state[p].values() if v.dim()} <= {dtype}
    if option == "kahan":
        assert "kahan_comp" in opt.state[model.a.weight]
        assert np.any(flat_bits(opt.state[p]["kahan_comp"] for p in model.parameters()))


def test_zero_copy_and_state_in_parameters_dtype():
    model = Net(torch.bfloat16)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    loss_of(model, 0, torch.bfloat16).backward()
    opt.step()
    (buf,) = opt._buffers[0]
    assert buf.flat.dtype == torch.bfloat16
    assert model.a.weight.untyped_storage().data_ptr() == buf.flat.untyped_storage().data_ptr()
    assert np.shares_memory(buf.opt.params, bits(buf.flat))
    state = opt.state[model.b.bias]
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16
    assert state["step"].dtype == torch.float32  # as torch.optim


def test_mixed_dtypes_in_one_group():
    """bfloat16, float16 and float32 tensors in one group: one buffer each,
    every tensor stepped as in a group of its dtype alone."""

    def models():
        m = Net()
        m.a.to(torch.bfloat16)
        m.b.to(torch.float16)
        return m

    mixed = models()
    opt = ft.AdamW(mixed.parameters(), lr=1e-2, weight_decay=0.1)
    assert sorted(str(b.flat.dtype) for b in opt._buffers[0]) == [
        "torch.bfloat16",
        "torch.float16",
        "torch.float32",
    ]
    apart = models()
    groups = [list(apart.a.parameters()), list(apart.b.parameters()), [apart.s]]
    opt2 = ft.AdamW([{"params": g} for g in groups], lr=1e-2, weight_decay=0.1)

    def loss(m, step):
        g = torch.Generator().manual_seed(step)
        h = torch.tanh(m.a(torch.randn(4, 6, generator=g).bfloat16()))
        return (m.b(h.half()).float() * m.s[:3]).pow(2).mean()

    for step in range(3):
        for m, o in ((mixed, opt), (apart, opt2)):
            o.zero_grad()
            loss(m, step).backward()
            o.step()
    for p, q in zip(mixed.parameters(), apart.parameters(), strict=True):
        assert p.dtype == q.dtype
        assert torch.equal(p, q)


# -- (b) against torch.optim ------------------------------------------------------


def _run_on_random(dtype, make, steps=5, n=4097, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n, generator=g).to(dtype))
    grads = [torch.randn(n, generator=g).to(dtype) for _ in range(steps)]
    opt = make([p])
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    return p.detach()


ADAM_CASES = [
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 1e-4}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3}),
    ("AdamW", {"lr": 1e-5, "eps": 1e-3, "amsgrad": True}),
]


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name, kw", ADAM_CASES)
def test_bitwise_equal_to_torch_fused_adam(name, kw, dtype):
    """torch's fused CPU Adam/AdamW compute 16-bit parameters in float32
    (opmath) and store each value once, rounded to nearest even: the same
    bits as fastgd on generic data."""
    for seed in range(2):
        ours = _run_on_random(dtype, lambda ps: getattr(ft, name)(ps, **kw), seed=seed)
        theirs = _run_on_random(
            dtype, lambda ps: getattr(torch.optim, name)(ps, fused=True, **kw), seed=seed
        )
        assert torch.equal(ours, theirs)


def _ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance in units in the last place between same-signed 16-bit values."""
    return (a.view(torch.int16).int() - b.view(torch.int16).int()).abs()


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_torch_fused_adam_on_a_model_within_one_ulp(dtype):
    """In training, each step from the same parameters, state and gradients
    gives fastgd's bits or, rarely (an update cancelling most of its parameter,
    where the float32 evaluation order shows), one ulp off."""
    model = Net(dtype)
    twin = copy.deepcopy(model)
    ours = ft.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    theirs = torch.optim.AdamW(twin.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    differing = total = 0
    for step in range(30):
        ours.zero_grad()
        loss_of(model, step, dtype).backward()
        with torch.no_grad():
            for p, q in zip(model.parameters(), twin.parameters(), strict=True):
                q.copy_(p)
                q.grad = p.grad.clone()
                for name, v in ours.state.get(p, {}).items():
                    theirs.state[q][name] = v.clone()
        ours.step()
        theirs.step()
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            same_sign = torch.signbit(p) == torch.signbit(q)
            assert bool(same_sign.all())
            assert int(_ulps(p.detach(), q.detach()).max()) <= 1
            differing += int((p != q).sum())
            total += p.numel()
    assert differing <= 0.002 * total


def _one_step_bits_vs_float64(dtype, name, kw, n=20000):
    """How many elements of one 16-bit step differ from the float64 step on
    the same values (parameters, 16-bit state, gradient), rounded once to 16
    bits: for fastgd and for torch's default (for-loop) implementation."""
    g = torch.Generator().manual_seed(3)
    p0 = torch.randn(n, generator=g).to(dtype)
    warm = [torch.randn(n, generator=g).to(dtype) for _ in range(3)]
    grad = torch.randn(n, generator=g).to(dtype)
    state = {}

    def run(param_dtype, make):
        p = torch.nn.Parameter(p0.to(param_dtype))
        opt = make([p])
        for w in warm:  # three steps make the state (and its step count)
            p.grad = w.to(param_dtype)
            opt.step()
        with torch.no_grad():  # then every run starts from the same values
            p.copy_(p0)
            for k, v in opt.state[p].items():
                state.setdefault(k, v.clone())
                v.copy_(state[k])
        p.grad = grad.to(param_dtype)
        opt.step()
        return p.detach().to(dtype)

    ours = run(dtype, lambda ps: getattr(ft, name)(ps, **kw))
    ref = run(torch.float64, lambda ps: getattr(torch.optim, name)(ps, **kw))
    theirs = run(dtype, lambda ps: getattr(torch.optim, name)(ps, foreach=False, **kw))
    return int((ours != ref).sum()), int((theirs != ref).sum())


@pytest.mark.parametrize(
    "name, kw",
    [
        ("Adam", {"lr": 0.01}),
        ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
        ("RMSprop", {"lr": 0.01}),
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("NAdam", {"lr": 0.01}),
    ],
)
def test_one_step_closer_to_float64_than_torch_default(name, kw):
    ours, theirs = _one_step_bits_vs_float64(torch.bfloat16, name, kw)
    assert ours <= theirs
    assert ours <= 0.001 * 20000  # double rounding (float64 -> float32 -> bfloat16) only


def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    return torch.tensor(x / 16.0), torch.tensor(y)


def _mlp(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    return model.to(dtype)


def _train_digits(dtype, make, steps=300, batch=128):
    x, y = _digits()
    model = _mlp(dtype)
    opt = make(model.parameters())
    for step in range(steps):
        idx = torch.arange(step * batch, (step + 1) * batch) % len(x)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx].to(dtype)).float(), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(copy.deepcopy(model).double()(x), y).item()
    return model, loss


def _distance(model, ref) -> float:
    a = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    b = torch.cat([p.detach().double().reshape(-1) for p in ref.parameters()])
    return float((a - b).norm() / b.norm())


def test_bf16_training_closer_to_float64_than_torch_default():
    """300 Adam steps of an MLP on digits in bfloat16: fastgd's parameters
    are at least as close to the float64 run's as torch's default bfloat16
    run's; with kahan=True, an order of magnitude closer."""
    kw = {"lr": 1e-3}
    ref, _ = _train_digits(torch.float64, lambda ps: torch.optim.Adam(ps, **kw))
    theirs, _ = _train_digits(torch.bfloat16, lambda ps: torch.optim.Adam(ps, foreach=False, **kw))
    ours, _ = _train_digits(torch.bfloat16, lambda ps: ft.Adam(ps, **kw))
    kahan, _ = _train_digits(torch.bfloat16, lambda ps: ft.Adam(ps, kahan=True, **kw))
    d_theirs, d_ours, d_kahan = (_distance(m, ref) for m in (theirs, ours, kahan))
    assert d_ours <= d_theirs
    assert d_kahan <= 0.1 * d_theirs


# -- (c) training in bfloat16 -------------------------------------------------------


@pytest.mark.parametrize("option", ["kahan", "stochastic"])
def test_bf16_training_reaches_float32_loss(option):
    """Adam at lr=1e-3 moves parameters by less than half a bfloat16 ulp:
    round-to-nearest storage loses those updates (its loss ends ~25% above
    float32's), Kahan compensation or stochastic rounding keep them."""
    kw = {"lr": 1e-3}
    _, f32 = _train_digits(torch.float32, lambda ps: ft.Adam(ps, **kw))
    _, plain = _train_digits(torch.bfloat16, lambda ps: ft.Adam(ps, **kw))
    extra = {"kahan": {"kahan": True}, "stochastic": {"stochastic_rounding": True, "seed": 7}}
    _, low = _train_digits(torch.bfloat16, lambda ps: ft.Adam(ps, **kw, **extra[option]))
    assert low <= 1.03 * f32
    assert plain > 1.1 * f32  # the problem is one where it matters


# -- (d) checkpoints ----------------------------------------------------------------


def _train(model, opt, steps, dtype):
    for step in steps:
        opt.zero_grad()
        loss_of(model, step, dtype).backward()
        opt.step()


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", ["AdamW", "SGD", "NAdam"])
def test_state_dict_resume_bit_identical(name, dtype, option):
    kw = {**OPTIONS[option]}
    # the resumed optimizer draws a seed at construction; the checkpoint's replaces it
    kw_resumed = {k: v for k, v in kw.items() if k != "seed"}
    cls = getattr(ft, name)
    hp = {"lr": 0.01} if name != "SGD" else {"lr": 0.05, "momentum": 0.9}
    straight = Net(dtype)
    o1 = cls(straight.parameters(), **hp, **kw)
    _train(straight, o1, range(6), dtype)

    first = Net(dtype)
    o2 = cls(first.parameters(), **hp, **kw)
    _train(first, o2, range(3), dtype)
    file = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": o2.state_dict()}, file)
    sd = o2.state_dict()
    if option == "kahan":
        entry = sd["state"][0]
        assert entry["kahan_comp"].dtype == dtype
        assert entry["kahan_comp"].shape == first.s.shape  # parameter 0
    if option == "stochastic":
        assert isinstance(sd["param_groups"][0]["seed"], int)
        assert sd["param_groups"][0]["seed"] == o2.param_groups[0]["seed"]
    if name == "SGD" and option != "nearest":
        assert "step" in sd["state"][0]  # the rounding's counter (torch's SGD keeps none)

    file.seek(0)
    saved = torch.load(file)
    resumed = Net(dtype)
    resumed.load_state_dict(saved["model"])
    o3 = cls(resumed.parameters(), **hp, **kw_resumed)
    if option == "stochastic":
        assert o3.param_groups[0]["seed"] != kw["seed"]
    o3.load_state_dict(saved["opt"])
    if option == "stochastic":
        assert o3.param_groups[0]["seed"] == kw["seed"]
    _train(resumed, o3, range(3, 6), dtype)
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(bits_t(p), bits_t(q))
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        for k, v in o1.state[p].items():
            assert torch.equal(bits_t(v), bits_t(o3.state[q][k])), k
    # and a state dict made after the resume round-trips bit-identically
    again = o3.state_dict()
    for k, entry in o1.state_dict()["state"].items():
        for n, v in entry.items():
            assert torch.equal(bits_t(v), bits_t(again["state"][k][n]))


def bits_t(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    return t.view(torch.int16) if t.dtype in LOW else t


def test_deepcopy_keeps_kahan_and_seed():
    model = Net(torch.bfloat16)
    opt = ft.Adam(model.parameters(), lr=1e-3, stochastic_rounding=True)
    _train(model, opt, range(2), torch.bfloat16)
    model2, opt2 = copy.deepcopy((model, opt))
    assert opt2.param_groups[0]["seed"] == opt.param_groups[0]["seed"]
    _train(model, opt, range(2, 4), torch.bfloat16)
    _train(model2, opt2, range(2, 4), torch.bfloat16)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(bits_t(p), bits_t(q))


def test_torch_optim_state_dict_loads():
    """A torch.optim checkpoint (no kahan_comp, no storage keys) loads into a
    kahan optimizer: the compensation starts at zero."""
    model = Net(torch.bfloat16)
    topt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train(model, topt, range(2), torch.bfloat16)
    opt = ft.Adam(model.parameters(), lr=1e-3, kahan=True)
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["kahan"] is True
    state = opt.state[model.a.weight]
    assert torch.equal(state["exp_avg"], topt.state[model.a.weight]["exp_avg"])
    assert not state["kahan_comp"].any()
    _train(model, opt, range(2, 3), torch.bfloat16)


def test_seeds_differ_between_groups_and_buffers():
    """Each group draws its own seed; tensors at the same offset of two
    buffers never share random bits (buffer k rounds with seed + k)."""
    a, b = (
        torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16)),
        torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16)),
    )
    opt = ft.SGD([{"params": [a]}, {"params": [b]}], lr=1.0, stochastic_rounding=True)
    assert opt.param_groups[0]["seed"] != opt.param_groups[1]["seed"]
    shared = ft.SGD([{"params": [a]}, {"params": [b]}], lr=1.0, stochastic_rounding=True, seed=5)
    seeds = [buf.opt.seed for bufs in shared._buffers for buf in bufs]
    assert seeds == [5, 6]
    c = torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16))
    shared.add_param_group({"params": [c]})
    assert shared._buffers[-1][0].opt.seed == 7
    # a value halfway between two bfloat16 numbers: the same counter would round alike
    for p in (a, b, c):
        p.grad = torch.full((8,), -1.0 / 1024, dtype=torch.bfloat16)
    with torch.no_grad():
        for p in (a, b, c):
            p.fill_(1.0)
    for _ in range(3):
        shared.step()
    assert not (torch.equal(a, b) and torch.equal(b, c))


# -- (e) refusals ---------------------------------------------------------------------


def test_rounding_options_need_16_bit_parameters():
    p32 = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="kahan=True rounds 16-bit parameters"):
        ft.Adam([p32], kahan=True)
    with pytest.raises(ValueError, match="stochastic_rounding=True rounds 16-bit"):
        ft.SGD([p32], stochastic_rounding=True)
    # a mixed group names the tensor and the fix
    bf = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 is torch.float32.*own"):
        ft.Adam([bf, p32], kahan=True)
    ft.Adam([{"params": [bf], "kahan": True}, {"params": [p32]}])  # per-group options
    with pytest.raises(ValueError, match="choose one"):
        ft.Adam([bf], kahan=True, stochastic_rounding=True)
    with pytest.raises(ValueError, match="seed applies to stochastic_rounding"):
        ft.Adam([bf], seed=3)
    with pytest.raises(TypeError, match="state_dtype"):
        ft.Adam([bf], state_dtype="float32")


def test_gradient_of_another_dtype_refused():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    ft.Adam([p])
    with pytest.raises(RuntimeError, match="type"):  # torch's own check
        p.grad = torch.ones(3)


def test_storage_options_fixed_after_construction():
    model = Net(torch.bfloat16)
    opt = ft.Adam(model.parameters(), lr=1e-3, kahan=True)
    _train(model, opt, range(1), torch.bfloat16)
    before = [p.detach().clone() for p in model.parameters()]
    opt.param_groups[0]["kahan"] = False
    with pytest.raises(ValueError, match="kahan was changed"):
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)
    opt.param_groups[0]["kahan"] = True
    sd = opt.state_dict()
    plain = ft.Adam(Net(torch.bfloat16).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="unknown entries|kahan=True"):
        plain.load_state_dict(sd)
    sd["param_groups"][0]["kahan"] = False
    with pytest.raises(ValueError, match="unknown entries.*kahan_comp"):
        plain.load_state_dict(sd)
    stoch = ft.Adam(Net(torch.bfloat16).parameters(), stochastic_rounding=True)
    sd2 = stoch.state_dict()
    sd2["param_groups"][0]["seed"] = -1
    with pytest.raises(ValueError, match="seed"):
        stoch.load_state_dict(sd2)


def test_bfloat16_on_cuda_refused_under_simulator():
    """Under numba's CUDA simulator (a host tensor with backend='cuda' takes
    the CUDA path): float16 runs and matches the CPU path's bits, bfloat16 is
    refused with a TypeError naming the dtype and device."""
    code = """
import torch, fastgd.torch as ft
torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(300).half())
q = torch.nn.Parameter(p.detach().clone())
a = ft.Adam([p], lr=1e-2, backend="cuda", kahan=True)
b = ft.Adam([q], lr=1e-2, kahan=True)
for s in range(3):
    g = torch.randn(300, generator=torch.Generator().manual_seed(s)).half()
    p.grad, q.grad = g.clone(), g.clone()
    a.step(); b.step()
assert torch.equal(p.view(torch.int16), q.view(torch.int16))
assert torch.equal(a.state[p]["kahan_comp"], b.state[q]["kahan_comp"])
try:
    ft.Adam([torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))], backend="cuda")
except TypeError as e:
    assert "bfloat16" in str(e) and "cpu" in str(e), e
else:
    raise AssertionError("bfloat16 with backend='cuda' was accepted")
"""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_cuda_tensor_refused():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16, device="cuda"))
    with pytest.raises(TypeError, match=r"bfloat16 tensor on cuda"):
        ft.Adam([p])
