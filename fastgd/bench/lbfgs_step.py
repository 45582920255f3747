"""``fastgd bench --lbfgs``: the cost of a steady-state L-BFGS iteration beyond
``fun``, fastgd's against SciPy's L-BFGS-B, and against the memory traffic it needs.

Steady state: iterations at a full history ring (``m`` pairs stored), the
regime of any run longer than ``m`` iterations. Both optimizers run the same
problem from the same start with the same memory ``m`` (SciPy: ``maxcor =
m``) and ``gtol = ftol = 0`` (no early stop), with ``fun`` wrapped in a timer
that notes when each call returns and the time spent inside it:

- a warm-up run of ``m + 2`` iterations (the ring is full from iteration
  ``m``; 2 more spare a skipped pair), once, gives the number ``K`` of
  ``fun`` calls that ends warm-up;
- each timed run goes ``N`` iterations further on the same trajectory (its
  first ``K`` losses are checked to be the warm-up's), and its window runs
  from the return of call ``K`` to the return of its last call: ``N``
  iterations at a full ring (direction, trial points, slopes, the new pair,
  the driver's bookkeeping), and nothing of the run's setup or result (the
  ring is allocated and first written in its first ``m + 2`` iterations).

The *overhead* per iteration is the window's wall time minus the time inside
``fun`` in it, divided by ``N``. fastgd's bytes per iteration are counted
from its kernels' passes with ``m`` pairs (see :func:`lbfgs_bytes`) and
divided by the memory ceiling's bandwidth (fastgd's ceiling loop, parallel,
measured in the same run) to give the traffic bound.

Problems: the ill-conditioned quadratic (condition 1e3) and the chained
Rosenbrock function (from its standard start), float64. Logistic regression
(8 samples of ``n`` features, what this benchmark ran before) has no steady
state to time at ``m = 10``: L-BFGS solves it to rounding in 10-20
iterations (its Hessian is a rank-8 term plus ``l2 I``) and then stops on a
failed line search, so it is kept in :func:`make` for smaller ``m`` only.
"""

from __future__ import annotations

import math
import time
from statistics import median

from fastgd.bench._timing import format_n
from fastgd.bench.torch_models import _ms, _ratio

#: ``fastgd bench --lbfgs`` defaults: issue 11's sizes; problems with a steady state.
LBFGS_SIZES = (10**6, 10**7)
LBFGS_PROBLEMS = ("quadratic", "rosenbrock")
#: Timed iterations per run, all at a full ring (after ``m + 2`` warm-up iterations).
LBFGS_ITERATIONS = 10
LBFGS_M = 10
#: The ceiling loop's size: large enough that its 3 arrays are DRAM-bound.
CEILING_N = 10**7


def make(problem: str, n: int):
    """The benchmark's problem of ``n`` float64 parameters."""
    from fastgd import problems

    if problem == "quadratic":
        return problems.IllConditionedQuadratic(n, condition=1e3, seed=0)
    if problem == "rosenbrock":
        return problems.Rosenbrock(n)
    if problem == "logistic":
        return problems.LogisticRegression(n_samples=8, n_features=n, seed=0)
    raise ValueError(
        f"unknown problem {problem!r}; choose from {', '.join(LBFGS_PROBLEMS)} or logistic"
    )


def lbfgs_bytes(
    n: int, itemsize: int, m: int, evaluations: float, *, pairs: int | None = None
) -> int:
    """Bytes a steady-state iteration of ``method="lbfgs"`` moves: a full ring
    (``pairs = m`` stored pairs, the default) and ``evaluations`` calls of
    ``fun`` per iteration, by its kernels' passes over ``n``-vectors:

    - the two-loop recursion: ``8 pairs + 2`` vectors (``-g``: 2 without pairs);
    - per trial point: ``x + stp d`` (read 2, write 1) and the slope ``g.d`` (read 2);
    - the new pair ``s = stp d``, ``y = g_new - g`` with ``s.y``, ``y.y`` (read 3, write 2);
    - the driver's copy of the gradient at ``x`` with its measures, one pass
      (read 1, write 1).

    That is ``8 pairs + 9 + 5 evaluations`` vectors; ``fun``'s own traffic
    is not counted (its time is not in the overhead).
    """
    pairs = m if pairs is None else pairs
    direction = 8 * pairs + 2 if pairs else 2
    vectors = direction + 5 * evaluations + 5 + 2
    return int(vectors * n * itemsize)


class _Timed:
    """``fun`` with a stopwatch: per call, when it returned (``ends``), the
    seconds spent inside ``fun`` up to then (``inside``) and the loss (``values``)."""

    def __init__(self, fun):
        self.fun, self.seconds, self.calls = fun, 0.0, 0
        self.ends: list[float] = []
        self.inside: list[float] = []
        self.values: list[float] = []

    def __call__(self, x):
        t0 = time.perf_counter()
        out = self.fun(x)
        t1 = time.perf_counter()
        self.seconds += t1 - t0
        self.calls += 1
        self.ends.append(t1)
        self.inside.append(self.seconds)
        self.values.append(float(out[0]))
        return out

    def outside(self, after: int) -> float:
        """Seconds outside ``fun`` from the return of call ``after`` (1-based)
        to the return of the last call."""
        k = after - 1
        return (self.ends[-1] - self.ends[k]) - (self.inside[-1] - self.inside[k])


def _same_start(timed: _Timed, warm: _Timed) -> bool:
    """Whether ``timed``'s first calls returned the warm-up run's losses."""
    k = warm.calls
    return timed.calls > k and all(
        a == b or math.isclose(a, b, rel_tol=1e-12)
        for a, b in zip(timed.values[:k], warm.values, strict=True)
    )


def measure_lbfgs(
    problem: str = "quadratic",
    n: int = 10**6,
    iterations: int | None = None,
    m: int = LBFGS_M,
    repeat: int = 3,
    progress=None,
    bandwidth: float | None = None,
) -> dict:
    """Steady-state overhead per iteration of fastgd's L-BFGS and SciPy's L-BFGS-B.

    Each optimizer runs ``m + 2`` warm-up iterations once, then ``repeat``
    times (interleaved with the other's, the order alternating) ``m + 2 +
    iterations``; the timed window of each run is its last ``iterations``
    iterations, all at a full ring of ``m`` pairs (see the module's docstring).

    Parameters
    ----------
    problem : {"quadratic", "rosenbrock", "logistic"}
        ``"logistic"`` stops before a window at ``m = 10`` (ValueError).
    n : int
        Parameters (float64).
    iterations : int, optional
        Timed iterations per run (default :data:`LBFGS_ITERATIONS`, read at
        call time).
    m : int
        History size, the same for both (SciPy's ``maxcor``).
    repeat : int
        Timed runs of each; medians are reported.
    progress : callable, optional
        Called with a short text before each run.

    Returns
    -------
    dict
        ``fastgd_s``, ``scipy_s`` (overhead seconds per full-ring iteration,
        medians), ``x_scipy`` (their ratio), ``bytes`` (fastgd's per such
        iteration, :func:`lbfgs_bytes` with ``m`` pairs and
        ``evals_per_iter``), ``bandwidth`` (the ceiling's, bytes/s),
        ``bound_s`` (those bytes at that bandwidth), ``of_bound`` (bound /
        fastgd), ``nit``, ``nfev``, ``scipy_nit``, ``scipy_nfev`` (of a whole
        timed run: warm-up and window), ``warmup`` (``m + 2``),
        ``timed_iterations``, ``evals_per_iter`` and ``scipy_evals_per_iter``
        (calls of ``fun`` per timed iteration), ``samples`` (each run's
        overhead) and the configuration.

    Raises
    ------
    ValueError
        If a run stops before its window ends (the problem solved to
        rounding, or a failed line search): there is no steady state to time.
    """
    import scipy.optimize

    import fastgd

    say = progress or (lambda text: None)
    iterations = LBFGS_ITERATIONS if iterations is None else iterations
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    warm = m + 2
    p = make(problem, n)
    x0 = p.x0
    fun = p.fun_and_grad

    def ours(f, maxiter):
        options = dict(m=m, maxiter=maxiter, gtol=0.0, ftol=0.0)
        return fastgd.minimize(f, x0, jac=True, method="lbfgs", options=options)

    def theirs(f, maxiter):
        return scipy.optimize.minimize(
            f, x0, jac=True, method="L-BFGS-B",
            options=dict(maxcor=m, maxiter=maxiter, gtol=0.0, ftol=0.0, maxfun=10**9),
        )  # fmt: skip

    runs = {"fastgd": ours, "scipy": theirs}
    where = f"{problem} n={format_n(n)} m={m}"
    warmup = {}
    for name, run in runs.items():  # fastgd's also compiles its kernels
        say(f"{where}: {name} warm-up ({warm} iterations)")
        timed = _Timed(fun)
        res = run(timed, warm)
        if res.nit != warm:
            raise ValueError(
                f"{where}: {name} stopped after {res.nit} of its {warm} warm-up iterations "
                f"({res.message}): no full-ring iterations to time; use a smaller m or a "
                "problem L-BFGS does not solve that fast"
            )
        warmup[name] = timed
    samples: dict[str, list] = {"fastgd": [], "scipy": []}
    counts = {}
    for r in range(repeat):
        for name in ("fastgd", "scipy")[:: 1 if r % 2 else -1]:
            say(f"{where}: {name} run {r + 1}/{repeat} ({warm} + {iterations} iterations)")
            timed, first = _Timed(fun), warmup[name]
            res = runs[name](timed, warm + iterations)
            if res.nit != warm + iterations:
                raise ValueError(
                    f"{where}: {name} stopped after {res.nit} iterations ({res.message}), "
                    f"inside the timed window (iterations {warm} to {warm + iterations - 1}): "
                    "use fewer iterations, a smaller m or a problem L-BFGS does not solve "
                    "that fast"
                )
            if not _same_start(timed, first):
                raise RuntimeError(
                    f"{where}: {name}'s timed run left the warm-up run's path within "
                    f"{first.calls} calls of fun (a nondeterministic fun?): the window's "
                    "start is unknown"
                )
            samples[name].append(timed.outside(first.calls) / iterations)
            counts[name] = (res.nit, res.nfev, (timed.calls - first.calls) / iterations)
    if bandwidth is None:
        say("memory ceiling")
        bandwidth = ceiling_bandwidth(n)
    nit, nfev, evals = counts["fastgd"]
    scipy_nit, scipy_nfev, scipy_evals = counts["scipy"]
    nbytes = lbfgs_bytes(n, 8, m, evals)
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
        "nit": nit,
        "nfev": nfev,
        "scipy_nit": scipy_nit,
        "scipy_nfev": scipy_nfev,
        "warmup": warm,
        "timed_iterations": iterations,
        "evals_per_iter": evals,
        "scipy_evals_per_iter": scipy_evals,
        "samples": samples,
    }


def ceiling_bandwidth(n: int, repeat: int = 9) -> float:
    """Bytes/s of fastgd's parallel float64 ceiling loop (reads 2 arrays, writes
    1) on ``max(n, CEILING_N)`` elements: a full-ring iteration streams ``2m +
    5`` vectors and more, far beyond the caches, so the ceiling is measured on
    arrays as large as DRAM-bound."""
    from fastgd import bench

    size = max(n, CEILING_N)
    return 3 * 8 * size / bench.ceiling_time(0, size, "float64", "parallel", repeat=repeat)


def run_lbfgs_bench(problems=LBFGS_PROBLEMS, sizes=LBFGS_SIZES, repeat=3, progress=None):
    """:func:`measure_lbfgs` for every problem and size; the ceiling is measured
    once per array size (the median of 9 passes) and shared by its rows, so
    that the rows' bounds differ by their bytes only."""
    say = progress or (lambda text: None)
    bandwidths: dict[int, float] = {}
    rows = []
    for n in sizes:
        size = max(n, CEILING_N)
        if size not in bandwidths:
            say("memory ceiling")
            bandwidths[size] = ceiling_bandwidth(n)
        for p in problems:
            rows.append(
                measure_lbfgs(p, n, repeat=repeat, progress=progress, bandwidth=bandwidths[size])
            )
    return rows


LBFGS_COLUMNS = (
    ("problem", "problem", str),
    ("n", "n", format_n),
    ("m", "m", str),
    ("SciPy ms/iter", "scipy_s", _ms),
    ("fastgd ms/iter", "fastgd_s", _ms),
    ("x SciPy", "x_scipy", _ratio),
    ("evals/iter", "evals_per_iter", lambda x: f"{x:.2f}"),
    ("MB/iter", "bytes", lambda x: f"{x / 1e6:.0f}"),
    ("bound ms", "bound_s", _ms),
    ("of bound", "of_bound", _ratio),
    ("iters", "nit", str),
    ("SciPy iters", "scipy_nit", str),
)


def lbfgs_notes(rows: list[dict]) -> str:
    """What the ``--lbfgs`` columns mean."""
    bw = median(r["bandwidth"] for r in rows) / 1e9 if rows else float("nan")
    timed = sorted({r["timed_iterations"] for r in rows}) or [LBFGS_ITERATIONS]
    window = "/".join(map(str, timed))
    return "\n".join(
        [
            "ms/iter: the steady-state cost of an iteration beyond fun: wall time minus the "
            f"time inside fun over a window of {window} iterations at a full ring (m pairs "
            "stored), after m + 2 warm-up iterations, divided by the iterations; median of "
            "interleaved runs with gtol = ftol = 0; SciPy: L-BFGS-B with maxcor = m; "
            "x SciPy: SciPy / fastgd.",
            "evals/iter: fastgd's calls of fun per timed iteration (line-search trials). "
            "MB/iter: the bytes fastgd's kernels move per full-ring iteration (two-loop "
            "recursion over m pairs, 8m + 2 vectors; per trial the point and the slope, 5; "
            "the new pair, 5; the gradient's copy with its measures, 2); "
            f"bound: those bytes at the memory ceiling's bandwidth ({bw:.1f} GB/s, fastgd's "
            f"parallel ceiling loop on {CEILING_N:.0e} elements: DRAM, as L-BFGS's working "
            "set); of bound: bound / fastgd (1.0: at the roofline).",
            "iters, SciPy iters: the iterations of a whole timed run (warm-up and window).",
            "quadratic: condition 1e3; rosenbrock: chained, from (-1.2, 1, ...); float64.",
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
