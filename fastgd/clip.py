"""Gradient clipping, in place, with torch.nn.utils' semantics.

Each function is one fused pass over the gradient (two for
:func:`clip_grad_norm_`: the norm, then the scaling), serial or
multi-threaded as :func:`fastgd.backends.select` decides for
``backend="auto"`` (the one place that makes that decision).

The multi-threaded loops split the array into a fixed number of chunks
(:data:`_CHUNKS`), independent of the thread count, and run the serial loop on
each; so the math is written once, and a norm is the same number whatever the
number of threads.
"""

from __future__ import annotations

import math
import numbers

import numba
import numpy as np

from fastgd import _checks, backends, kernel_cache

__all__ = ["clip_grad_norm_", "clip_grad_value_"]

#: Chunks of the multi-threaded loops; fixed, so the parallel norm's summation
#: order (and so its rounding) does not depend on the number of threads.
_CHUNKS = 256

#: The smallest float64 that rounds to inf in each dtype.
_OVERFLOW = {np.float32: 2.0**128 - 2.0**103, np.float64: math.inf}

# norm kinds, dispatched once per call, outside the loops
_INF, _L1, _L2, _LP = 0, 1, 2, 3

_jit = dict(error_model="numpy", cache=True, nogil=True)


# "reassoc" lets LLVM vectorize the float64 sums (several partial sums in SIMD
# lanes); it changes only the summation order, never NaN/inf semantics.
@kernel_cache.repair_on_damage
@numba.njit(**_jit, fastmath={"reassoc"})
def _norm_partial(g, lo, hi, kind, p):
    """The float64 partial reduction of ``g[lo:hi]``: ``max |g|`` (with NaN
    propagated) or ``sum |g|``, ``sum g**2``, ``sum |g|**p``."""
    if kind == _INF:
        m = 0.0
        nan = False
        for i in range(lo, hi):
            a = abs(np.float64(g[i]))
            m = max(m, a)
            nan = nan | (a != a)
        return np.nan if nan else m
    s = 0.0
    if kind == _L1:
        for i in range(lo, hi):
            s += abs(np.float64(g[i]))
    elif kind == _L2:
        for i in range(lo, hi):
            a = np.float64(g[i])
            s += a * a
    else:
        for i in range(lo, hi):
            s += abs(np.float64(g[i])) ** p
    return s


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _norm_finish(s, kind, p):
    if kind == _INF or kind == _L1:
        return s
    if kind == _L2:
        return math.sqrt(s)
    return s ** (1.0 / p)


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _norm_serial(g, kind, p):
    return _norm_finish(_norm_partial(g, 0, g.shape[0], kind, p), kind, p)


@kernel_cache.repair_on_damage
@numba.njit(**_jit, parallel=True)
def _norm_parallel(g, kind, p):
    n = g.shape[0]
    size = (n + _CHUNKS - 1) // _CHUNKS
    partial = np.zeros(_CHUNKS)
    for c in numba.prange(_CHUNKS):
        partial[c] = _norm_partial(g, min(c * size, n), min((c + 1) * size, n), kind, p)
    if kind == _INF:
        s = 0.0
        for c in range(_CHUNKS):
            if partial[c] != partial[c]:
                return np.nan
            s = max(s, partial[c])
    else:
        s = 0.0
        for c in range(_CHUNKS):
            s += partial[c]
    return _norm_finish(s, kind, p)


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _coefficient(g, total, max_norm):
    """torch's ``clamp(max_norm / (total + 1e-6), max=1)``, in ``g``'s dtype.

    torch evaluates ``max_norm / t`` as ``t.reciprocal() * max_norm``; so do we.
    """
    dt = g.dtype.type
    coef = dt(1) / (dt(total) + dt(1e-6)) * dt(max_norm)
    if coef >= dt(1):  # NaN stays NaN, as with torch.clamp
        coef = dt(1)
    return coef


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _scale_range(g, lo, hi, coef):
    for i in range(lo, hi):
        g[i] = g[i] * coef


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _clip_serial(g, total, max_norm):
    coef = _coefficient(g, total, max_norm)
    if coef != 1:  # multiplying by 1 changes no bit (torch does it anyway)
        _scale_range(g, 0, g.shape[0], coef)


@kernel_cache.repair_on_damage
@numba.njit(**_jit, parallel=True)
def _clip_parallel(g, total, max_norm):
    coef = _coefficient(g, total, max_norm)
    if coef != 1:
        n = g.shape[0]
        size = (n + _CHUNKS - 1) // _CHUNKS
        for c in numba.prange(_CHUNKS):
            _scale_range(g, min(c * size, n), min((c + 1) * size, n), coef)


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _clamp_range(g, lo, hi, low, high):
    # comparisons with NaN are false, so NaN stays NaN (torch.clamp)
    for i in range(lo, hi):
        x = g[i]
        if x < low:
            x = low
        if x > high:
            x = high
        g[i] = x


@kernel_cache.repair_on_damage
@numba.njit(**_jit)
def _clamp_serial(g, low, high):
    _clamp_range(g, 0, g.shape[0], low, high)


@kernel_cache.repair_on_damage
@numba.njit(**_jit, parallel=True)
def _clamp_parallel(g, low, high):
    n = g.shape[0]
    size = (n + _CHUNKS - 1) // _CHUNKS
    for c in numba.prange(_CHUNKS):
        _clamp_range(g, min(c * size, n), min((c + 1) * size, n), low, high)


def _flat_grad(g) -> np.ndarray:
    """Validate an array clipped in place; return its 1-D plain-ndarray view.

    A C-contiguous, writeable float32/float64 NumPy array; ndarray subclasses
    other than masked arrays are clipped through a base-class view of their
    memory (:func:`fastgd._checks.check_params`).
    """
    if not isinstance(g, np.ndarray):
        raise TypeError(
            f"grad must be a NumPy array (it is clipped in place), got {type(g).__name__}"
        )
    return _checks.check_params(g, "grad").view(np.ndarray).reshape(-1)


def _number(name: str, value, accepted: str) -> float:
    """``value`` as a float (inf and NaN included), or a ``ValueError`` naming
    ``name`` and the ``accepted`` values: bools, non-real values and ints
    beyond float64's range are refused."""
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        bits = abs(int(value)).bit_length()
        raise ValueError(
            f"Invalid {name}: an integer of {bits} bits, beyond float64's range "
            f"(must be {accepted})"
        ) from None


def _bound(name: str, value) -> float:
    """A nonnegative real number or inf; ``-0.0`` is read as ``0.0`` (so the
    signs of the results are torch's)."""
    value = _number(name, value, "a real number >= 0 or inf")
    if not value >= 0.0:
        raise ValueError(f"Invalid {name}: {value} (must be >= 0 or inf)")
    return value + 0.0


def clip_grad_norm_(
    g: np.ndarray,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    r"""Scale ``g`` in place so that its ``norm_type``-norm is at most ``max_norm``.

    torch.nn.utils.clip_grad_norm_ for one array:

    .. code-block:: text

        total = (sum_i |g_i| ** p) ** (1 / p)          (max_i |g_i| for p = inf)
        coef  = min(max_norm / (total + 1e-6), 1)
        g     = g * coef

    ``coef`` is computed as torch computes it, in ``g``'s dtype:
    ``min((1 / (dtype(total) + dtype(1e-6))) * dtype(max_norm), 1)``, so an
    equal total gives a bit-identical coefficient. A NaN total gives a NaN
    coefficient (every element becomes NaN) and an infinite one a zero
    coefficient, as in torch.

    Parameters
    ----------
    g : ndarray
        C-contiguous, writeable float32 or float64 array of any shape; scaled
        in place. ndarray subclasses are scaled through a plain view of their
        memory; masked arrays are refused (the mask would be ignored).
    max_norm : float
        The largest norm allowed, ``>= 0`` (``inf`` disables clipping).
    norm_type : float, default 2.0
        ``p`` of the p-norm: any ``p > 0``, or ``inf`` (or ``"inf"``) for ``max |g_i|``.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` instead of scaling when the total norm (rounded
        to ``g``'s dtype) is NaN or infinite; ``g`` is then left untouched.

    Returns
    -------
    float
        The total norm of ``g`` before clipping, in float64.

    Raises
    ------
    TypeError
        ``g`` is not a float32/float64 NumPy array, is a masked array, is not
        C-contiguous or is read-only.
    ValueError
        ``max_norm`` is negative or NaN, ``norm_type`` is not positive, either
        is not a real number (a bool, a string, an int beyond float64), or
        ``error_if_nonfinite`` is not a bool.
    RuntimeError
        ``error_if_nonfinite=True`` and the norm is not finite.

    Notes
    -----
    Differences from torch, all deliberate:

    - The norm is accumulated in float64 whatever ``g``'s dtype (torch
      accumulates float32 gradients in float32), in one pass. For float32 the
      returned norm is the more accurate value; rounded to float32 it agrees
      with torch's to float32 rounding, and so do the clipped gradients. A
      float32 gradient whose norm exceeds the float32 range returns that
      finite float64 norm (torch returns inf); the scaling and
      ``error_if_nonfinite`` use the norm rounded to float32, as torch does.
    - The inf-norm of an empty array is 0 (torch raises).
    - ``g`` is left untouched when ``coef == 1`` (torch multiplies by 1.0,
      which changes no bit).
    - A negative ``max_norm`` is an error (torch flips the gradient's sign).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.clip import clip_grad_norm_
    >>> g = np.array([3.0, 4.0])
    >>> clip_grad_norm_(g, 1.0)
    5.0
    >>> g.round(6)
    array([0.6, 0.8])
    """
    flat = _flat_grad(g)
    max_norm = _bound("max_norm", max_norm)
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    p = _number("norm_type", norm_type, 'a positive number, inf or "inf"')
    if not p > 0.0:
        raise ValueError(f"Invalid norm_type: {p} (must be > 0 or inf)")
    error_if_nonfinite = _checks.flag("error_if_nonfinite", error_if_nonfinite)
    kind = _INF if p == math.inf else _L1 if p == 1.0 else _L2 if p == 2.0 else _LP

    parallel = backends.select(flat.nbytes, "auto") == "parallel"
    norm = _norm_parallel if parallel else _norm_serial
    total = float(norm(flat, kind, p))

    if error_if_nonfinite and not total < _OVERFLOW[flat.dtype.type]:
        raise RuntimeError(
            f"The total norm of order {p} of the gradient is non-finite, so it cannot "
            "be clipped. To scale the gradient by the non-finite norm anyway, set "
            "error_if_nonfinite=False"
        )
    parallel = backends.select(2 * flat.nbytes, "auto") == "parallel"
    clip = _clip_parallel if parallel else _clip_serial
    clip(flat, total, max_norm)
    return total


def clip_grad_value_(g: np.ndarray, clip_value: float) -> None:
    """Clamp ``g`` in place to ``[-clip_value, clip_value]``.

    torch.nn.utils.clip_grad_value_ for one array:
    ``g_i = min(max(g_i, -clip_value), clip_value)``, with ``clip_value``
    rounded to ``g``'s dtype first. NaN stays NaN; infinities are clamped.

    Parameters
    ----------
    g : ndarray
        C-contiguous, writeable float32 or float64 array of any shape; clamped in place.
    clip_value : float
        The bound, ``>= 0`` (``inf`` changes nothing). torch accepts a negative
        value (and sets every element to it); fastgd raises ``ValueError``.

    Raises
    ------
    TypeError
        ``g`` is not a float32/float64 NumPy array, is a masked array, is not
        C-contiguous or is read-only.
    ValueError
        ``clip_value`` is negative, NaN or not a real number.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.clip import clip_grad_value_
    >>> g = np.array([-3.0, 0.5, np.nan, 2.0])
    >>> clip_grad_value_(g, 1.0)
    >>> g
    array([-1. ,  0.5,  nan,  1. ])
    """
    flat = _flat_grad(g)
    with np.errstate(over="ignore"):  # a bound past the dtype's range is inf: no clamping
        high = flat.dtype.type(_bound("clip_value", clip_value))
    parallel = backends.select(2 * flat.nbytes, "auto") == "parallel"
    clamp = _clamp_parallel if parallel else _clamp_serial
    clamp(flat, -high, high)
