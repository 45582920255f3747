"""``fastgd bench --lbfgs``: the cost of an L-BFGS iteration beyond ``fun``,
fastgd's against SciPy's L-BFGS-B, and against the memory traffic it needs.

Both run the same problem from the same start for a fixed number of
iterations with the same memory ``m`` (``gtol = ftol = 0``: no early stop);
``fun`` is wrapped in a timer, and the *overhead* per iteration is the wall
time minus the time inside ``fun``, divided by the iterations. fastgd's
bytes per iteration are counted from its kernels' passes (see
:func:`lbfgs_bytes`) and divided by the memory ceiling's bandwidth (fastgd's
ceiling loop, parallel, measured in the same run) to give the traffic bound.

Problems: the ill-conditioned quadratic (condition 1e3) and logistic
regression with 8 samples of ``n`` features (so that its data fit in memory
at ``n = 1e7``), float64.
"""

from __future__ import annotations

import time
from statistics import median

from fastgd.bench._timing import format_n
from fastgd.bench.torch_models import _ms, _ratio

#: ``fastgd bench --lbfgs`` defaults: issue 11's sizes and problems.
LBFGS_SIZES = (10**6, 10**7)
LBFGS_PROBLEMS = ("quadratic", "logistic")
LBFGS_ITERATIONS = 10
LBFGS_M = 10
#: The ceiling loop's size: large enough that its 3 arrays are DRAM-bound.
CEILING_N = 10**7


def make(problem: str, n: int):
    """The benchmark's problem of ``n`` float64 parameters."""
    from fastgd import problems

    if problem == "quadratic":
        return problems.IllConditionedQuadratic(n, condition=1e3, seed=0)
    if problem == "logistic":
        return problems.LogisticRegression(n_samples=8, n_features=n, seed=0)
    raise ValueError(f"unknown problem {problem!r}; choose from {', '.join(LBFGS_PROBLEMS)}")


def lbfgs_bytes(n: int, itemsize: int, m: int, pairs: int, evaluations: float) -> int:
    """Bytes an iteration of ``method="lbfgs"`` moves (``pairs`` stored pairs,
    ``evaluations`` of ``fun`` per iteration), by its kernels' passes:

    - the two-loop recursion: ``(8 pairs + 2)`` vectors (``2 n`` without pairs);
    - per trial point: ``x + stp d`` (3 vectors) and the gradient's dot with
      ``d`` (2);
    - the new pair ``s = stp d``, ``y = g_new - g`` with ``s.y``, ``y.y`` (5);
    - the driver's gradient measures (2) and its copy of the gradient (2).
    """
    direction = 8 * pairs + 2 if pairs else 2
    vectors = direction + 5 * evaluations + 5 + 2 + 2
    return int(vectors * n * itemsize)


class _Timed:
    def __init__(self, fun):
        self.fun, self.seconds, self.calls = fun, 0.0, 0

    def __call__(self, x):
        t0 = time.perf_counter()
        out = self.fun(x)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def _overhead(run, fun) -> tuple[float, object]:
    timed = _Timed(fun)
    t0 = time.perf_counter()
    res = run(timed)
    wall = time.perf_counter() - t0
    return (wall - timed.seconds) / max(res.nit, 1), res


def measure_lbfgs(
    problem: str = "quadratic",
    n: int = 10**6,
    iterations: int | None = None,
    m: int = LBFGS_M,
    repeat: int = 3,
    progress=None,
) -> dict:
    """Per-iteration overhead of fastgd's L-BFGS and SciPy's L-BFGS-B.

    Parameters
    ----------
    problem : {"quadratic", "logistic"}
    n : int
        Parameters (float64).
    iterations, m : int
        Iterations per run (default :data:`LBFGS_ITERATIONS`, read at call
        time) and history size, the same for both.
    repeat : int
        Interleaved runs of each; medians are reported.
    progress : callable, optional
        Called with a short text before each run.

    Returns
    -------
    dict
        ``fastgd_s``, ``scipy_s`` (overhead seconds per iteration), ``x_scipy``
        (their ratio), ``bytes`` (fastgd's per iteration), ``bound_s`` (those
        bytes at the ceiling's bandwidth), ``of_bound`` (bound / fastgd),
        ``nit``, ``nfev`` of each, and the configuration.
    """
    import scipy.optimize

    import fastgd
    from fastgd import bench

    say = progress or (lambda text: None)
    iterations = LBFGS_ITERATIONS if iterations is None else iterations
    p = make(problem, n)
    x0 = p.x0
    fun = p.fun_and_grad
    opts = dict(m=m, maxiter=iterations, gtol=0.0, ftol=0.0)

    def ours(f):
        return fastgd.minimize(f, x0, jac=True, method="lbfgs", options=opts)

    def theirs(f):
        return scipy.optimize.minimize(
            f, x0, jac=True, method="L-BFGS-B",
            options=dict(maxcor=m, maxiter=iterations, gtol=0.0, ftol=0.0, maxfun=10**9),
        )  # fmt: skip

    fastgd.minimize(fun, x0, jac=True, method="lbfgs", options={**opts, "maxiter": 2})  # compile
    samples: dict[str, list] = {"fastgd": [], "scipy": []}
    results = {}
    for r in range(repeat):
        for name, run in (("fastgd", ours), ("scipy", theirs))[:: 1 if r % 2 else -1]:
            say(f"{problem} n={n:.0e}: {name} run {r + 1}/{repeat}")
            seconds, res = _overhead(run, fun)
            samples[name].append(seconds)
            results[name] = res
    say("memory ceiling")
    # L-BFGS touches 2m + 4 vectors per iteration, far beyond the caches: the
    # ceiling is measured on arrays as large as DRAM-bound (>= 1e7 elements)
    size = max(n, CEILING_N)
    ceiling = bench.ceiling_time(0, size, "float64", "parallel", repeat=5)
    bandwidth = 3 * 8 * size / ceiling  # the ceiling loop reads 2 arrays and writes 1
    res = results["fastgd"]
    pairs = min(m, res.nit)
    nbytes = lbfgs_bytes(n, 8, m, pairs, res.nfev / max(res.nit, 1))
    fastgd_s, scipy_s = median(samples["fastgd"]), median(samples["scipy"])
    bound = nbytes / bandwidth
    return {
        "problem": problem,
        "n": n,
        "m": m,
        "fastgd_s": fastgd_s,
        "scipy_s": scipy_s,
        "x_scipy": scipy_s / fastgd_s,
        "bytes": nbytes,
        "bandwidth": bandwidth,
        "bound_s": bound,
        "of_bound": bound / fastgd_s,
        "nit": res.nit,
        "nfev": res.nfev,
        "scipy_nit": results["scipy"].nit,
        "scipy_nfev": results["scipy"].nfev,
        "samples": samples,
    }


def run_lbfgs_bench(problems=LBFGS_PROBLEMS, sizes=LBFGS_SIZES, repeat=3, progress=None):
    """:func:`measure_lbfgs` for every problem and size."""
    return [measure_lbfgs(p, n, repeat=repeat, progress=progress) for n in sizes for p in problems]


LBFGS_COLUMNS = (
    ("problem", "problem", str),
    ("n", "n", format_n),
    ("m", "m", str),
    ("SciPy ms/iter", "scipy_s", _ms),
    ("fastgd ms/iter", "fastgd_s", _ms),
    ("x SciPy", "x_scipy", _ratio),
    ("MB/iter", "bytes", lambda x: f"{x / 1e6:.0f}"),
    ("bound ms", "bound_s", _ms),
    ("of bound", "of_bound", _ratio),
    ("iters", "nit", str),
    ("SciPy iters", "scipy_nit", str),
)


def lbfgs_notes(rows: list[dict]) -> str:
    """What the ``--lbfgs`` columns mean."""
    bw = median(r["bandwidth"] for r in rows) / 1e9 if rows else float("nan")
    return "\n".join(
        [
            "ms/iter: wall time per iteration minus the time inside fun (the method's own "
            f"work), median of interleaved runs of {LBFGS_ITERATIONS} iterations with "
            f"gtol = ftol = 0; SciPy: L-BFGS-B with maxcor = m; x SciPy: SciPy / fastgd.",
            "MB/iter: the bytes fastgd's kernels move per iteration (two-loop recursion, "
            "line-search trial points and slopes, the new pair, the gradient measures); "
            f"bound: those bytes at the memory ceiling's bandwidth ({bw:.1f} GB/s, fastgd's "
            f"parallel ceiling loop on {CEILING_N:.0e} elements: DRAM, as L-BFGS's working "
            "set); of bound: bound / fastgd (1.0: at the roofline).",
            "quadratic: condition 1e3; logistic: 8 samples of n features; float64.",
            _blas_note(),
        ]
    )


def _blas_note() -> str:
    from fastgd.bench._timing import blas_note

    return blas_note(
        "A multi-threaded BLAS inside fun leaves its threads "
        "spinning after each call,\nwhich starves the parallel kernels that follow on a "
        "machine with few cores: run with OPENBLAS_NUM_THREADS=1."
    )
