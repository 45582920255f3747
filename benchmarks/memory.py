"""A step allocates nothing beyond the parameters and the optimizer state.

Two ways to see it:

- ``peakmem_step`` against ``peakmem_arrays``: both have the same setup (the
  kernels warmed on a small copy, then params and grad of N = 1e7 float32 and
  an optimizer that has not stepped yet, so it holds no state). One then takes
  the optimizer's first step, which allocates the state and updates in place;
  the other only allocates arrays of the state's size. asv's peakmem is the
  process's peak resident memory, so the two are equal when a step allocates
  nothing else; one float32 temporary would add 40 MB.
- ``track_step_allocated_bytes``: what tracemalloc (which sees every NumPy
  allocation) counts at the peak of one step above its start, at N = 1e6
  minus at N = 1e3. The fixed Python overhead of a call (a tuple of host
  scalars, 150-300 bytes) cancels; a temporary array would not. Expect 0.
  numba's own allocations inside a kernel are invisible to tracemalloc; the
  fused loops make none, and the peakmem pair would show them.
"""

from __future__ import annotations

import statistics
import tracemalloc

import numpy as np

from benchmarks import common

DTYPE = "float32"


class PeakMemory:
    """Peak resident memory of the process, setup included, in bytes."""

    params = (common.RULES,)
    param_names = ["rule"]
    timeout = 300

    def setup(self, rule):
        self.n_states = common.warm_kernels(rule, "auto", DTYPE)
        params, self.grad = common.arrays(common.LARGE_N, DTYPE, 2)
        self.opt = common.optimizer(rule, params, "auto")

    def peakmem_step(self, rule):
        """The optimizer's first step: allocates its state, then updates in place."""
        self.opt.step(self.grad)

    def peakmem_arrays(self, rule):
        """The baseline: the state's arrays, allocated and written, and no step."""
        self.state = [np.full(common.LARGE_N, 0.5, DTYPE) for _ in range(self.n_states)]


class Allocations:
    """Bytes a step allocates that grow with the array size (tracemalloc)."""

    params = (common.RULES,)
    param_names = ["rule"]
    timeout = 120

    def setup(self, rule):
        self.small = common.stepper(rule, "serial", 10**3, DTYPE)
        self.large = common.stepper(rule, "serial", 10**6, DTYPE)

    def track_step_allocated_bytes(self, rule):
        return traced_peak(*self.large) - traced_peak(*self.small)

    track_step_allocated_bytes.unit = "bytes"


def traced_peak(opt, grad, steps: int = 5) -> int:
    """Median over ``steps`` steps of tracemalloc's peak during a step above its start."""
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(steps):
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            opt.step(grad)
            peaks.append(tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()
    return int(statistics.median(peaks))
