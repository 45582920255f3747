"""``fastgd.torch``'s CUDA path under the numba CUDA simulator.

The simulator's device memory is host memory, so host tensors with
``backend="cuda"`` take the adapter's CUDA path: the flat buffers become
(simulated) device arrays, state tensors are made from fastgd's device arrays,
and every step is a launch of the generated CUDA kernel over a range of the
buffer. Results are compared with torch.optim's for-loop implementation.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_torch_adapter import CASES, RULES_IN_TORCH, torch_optimizer  # noqa: E402

import fastgd.torch as ft  # noqa: E402

STEPS = 4
TOL = dict(rtol=2e-5, atol=1e-6)  # the simulator rounds through Python scalars


def small_model(complex_weight=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    if complex_weight:
        model.z = torch.nn.Parameter(torch.randn(2, 2, dtype=torch.complex64))
    return model


def loss_of(model, step):
    g = torch.Generator().manual_seed(step)
    loss = model(torch.randn(5, 3, generator=g)).pow(2).mean()
    if hasattr(model, "z"):
        loss = loss + (model.z * model.z.conj()).real.sum()
    return loss


def run(model, opt, steps, *, drop=None):
    for s in steps:
        opt.zero_grad()
        loss_of(model, s).backward()
        if drop is not None and s in drop:
            model[2].bias.grad = None  # this parameter misses the step
        opt.step()


def assert_same(m1, m2):
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        a, b = (torch.view_as_real(t.detach()) if t.is_complex() else t.detach() for t in (a, b))
        np.testing.assert_allclose(a.numpy(), b.numpy(), **TOL)


CASES_HERE = [(rule, kw) for rule in RULES_IN_TORCH for kw in CASES[rule][:2]]


@pytest.mark.parametrize(
    "rule, kw", CASES_HERE, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CASES_HERE)]
)
def test_cuda_path_matches_torch(rule, kw):
    m1, m2 = small_model(), small_model()
    opt = getattr(ft, rule)(m1.parameters(), backend="cuda", **kw)
    ref = torch_optimizer(rule, m2.parameters(), **kw)
    run(m1, opt, range(STEPS), drop={1})
    run(m2, ref, range(STEPS), drop={1})
    (buf,) = opt._buffers[0]
    assert buf.device and buf.opt._plan.backend == "cuda"
    assert type(buf.np_grad).__module__.startswith("numba.cuda.simulator")
    assert_same(m1, m2)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        s, r = opt.state[p], ref.state[q]
        assert s.keys() == r.keys()
        for name, value in r.items():
            np.testing.assert_allclose(s[name].numpy(), value.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("direction", ["fastgd_to_torch", "torch_to_fastgd"])
def test_cuda_path_state_dict_switch(direction):
    m_ref, m1, m2 = small_model(True), small_model(True), small_model(True)
    ref = torch_optimizer("NAdam", m_ref.parameters(), lr=0.01)
    run(m_ref, ref, range(2 * STEPS))

    def make(ours, model):
        if ours:
            return ft.NAdam(model.parameters(), lr=0.01, backend="cuda")
        return torch_optimizer("NAdam", model.parameters(), lr=0.01)

    first = direction == "fastgd_to_torch"
    o1 = make(first, m1)
    run(m1, o1, range(STEPS))
    m2.load_state_dict(m1.state_dict())
    o2 = make(not first, m2)
    o2.load_state_dict(o1.state_dict())
    run(m2, o2, range(STEPS, 2 * STEPS))
    assert_same(m2, m_ref)


def test_cuda_path_zero_grad_keeps_the_buffer():
    m1, m2 = small_model(), small_model()
    opt = ft.Adam(m1.parameters(), lr=0.01, backend="cuda")
    ref = torch_optimizer("Adam", m2.parameters(), lr=0.01)
    for s in range(STEPS):
        for m, o in ((m1, opt), (m2, ref)):
            o.zero_grad(set_to_none=False)
            loss_of(m, s).backward()
            o.step()
    (buf,) = opt._buffers[0]
    assert all(
        p.grad.data_ptr() == g.data_ptr() for p, g in zip(buf.params, buf.grads, strict=True)
    )
    assert_same(m1, m2)


def test_cuda_path_backend_cannot_switch_to_the_cpu():
    model = small_model()
    opt = ft.Adam(model.parameters(), backend="cuda")
    run(model, opt, range(1))
    before = [p.detach().clone() for p in model.parameters()]
    opt.param_groups[0]["backend"] = "serial"
    loss_of(model, 1).backward()
    with pytest.raises(TypeError, match="cannot run params that are a CUDA array"):
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)
