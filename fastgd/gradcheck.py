"""Check a gradient against central finite differences, cheaply at any size."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastgd import _checks

__all__ = ["GradCheckResult", "check_grad"]

#: Gradient entries below ``FLOOR * max(1, |f(x)|)`` are compared in absolute
#: rather than relative terms; see :func:`check_grad`.
FLOOR = 1e-5

#: How many of the worst coordinates a result keeps.
N_WORST = 10


@dataclass(frozen=True, eq=False)
class GradCheckResult:
    """The outcome of :func:`check_grad`.

    Attributes
    ----------
    max_rel_error : float
        The largest relative error over the checked coordinates (NaN if any
        error is NaN, 0.0 if none were checked).
    worst : ndarray of int64
        Flat indices (into ``x.ravel()``) of up to 10 coordinates with the
        largest errors, worst first (NaN errors count as worst).
    errors : ndarray of float64
        Their relative errors.
    analytic : ndarray of float64
        The gradient passed in (``jac``) at those coordinates.
    numeric : ndarray of float64
        The central differences at those coordinates.
    coords : ndarray of int64
        Every checked flat index, ascending.
    floor : float
        The denominator floor that was used.
    """

    max_rel_error: float
    worst: np.ndarray
    errors: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    coords: np.ndarray
    floor: float

    def ok(self, tol: float = 1e-5) -> bool:
        """True when every checked coordinate's relative error is ``<= tol``."""
        return bool(self.max_rel_error <= tol)

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{i}: analytic={a:.6g} numeric={n:.6g} rel={e:.2g}"
            for i, a, n, e in zip(
                self.worst[:3], self.analytic[:3], self.numeric[:3], self.errors[:3], strict=True
            )
        )
        return (
            f"GradCheckResult(max_rel_error={self.max_rel_error:.3g}, "
            f"checked={self.coords.size}, worst=[{rows}])"
        )


def _real_array(value, what: str) -> np.ndarray:
    """``value`` as a plain ndarray of integers or floats (see
    :func:`fastgd._checks.real_array`); other dtypes raise ``ValueError``."""
    return _checks.real_array(value, what, dtype_error=ValueError)


def _scalar(value, what: str) -> float:
    """A function value as a float, or a clear error."""
    arr = None if isinstance(value, np.ma.MaskedArray) else np.asarray(value)
    if arr is None or arr.size != 1 or arr.dtype.kind not in "iuf":
        raise ValueError(
            f"{what} must return a real scalar (an int or a float, not a bool or a "
            f"masked value), got {type(value).__name__}"
            + (f" of shape {arr.shape}" if arr is not None and arr.ndim else "")
        )
    return float(arr.reshape(()))


def _pair(out):
    try:
        f, g = out
    except (TypeError, ValueError):
        raise ValueError("with jac=True, fun must return (f, grad)") from None
    return f, g


def check_grad(
    fun: Callable,
    jac: Callable | bool,
    x,
    eps: float = 1e-5,
    n_coords: int | None = None,
    seed=None,
    *,
    floor: float | None = None,
) -> GradCheckResult:
    r"""Compare an analytic gradient with central finite differences.

    For each checked coordinate ``i`` (all of them, or ``n_coords`` sampled):

    .. code-block:: text

        numeric_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
        error_i   = |analytic_i - numeric_i| / max(|analytic_i|, |numeric_i|, floor)
        floor     = 1e-5 * max(1, |f(x)|)                      (default)

    The denominator ``2 eps`` is the step actually taken,
    ``(x_i + eps) - (x_i - eps)`` in floating point, which is ``2 eps`` up to
    rounding. The floor keeps entries where the gradient is (near) zero from
    reporting large relative errors: there a difference quotient measures
    only round-off, about ``1e-16 |f| / eps`` (so up to ``1e-11 |f|`` at the
    default step), and an entry below the floor has its error measured
    against the floor, i.e. in absolute terms. A sign error or a factor-of-two
    error on any entry above ``1e-9 max(1, |f|)`` still gives an error above
    ``1e-5``. Pass ``floor`` to choose it.

    Check at a generic point, not at a minimizer: there every gradient entry
    is zero and the difference quotient is all truncation and round-off error.

    The check works on one float64 copy of ``x``, made once: each coordinate
    is perturbed in place and restored exactly before the next, so a check of
    ``k`` coordinates costs ``2k + 1`` calls of ``fun``, one of ``jac`` and no
    O(n) work per coordinate beyond ``fun`` itself. ``x`` is never modified.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``: the objective. Called with a float64 array of
        ``x``'s shape, which it must not keep or modify.
    jac : callable or True
        ``jac(x) -> array`` with ``x.size`` entries: the gradient to check,
        evaluated once at ``x``. ``True`` means ``fun`` returns ``(f, grad)``,
        as in ``scipy.optimize.minimize(..., jac=True)``.
    x : array_like
        The point, any shape; float64 math is used whatever its dtype.
    eps : float, default 1e-5
        The finite-difference half step, ``> 0``.
    n_coords : int, optional
        Check this many coordinates, sampled without replacement; all of them
        when ``None`` or ``>= x.size``.
    seed : None, int or numpy.random.Generator
        Seeds the sample (``numpy.random.default_rng(seed)``).
    floor : float, optional
        The denominator floor, ``> 0``; default ``1e-5 * max(1, |f(x)|)``.

    Returns
    -------
    GradCheckResult
        ``max_rel_error``, the ``worst`` coordinates with their ``errors``,
        ``analytic`` and ``numeric`` values, the checked ``coords``, and
        ``ok(tol=1e-5)``.

    Raises
    ------
    ValueError
        Bad ``eps``, ``n_coords``, ``seed`` or ``floor``; an empty, non-finite
        or non-real (bool, complex, object) ``x``; a non-real gradient or one
        of the wrong size; ``fun`` not returning a real scalar.
    TypeError
        ``fun`` or ``jac`` is not callable; ``x`` or the gradient is a masked
        array (its mask would be ignored).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.gradcheck import check_grad
    >>> f = lambda x: np.sum(x ** 3)
    >>> r = check_grad(f, lambda x: 3 * x ** 2, np.arange(1.0, 6.0))
    >>> r.ok(), r.max_rel_error < 1e-8
    (True, True)
    >>> r = check_grad(f, lambda x: 3 * x ** 2 * (np.arange(5) != 2), np.arange(1.0, 6.0))
    >>> r.ok(), int(r.worst[0])
    (False, 2)
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if jac is not True and not callable(jac):
        raise TypeError(f"jac must be callable or True, got {type(jac).__name__}")
    eps = _checks.positive("eps", eps)
    if floor is not None:
        floor = _checks.positive("floor", floor)
    rng = _checks.rng(seed)
    x0 = _real_array(x, "x")
    if x0.size == 0:
        raise ValueError("x is empty: there is nothing to check")
    point = np.array(x0, dtype=np.float64, order="C", copy=True)
    if not np.isfinite(point).all():
        raise ValueError("x must be finite: a difference quotient at inf or NaN means nothing")
    flat = point.reshape(-1)
    n = flat.size
    if n_coords is None:
        coords = np.arange(n, dtype=np.int64)
    else:
        if isinstance(n_coords, (bool, np.bool_)) or not isinstance(n_coords, numbers.Integral):
            raise ValueError(f"n_coords must be a positive integer or None, got {n_coords!r}")
        if n_coords < 1:
            raise ValueError(f"n_coords must be a positive integer or None, got {n_coords}")
        if n_coords >= n:
            coords = np.arange(n, dtype=np.int64)
        else:
            coords = np.sort(rng.choice(n, size=int(n_coords), replace=False)).astype(np.int64)

    if jac is True:

        def value(z):
            return _scalar(_pair(fun(z))[0], "fun")

        f_x, grad = _pair(fun(point))
    else:

        def value(z):
            return _scalar(fun(z), "fun")

        f_x = fun(point)
        grad = jac(point)
    f_x = _scalar(f_x, "fun")
    grad = _real_array(grad, "the gradient (fun's second result)" if jac is True else "jac(x)")
    if grad.size != n:
        raise ValueError(f"the gradient has {grad.size} entries, x has {n}")
    analytic = grad.reshape(-1)[coords].astype(np.float64)
    if floor is None:
        floor = FLOOR * max(1.0, abs(f_x))

    numeric = np.empty(coords.size)
    for k, i in enumerate(coords):
        xi = flat[i]
        hi = xi + eps
        lo = xi - eps
        if hi == lo:
            raise ValueError(f"eps={eps} is too small to move x[{i}] = {xi}")
        flat[i] = hi
        f_hi = value(point)
        flat[i] = lo
        f_lo = value(point)
        flat[i] = xi
        numeric[k] = (f_hi - f_lo) / (hi - lo)

    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
        errors = np.abs(analytic - numeric) / scale
    ranked = np.where(np.isnan(errors), np.inf, errors)
    order = np.argsort(-ranked, kind="stable")[:N_WORST]
    if errors.size and np.isnan(errors).any():
        max_err = float("nan")
    else:
        max_err = float(errors.max()) if errors.size else 0.0
    return GradCheckResult(
        max_rel_error=max_err,
        worst=coords[order],
        errors=errors[order],
        analytic=analytic[order],
        numeric=numeric[order],
        coords=coords,
        floor=float(floor),
    )
