"""Every rule's CUDA kernel compiles to real PTX for Hopper (cc 9.0), without a GPU.

numba-cuda compiles the device functions a kernel calls for the *current*
device, which needs a driver; the fixture stands in a device that reports
compute capability 9.0 so the kernel and its device functions are compiled
for sm_90 together, exactly as ``compile_ptx(..., cc=(9, 0))`` asks.
"""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import pytest

import fastgd
from fastgd import backends
from fastgd.rules import RULES

cuda = pytest.importorskip("numba.cuda")
if cuda.is_available() and getattr(cuda, "simulator_enabled", False):  # pragma: no cover
    pytest.skip("PTX compilation is not available under the simulator", allow_module_level=True)

F64 = re.compile(r"\.f64\b")


@pytest.fixture
def hopper(monkeypatch):
    import numba.cuda.dispatcher as dispatcher

    fake = SimpleNamespace(compute_capability=(9, 0))
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: fake)
    monkeypatch.setattr(backends, "_modules", dict(backends._modules))


def _configurations(rule):
    """All flags off, all on, and each rule flag alone (with the common flags on)."""
    n = len(rule.flags)
    yield (False,) * 5, (False,) * n
    yield (True, True, False, True, True), (True,) * n
    yield (False, False, True, False, False), (True,) * n
    for k in range(n):
        yield (False,) * 5, tuple(j == k for j in range(n))


def _ptx(rule, common, flags, dtype):
    from numba import types

    nb = getattr(types, dtype)
    active = rule.states
    module = backends.loops(rule, common, flags, active, dtype, "cuda")
    array = types.Array(nb, 1, "C")
    scalars = types.UniTuple(nb, len(backends.COMMON_SCALARS) + len(rule.scalars))
    sig = (array, array) + (array,) * len(active) + (scalars,)
    ptx, _ = cuda.compile_ptx(module.kernel.py_func, sig, cc=(9, 0))
    return ptx


@pytest.mark.parametrize(
    "name, dtype", list(itertools.product(sorted(RULES), ["float32", "float64"]))
)
def test_kernel_compiles_to_sm90_ptx(hopper, name, dtype):
    rule = RULES[name]
    for common, flags in _configurations(rule):
        ptx = _ptx(rule, common, flags, dtype)
        assert ".target sm_90" in ptx
        assert ".entry" in ptx
        if dtype == "float32":
            bad = [line.strip() for line in ptx.splitlines() if F64.search(line)]
            assert bad == [], f"float64 in float32 {name} kernel {common} {flags}: {bad[:3]}"
        else:
            assert F64.search(ptx)


def test_cpu_import_does_not_load_numba_cuda():
    import subprocess
    import sys

    code = "import sys, numpy as np, fastgd; fastgd.Adam(np.ones(3)).step(np.ones(3)); " \
           "print('numba.cuda' in sys.modules, 'fastgd.cuda' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_optimizer_has_a_cuda_kernel_rule():
    assert {cls.rule.name for cls in fastgd.OPTIMIZERS.values()} == set(RULES)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lbfgs_kernels_compile_to_sm90_ptx(hopper, dtype):
    """The L-BFGS passes: element arithmetic and stores in the arrays' dtype,
    products widened to float64 for the sums (no float64 store to a vector)."""
    from numba import types

    from fastgd.lbfgs import _cuda as C

    nb = getattr(types, dtype)
    vec, part = types.Array(nb, 1, "C"), types.Array(types.float64, 2, "C")
    signatures = {
        C._pass_kernel: (vec, vec, vec, nb, nb, types.boolean, part),
        C._pair_kernel: (nb, vec, vec, vec, vec, vec, part),
        C._step_kernel: (vec, vec, nb, vec),
        C._dm_kernel: (vec, vec, vec, types.boolean, part),
    }
    for kernel, sig in signatures.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        assert ".target sm_90" in ptx and ".entry" in ptx
        if True:  # the vectors' stores (_dm_kernel's copy of g) in their dtype
            assert f"st.global.{'f32' if dtype == 'float32' else 'f64'}" in ptx
        if dtype == "float32":
            if kernel in (C._pass_kernel, C._step_kernel):  # the element arithmetic
                assert re.search(r"\b(mul|add|sub|fma\.rn)(\.rn)?\.f32\b", ptx)
            if kernel is C._step_kernel:  # no sum: nothing float64 at all
                assert not F64.search(ptx)
            else:  # float32 products widened for the float64 sums
                assert "cvt.f64.f32" in ptx


@pytest.mark.parametrize("rounding", ["nearest", "stochastic", "kahan"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_stored_kernels_compile_to_sm90_ptx_without_float64(hopper, kind, rounding):
    """16-bit storage (fastgd.backends.Storage): uint16 loads and stores, the
    arithmetic float32, the stochastic rounding's hash integer: no float64."""
    import numpy as np
    from numba import types

    from fastgd import storage as _storage

    # the CPU's (hardware) float16 route compiled first must not leak into CUDA
    _storage.cpu_function("f32_to_f16_bits")(np.float32(1.5))
    _storage.cpu_function("f16_bits_to_f32")(np.uint16(0x3C00))
    rule = RULES["adam"]
    storage = backends.Storage(kind, kind, kind, rounding)
    active = ("exp_avg", "exp_avg_sq")
    module = backends.loops(rule, (False,) * 5, (False,), active, "float32", "cuda", storage)
    u16 = types.Array(types.uint16, 1, "C")
    scalars = types.UniTuple(types.float32, len(backends.COMMON_SCALARS) + len(rule.scalars))
    sig = (u16, u16, u16, u16) + ((u16,) if rounding == "kahan" else ()) + (scalars,)
    sig += (types.int64,) * 3 if rounding == "stochastic" else ()
    ptx, _ = cuda.compile_ptx(module.kernel.py_func, sig, cc=(9, 0))
    assert ".target sm_90" in ptx and "ld.global.u16" in ptx and "st.global.u16" in ptx
    bad = [line.strip() for line in ptx.splitlines() if F64.search(line)]
    assert bad == [], f"float64 in the {kind} {rounding} kernel: {bad[:3]}"
    assert "call" not in ptx.split(".entry", 1)[1]


def test_storage_kernels_compile_after_other_cuda_code():
    """The CPU compiled stochastic rounding, then numba-cuda compiled a user's
    kernel, then fastgd's CUDA conversions were registered: the 16-bit kernels
    still compile (numba types a function once for every target, so CUDA gets
    copies of the conversions the CPU never saw). A fresh process: the
    registration happens once per process."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        from types import SimpleNamespace
        import numpy as np
        import fastgd
        p = np.ones(8, np.float16)  # the CPU's stochastic rounding compiled first
        fastgd.SGD(p, lr=0.1, stochastic_rounding=True, seed=1).step(np.ones(8, np.float16))
        import numba.cuda.dispatcher as dispatcher
        from numba import cuda, types
        dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))

        @cuda.jit
        def other(x):
            x[0] = x[0] * 2
        cuda.compile_ptx(other.py_func, (types.Array(types.float32, 1, "C"),), cc=(9, 0))

        from fastgd import backends
        from fastgd.rules import RULES
        rule = RULES["adam"]
        u16 = types.Array(types.uint16, 1, "C")
        scalars = types.UniTuple(types.float32, len(backends.COMMON_SCALARS) + len(rule.scalars))
        for kind in ("bfloat16", "float16"):
            storage = backends.Storage(kind, kind, kind, "stochastic")
            module = backends.loops(rule, (False,) * 5, (False,), ("exp_avg", "exp_avg_sq"),
                                    "float32", "cuda", storage)
            sig = (u16, u16, u16, u16, scalars) + (types.int64,) * 3
            ptx, _ = cuda.compile_ptx(module.kernel.py_func, sig, cc=(9, 0))
            assert "st.global.u16" in ptx
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-3000:]
