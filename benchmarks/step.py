"""Time one optimizer step: every rule x CPU loop x size x dtype, and on a CUDA GPU."""

from __future__ import annotations

import os

from benchmarks import common


class TimeStep:
    """Seconds per ``opt.step(grad)``, Python overhead included.

    ``setup`` compiles (or loads from fastgd's kernel cache) every loop the
    steps use and steps the optimizer, so no compilation lands in a timing.
    asv times each call on its own and re-runs ``setup`` (a dictionary look-up
    after the first) before each; a sample is the mean of ``number`` = 1e6 / N
    calls (1,000 at N = 1e3, one at 1e7).
    """

    params = (common.RULES, common.BACKENDS, common.SIZES, common.DTYPES)
    param_names = ["rule", "backend", "n", "dtype"]
    repeat = (3, 10, 1.0)
    warmup_time = 0.05
    timeout = 300

    def setup(self, rule, backend, n, dtype):
        self.opt, self.grad = common.once(
            (rule, backend, n, dtype), lambda: common.stepper(rule, backend, n, dtype)
        )
        self.number = max(1, 10**6 // n)

    def time_step(self, rule, backend, n, dtype):
        self.opt.step(self.grad)


class TimeStepCuda:
    """Seconds per ``opt.step(grad)`` on a CUDA GPU, kernel finished included.

    The parameters, gradient and state are numba device arrays; every timed
    step ends with ``numba.cuda.synchronize()``. Skipped (``n/a``) where no
    GPU is usable (no ``numba-cuda``, no device, or the CUDA simulator).
    """

    params = (common.RULES, [10**5, 10**7, 10**8], common.DTYPES)
    param_names = ["rule", "n", "dtype"]
    repeat = (3, 10, 1.0)
    warmup_time = 0.05
    timeout = 300

    def setup(self, rule, n, dtype):
        self.cuda = _usable_cuda()
        self.opt, self.grad = common.once(
            ("cuda", rule, n, dtype), lambda: _cuda_stepper(self.cuda, rule, n, dtype)
        )
        self.number = 10 if n <= 10**5 else 1

    def time_step_cuda(self, rule, n, dtype):
        self.opt.step(self.grad)
        self.cuda.synchronize()


def _usable_cuda():
    """``numba.cuda`` if a real GPU is there; else skip the benchmark."""
    import numba

    if getattr(numba.config, "ENABLE_CUDASIM", 0):
        raise NotImplementedError("the CUDA simulator is on: no GPU timings")
    if not _has_nvidia_driver():  # skip before the slow import of numba.cuda
        raise NotImplementedError("no NVIDIA driver")
    try:
        from numba import cuda
    except ImportError as e:  # numba-cuda not installed
        raise NotImplementedError(f"numba.cuda is not importable: {e}") from None
    if not cuda.is_available():
        raise NotImplementedError("no CUDA GPU")
    return cuda


def _has_nvidia_driver() -> bool:
    import ctypes.util

    return (
        os.path.exists("/proc/driver/nvidia")
        or os.path.exists("/dev/nvidiactl")
        or ctypes.util.find_library("cuda") is not None
    )


def _cuda_stepper(cuda, rule, n, dtype):
    common.require_rule(rule)
    params, grad = (cuda.to_device(a) for a in common.arrays(n, dtype, 2))
    opt = common.optimizer(rule, params, "cuda")
    for _ in range(common.WARMUP_STEPS):
        opt.step(grad)
    cuda.synchronize()
    return opt, grad
