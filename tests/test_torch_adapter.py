"""``fastgd.torch``: the rules as ``torch.optim.Optimizer`` classes over flat buffers.

Parity is against torch.optim's for-loop implementation (``foreach=False``,
``fused=False``) on real ``nn.Module``s, with the tolerances of
``tests/test_parity.py``; Lion and Momentum (which torch lacks) against
fastgd's NumPy classes on the same flat data, bit for bit.
"""

from __future__ import annotations

import inspect
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_parity import assert_close

import fastgd
import fastgd.torch as ft

STEPS = 12
RULES_IN_TORCH = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
]
#: torch keyword arguments per rule: the defaults and the options that change the math.
CASES = {
    "SGD": [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9, "dampening": 0.5},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
    ],
    "Adagrad": [
        {},
        {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1},
    ],
    "RMSprop": [
        {"lr": 1e-3},
        {"lr": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "maximize": True},
    ],
    "Adadelta": [{}, {"weight_decay": 0.1, "maximize": True, "rho": 0.5}],
    "Adam": [
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
        {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1, "maximize": True},
    ],
    "AdamW": [{"lr": 0.01}, {"lr": 0.01, "amsgrad": True, "maximize": True}],
    "Adamax": [{}, {"weight_decay": 0.1, "betas": (0.8, 0.9)}],
    "NAdam": [
        {},
        {"decoupled_weight_decay": True, "weight_decay": 0.1, "momentum_decay": 0.1},
    ],
    "RAdam": [{}, {"betas": (0.8, 0.9), "weight_decay": 0.1, "decoupled_weight_decay": True}],
}
TORCH_CASES = [(rule, kw) for rule in RULES_IN_TORCH for kw in CASES[rule]]


def case_id(case) -> str:
    rule, kw = case
    return rule + ("-" + ",".join(f"{k}={v}" for k, v in kw.items()) if kw else "")


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def default_dtype(request):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    yield request.param
    torch.set_default_dtype(previous)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 3),
    )  # fmt: skip


class Transformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layer = torch.nn.TransformerEncoderLayer(
            16, 2, dim_feedforward=32, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(16, 3)
        for layer in self.encoder.layers:
            # the key bias has an exactly zero gradient (softmax ignores it): its
            # rounding noise, normalized by Adagrad/Adam, is a random walk of size lr
            layer.self_attn.in_proj_bias.requires_grad_(False)

    def forward(self, x):
        return self.head(self.encoder(x)).mean(dim=1)


MODELS = {"mlp": mlp, "transformer": Transformer}


def batch(model_name: str, step: int):
    g = torch.Generator().manual_seed(100 + step)
    dtype = torch.get_default_dtype()
    shape = (8, 6) if model_name == "mlp" else (4, 5, 16)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(
        shape[0], 3, generator=g, dtype=dtype
    )


def train(model, opt, model_name: str, steps, *, before_step=None, closure_style=False):
    for s in steps:
        x, y = batch(model_name, s)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if before_step is not None:
            before_step(model, s)
        opt.step()


def torch_optimizer(rule: str, params, **kw):
    cls = getattr(torch.optim, rule)
    signature = inspect.signature(cls.__init__).parameters
    extra = {"foreach": False, **({"fused": False} if "fused" in signature else {})}
    return cls(params, **kw, **extra)


def assert_models_close(m1, m2, dtype, what=""):
    for (name, a), b in zip(m1.named_parameters(), m2.parameters(), strict=True):
        assert_close(a.detach().numpy(), b.detach().numpy().astype(np.float64), dtype, what + name)


def assert_states_close(opt, ref, params, ref_params, dtype):
    for p, q in zip(params, ref_params, strict=True):
        s, r = opt.state.get(p, {}), ref.state.get(q, {})
        assert s.keys() == r.keys()
        for key in r:
            if key in ("step", "mu_product"):
                assert s[key].dtype == r[key].dtype, key
                assert float(s[key]) == pytest.approx(float(r[key]), rel=1e-6), key
            else:
                assert_close(s[key].numpy(), r[key].numpy().astype(np.float64), dtype, key)


def numpy_dtype(dtype):
    return np.float32 if dtype == torch.float32 else np.float64


# -- parity with torch.optim ----------------------------------------------------


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("case", TORCH_CASES, ids=[case_id(c) for c in TORCH_CASES])
def test_matches_torch(case, model_name, default_dtype):
    rule, kw = case
    m1, m2 = MODELS[model_name](), MODELS[model_name]()
    opt = getattr(ft, rule)(m1.parameters(), **kw)
    ref = torch_optimizer(rule, m2.parameters(), **kw)
    # float32 attention amplifies rounding differences through the model (a
    # 1e-7 change of a parameter moves others by 1e-4 within 12 Adamax steps):
    # there, both step on torch's gradients, so only the optimizers are compared
    same_grads = model_name == "transformer" and default_dtype == torch.float32
    for s in range(STEPS):
        x, y = batch(model_name, s)
        for m, o in ((m2, ref), (m1, opt)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
        if same_grads:
            for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
                if q.grad is not None:
                    p.grad.copy_(q.grad)
        ref.step()
        opt.step()
    dtype = numpy_dtype(default_dtype)
    assert_models_close(m1, m2, dtype)
    assert_states_close(opt, ref, list(m1.parameters()), list(m2.parameters()), dtype)


@pytest.mark.parametrize(
    "rule, kw",
    [
        ("Lion", {}),
        ("Lion", {"lr": 1e-3, "betas": (0.8, 0.95), "weight_decay": 0.1}),
        ("Momentum", {}),
        ("Momentum", {"form": "ema", "lr": 0.1, "l1": 0.01, "l1_mode": "proximal"}),
    ],
)
def test_rules_torch_lacks_match_numpy_classes(rule, kw, default_dtype):
    """One flat buffer: the adapter's steps are the NumPy class's, bit for bit."""
    model = mlp()
    opt = getattr(ft, rule)(model.parameters(), **kw)
    (buf,) = opt._buffers[0]
    flat = buf.flat.numpy().copy()
    reference = fastgd.OPTIMIZERS[rule.lower()](flat, **kw)
    for s in range(STEPS):
        x, y = batch("mlp", s)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
        opt.step()
        reference.step(grad)
        np.testing.assert_array_equal(buf.flat.numpy(), flat)
    name = fastgd.RULES[rule.lower()].states[0]
    state = torch.cat([opt.state[p][name].reshape(-1) for p in model.parameters()])
    np.testing.assert_array_equal(state.numpy(), reference.state_dict()["state"][name])
    assert float(opt.state[next(model.parameters())]["step"]) == STEPS


def test_param_groups_with_different_hyperparameters(default_dtype):
    m1, m2 = mlp(), mlp()

    def groups(m):
        layers = list(m)
        return [
            {"params": layers[0].parameters(), "lr": 0.05, "weight_decay": 0.1},
            {"params": layers[2].parameters()},
            {"params": layers[4].parameters(), "lr": 1e-3, "amsgrad": True},
        ]

    opt = ft.AdamW(groups(m1), lr=0.01)
    ref = torch_optimizer("AdamW", groups(m2), lr=0.01)
    assert [len(b) for b in opt._buffers] == [1, 1, 1]
    train(m1, opt, "mlp", range(STEPS))
    train(m2, ref, "mlp", range(STEPS))
    dtype = numpy_dtype(default_dtype)
    assert_models_close(m1, m2, dtype)
    assert_states_close(opt, ref, list(m1.parameters()), list(m2.parameters()), dtype)


def test_named_parameters_and_add_param_group():
    m1, m2 = mlp(), mlp()
    opt = ft.Adam(list(m1.named_parameters())[:2], lr=0.01)
    opt.add_param_group({"params": list(m1.named_parameters())[2:], "lr": 0.1})
    ref = torch_optimizer("Adam", list(m2.named_parameters())[:2], lr=0.01)
    ref.add_param_group({"params": list(m2.named_parameters())[2:], "lr": 0.1})
    assert opt.param_groups[0]["param_names"] == ref.param_groups[0]["param_names"]
    train(m1, opt, "mlp", range(STEPS))
    train(m2, ref, "mlp", range(STEPS))
    assert_models_close(m1, m2, np.float32)


@pytest.mark.parametrize("rule", ["Adam", "NAdam", "SGD", "RAdam"])
def test_frozen_and_missing_gradients(rule, default_dtype):
    """Skipped tensors keep their state and their own step count, as in torch."""
    kw = {"lr": 0.01, "momentum": 0.9} if rule == "SGD" else {}
    m1, m2 = mlp(), mlp()
    for m in (m1, m2):
        m[2].bias.requires_grad_(False)  # frozen: never a gradient

    def drop(model, s):  # the first layer's weight misses every third step
        if s % 3 == 0:
            model[0].weight.grad = None

    opt = getattr(ft, rule)(m1.parameters(), **kw)
    ref = torch_optimizer(rule, m2.parameters(), **kw)
    train(m1, opt, "mlp", range(STEPS), before_step=drop)
    train(m2, ref, "mlp", range(STEPS), before_step=drop)
    dtype = numpy_dtype(default_dtype)
    assert_models_close(m1, m2, dtype)
    assert_states_close(opt, ref, list(m1.parameters()), list(m2.parameters()), dtype)
    assert m1[2].bias not in opt.state or not opt.state[m1[2].bias]
    if rule != "SGD":
        assert float(opt.state[m1[0].weight]["step"]) == STEPS - 4
        assert float(opt.state[m1[0].bias]["step"]) == STEPS


def test_zero_grad_both_ways():
    m1, m2 = mlp(), mlp()
    opt = ft.Adam(m1.parameters(), lr=0.01)
    ref = torch_optimizer("Adam", m2.parameters(), lr=0.01)
    (buf,) = opt._buffers[0]
    for s in range(STEPS):
        set_to_none = s % 2 == 0
        for m, o in ((m1, opt), (m2, ref)):
            o.zero_grad(set_to_none=set_to_none)
            if set_to_none:
                assert all(p.grad is None for p in m.parameters())
            elif s > 0:
                assert all(float(p.grad.abs().max()) == 0 for p in m.parameters())
            x, y = batch("mlp", s)
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
        # after a step every gradient is a view of the flat gradient buffer
        assert all(p.grad is g for p, g in zip(m1.parameters(), buf.grads, strict=True))
        assert_models_close(m1, m2, np.float32)
    opt.zero_grad(set_to_none=False)
    assert float(buf.flat_grad.abs().max()) == 0.0


def test_lr_scheduler_takes_effect():
    m1, m2 = mlp(), mlp()
    opt = ft.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    ref = torch_optimizer("SGD", m2.parameters(), lr=0.1, momentum=0.9)
    s1 = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
    s2 = torch.optim.lr_scheduler.StepLR(ref, step_size=3, gamma=0.1)
    for s in range(STEPS):
        train(m1, opt, "mlp", [s])
        train(m2, ref, "mlp", [s])
        assert opt._buffers[0][0].opt.lr == opt.param_groups[0]["lr"]
        s1.step()
        s2.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1**4)
    assert_models_close(m1, m2, np.float32)


def test_step_closure_returns_the_loss():
    m1, m2 = mlp(), mlp()
    opt = ft.RMSprop(m1.parameters(), lr=1e-3)
    ref = torch_optimizer("RMSprop", m2.parameters(), lr=1e-3)
    x, y = batch("mlp", 0)

    def closure_for(m, o):
        def closure():  # LBFGS style: zero, forward, backward, return the loss
            o.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            return loss

        return closure

    with torch.no_grad():  # the closure must run with gradients enabled anyway
        for _ in range(5):
            l1 = opt.step(closure_for(m1, opt))
            l2 = ref.step(closure_for(m2, ref))
            assert float(l1) == pytest.approx(float(l2), rel=1e-5)
    assert opt.step() is None and ref.step() is None
    assert_models_close(m1, m2, np.float32)


# -- checkpoints ------------------------------------------------------------------


SWITCH_CASES = [
    ("AdamW", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("NAdam", {}),
    ("SGD", {"lr": 0.01, "momentum": 0.9}),
    ("Adagrad", {}),
    ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.5}),
]


@pytest.mark.parametrize("direction", ["fastgd_to_torch", "torch_to_fastgd"])
@pytest.mark.parametrize("rule, kw", SWITCH_CASES, ids=[r for r, _ in SWITCH_CASES])
def test_state_dict_switch_continues_the_run(rule, kw, direction, default_dtype):
    """Half a run with one implementation, half with the other after
    load_state_dict: the same as a whole run with torch."""
    half = STEPS // 2
    m_ref, m1, m2 = mlp(), mlp(), mlp()
    ref = torch_optimizer(rule, m_ref.parameters(), **kw)
    train(m_ref, ref, "mlp", range(STEPS))

    def make(fastgd_side, model):
        if fastgd_side:
            return getattr(ft, rule)(model.parameters(), **kw)
        return torch_optimizer(rule, model.parameters(), **kw)

    first_is_fastgd = direction == "fastgd_to_torch"
    o1 = make(first_is_fastgd, m1)
    train(m1, o1, "mlp", range(half))
    m2.load_state_dict(m1.state_dict())
    o2 = make(not first_is_fastgd, m2)
    o2.load_state_dict(o1.state_dict())
    train(m2, o2, "mlp", range(half, STEPS))
    dtype = numpy_dtype(default_dtype)
    assert_models_close(m2, m_ref, dtype)
    assert_states_close(o2, ref, list(m2.parameters()), list(m_ref.parameters()), dtype)
    if not first_is_fastgd:  # the state was copied into the flat buffers, views kept
        (buf,) = o2._buffers[0]
        first = next(m2.parameters())
        for name in buf.active:
            assert o2.state[first][name].data_ptr() == buf.views[name][0].data_ptr()


def test_torch_save_load_round_trip():
    m1, m2 = mlp(), mlp()
    opt = ft.NAdam(m1.parameters())
    train(m1, opt, "mlp", range(5))
    file = io.BytesIO()
    torch.save(opt.state_dict(), file)
    file.seek(0)
    m2.load_state_dict(m1.state_dict())
    opt2 = ft.NAdam(m2.parameters())
    opt2.load_state_dict(torch.load(file))
    train(m1, opt, "mlp", range(5, 10))
    train(m2, opt2, "mlp", range(5, 10))
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_state_dict_is_a_copy():
    model = mlp()
    opt = ft.Adam(model.parameters())
    train(model, opt, "mlp", range(2))
    sd = opt.state_dict()
    before = sd["state"][0]["exp_avg"].clone()
    train(model, opt, "mlp", range(2, 3))
    assert torch.equal(sd["state"][0]["exp_avg"], before)
    assert sd["param_groups"][0]["params"] == list(range(len(list(model.parameters()))))


def test_bad_state_dict_leaves_the_optimizer_unchanged():
    model = mlp()
    opt = ft.Adam(model.parameters())
    train(model, opt, "mlp", range(2))
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = torch.zeros(3)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(sd)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, s in before["state"].items():
        for k, v in s.items():
            assert torch.equal(after["state"][i][k], v)
    train(model, opt, "mlp", range(2, 3))  # still works


# -- what users do ---------------------------------------------------------------


def test_parameters_are_views_of_one_buffer():
    model = mlp()
    opt = ft.AdamW(model.parameters())
    (buf,) = opt._buffers[0]
    base = buf.flat.data_ptr()
    size = buf.flat.element_size()
    for p, lo in zip(model.parameters(), buf.bounds, strict=False):
        assert p.data_ptr() == base + lo * size


def test_reassigned_data_raises_and_updates_nothing():
    model = mlp()
    opt = ft.Adam(model.parameters(), lr=0.1)
    train(model, opt, "mlp", range(2))
    model[2].weight.data = model[2].weight.data.clone()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = batch("mlp", 5)
    torch.nn.functional.mse_loss(model(x), y).backward()
    with pytest.raises(RuntimeError, match="parameter 2 of param group 0.*Re-create"):
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)


def test_model_cast_raises():
    model = mlp()
    opt = ft.SGD(model.parameters(), lr=0.1)
    model.double()
    x, y = batch("mlp", 0)
    torch.nn.functional.mse_loss(model(x.double()), y.double()).backward()
    with pytest.raises(RuntimeError, match="Re-create the optimizer"):
        opt.step()


@pytest.mark.parametrize("dtype", [torch.complex32, torch.float8_e4m3fn, torch.int64])
def test_other_dtypes_refused(dtype):
    # bfloat16/float16 are taken (tests/test_torch_low_precision.py)
    p = torch.zeros(3, dtype=dtype)
    with pytest.raises(TypeError, match="bfloat16, float16, complex64"):
        ft.Adam([p])


def test_sparse_gradient_refused():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    opt = ft.Adam(emb.parameters())
    before = emb.weight.detach().clone()
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse gradient.*SparseAdam"):
        opt.step()
    assert torch.equal(emb.weight, before)


def test_bad_hyperparameter_in_group_raises_at_step():
    model = mlp()
    opt = ft.Adam(model.parameters())
    train(model, opt, "mlp", range(1))
    opt.param_groups[0]["betas"] = (0.9, 1.5)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)
    with pytest.raises(ValueError, match="lr"):
        ft.Adam(model.parameters(), lr=-1.0)
    with pytest.raises(ValueError, match="differentiable"):
        ft.Adam(mlp().parameters(), differentiable=True)


def test_zero_size_non_contiguous_and_channels_last_parameters():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    empty = torch.nn.Parameter(torch.zeros(0, 5))
    transposed = torch.nn.Parameter(torch.randn(4, 6).t())
    params = [conv.weight, empty, transposed, conv.bias]
    ref_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    assert not transposed.is_contiguous()
    opt = ft.Adam(params, lr=0.01)
    ref = torch_optimizer("Adam", ref_params, lr=0.01)
    assert all(p.is_contiguous() for p in params)  # documented: the buffer is contiguous
    for s in range(STEPS):
        g = torch.Generator().manual_seed(s)
        for p, q in zip(params, ref_params, strict=True):
            q.grad = torch.randn(q.shape, generator=g)
            p.grad = q.grad.clone()
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params, strict=True):
        assert p.shape == q.shape
        assert_close(p.detach().numpy(), q.detach().numpy().astype(np.float64), np.float32, "")
    assert float(opt.state[empty]["step"]) == STEPS


def test_mixed_dtypes_in_one_group_get_one_buffer_each():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = ft.SGD([a, b], lr=0.5)
    assert [buf.flat.dtype for buf in opt._buffers[0]] == [torch.float32, torch.float64]
    a.grad, b.grad = torch.ones(3), torch.ones(2, dtype=torch.float64)
    opt.step()
    assert torch.equal(a, torch.full((3,), 0.5)) and torch.equal(b, torch.full((2,), 0.5).double())


def test_signatures_and_defaults_follow_torch():
    for rule in RULES_IN_TORCH:
        ours = inspect.signature(getattr(ft, rule)).parameters
        theirs = inspect.signature(getattr(torch.optim, rule)).parameters
        for name, p in theirs.items():
            if name in ours and name != "params":
                assert ours[name].default == p.default, (rule, name)
        assert set(fastgd.OPTIMIZERS[rule.lower()].hyperparameter_names()) <= set(
            getattr(ft, rule)(mlp().parameters()).defaults
        )
    assert issubclass(ft.Lion, torch.optim.Optimizer)


def test_import_fastgd_does_not_import_torch():
    code = "import fastgd, sys; assert 'torch' not in sys.modules; import fastgd.torch"
    code += "; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
