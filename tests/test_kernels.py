"""The compiled loops themselves: float32 stays float32, loops vectorize, code is cached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastgd
from fastgd import backends
from fastgd.rules import RULES

F64_ARITH = re.compile(r"\b(fadd|fsub|fmul|fdiv|frem)\b[^\n]*\bdouble\b|\bfpext\b|@llvm\.\w+\.f64")
VECTOR_F32 = re.compile(r"<(4|8|16) x float>")


def _serial_dispatcher(name: str, dtype, **hp):
    x = np.random.default_rng(0).random(64).astype(dtype)
    opt = fastgd.OPTIMIZERS[name](x, backend="serial", **hp)
    opt.step(np.ones_like(x))
    plan = opt._plan
    (flags,) = plan.loops
    module = backends.loops(opt.rule, plan.common, flags, plan.active, np.dtype(dtype).name)
    return module.serial


@pytest.mark.parametrize("name", sorted(fastgd.OPTIMIZERS))
def test_float32_kernel_has_no_float64_arithmetic_and_vectorizes(uncached, name):
    hp = {"maximize": True}
    if "weight_decay" in fastgd.OPTIMIZERS[name].hyperparameter_names():
        hp["weight_decay"] = 0.1
    dispatcher = _serial_dispatcher(name, np.float32, **hp)
    ir = "\n".join(dispatcher.inspect_llvm().values())
    offending = [line.strip() for line in ir.splitlines() if F64_ARITH.search(line)]
    assert offending == [], f"float64 arithmetic in the float32 {name} kernel: {offending[:3]}"
    assert VECTOR_F32.search(ir), f"the float32 {name} loop did not vectorize"


def test_every_rule_is_a_registered_optimizer():
    assert set(RULES) | {"adamw"} == set(fastgd.OPTIMIZERS)
    for name, cls in fastgd.OPTIMIZERS.items():
        assert cls.rule is RULES["adam" if name == "adamw" else name]


def test_generated_modules_are_reused_from_disk(tmp_path):
    """A second process loads the kernel from the disk cache instead of compiling it."""
    script = textwrap.dedent(
        """
        import numpy as np, fastgd
        from numba.core import event
        compiled = []
        class Listener(event.Listener):
            def on_start(self, ev): compiled.append(ev.data["dispatcher"])
            def on_end(self, ev): pass
        x = np.ones(10, np.float32)
        with event.install_listener("numba:compile", Listener()):
            fastgd.Adam(x, backend="serial").step(np.ones(10, np.float32))
        print(len(compiled))
        """
    )
    env = dict(os.environ, FASTGD_CACHE_DIR=str(tmp_path), FASTGD_DISABLE_CACHE="0")
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (int(r.stdout.split()[-1]) for r in runs)
    assert first >= 1
    assert second == 0
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))
