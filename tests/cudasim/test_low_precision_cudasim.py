"""16-bit storage on CUDA parameters (simulator): bfloat16 and float16
parameters and gradients, 16-bit state for float32 parameters, Kahan
compensation and stochastic rounding give the bits of the CPU loops (the
same element functions and conversions, the same ``(seed, step, index)``
counter)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from numba import cuda

import fastgd

N = 37  # several blocks of FASTGD_CUDA_THREADS_PER_BLOCK=4, and a ragged end
STEPS = 3


def data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(N).astype(dtype)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(STEPS)]
    return p, grads


def both(rule, dtype, hp, **storage):
    """The CPU (serial) and CUDA runs of the same steps."""
    p, grads = data(dtype)
    cpu_p = p.copy()
    cpu = fastgd.OPTIMIZERS[rule](cpu_p, backend="serial", **hp, **storage)
    dev_p = cuda.to_device(p)
    dev = fastgd.OPTIMIZERS[rule](dev_p, **hp, **storage)
    assert dev.resolved_backend == "cuda"
    for g in grads:
        cpu.step(g)
        dev.step(cuda.to_device(g))
    return cpu, dev, cpu_p, dev_p.copy_to_host()


ROUNDINGS = {"nearest": {}, "kahan": {"kahan": True},
             "stochastic": {"stochastic_rounding": True, "seed": 1234}}  # fmt: skip


RULE_CONFIGS = [("adamw", {"lr": 0.01}), ("sgd", {"lr": 0.1, "momentum": 0.9}),
                ("lion", {"lr": 0.01})]  # fmt: skip


DTYPES = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}


@pytest.mark.parametrize("kind", sorted(DTYPES))
@pytest.mark.parametrize("rounding", sorted(ROUNDINGS))
@pytest.mark.parametrize("rule, hp", RULE_CONFIGS)
def test_16_bit_params_on_cuda_give_the_cpu_bits(rule, hp, rounding, kind):
    cpu, dev, cpu_p, dev_p = both(rule, DTYPES[kind], hp, **ROUNDINGS[rounding])
    assert dev_p.dtype == DTYPES[kind]
    np.testing.assert_array_equal(dev_p.view(np.uint16), cpu_p.view(np.uint16))
    sd_cpu, sd_dev = cpu.state_dict(), dev.state_dict()
    assert sd_dev["storage"] == sd_cpu["storage"]
    assert set(sd_dev["state"]) == set(sd_cpu["state"])
    for name, arr in sd_cpu["state"].items():
        assert sd_dev["state"][name].dtype == DTYPES[kind]
        np.testing.assert_array_equal(sd_dev["state"][name].view(np.uint16), arr.view(np.uint16))


@pytest.mark.parametrize("kind", sorted(DTYPES))
def test_16_bit_state_for_float32_params_on_cuda_gives_the_cpu_bits(kind):
    cpu, dev, cpu_p, dev_p = both("adam", np.float32, {"lr": 0.01}, state_dtype=kind)
    np.testing.assert_array_equal(dev_p, cpu_p)
    for name, arr in cpu.state_dict()["state"].items():
        got = dev.state_dict()["state"][name]
        assert got.dtype == DTYPES[kind]
        np.testing.assert_array_equal(got.view(np.uint16), arr.view(np.uint16))


def test_a_cuda_checkpoint_resumes_on_the_cpu_bit_identically():
    _, dev, _, dev_p = both("adamw", np.float16, {"lr": 0.01}, kahan=True)
    cpu_p = dev_p.copy()
    cpu = fastgd.AdamW(cpu_p, lr=0.01, kahan=True, backend="serial")
    cpu.load_state_dict(dev.state_dict())
    g = data(np.float16, seed=5)[1][0]
    cpu.step(g)
    dev.step(cuda.to_device(g))
    np.testing.assert_array_equal(dev.params.copy_to_host().view(np.uint16), cpu_p.view(np.uint16))


def test_16_bit_grads_must_match_the_params():
    p = cuda.to_device(np.ones(8, ml_dtypes.bfloat16))
    opt = fastgd.Adam(p)
    with pytest.raises(TypeError, match="grad dtype float16 differs from params dtype bfloat16"):
        opt.step(cuda.to_device(np.ones(8, np.float16)))
    assert opt.steps == 0
