""":func:`scipy_method`: a fastgd method as a custom ``method`` of
``scipy.optimize.minimize``, and its adapters of SciPy's calling conventions."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from scipy.optimize import OptimizeResult

from fastgd.driver._minimize import minimize
from fastgd.driver._validate import _method_name, _split_options

# keyword arguments of minimize() that scipy_method() accepts among its options
_KEYWORDS = (
    "schedule",
    "clip_norm",
    "clip_value",
    "l1",
    "l1_mode",
    "early_stopping",
    "val_fun",
    "batch_size",
    "n_samples",
    "shuffle",
    "seed",
    "progress",
    "backend",
    "dtype",
)


def scipy_method(name: str, **defaults) -> Callable[..., OptimizeResult]:
    """A fastgd method as a custom ``method`` of ``scipy.optimize.minimize``.

    >>> import numpy as np, scipy.optimize
    >>> from fastgd.driver import scipy_method
    >>> res = scipy.optimize.minimize(
    ...     lambda x: (x @ x, 2 * x), np.ones(3), jac=True,
    ...     method=scipy_method("adam", lr=0.1), options=dict(maxiter=500))
    >>> bool(res.fun < 1e-8)
    True

    Parameters
    ----------
    name : str
        A method of :func:`minimize` (``"adam"``, ``"nesterov"``, ...).
    **defaults
        Default ``options`` (hyperparameters, ``maxiter``, ``gtol``, ...) and
        keyword arguments of :func:`minimize` (``schedule``, ``clip_norm``,
        ``batch_size``, ...). SciPy's ``options`` override them and may hold
        the same keys.

    Returns
    -------
    callable
        ``method(fun, x0, args, jac, hess, hessp, bounds, constraints,
        callback, **options)``, the protocol of SciPy's custom methods; it
        runs :func:`minimize`. SciPy's ``jac=True`` (fun returns ``(f, g)``)
        is passed on as such, ``args`` are appended to every call of
        ``fun``/``jac`` (after ``idx`` in mini-batch mode), ``tol`` sets
        ``gtol``, and the callback, ``maxiter`` and ``StopIteration`` (status
        99) behave as in :func:`minimize`. ``hess``/``hessp`` are ignored with
        a warning (first-order methods); bounds and constraints raise
        ``ValueError``.

    Notes
    -----
    No dask arrays: ``scipy.optimize.minimize`` converts ``x0`` to a NumPy
    array (``np.asarray``, which computes a dask array on this machine)
    before it calls the method, so the parameters never reach the workers.
    Call :func:`minimize` with a dask ``x0`` instead.
    """
    method = _method_name(name)
    _split_options(method, {k: v for k, v in defaults.items() if k not in _KEYWORDS})

    def fastgd_method(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                      constraints=(), callback=None, **options):  # fmt: skip
        if bounds is not None:
            hint = (
                ": for bound-constrained L-BFGS use SciPy's method='L-BFGS-B'"
                if method == "lbfgs"
                else ""
            )
            raise ValueError(f"fastgd method {method!r} does not support bounds{hint}")
        if constraints:
            raise ValueError(f"fastgd method {method!r} does not support constraints")
        if hess is not None or hessp is not None:
            warnings.warn(
                f"fastgd method {method!r} does not use Hessian information (hess/hessp)",
                RuntimeWarning,
                stacklevel=3,
            )
        merged = {**defaults, **options}
        if "tol" in merged:
            tol = merged.pop("tol")
            merged.setdefault("gtol", tol)
        keywords = {k: merged.pop(k) for k in list(merged) if k in _KEYWORDS}
        fun, jac = _unmemoize(fun, jac)
        if args:
            fun = _bind_args(fun, args)
            if callable(jac):
                jac = _bind_args(jac, args)
        return minimize(fun, x0, jac=jac, method=method, options=merged, callback=callback,
                        **keywords)  # fmt: skip

    fastgd_method.__name__ = fastgd_method.__qualname__ = f"fastgd_{method}"
    fastgd_method.__doc__ = f"fastgd.minimize(method={method!r}) for scipy.optimize.minimize."
    return fastgd_method


def _unmemoize(fun, jac):
    """SciPy turns ``jac=True`` into ``MemoizeJac(fun)`` and its ``derivative``,
    which copies and compares ``x`` on every call; hand the loop ``fun`` itself."""
    owner = getattr(jac, "__self__", None)
    if owner is not None and owner is fun and getattr(jac, "__name__", "") == "derivative":
        inner = getattr(fun, "fun", None)
        if callable(inner):
            return inner, True
    return fun, jac


def _bind_args(fn, args):
    def bound(x, *more):
        return fn(x, *more, *args)

    return bound
