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
