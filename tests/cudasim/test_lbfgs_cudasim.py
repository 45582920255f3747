"""L-BFGS and ``minimize`` on CUDA arrays, under the numba CUDA simulator.

The kernels (:mod:`fastgd.lbfgs._cuda`) against the textbook float64 two-loop
recursion and NumPy; ``minimize`` with a CUDA ``x0`` against the same run on
NumPy arrays (the same iterations and evaluations, the same point to the
summation order's rounding). Blocks of 4 threads (set by the launcher), so
that 37 elements span 10 blocks with a ragged last one; the driver runs use
11 elements (3 blocks) to keep the simulator's threads few.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from numba import cuda
from test_lbfgs_kernels import make_ring, reference_two_loop

import fastgd
from fastgd import problems
from fastgd.driver import Status
from fastgd.lbfgs import History
from fastgd.lbfgs import _cuda as C
from fastgd.lbfgs import _kernels as K

N = 37
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


@pytest.fixture(autouse=True, scope="module")
def short_switch_interval():
    """The simulator runs each CUDA thread as a Python thread and polls them at
    ``cuda.syncthreads()``: a short GIL switch interval makes these
    reduction-heavy kernels ~3x faster (it would slow compute-heavy ones)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.mark.parametrize("m, count, head", [(3, 0, 0), (3, 2, 0), (4, 4, 1)])
def test_two_loop_matches_textbook_and_cpu(m, count, head, dtype):
    g, S, Y, rho, order, pairs = make_ring(m, count, head, N, dtype, seed=m + count)
    S, Y = np.nan_to_num(S), np.nan_to_num(Y)  # device rows not listed are never read either
    gamma = 0.7
    ref, _ = reference_two_loop(g, pairs, gamma)
    d_cpu, alpha_cpu = np.empty_like(g), np.zeros(m)
    gd_cpu = K.two_loop(g, S, Y, rho, order, count, gamma, d_cpu, alpha_cpu, "serial")
    d = cuda.device_array(N, dtype)
    alpha = np.zeros(m)
    gd = C.two_loop(
        cuda.to_device(g), cuda.to_device(S), cuda.to_device(Y), rho, order, count, gamma, d,
        alpha, C.Scratch(),
    )  # fmt: skip
    out = d.copy_to_host()
    rtol = RTOL[np.dtype(dtype)]
    scale = np.abs(ref).max()
    assert out.dtype == dtype
    assert np.abs(out - ref).max() <= rtol * scale
    assert np.abs(out - d_cpu).max() <= rtol * scale
    np.testing.assert_allclose(alpha[order[:count]], alpha_cpu[order[:count]], rtol=rtol)
    exact = float(np.dot(g.astype(np.float64), out.astype(np.float64)))
    assert gd == pytest.approx(exact, rel=1e-13)
    assert gd == pytest.approx(gd_cpu, rel=rtol)


def test_pair_step_and_reductions_match_numpy(dtype):
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(3)
    d, gn, go, x0 = (rng.standard_normal(N).astype(dtype) for _ in range(4))
    scratch = C.Scratch()
    s, y = cuda.device_array(N, dtype), cuda.device_array(N, dtype)
    sy, yy = C.update_pair(0.25, cuda.to_device(d), cuda.to_device(gn), cuda.to_device(go), s, y,
                           scratch)  # fmt: skip
    s_ref, y_ref = (dtype(0.25) * d).astype(dtype), (gn - go).astype(dtype)
    np.testing.assert_array_equal(s.copy_to_host(), s_ref)
    np.testing.assert_array_equal(y.copy_to_host(), y_ref)
    f64 = np.float64
    assert sy == pytest.approx(np.dot(s_ref.astype(f64), y_ref.astype(f64)), rel=1e-14)
    assert yy == pytest.approx(np.dot(y_ref.astype(f64), y_ref.astype(f64)), rel=1e-14)
    out = cuda.device_array(N, dtype)
    C.step_to(cuda.to_device(x0), cuda.to_device(d), 0.5, out, scratch)
    np.testing.assert_array_equal(out.copy_to_host(), x0 + dtype(0.5) * d)
    gd, big = C.dot_and_maxabs(cuda.to_device(gn), cuda.to_device(d), scratch)
    assert gd == pytest.approx(np.dot(gn.astype(f64), d.astype(f64)), rel=1e-14)
    assert big == np.abs(gn).max()
    gn[17] = np.nan
    assert math.isnan(C.dot_and_maxabs(cuda.to_device(gn), cuda.to_device(d), scratch)[1])
    gn[17] = -np.inf
    assert C.dot_and_maxabs(cuda.to_device(gn), cuda.to_device(d), scratch)[1] == np.inf


def test_history_on_device_matches_host_over_a_wrapping_ring(dtype):
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(5)
    host, dev = History(N, dtype, m=3, backend="serial"), History(N, dtype, m=3, backend="cuda")
    g = rng.standard_normal(N).astype(dtype)
    for _ in range(4):  # wraps the ring of 3
        d_host = host.direction(g).copy()
        d_dev = dev.direction(cuda.to_device(g)).copy_to_host()
        rtol = RTOL[np.dtype(dtype)] * 10
        assert np.abs(d_dev - d_host).max() <= rtol * np.abs(d_host).max()
        g_new = (0.5 * g + 0.1 * rng.standard_normal(N)).astype(dtype)
        assert host.push(0.5, host.d, g_new, g) == dev.push(
            0.5, dev.d, cuda.to_device(g_new), cuda.to_device(g)
        )
        assert (host.count, host.head) == (dev.count, dev.head)
        g = g_new
    assert dev.gamma == pytest.approx(host.gamma, rel=rtol)


# -- minimize with a CUDA x0 ----------------------------------------------------------------

SMALL = 11


def device_fun(p, calls=None):
    """``p.fun_and_grad`` for device arrays (the test copies; fastgd does not)."""

    def fun(x):
        if calls is not None:
            calls.append(x)
        f, g = p.fun_and_grad(x.copy_to_host())
        return f, cuda.to_device(g)

    return fun


def quadratic(dtype=np.float64):
    p = problems.IllConditionedQuadratic(SMALL, condition=30.0, seed=1)
    return p, p.x0.astype(dtype)


def test_lbfgs_on_cuda_x0_takes_the_numpy_runs_steps(dtype):
    p, x0 = quadratic(dtype)
    calls = []
    opts = dict(m=3, maxiter=12)
    gpu = fastgd.minimize(device_fun(p, calls), cuda.to_device(x0), jac=True, method="lbfgs",
                          options=opts)  # fmt: skip
    cpu = fastgd.minimize(p.fun_and_grad, x0, jac=True, method="lbfgs", options=opts,
                          dtype=dtype)  # fmt: skip
    assert fastgd._checks.is_cuda_array(gpu.x) and fastgd._checks.is_cuda_array(gpu.jac)
    assert gpu.x.dtype == dtype and all(fastgd._checks.is_cuda_array(x) for x in calls)
    assert (gpu.status, gpu.nit, gpu.nfev) == (cpu.status, cpu.nit, cpu.nfev)
    assert gpu.fun == pytest.approx(cpu.fun, rel=RTOL[np.dtype(dtype)] * 10)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(gpu.x.copy_to_host(), cpu.x, rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu.history["lr"], cpu.history["lr"], rtol=tol)
    np.testing.assert_allclose(p.x0.astype(dtype), x0)  # x0 untouched


def test_first_order_method_on_cuda_x0_matches_numpy():
    p, x0 = quadratic()
    opts = dict(lr=0.05, maxiter=8)
    gpu = fastgd.minimize(device_fun(p), cuda.to_device(x0), jac=True, method="adam",
                          options=opts)  # fmt: skip
    cpu = fastgd.minimize(p.fun_and_grad, x0, jac=True, method="adam", options=opts)
    assert (gpu.nit, gpu.status) == (cpu.nit, cpu.status)
    np.testing.assert_allclose(gpu.x.copy_to_host(), cpu.x, rtol=1e-12)
    np.testing.assert_allclose(gpu.history["grad_norm"], cpu.history["grad_norm"], rtol=1e-12)


def test_callback_gets_a_device_copy_and_early_stopping_restores_on_device():
    p, x0 = quadratic()
    seen = []
    res = fastgd.minimize(device_fun(p), cuda.to_device(x0), jac=True, method="lbfgs",
                          options=dict(m=3, maxiter=3), callback=seen.append)  # fmt: skip
    assert len(seen) == 3 and all(fastgd._checks.is_cuda_array(x) for x in seen)
    assert seen[-1] is not res.x
    np.testing.assert_array_equal(seen[-1].copy_to_host(), res.x.copy_to_host())
    # val_fun rising after the first step: restore_best brings x back to that step's
    runs = {}
    for where, start, fun in (("gpu", cuda.to_device(x0), device_fun(p)),
                              ("cpu", x0, p.fun_and_grad)):  # fmt: skip
        ups = iter(range(100))
        runs[where] = fastgd.minimize(
            fun, start, jac=True, method="sgd", options=dict(lr=0.01),
            val_fun=lambda x, ups=ups: float(next(ups)),
            early_stopping=dict(patience=2, restore_best=True),
        )  # fmt: skip
    gpu, cpu = runs["gpu"], runs["cpu"]
    assert gpu.status == cpu.status == Status.EARLY_STOPPING and gpu.nit == cpu.nit == 3
    assert "restored x from iteration 1" in gpu.message
    np.testing.assert_allclose(gpu.x.copy_to_host(), cpu.x, rtol=1e-14)
    assert not np.array_equal(cpu.x, x0)


def test_cuda_x0_refusals_come_before_fun_runs():
    p, x0 = quadratic()
    calls = []
    fun = device_fun(p, calls)
    dx = cuda.to_device(x0)
    for kwargs, needle in [
        (dict(method="lbfgs", clip_norm=1.0), "clip_norm"),
        (dict(method="adam", clip_value=1.0), "clip_value"),
        (dict(method="adam", l1=0.1), "l1"),
        (dict(method="nesterov"), "nesterov"),
        (dict(method="adam", batch_size=2, n_samples=4), "mini-batches"),
        (dict(method="adam", backend="parallel"), "backend must be 'auto' or 'cuda'"),
        (dict(method="lbfgs", options=dict(form="vector_free")), "two_loop"),
    ]:
        with pytest.raises(ValueError, match=needle):
            fastgd.minimize(fun, dx, jac=True, **kwargs)
    assert calls == []
    bad = x0.copy()
    bad[4] = np.inf
    with pytest.raises(ValueError, match="4"):
        fastgd.minimize(fun, cuda.to_device(bad), jac=True, method="lbfgs")
    with pytest.raises(TypeError, match="float32 or float64"):
        fastgd.minimize(fun, cuda.to_device(np.arange(3)), jac=True, method="lbfgs")
    assert calls == []


def test_gradients_that_are_not_cuda_arrays_of_x_are_refused():
    p, x0 = quadratic()
    dx = cuda.to_device(x0)
    with pytest.raises(TypeError, match="must be a CUDA array"):
        fastgd.minimize(lambda x: p.fun_and_grad(x.copy_to_host()), dx, jac=True, method="lbfgs")
    with pytest.raises(TypeError, match="dtype"):
        fastgd.minimize(
            lambda x: (1.0, cuda.to_device(np.ones(SMALL, np.float32))), dx, jac=True,
            method="lbfgs",
        )  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        fastgd.minimize(lambda x: (1.0, cuda.to_device(np.ones(SMALL + 1))), dx, jac=True,
                        method="lbfgs")  # fmt: skip


def test_explicit_dtype_casts_on_the_device():
    p, x0 = quadratic()
    res = fastgd.minimize(
        lambda x: (0.0, cuda.to_device(np.zeros(SMALL, np.float32))), cuda.to_device(x0),
        jac=True, method="lbfgs", dtype=np.float32,
    )  # fmt: skip
    assert res.x.dtype == np.float32 and res.status == Status.GTOL
    np.testing.assert_array_equal(res.x.copy_to_host(), x0.astype(np.float32))
