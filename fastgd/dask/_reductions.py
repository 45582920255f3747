"""Reductions and clipping of dask gradients: one task per chunk, each running
fastgd's NumPy-API kernels on its block, and one small task combining the
partial results in float64.

:func:`gradient_measures` is :func:`fastgd.minimize`'s per-step bookkeeping,
:func:`clip_grad_norm_` and :func:`clip_grad_value_` are
:mod:`fastgd.clip`'s, for dask arrays. Dask arrays are immutable, so the
clipping functions return new (lazy) arrays instead of clipping in place.
"""

from __future__ import annotations

import math

import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from fastgd import _checks
from fastgd.clip import (
    _INF,
    _L1,
    _L2,
    _LP,
    _OVERFLOW,
    _bound,
    _clamp_serial,
    _clip_serial,
    _coefficient,
    _norm_finish,
    _norm_partial,
    _number,
)
from fastgd.driver._measures import _gradient_partials

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "first_nonfinite",
    "gradient_measures",
    "scale_to_norm",
]


def _block_indices(numblocks) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in idx) for idx in np.ndindex(*numblocks)]


def _reduction(prefix: str, arrays, block_task, combine_task) -> Delayed:
    """A ``Delayed`` over the blocks of ``arrays`` (same chunks): the task
    ``block_task(idx, keys)`` per block (``keys``: the blocks' keys, one per
    array), then ``combine_task(partial_keys)``; one graph layer."""
    name = f"{prefix}-{tokenize(prefix, *(a.name for a in arrays))}"
    tasks = {}
    partial_keys = []
    for i, idx in enumerate(_block_indices(arrays[0].numblocks)):
        key = (name, i)
        tasks[key] = block_task(idx, [(a.name, *idx) for a in arrays])
        partial_keys.append(key)
    tasks[name] = combine_task(partial_keys)
    graph = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    layers = dict(graph.layers)
    deps = dict(graph.dependencies)
    layers[name] = MaterializedLayer(tasks)
    deps[name] = {a.name for a in arrays}
    return Delayed(name, HighLevelGraph(layers, deps))


def _dask_array(x, what: str):
    """``x`` as a float32/float64 dask array with known chunk sizes, or a clear error."""
    from fastgd.dask._optimizer import check_dask_array

    return check_dask_array(x, what, "fastgd.clip and fastgd.minimize")


def _flat(block) -> np.ndarray:
    return np.ravel(block)  # C order, contiguous (a copy only where needed)


# -- gradient measures -------------------------------------------------------------


def _measures_block(x, g, l1: float):
    finite, optimality, sumsq = _gradient_partials(_flat(x), _flat(g), l1)
    return bool(finite), float(optimality), float(sumsq)


def _measures_combine(parts) -> tuple[bool, float, float]:
    finite = all(p[0] for p in parts)
    optimality = max((p[1] for p in parts), default=0.0)
    sumsq = math.fsum(p[2] for p in parts) if finite else sum(p[2] for p in parts)
    return finite, optimality, math.sqrt(sumsq)


def measures_delayed(x, g, l1: float) -> Delayed:
    """:func:`gradient_measures` as a ``Delayed`` (no checks: the arrays are
    known to match); with ``l1 == 0`` ``x`` is not read (nor moved)."""
    arrays = (g,) if l1 == 0.0 else (x, g)
    l1 = float(l1)

    def block(idx, keys):
        return (_measures_block, keys[0], keys[-1], l1)

    return _reduction("fastgd-measures", arrays, block, lambda keys: (_measures_combine, keys))


def gradient_measures(x, g, l1: float = 0.0) -> tuple[bool, float, float]:
    """``(finite, optimality, l2)`` of the gradient ``g`` at ``x``, in float64.

    :func:`fastgd.minimize`'s per-step bookkeeping for dask arrays: one pass
    over each chunk with the kernel ``minimize`` runs on NumPy arrays, then
    the chunks' partial results combined in float64 (one scheduler round
    trip).

    Parameters
    ----------
    x, g : dask.array.Array
        The parameters and the gradient: float32 or float64, same shape and
        chunks. ``x`` is read only for ``l1 > 0``.
    l1 : float, default 0
        The L1 strength (``>= 0``) of the subgradient optimality measure.

    Returns
    -------
    finite : bool
        Every ``g_i`` is finite.
    optimality : float
        ``max |g_i|``; for ``l1 > 0`` the inf-norm of the minimum-norm
        subgradient of ``f + l1 ||x||_1``: ``g_i + l1 sign(x_i)`` where
        ``x_i != 0`` and ``max(|g_i| - l1, 0)`` where ``x_i == 0``.
    l2 : float
        ``||g||_2``: the square root of the chunks' sums of squares, summed
        exactly (``math.fsum``). It can differ from the NumPy kernel's
        one-pass value on the whole array by rounding (a few ulps).

    Raises
    ------
    TypeError
        ``x`` or ``g`` is not a float32/float64 dask array.
    ValueError
        Shapes or chunks differ, unknown chunk sizes, ``l1`` negative or NaN.
    """
    x = _dask_array(x, "x")
    g = _dask_array(g, "g")
    if x.shape != g.shape or x.chunks != g.chunks:
        raise ValueError(
            f"x (shape {x.shape}, chunks {x.chunks}) and g (shape {g.shape}, chunks "
            f"{g.chunks}) must have the same shape and chunks"
        )
    l1 = _checks.nonnegative("l1", l1)
    return tuple(measures_delayed(x, g, l1).compute())


def _first_bad_block(block, offsets, shape) -> int:
    bad = np.flatnonzero(~np.isfinite(_flat(block)))
    if bad.size == 0:
        return -1
    local = np.unravel_index(int(bad[0]), block.shape)
    return int(
        np.ravel_multi_index(tuple(o + i for o, i in zip(offsets, local, strict=True)), shape)
    )


def _first_bad_combine(parts) -> int:
    found = [p for p in parts if p >= 0]
    return min(found) if found else -1


def first_nonfinite(x) -> int | None:
    """The flat (C-order) index of the first NaN or infinite element of the
    dask array ``x``, or None if every element is finite (one pass per chunk).

    Parameters
    ----------
    x : dask.array.Array
        Float32 or float64, known chunk sizes.

    Returns
    -------
    int or None
        ``int(np.flatnonzero(~np.isfinite(x.compute()))[0])`` when there is one.
    """
    x = _dask_array(x, "x")
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in x.chunks]
    shape = tuple(int(s) for s in x.shape)

    def block(idx, keys):
        offsets = tuple(int(starts[d][i]) for d, i in enumerate(idx))
        return (_first_bad_block, keys[0], offsets, shape)

    i = _reduction("fastgd-first-nonfinite", (x,), block, lambda k: (_first_bad_combine, k))
    i = i.compute()
    return None if i < 0 else int(i)


# -- clipping ------------------------------------------------------------------------


def _norm_kind(norm_type) -> tuple[int, float]:
    """``(kind, p)`` of a ``norm_type``, checked as :func:`fastgd.clip.clip_grad_norm_` does."""
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    p = _number("norm_type", norm_type, 'a positive number, inf or "inf"')
    if not p > 0.0:
        raise ValueError(f"Invalid norm_type: {p} (must be > 0 or inf)")
    return (_INF if p == math.inf else _L1 if p == 1.0 else _L2 if p == 2.0 else _LP), p


def _norm_block(g, kind: int, p: float) -> float:
    flat = _flat(g)
    return float(_norm_partial(flat, 0, flat.shape[0], kind, p))


def _norm_combine(parts, kind: int, p: float) -> float:
    if kind == _INF:
        if any(s != s for s in parts):
            return math.nan
        return max(parts, default=0.0)
    return float(_norm_finish(math.fsum(parts) if all(map(math.isfinite, parts)) else sum(parts),
                              kind, p))  # fmt: skip


def _norm(g, kind: int, p: float) -> float:
    def block(idx, keys):
        return (_norm_block, keys[0], kind, p)

    d = _reduction(f"fastgd-norm{kind}", (g,), block, lambda k: (_norm_combine, k, kind, p))
    return float(d.compute())


def _scaled_block(block, total: float, max_norm: float) -> np.ndarray:
    out = np.array(block, dtype=block.dtype, order="C", copy=True)
    _clip_serial(out.reshape(-1), total, max_norm)
    return out


def _clamped_block(block, high) -> np.ndarray:
    out = np.array(block, dtype=block.dtype, order="C", copy=True)
    _clamp_serial(out.reshape(-1), -high, high)
    return out


def scale_to_norm(g, total: float, max_norm: float):
    """``g`` scaled as :func:`fastgd.clip.clip_grad_norm_` scales it, for a
    norm ``total`` already known: a new lazy dask array.

    The coefficient is torch's, ``min((1 / (dtype(total) + dtype(1e-6))) *
    dtype(max_norm), 1)`` in ``g``'s dtype, computed by :mod:`fastgd.clip`'s
    kernel on a copy of each block. When it is 1, ``g`` itself is returned.

    Parameters
    ----------
    g : dask.array.Array
        Float32 or float64.
    total : float
        ``g``'s norm (as :func:`clip_grad_norm_` or :func:`gradient_measures`
        computes it).
    max_norm : float
        The largest norm allowed, ``>= 0``.

    Returns
    -------
    dask.array.Array
        The scaled gradient (same shape, dtype and chunks), or ``g``.
    """
    g = _dask_array(g, "g")
    total = float(total)
    max_norm = _bound("max_norm", max_norm)
    coef = _coefficient(np.zeros(1, dtype=g.dtype), total, max_norm)
    if coef == 1:  # multiplying by 1 changes no bit
        return g
    return g.map_blocks(_scaled_block, total, max_norm, dtype=g.dtype)


def clip_grad_norm_(g, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    r"""``g`` scaled so that its ``norm_type``-norm is at most ``max_norm``, and
    that norm: :func:`fastgd.clip.clip_grad_norm_` for a dask array.

    Dask arrays are immutable, so unlike :func:`fastgd.clip.clip_grad_norm_`
    (and torch's) this function does **not** change ``g``: it returns the
    clipped array together with the norm, ``(clipped, total_norm)``. Use it
    as ``g, norm = clip_grad_norm_(g, max_norm)``.

    .. code-block:: text

        total = (sum_i |g_i| ** p) ** (1 / p)          (max_i |g_i| for p = inf)
        coef  = min(max_norm / (total + 1e-6), 1)
        clipped = g * coef

    The norm is one pass over each chunk (the kernel of
    :mod:`fastgd.clip`, accumulating in float64), the chunks' partial sums
    added in float64 (exactly, ``math.fsum``); it is computed at once (one
    scheduler round trip). The scaling is lazy: :mod:`fastgd.clip`'s kernel
    on a copy of each block, with torch's coefficient in ``g``'s dtype.

    Parameters
    ----------
    g : dask.array.Array
        Float32 or float64, any shape and chunks (known chunk sizes). Not modified.
    max_norm : float
        The largest norm allowed, ``>= 0`` (``inf`` disables clipping).
    norm_type : float, default 2.0
        ``p`` of the p-norm: any ``p > 0``, or ``inf`` (or ``"inf"``).
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` when the total norm (rounded to ``g``'s dtype)
        is NaN or infinite.

    Returns
    -------
    clipped : dask.array.Array
        ``g * coef``, lazy, with ``g``'s shape, dtype and chunks; ``g``
        itself when ``coef == 1``.
    total_norm : float
        The norm of ``g`` before clipping, in float64.

    Raises
    ------
    TypeError
        ``g`` is not a float32/float64 dask array.
    ValueError
        As :func:`fastgd.clip.clip_grad_norm_`: ``max_norm`` negative or NaN,
        ``norm_type`` not positive, either not a real number,
        ``error_if_nonfinite`` not a bool; also unknown chunk sizes.
    RuntimeError
        ``error_if_nonfinite=True`` and the norm is not finite.

    Notes
    -----
    The norm equals :func:`fastgd.clip.clip_grad_norm_`'s on the same data
    up to the summation order (within an ulp or so); for float32 gradients
    the coefficients, and so the clipped values, are then the same.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastgd.dask import clip_grad_norm_
    >>> g = da.from_array([3.0, 4.0], chunks=1)
    >>> clipped, norm = clip_grad_norm_(g, 1.0)
    >>> norm, clipped.compute().round(6)
    (5.0, array([0.6, 0.8]))
    """
    g = _dask_array(g, "grad")
    max_norm = _bound("max_norm", max_norm)
    kind, p = _norm_kind(norm_type)
    error_if_nonfinite = _checks.flag("error_if_nonfinite", error_if_nonfinite)
    total = _norm(g, kind, p)
    if error_if_nonfinite and not total < _OVERFLOW[np.dtype(g.dtype).type]:
        raise RuntimeError(
            f"The total norm of order {p} of the gradient is non-finite, so it cannot "
            "be clipped. To scale the gradient by the non-finite norm anyway, set "
            "error_if_nonfinite=False"
        )
    return scale_to_norm(g, total, max_norm), total


def clip_grad_value_(g, clip_value: float):
    """``g`` clamped to ``[-clip_value, clip_value]``: a new lazy dask array.

    :func:`fastgd.clip.clip_grad_value_` for a dask array, with torch's
    semantics (``clip_value`` rounded to ``g``'s dtype first; NaN stays NaN,
    infinities are clamped). Dask arrays are immutable: ``g`` is not
    modified, the clamped array is returned.

    Parameters
    ----------
    g : dask.array.Array
        Float32 or float64, any shape and chunks.
    clip_value : float
        The bound, ``>= 0`` (``inf`` changes nothing: ``g`` is returned).

    Returns
    -------
    dask.array.Array
        The clamped gradient (same shape, dtype and chunks), computed lazily
        by :mod:`fastgd.clip`'s kernel on a copy of each block.

    Raises
    ------
    TypeError
        ``g`` is not a float32/float64 dask array.
    ValueError
        ``clip_value`` is negative, NaN or not a real number.
    """
    g = _dask_array(g, "grad")
    dtype = np.dtype(g.dtype)
    with np.errstate(over="ignore"):  # a bound past the dtype's range is inf: no clamping
        high = dtype.type(_bound("clip_value", clip_value))
    if high == np.inf:
        return g
    return g.map_blocks(_clamped_block, high, dtype=dtype)
