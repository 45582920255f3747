"""fastgd's first-order methods next to SciPy's quasi-Newton and Newton methods.

:func:`compare` backs the ``fastgd compare`` command. Every method runs on the
same test problems (:mod:`fastgd.problems`) from the same start, with the
same ``gtol``, and is stopped by ``maxiter`` or, after the iteration that
crosses it, by a wall-time limit. Each run records the final loss gap
``f - f_star``, the gradient's inf-norm, iterations, function and gradient
evaluations, wall time, the time at which ``f - f_star <= tol`` (the
problem's tolerance) was first reached, and the loss trajectory against
iterations (one value per iterate) and against wall time (every call of
``fun``, timestamped by a wrapper).

What it shows: on small, smooth, deterministic problems quasi-Newton methods
need far fewer iterations and usually less time; on the large problem
(``n = 1e6``, where an evaluation and an update each cost several passes over
memory) the cost per iteration dominates, and cheap fused first-order steps
compete on wall time.

fastgd methods run with step sizes tuned per problem (:func:`tuned_options`),
warmed up (JIT-compiled) before they are timed. SciPy methods run with their
defaults except ``maxiter``, ``gtol`` where they have it, and L-BFGS-B's
``ftol`` (see :func:`scipy_options`); BFGS keeps a dense ``n x n`` inverse
Hessian and runs only for ``n <= BFGS_MAX_N``.
"""

from __future__ import annotations

import math
import numbers
import os
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.optimize

from fastgd import problems as _problems
from fastgd.driver import METHODS, Status, minimize

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_PROBLEMS",
    "DEFAULT_SCIPY_METHODS",
    "PROBLEM_NAMES",
    "SCIPY_METHODS",
    "compare",
    "format_table",
    "make_problem",
    "plot_comparison",
    "plot_format",
    "scipy_options",
    "tuned_options",
]

DEFAULT_METHODS = ("sgd", "nesterov", "adam", "lbfgs")
DEFAULT_SCIPY_METHODS = ("L-BFGS-B", "BFGS", "Newton-CG", "trust-ncg")
SCIPY_METHODS = ("L-BFGS-B", "BFGS", "CG", "Newton-CG", "trust-ncg", "trust-krylov")
DEFAULT_PROBLEMS = ("rosenbrock", "quadratic", "logistic", "large")
#: Problems :func:`make_problem` builds (``"large"``: :func:`fastgd.problems.large_problem`).
PROBLEM_NAMES = (
    "rosenbrock",
    "quadratic",
    "least_squares",
    "line_fit",
    "logistic",
    "softmax",
    "large",
)
#: BFGS updates a dense ``n x n`` matrix every iteration; above this it is skipped.
BFGS_MAX_N = 1000
#: The target of the large problem. Its loss is a sum of ``n = 1e6`` terms
#: and its minimum about -1e5, where the problems' default ``tol = 1e-6``
#: would ask for a relative accuracy of 1e-11; 1e-3 asks for 1e-8.
LARGE_TOL = 1e-3
#: SciPy methods that need Hessian-vector products.
_HESSP = {"newton-cg", "trust-ncg", "trust-krylov"}
#: The smallest ``n`` of problems that need more than one parameter.
_MIN_N = {"rosenbrock": 2}

#: Adam's learning rate per problem, the fastest to reach ``tol`` of
#: ``lr`` in {3e-3, 1e-2, 3e-2, 1e-1, 3e-1} at the default sizes.
ADAM_LR = {
    "rosenbrock": 0.3,
    "quadratic": 0.03,
    "least_squares": 0.1,
    "line_fit": 0.1,
    "logistic": 0.1,
    "softmax": 0.1,
    "large": 0.1,
}


def make_problem(name: str, n: int | None = None, seed: int = 0):
    """The problem ``name`` of :data:`PROBLEM_NAMES` with ``n`` parameters.

    ``n=None`` gives the default size: rosenbrock 2, quadratic 1000
    (condition 1e3), least_squares and logistic 100 features on 1000
    samples, softmax 20 features x 5 classes, line_fit 2, large 1e6 (a
    quadratic of condition 100, ``tol =`` :data:`LARGE_TOL`). ``line_fit``
    ignores ``n``; ``softmax`` rounds it to a multiple of 5.
    """
    P = _problems
    if name == "rosenbrock":
        return P.Rosenbrock(n or 2)
    if name == "quadratic":
        return P.IllConditionedQuadratic(n or 1000, condition=1e3, seed=seed)
    if name == "least_squares":
        return P.LeastSquares(n_samples=1000, n_features=n or 100, seed=seed)
    if name == "line_fit":
        return P.LeastSquares.line_fit(seed=seed)
    if name == "logistic":
        return P.LogisticRegression(n_samples=1000, n_features=n or 100, seed=seed)
    if name == "softmax":
        return P.SoftmaxRegression(n_samples=1000, n_features=max(1, (n or 100) // 5), seed=seed)
    if name == "large":
        problem = P.large_problem(n or 1_000_000, condition=100.0, seed=seed)
        problem.tol = LARGE_TOL
        return problem
    raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEM_NAMES)}")


def _curvature(problem) -> tuple[float, float] | None:
    """``(L, mu)``: the extreme Hessian eigenvalues at the minimizer, where cheap."""
    diag = getattr(problem, "diag", None)
    if diag is not None:  # IllConditionedQuadratic
        return float(diag.max()), float(diag.min())
    if problem.n <= 1000 and problem.x_star is not None:
        eig = np.linalg.eigvalsh(problem.hess(problem.x_star))
        return float(eig[-1]), float(max(eig[0], 0.0))
    return None


def tuned_options(problem, method: str, key: str | None = None) -> dict:
    """Hyperparameters under which ``method`` converges on ``problem``.

    With ``L`` and ``mu`` the largest and smallest Hessian eigenvalue at the
    minimizer and ``kappa = L / mu``:

    - ``sgd``: ``lr = 1 / L``.
    - ``nesterov`` and ``momentum`` (heavy ball): ``lr = 1 / L``,
      ``momentum = (sqrt(kappa) - 1) / (sqrt(kappa) + 1)``, Nesterov's
      constant momentum for strongly convex functions. (Polyak's optimal
      heavy-ball parameters diverge on Rosenbrock.)
    - ``adam``: ``lr`` from :data:`ADAM_LR` (a grid search per problem).
    - ``lbfgs``: ``ftol=1e-15``, as :func:`scipy_options` gives L-BFGS-B, so
      that both stop on the gradient.
    - every other method: its class defaults.

    ``key`` is the problem's name in :data:`PROBLEM_NAMES` (default
    ``problem.name``).
    """
    key = key or problem.name
    if method == "lbfgs":
        # stop on the gradient, as the others do (SciPy's L-BFGS-B gets the same)
        return {"ftol": 1e-15}
    if method == "adam":
        return {"lr": ADAM_LR.get(key, 1e-2)}
    if method not in ("sgd", "nesterov", "momentum"):
        return {}
    curvature = _curvature(problem)
    if curvature is None:
        return {}
    L, mu = curvature
    if method == "sgd":
        return {"lr": 1.0 / L}
    root = math.sqrt(L / mu) if mu > 0 else math.inf
    momentum = (root - 1.0) / (root + 1.0) if math.isfinite(root) else 0.9
    return {"lr": 1.0 / L, "momentum": momentum}


def scipy_options(method: str, maxiter: int, gtol: float) -> dict:
    """The options a SciPy method runs with: ``maxiter``; ``gtol`` where the
    method has it (L-BFGS-B, BFGS, CG, trust-ncg, trust-krylov), and for
    L-BFGS-B ``ftol=1e-15``, so that it stops on the gradient as the others
    do rather than on its default relative decrease of 2.2e-9."""
    m = method.lower()
    options: dict = {"maxiter": maxiter}
    if m in ("l-bfgs-b", "bfgs", "cg", "trust-ncg", "trust-krylov"):
        options["gtol"] = gtol
    if m == "l-bfgs-b":
        options["ftol"] = 1e-15
        options["maxfun"] = max(15000, 2 * maxiter)
    return options


class _Timed:
    """``fun_and_grad`` that timestamps every call (seconds since :meth:`start`)."""

    def __init__(self, fun_and_grad: Callable):
        self.fun_and_grad = fun_and_grad
        self.times: list[float] = []
        self.values: list[float] = []
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, x):
        f, g = self.fun_and_grad(x)
        self.times.append(time.perf_counter() - self.t0)
        self.values.append(f)
        return f, g


def _time_limit_callback(timed: _Timed, time_limit: float | None, per_iter: list | None):
    """A SciPy-style callback: record ``fun`` per iterate, stop after ``time_limit``."""

    def callback(intermediate_result):
        if per_iter is not None:
            per_iter.append(float(intermediate_result.fun))
        if time_limit is not None and timed.elapsed() > time_limit:
            raise StopIteration

    return callback


def _run_fastgd(problem, method, options, maxiter, gtol, time_limit):
    fg = problem.fun_and_grad
    # compile the kernels (serial or parallel, as this size picks) before timing
    minimize(fg, problem.x0, jac=True, method=method, options={**options, "maxiter": 2})
    timed = _Timed(fg)
    callback = _time_limit_callback(timed, time_limit, None)
    x0 = problem.x0
    opts = {**options, "maxiter": maxiter, "gtol": gtol}
    timed.start()
    res = minimize(timed, x0, jac=True, method=method, options=opts, callback=callback)
    wall = timed.elapsed()
    per_iter = np.append(res.history["loss"], res.fun)
    stopped = "time limit" if res.status == Status.CALLBACK else Status(res.status).name.lower()
    return res, wall, timed, per_iter, stopped


def _run_scipy(problem, method, maxiter, gtol, time_limit):
    timed = _Timed(problem.fun_and_grad)
    per_iter: list[float] = []
    callback = _time_limit_callback(timed, time_limit, per_iter)
    hessp = problem.hessp if method.lower() in _HESSP else None
    options = scipy_options(method, maxiter, gtol)
    timed.start()
    res = scipy.optimize.minimize(timed, problem.x0, jac=True, method=method, hessp=hessp,
                                  callback=callback, options=options)  # fmt: skip
    wall = timed.elapsed()
    per_iter = np.array([timed.values[0], *per_iter]) if timed.values else np.array(per_iter)
    if res.status == 99:
        stopped = "time limit"
    elif res.success:
        stopped = "converged"
    elif res.nit >= maxiter:
        stopped = "maxiter"
    else:
        stopped = "failed"
    return res, wall, timed, per_iter, stopped


def _warm_up_scipy(methods) -> None:
    """Run each SciPy method for two iterations on a tiny problem, so that the
    timed runs do not pay for SciPy's lazy imports and first-call setup."""
    tiny = _problems.Rosenbrock(2)
    for method in methods:
        hessp = tiny.hessp if method.lower() in _HESSP else None
        scipy.optimize.minimize(tiny.fun_and_grad, tiny.x0, jac=True, method=method,
                                hessp=hessp, options={"maxiter": 2})  # fmt: skip


def _row(problem, key, method, source, options, res, wall, timed, per_iter, stopped) -> dict:
    f_star = problem.f_star
    eval_time = np.asarray(timed.times)
    eval_loss = np.asarray(timed.values)
    hit = _first(eval_loss - f_star, problem.tol)
    jac = res.get("jac")
    return {
        "problem": key,
        "n": problem.n,
        "method": method,
        "source": source,
        "options": options,
        "f": float(res.fun),
        "f_star": f_star,
        "gap": float(res.fun) - f_star,
        "tol": problem.tol,
        "grad_norm": float(np.max(np.abs(jac))) if jac is not None else math.nan,
        "nit": int(res.nit),
        "nfev": int(res.get("nfev", len(eval_loss))),
        "njev": int(res.get("njev", len(eval_loss))),
        "time": wall,
        "time_to_tol": None if hit is None else float(eval_time[hit]),
        "iter_to_tol": _first(per_iter - f_star, problem.tol),
        "stopped": stopped,
        "success": bool(res.success),
        "message": str(res.message),
        "loss_iter": per_iter,
        "eval_time": eval_time,
        "eval_loss": eval_loss,
    }


def _first(values: np.ndarray, below: float):
    hits = np.flatnonzero(values <= below)
    return int(hits[0]) if hits.size else None


# -- checks of compare's arguments: each refuses a bad one before anything runs ------------


def _names(arg: str, what: str, values, valid: Sequence[str]) -> list[str]:
    """``values``, names from ``valid`` in any case, spelled as in ``valid``
    (duplicates dropped); ``arg`` and ``what`` name them in errors."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{arg} must be a sequence of names such as [{values!r}], not a string")
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"{arg} must be a sequence of names, got {values!r}") from None
    known = {v.lower(): v for v in valid}
    unknown = [v for v in values if not isinstance(v, str) or v.lower() not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {', '.join(valid)}")
    return list(dict.fromkeys(known[v.lower()] for v in values))


def _number(arg: str, value, kind: type, minimum: float):
    """``value`` as an int (``kind`` Integral) or a float (Real), finite and >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        noun = "an integer" if kind is numbers.Integral else "a real number"
        raise TypeError(f"{arg} must be {noun}, got {value!r}")
    if not minimum <= value < math.inf:
        raise ValueError(f"{arg} must be finite and >= {minimum}, got {value!r}")
    return int(value) if kind is numbers.Integral else float(value)


def _check_sizes(sizes, problems: Sequence[str]) -> list[int] | None:
    if sizes is None:
        return None
    if isinstance(sizes, (str, bytes, numbers.Number)):
        raise TypeError(f"sizes must be a sequence of integers such as [100, 1000], got {sizes!r}")
    sizes = [_number("sizes", n, numbers.Integral, 1) for n in sizes]
    if not sizes:
        raise ValueError("sizes is empty; pass None for each problem's default size")
    for key, minimum in _MIN_N.items():
        if key in problems and min(sizes) < minimum:
            raise ValueError(f"sizes: {key} needs n >= {minimum}, got {min(sizes)}")
    return sizes


def _check_method_options(method_options, methods: Sequence[str]) -> dict[str, dict]:
    if method_options is None:
        return {}
    if not isinstance(method_options, dict):
        raise TypeError(f"method_options must be a dict of dicts, got {method_options!r}")
    checked = {}
    for key, options in method_options.items():
        method = key.lower() if isinstance(key, str) else key
        if method not in methods:
            raise ValueError(
                f"method_options has {key!r}, which is not among the fastgd methods run {methods}"
            )
        if not isinstance(options, dict):
            raise TypeError(f"method_options[{key!r}] must be a dict, got {options!r}")
        checked[method] = options
    return checked


def _check_plot(plot) -> None:
    """Refuse a plot path that cannot be written, before the runs rather than after."""
    if not isinstance(plot, (str, os.PathLike)):
        raise TypeError(f"plot must be a path or None, got {plot!r}")
    path = os.fspath(plot)
    if not path:
        raise ValueError("plot is empty; pass None for no plot")
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path) or not os.path.isdir(directory):
        raise ValueError(f"plot {path!r}: not a file path in an existing directory")
    plot_format(path)


def compare(
    methods: Sequence[str] = DEFAULT_METHODS,
    scipy_methods: Sequence[str] = DEFAULT_SCIPY_METHODS,
    problems: Sequence[str] = DEFAULT_PROBLEMS,
    sizes: Sequence[int] | None = None,
    maxiter: int = 20_000,
    time_limit: float | None = 4.0,
    plot: str | None = "compare.png",
    seed: int = 0,
    *,
    gtol: float = 1e-5,
    method_options: dict[str, dict] | None = None,
    verbose: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Run fastgd and SciPy methods on test problems; print a table, plot the runs.

    Parameters
    ----------
    methods : sequence of str
        fastgd methods (:data:`fastgd.driver.METHODS`), with
        :func:`tuned_options` (updated by ``method_options``).
    scipy_methods : sequence of str
        ``scipy.optimize.minimize`` methods from :data:`SCIPY_METHODS`, run
        with :func:`scipy_options`; Newton-CG and trust-ncg get the
        problem's ``hessp``. BFGS is skipped above ``n = BFGS_MAX_N``.
    problems : sequence of str
        Names from :data:`PROBLEM_NAMES`; built by :func:`make_problem`.
    sizes : sequence of int, optional
        Run every problem at each of these ``n`` (default: each problem's
        default size; ``line_fit`` has only one).
    maxiter : int, default 20000
        Iteration limit of every run.
    time_limit : float or None, default 4.0
        Seconds per run, finite and >= 0; the run stops after the iteration
        that exceeds it (through a callback raising ``StopIteration``), so 0
        stops every run after one iteration. None: no limit.
    plot : str, path or None, default "compare.png"
        Where to write the figure (:func:`plot_comparison`; its directory
        must exist and its extension be a format matplotlib writes, png
        without one); None for no plot. Skipped with a warning when
        matplotlib is not installed, and when there are no runs.
    seed : int, default 0
        Seed of the problems' data, >= 0.
    gtol : float, default 1e-5
        Gradient tolerance of every method that has one, finite and >= 0.
    method_options : dict, optional
        ``{method: options}`` merged over the tuned options; every key must
        be one of ``methods``.
    verbose : bool, default True
        Print the table.
    progress : callable, optional
        Called with a line of text before each run.

    Returns
    -------
    list of dict
        One row per run: ``problem``, ``n``, ``method``, ``source``
        (``"fastgd"`` or ``"scipy"``), ``options``, ``f``, ``f_star``,
        ``gap`` (``f - f_star``), ``tol``, ``grad_norm`` (inf-norm at the
        end), ``nit``, ``nfev``, ``njev``, ``time`` (s), ``time_to_tol`` and
        ``iter_to_tol`` (None if never reached), ``stopped`` (why it ended),
        ``success``, ``message``, ``loss_iter`` (the loss at each iterate,
        ``nit + 1`` values; for fastgd the loss where each step's gradient was
        taken, then the final loss) and ``eval_time``/``eval_loss`` (every
        evaluation's timestamp and loss).

    Raises
    ------
    TypeError, ValueError
        For a bad argument (named in the message), before anything runs:
        unknown names, a string where a sequence of names belongs, no runs
        at all, sizes that are not integers >= 1, non-finite or negative
        numbers, an unwritable plot path.
    """
    methods = _names("methods", "fastgd methods", methods, METHODS)
    scipy_methods = _names("scipy_methods", "SciPy methods", scipy_methods, SCIPY_METHODS)
    problems = _names("problems", "problems", problems, PROBLEM_NAMES)
    if not problems or not (methods or scipy_methods):
        raise ValueError("nothing to run: give at least one problem and one method")
    sizes = _check_sizes(sizes, problems)
    maxiter = _number("maxiter", maxiter, numbers.Integral, 1)
    if time_limit is not None:
        time_limit = _number("time_limit", time_limit, numbers.Real, 0)
    seed = _number("seed", seed, numbers.Integral, 0)
    gtol = _number("gtol", gtol, numbers.Real, 0)
    method_options = _check_method_options(method_options, methods)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    if plot is not None:
        _check_plot(plot)
    _warm_up_scipy(scipy_methods)
    rows: list[dict] = []
    for key in problems:
        for n in sizes if sizes and key != "line_fit" else [None]:
            problem = make_problem(key, n, seed)
            _ = problem.f_star  # computed (L-BFGS-B for logistic) before any timing
            runs = [("fastgd", m) for m in methods]
            runs += [("scipy", m) for m in scipy_methods if m != "BFGS" or problem.n <= BFGS_MAX_N]
            for source, method in runs:
                if progress is not None:
                    progress(f"{key} (n={problem.n}): {method}")
                if source == "fastgd":
                    options = tuned_options(problem, method, key)
                    options.update(method_options.get(method, {}))
                    run = _run_fastgd(problem, method, options, maxiter, gtol, time_limit)
                else:
                    options = scipy_options(method, maxiter, gtol)
                    run = _run_scipy(problem, method, maxiter, gtol, time_limit)
                rows.append(_row(problem, key, method, source, options, *run))
    if verbose:
        print(format_table(rows))
        print(_blas_note())
    if plot is not None and rows:
        plot_comparison(rows, plot)
    return rows


def _blas_note() -> str:
    from fastgd.bench._timing import blas_note

    return blas_note(
        "SciPy's methods make many small BLAS calls, which a "
        "multi-threaded BLAS\ncan slow down by milliseconds each on a busy machine; for small "
        "problems run with OPENBLAS_NUM_THREADS=1."
    )


_COLUMNS = (
    # header, width, format of a row
    ("problem", 13, lambda r: r["problem"]),
    ("n", 8, lambda r: f"{r['n']:,}".replace(",", "_") if r["n"] >= 10_000 else str(r["n"])),
    ("method", 10, lambda r: r["method"]),
    ("f - f*", 9, lambda r: f"{r['gap']:.2e}"),
    ("|g|inf", 9, lambda r: f"{r['grad_norm']:.2e}"),
    ("iters", 6, lambda r: str(r["nit"])),
    ("nfev", 6, lambda r: str(r["nfev"])),
    ("njev", 6, lambda r: str(r["njev"])),
    ("time s", 7, lambda r: f"{r['time']:.3f}"),
    ("to tol s", 8, lambda r: "-" if r["time_to_tol"] is None else f"{r['time_to_tol']:.3f}"),
    ("iters to tol", 12, lambda r: "-" if r["iter_to_tol"] is None else str(r["iter_to_tol"])),
    ("stopped", 10, lambda r: r["stopped"]),
)


def format_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`compare` as a fixed-width text table."""

    def line(cells):
        out = []
        for (_, width, _), cell in zip(_COLUMNS, cells, strict=True):
            out.append(cell.ljust(width) if not out else cell.rjust(width))
        return "  ".join(out).rstrip()

    lines = [line([c[0] for c in _COLUMNS])]
    lines.append("-" * len(lines[0]))
    previous = None
    for r in rows:
        if previous is not None and (r["problem"], r["n"]) != previous:
            lines.append("")
        previous = (r["problem"], r["n"])
        lines.append(line([c[2](r) for c in _COLUMNS]))
    if rows:
        tols = sorted({r["tol"] for r in rows})
        lines.append("")
        lines.append(
            "f - f*: final loss gap; 'to tol': first time / iteration with f - f* <= tol "
            f"(tol = {', '.join(f'{t:g}' for t in tols)}); fastgd runs are JIT-warmed."
        )
    return "\n".join(lines)


def _matplotlib():
    """matplotlib's ``(Figure, FigureCanvasAgg)``, or None when it is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def plot_format(path) -> str:
    """The image format :func:`plot_comparison` writes ``path`` in.

    The extension of ``path`` (any case), or ``"png"`` without one (the file
    is written at ``path`` as given). Raises ValueError for an extension
    matplotlib cannot write; that check needs matplotlib and is skipped
    without it.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1][1:].lower()
    classes = _matplotlib()
    if extension and classes is not None:
        supported = classes[1].get_supported_filetypes()
        if extension not in supported:
            raise ValueError(
                f"plot {path!r}: matplotlib cannot write {extension!r} files; "
                f"use one of {', '.join(sorted(supported))}"
            )
    return extension or "png"


def plot_comparison(rows: Sequence[dict], path) -> str | None:
    """Two panels per problem: ``f - f_star`` against iteration and against wall time.

    Log axes (iterations on a symlog axis so that iteration 0 shows); the
    time panel draws the best loss so far at every evaluation. Gaps at or
    below ``1e-16 * max(1, |f_star|)`` (rounding) are drawn at that floor.
    fastgd methods are solid lines, SciPy's dashed. The format is
    :func:`plot_format`'s. Returns ``path``, the file it wrote, or None when
    matplotlib is missing (with a warning) and nothing was written. Raises
    ValueError for no rows or an unsupported extension, OSError when the
    file cannot be written.
    """
    if not rows:
        raise ValueError("rows is empty: nothing to plot")
    fmt = plot_format(path)
    classes = _matplotlib()
    if classes is None:
        warnings.warn("matplotlib is not installed; skipping the plot", stacklevel=2)
        return None
    Figure, FigureCanvasAgg = classes
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["problem"], r["n"]), []).append(r)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    palette = [f"C{i}" for i in range(10)]
    color = {m: palette[i % 10] for i, m in enumerate(methods)}
    fig = Figure(figsize=(12, 3.6 * len(groups) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for (ax_it, ax_t), ((key, n), group) in zip(axes, groups.items(), strict=True):
        f_star, tol = group[0]["f_star"], group[0]["tol"]
        floor = 1e-16 * max(1.0, abs(f_star))
        for r in group:
            style = dict(
                color=color[r["method"]],
                linestyle="-" if r["source"] == "fastgd" else "--",
                linewidth=1.6,
                label=f"{r['method']} ({r['source']})",
            )
            gap = np.maximum(r["loss_iter"] - f_star, floor)
            ax_it.plot(np.arange(gap.size), gap, **style)
            if r["eval_loss"].size:
                best = np.maximum(np.minimum.accumulate(r["eval_loss"]) - f_star, floor)
                ax_t.plot(np.maximum(r["eval_time"], 1e-6), best, **style)
        title = f"{key} (n = {n:,})"
        for ax, xlabel, what in (
            (ax_it, "iteration", "f - f* at each iterate"),
            (ax_t, "wall time [s]", "best f - f* so far"),
        ):
            ax.axhline(tol, color="0.5", linewidth=0.8, linestyle=":")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("f - f*")
            ax.set_title(f"{title}: {what}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        ax_it.set_xscale("symlog", linthresh=1.0)
        ax_it.set_xlim(left=0)
        ax_t.set_xscale("log")
    labels = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.legend(labels.values(), labels.keys(), loc="outside lower center",
               ncol=min(len(labels), 7), fontsize=9)  # fmt: skip
    fig.suptitle(
        "fastgd (solid) vs SciPy (dashed): loss gap f - f*; dotted line: the problem's tol"
    )
    fig.savefig(path, dpi=110, format=fmt)
    return path
