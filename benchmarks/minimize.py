"""Time ``fastgd.minimize`` on the problems of ``fastgd compare``, for a fixed number of steps.

Each run starts at the problem's ``x0`` with the step sizes ``fastgd compare``
tunes (:func:`fastgd.comparison.tuned_options`) and ``gtol=0``, so it always
takes exactly :data:`ITERATIONS` steps (``setup`` checks that once): the time
is the driver's per-step overhead plus the problem's ``fun_and_grad`` and the
fused step. The small problems show the driver's overhead; ``large`` (n = 1e6)
is dominated by passes over memory.
"""

from __future__ import annotations

import fastgd
from benchmarks import common

try:
    from fastgd import comparison
except ImportError:  # a commit from before fastgd.comparison
    comparison = None

PROBLEMS = list(comparison.DEFAULT_PROBLEMS) if comparison else ["rosenbrock"]
METHODS = list(comparison.DEFAULT_METHODS) if comparison else ["adam"]
#: Steps per run: 100, and 10 on the large problem (about 30 ms a step).
ITERATIONS = {"large": 10}
DEFAULT_ITERATIONS = 100


class Minimize:
    """Seconds per ``fastgd.minimize`` run of a fixed number of steps."""

    params = (PROBLEMS, METHODS)
    param_names = ["problem", "method"]
    number = 1
    repeat = (3, 10, 2.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, problem, method):
        if comparison is None:
            raise NotImplementedError("fastgd.comparison is not in this commit")
        self.problem, self.options = common.once(
            (problem, method), lambda: _prepared(problem, method)
        )

    def time_minimize(self, problem, method):
        p = self.problem
        fastgd.minimize(p.fun_and_grad, p.x0, jac=True, method=method, options=self.options)


def _prepared(name: str, method: str):
    """The problem and options; one full run compiles the kernels and checks the step count."""
    problem = comparison.make_problem(name)
    iterations = ITERATIONS.get(name, DEFAULT_ITERATIONS)
    options = {**comparison.tuned_options(problem, method, name), "maxiter": iterations, "gtol": 0}
    fg = problem.fun_and_grad
    res = fastgd.minimize(fg, problem.x0, jac=True, method=method, options=options)
    if res.nit != iterations:
        raise RuntimeError(f"{method} on {name} stopped after {res.nit} steps: {res.message}")
    return problem, options
