"""``fastgd.torch``: complex parameters, copies (deepcopy, pickle) and devices.

Complex parameters are compared with torch.optim's for-loop implementation,
which updates them through ``torch.view_as_real`` as fastgd's real buffers do.
Copies are compared with the original optimizer continuing the same run.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from test_torch_adapter import (
    RULES_IN_TORCH,
    STEPS,
    TORCH_CASES,
    assert_models_close,
    case_id,
    default_dtype,  # noqa: F401 (a fixture)
    mlp,
    numpy_dtype,
    torch_optimizer,
    train,
)

import fastgd
import fastgd.torch as ft

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
ALL_RULES = [cls.__name__ for cls in fastgd.OPTIMIZERS.values()]


class ComplexModel(torch.nn.Module):
    """A complex linear map with a real bias and a real scale: complex and
    real parameters in one group."""

    def __init__(self, dtype):
        super().__init__()
        torch.manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(5, 4, dtype=COMPLEX[dtype]))
        self.bias = torch.nn.Parameter(torch.randn(5, dtype=dtype))
        self.scale = torch.nn.Parameter(torch.randn(3, 2, dtype=COMPLEX[dtype]))

    def loss(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(200 + step)
        x = torch.randn(4, dtype=self.weight.dtype, generator=g)
        y = (self.weight @ x).abs() + self.bias
        return (y - 1).pow(2).sum() + (self.scale * self.scale.conj()).real.sum() * 0.1


def run(model, opt, steps):
    for s in steps:
        opt.zero_grad()
        model.loss(s).backward()
        opt.step()


def assert_close_complex(ours, theirs, dtype):
    for p, q in zip(ours, theirs, strict=True):
        a = torch.view_as_real(p.detach()) if p.is_complex() else p.detach()
        b = torch.view_as_real(q.detach()) if q.is_complex() else q.detach()
        from test_parity import assert_close

        assert_close(a.numpy(), b.numpy().astype(np.float64), numpy_dtype(dtype), "")


@pytest.mark.parametrize("case", TORCH_CASES, ids=[case_id(c) for c in TORCH_CASES])
def test_complex_parameters_match_torch(case, default_dtype):  # noqa: F811
    # torch keeps NAdam's mu_product in the default dtype: float64 parameters
    # match it to float64 precision when the default dtype is float64 too
    rule, kw = case
    dtype = default_dtype
    m1, m2 = ComplexModel(dtype), ComplexModel(dtype)
    opt = getattr(ft, rule)(m1.parameters(), **kw)
    ref = torch_optimizer(rule, m2.parameters(), **kw)
    run(m1, opt, range(STEPS))
    run(m2, ref, range(STEPS))
    assert m1.weight.dtype == COMPLEX[dtype] and m1.weight.is_complex()
    assert_close_complex(m1.parameters(), m2.parameters(), dtype)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        s, r = opt.state[p], ref.state[q]
        assert s.keys() == r.keys()
        for name, value in r.items():
            assert s[name].dtype == value.dtype, name
    # the complex parameter is a complex view of the real flat buffer
    (complex_buf, real_buf) = opt._buffers[0]  # in order of first appearance
    assert complex_buf.complex and not real_buf.complex
    assert m1.weight.data_ptr() == complex_buf.flat.data_ptr()


@pytest.mark.parametrize("direction", ["fastgd_to_torch", "torch_to_fastgd"])
@pytest.mark.parametrize("rule", ["Adam", "NAdam", "SGD", "RMSprop"])
def test_complex_state_dict_switch(rule, direction, default_dtype):  # noqa: F811
    kw = {"lr": 0.01, **({"momentum": 0.9} if rule in ("SGD", "RMSprop") else {})}
    half = STEPS // 2
    m_ref, m1, m2 = (ComplexModel(default_dtype) for _ in range(3))
    ref = torch_optimizer(rule, m_ref.parameters(), **kw)
    run(m_ref, ref, range(STEPS))
    first_ours = direction == "fastgd_to_torch"

    def make(ours, model):
        if ours:
            return getattr(ft, rule)(model.parameters(), **kw)
        return torch_optimizer(rule, model.parameters(), **kw)

    o1 = make(first_ours, m1)
    run(m1, o1, range(half))
    m2.load_state_dict(m1.state_dict())
    o2 = make(not first_ours, m2)
    o2.load_state_dict(o1.state_dict())
    run(m2, o2, range(half, STEPS))
    assert_close_complex(m2.parameters(), m_ref.parameters(), default_dtype)


def test_real_state_for_a_complex_parameter_refused():
    model = ComplexModel(torch.float32)
    opt = ft.Adam(model.parameters())
    run(model, opt, range(2))
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = torch.zeros(5, 4)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="exp_avg.*expected complex"):
        opt.load_state_dict(sd)
    run(model, opt, range(2, 3))  # still usable, state untouched
    assert not torch.equal(model.weight, before[0])


# -- copies -----------------------------------------------------------------------


def _kwargs(rule):
    return {"lr": 0.01, **({"momentum": 0.9} if rule == "SGD" else {})}


@pytest.mark.parametrize("rule", ALL_RULES)
def test_deepcopy_of_model_and_optimizer_continues_the_run(rule):
    model = mlp()
    opt = getattr(ft, rule)(model.parameters(), **_kwargs(rule))
    train(model, opt, "mlp", range(4))
    model2, opt2 = copy.deepcopy((model, opt))
    # the copies are views of the copy's own buffer, not of the original's
    (buf,) = opt2._buffers[0]
    for i, (p, q) in enumerate(zip(model.parameters(), model2.parameters(), strict=True)):
        assert p is not q and q is opt2.param_groups[0]["params"][i]
        assert q.data_ptr() == buf.view(buf.flat, i).data_ptr() != p.data_ptr()
    train(model, opt, "mlp", range(4, 8))
    train(model2, opt2, "mlp", range(4, 8))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    assert opt.state_dict()["state"].keys() == opt2.state_dict()["state"].keys()


def test_deepcopy_of_the_optimizer_alone_is_independent():
    model = mlp()
    opt = ft.Adam(model.parameters(), lr=0.01)
    train(model, opt, "mlp", range(3))
    before = [p.detach().clone() for p in model.parameters()]
    twin = copy.deepcopy(opt)
    params = twin.param_groups[0]["params"]
    for p in params:
        p.grad = torch.ones_like(p)
    twin.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)  # the original model is untouched
    assert not torch.equal(params[0], before[0])
    assert float(twin.state[params[0]]["step"]) == 4.0
    assert float(opt.state[next(model.parameters())]["step"]) == 3.0


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_round_trip_continues_the_run(how):
    model = mlp()
    opt = ft.NAdam(model.parameters(), lr=0.01)
    train(model, opt, "mlp", range(4))
    if how == "pickle":
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    else:
        file = io.BytesIO()
        torch.save((model, opt), file)
        file.seek(0)
        model2, opt2 = torch.load(file, weights_only=False)
    assert type(opt2) is ft.NAdam
    train(model, opt, "mlp", range(4, 8))
    train(model2, opt2, "mlp", range(4, 8))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
        s, r = opt.state[p], opt2.state[q]
        assert torch.equal(s["mu_product"], r["mu_product"])


def test_copies_keep_per_parameter_steps_and_hyperparameters():
    model = mlp()
    opt = ft.Adam(
        [
            {"params": list(model.parameters())[:2], "lr": 0.1},
            {"params": list(model.parameters())[2:]},
        ],
        lr=0.01,
    )
    train(model, opt, "mlp", range(2))
    model[0].weight.grad = None  # one parameter misses a step
    opt.step()
    model2, opt2 = copy.deepcopy((model, opt))
    steps = [float(opt2.state[p]["step"]) for p in model2.parameters()]
    assert steps == [float(opt.state[p]["step"]) for p in model.parameters()]
    assert steps[0] == 2.0 and steps[1] == 3.0
    assert [g["lr"] for g in opt2.param_groups] == [0.1, 0.01]
    train(model, opt, "mlp", range(3, 6))
    train(model2, opt2, "mlp", range(3, 6))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


# -- devices ----------------------------------------------------------------------


def test_backend_cuda_needs_cuda_tensors():
    with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors.*parameter 0"):
        ft.Adam(mlp().parameters(), backend="cuda")


def test_other_devices_refused():
    with pytest.raises(TypeError, match="meta.*CPU and CUDA"):
        ft.Adam([torch.nn.Parameter(torch.zeros(3, device="meta"))])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rule", RULES_IN_TORCH)
def test_cuda_tensors_match_torch(rule):
    """On a real GPU: the model on CUDA, the kernel launched on torch's stream."""
    kw = _kwargs(rule)
    m1, m2 = mlp().cuda(), mlp().cuda()
    opt = getattr(ft, rule)(m1.parameters(), **kw)
    ref = torch_optimizer(rule, m2.parameters(), **kw)
    for s in range(STEPS):
        x, y = (t.cuda() for t in _batch(s))
        for m, o in ((m1, opt), (m2, ref)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    assert opt._buffers[0][0].opt._plan.backend == "cuda"
    assert_models_close(m1.cpu(), m2.cpu(), np.float32)


def _batch(step):
    from test_torch_adapter import batch

    return batch("mlp", step)


# -- torch's step wrapper -----------------------------------------------------------


def test_step_hooks_run_in_torch_order_and_can_replace_arguments():
    import torch.optim.optimizer as torch_optimizer_module

    model = mlp()
    opt = ft.Adam(model.parameters(), lr=0.01)
    calls = []
    seen_loss = []

    def closure():
        calls.append("closure")
        return torch.tensor(1.5)

    handles = [
        torch_optimizer_module.register_optimizer_step_pre_hook(
            lambda o, a, k: calls.append("global pre")
        ),
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre") or ((o, closure), {})),
        opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
        torch_optimizer_module.register_optimizer_step_post_hook(
            lambda o, a, k: calls.append("global post")
        ),
    ]
    try:
        train(model, opt, "mlp", range(1))  # step() without a closure: the pre-hook adds one
        seen_loss.append(opt.step())
    finally:
        for h in handles:
            h.remove()
    assert calls == ["global pre", "pre", "closure", "post", "global post"] * 2
    assert float(seen_loss[0]) == 1.5
    calls.clear()
    train(model, opt, "mlp", range(1, 2))  # hooks removed: the unwrapped path
    assert calls == []
    assert float(opt.state[next(model.parameters())]["step"]) == 3.0


def test_profiler_sees_the_step():
    model = mlp()
    opt = ft.AdamW(model.parameters())
    train(model, opt, "mlp", range(1))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train(model, opt, "mlp", range(1, 2))
    names = {e.key for e in prof.key_averages()}
    assert "Optimizer.step#AdamW.step" in names


def test_scheduler_sees_the_optimizer_step_called():
    import warnings

    model = mlp()
    opt = ft.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, "mlp", range(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()"
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.05


def test_gradients_autograd_allocated_are_freed_at_zero_grad_as_in_torch():
    """The step copies them into the flat buffer but keeps them until
    zero_grad(): freeing them inside step() let glibc return the memory, and
    every backward then page-faulted its gradients in again."""
    import weakref

    model = mlp()
    opt = ft.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()  # grads None: autograd allocates them
    torch.nn.functional.mse_loss(model(torch.randn(8, 6)), torch.randn(8, 3)).backward()
    allocated = weakref.ref(model[0].weight.grad)
    opt.step()
    assert model[0].weight.grad is not allocated()  # now a view of the flat buffer
    assert allocated() is not None
    opt.zero_grad()
    assert allocated() is None
