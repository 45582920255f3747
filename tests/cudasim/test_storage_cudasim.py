"""The storage conversions in a CUDA kernel (simulator) equal the CPU loop's, bit for bit.

Under the simulator the device functions of :mod:`fastgd.storage` run as plain
Python (numpy scalars), so this checks that the one source gives the same bits
in Python and compiled for the CPU, including the counter-based hash of
stochastic rounding. Few values: the simulator is slow.
"""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np
import pytest
from numba import cuda

import fastgd
from fastgd import backends, config, storage

N = 600
SEED, STEP = 2**33 + 5, 11
NAMES = (
    "bf16_bits_to_f32",
    "f16_bits_to_f32",
    "f32_to_bf16_bits",
    "f32_to_f16_bits",
    "f32_to_bf16_bits_sr",
    "f32_to_f16_bits_sr",
)

pytestmark = pytest.mark.skipif(
    not storage._cuda_simulator(), reason="runs under the CUDA simulator only"
)


def _inputs():
    rng = np.random.default_rng(3)
    bits16 = rng.integers(0, 2**16, N, dtype=np.uint32).astype(np.uint16)
    bits16[:8] = [0x0000, 0x8000, 0x7C00, 0x7F80, 0x7FC1, 0x0001, 0x03FF, 0xFBFF]
    x = rng.integers(0, 2**32, N, dtype=np.uint64).astype(np.uint32)
    x[: N // 3] = np.abs(rng.standard_normal(N // 3)).astype(np.float32).view(np.uint32)
    x[N // 3 : N // 2] = (x[N // 3 : N // 2] & 0xFFFF0000) | 0x8000  # bfloat16 ties
    x[:10] = [0, 0x80000000, 0x7F800000, 0xFF800001, 0x7F7F8000, 0x477FF000, 0x33000000,
              0x00000001, 0x38800000, 0x2F000001]  # fmt: skip
    return bits16, x.view(np.float32)


def _loops(fns):
    load_bf16, load_f16, round_bf16, round_f16, sr_bf16, sr_f16 = fns

    def convert(u, x, seed, step, wide_bf16, wide_f16, nb, nh, sb, sh, i):
        wide_bf16[i] = load_bf16(u[i])
        wide_f16[i] = load_f16(u[i])
        nb[i] = round_bf16(x[i])
        nh[i] = round_f16(x[i])
        sb[i] = sr_bf16(x[i], seed, step, i)
        sh[i] = sr_f16(x[i], seed, step, i)

    return convert


_CPU = [storage.cpu_function(name) for name in NAMES]
_DEV = [storage.cuda_function(name) for name in NAMES]
_cpu_convert = numba.njit(_loops(_CPU))
_dev_convert = cuda.jit(device=True)(_loops(_DEV))


@numba.njit
def cpu_kernel(u, x, seed, step, a, b, c, d, e, f):
    for i in range(u.shape[0]):
        _cpu_convert(u, x, seed, step, a, b, c, d, e, f, i)


@cuda.jit
def cuda_kernel(u, x, seed, step, a, b, c, d, e, f):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, u.shape[0], stride):
        _dev_convert(u, x, seed, step, a, b, c, d, e, f, i)


def _outputs():
    return [np.zeros(N, dt) for dt in (np.float32, np.float32) + (np.uint16,) * 4]


def test_device_conversions_match_cpu_bit_for_bit():
    bits16, x = _inputs()
    cpu = _outputs()
    cpu_kernel(bits16, x, SEED, STEP, *cpu)
    dev = [cuda.to_device(a) for a in _outputs()]
    threads = config.CUDA_THREADS_PER_BLOCK
    cuda_kernel[3, threads](cuda.to_device(bits16), cuda.to_device(x), SEED, STEP, *dev)
    for name, ours, ref in zip(NAMES, (a.copy_to_host() for a in dev), cpu, strict=True):
        u, r = ours.view(f"u{ours.itemsize}"), ref.view(f"u{ref.itemsize}")
        bad = np.flatnonzero(u != r)
        assert bad.size == 0, f"{name}: {bad.size} differ, first at {bad[0]}"
    assert np.isnan(cpu[0]).any() and np.isinf(cpu[1]).any()


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_stochastic_kernel_matches_the_cpu_loop_across_a_2_32_boundary(kind):
    """The generated CUDA kernel hashes each element's full counter
    (``random_bits``), the CPU loop a prefix per 2**32 indices and the low
    word per element: the same bits, where ``offset + i`` crosses 2**32."""
    opt = fastgd.OPTIMIZERS["adam"](np.zeros(8, np.float32), backend="serial")
    plan = opt._current_plan()
    flags, scalars = plan.prepare(plan.hp, 1, {})
    scalars = plan.common_scalars + scalars
    sr = backends.Storage(kind, kind, kind, "stochastic")
    n, offset = 64, 2**32 - 37
    rng = np.random.default_rng(5)
    dt = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[kind]
    p, g = (rng.standard_normal(n).astype(dt).view(np.uint16) for _ in range(2))
    states = [np.zeros(n, np.uint16) for _ in plan.active]
    cpu_p, cpu_states = p.copy(), [s.copy() for s in states]
    loop = backends.cpu_loop(opt.rule, plan.common, flags, plan.active, "serial", "float32", sr)
    loop(cpu_p, g, *cpu_states, scalars, SEED, STEP, offset)
    module = backends.loops(opt.rule, plan.common, flags, plan.active, "float32", "cuda", sr)
    dev_p, dev_g, *dev_states = (cuda.to_device(a) for a in (p, g, *states))
    c = tuple(np.float32(x) for x in scalars)
    module.kernel[3, config.CUDA_THREADS_PER_BLOCK](
        dev_p, dev_g, *dev_states, c, SEED, STEP, offset
    )
    np.testing.assert_array_equal(dev_p.copy_to_host(), cpu_p)
    for ours, ref in zip(dev_states, cpu_states, strict=True):
        np.testing.assert_array_equal(ours.copy_to_host(), ref)
    assert not np.array_equal(cpu_p, p)
