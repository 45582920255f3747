"""What the loop of :func:`fastgd.driver.minimize` does to arrays, for NumPy and
for dask parameters: one namespace each, chosen once from ``x0``
(:func:`arrays_for`), so that one loop (:mod:`fastgd.driver._loop`) serves both.

NumPy: ``x`` is one C-contiguous array that the optimizer updates in place;
gradients are checked and, where needed, copied into one buffer; clipping is
in place; the bookkeeping is one fused pass (:mod:`fastgd.driver._measures`).

Dask: the optimizer is a :mod:`fastgd.dask` one (parameters and state on the
workers); ``x`` is its ``params`` snapshot (immutable, new after every step);
gradients must be dask arrays with ``x``'s shape and chunks, persisted once so
that the bookkeeping and the step do not compute ``fun``'s graph twice; the
loss and the bookkeeping are computed together (one scheduler round trip);
clipping makes new lazy arrays. ``import fastgd`` never imports dask: dask
arrays are recognized through ``sys.modules`` (:func:`is_dask_array`).
"""

from __future__ import annotations

import math

import numpy as np

from fastgd import _checks
from fastgd.clip import clip_grad_norm_, clip_grad_value_
from fastgd.driver._common import is_dask_array
from fastgd.driver._measures import _gradient_measures
from fastgd.driver._validate import _describe, _dtype, _nonfinite_x0, _start
from fastgd.optimizers import OPTIMIZERS, Momentum

__all__ = ["DaskArrays", "NumpyArrays", "arrays_for", "is_dask_array"]


def arrays_for(x0):
    """The namespace for a run starting at ``x0``: dask, CUDA
    (:class:`fastgd.driver._cuda_arrays.CudaArrays`) or NumPy."""
    if is_dask_array(x0):
        return DaskArrays()
    if _checks.is_cuda_array(x0):
        from fastgd.driver._cuda_arrays import CudaArrays

        return CudaArrays()
    return NumpyArrays()


def bad_gradient(run, g, dtype=None):
    """Raise the TypeError for a gradient that is not an array of real numbers
    (``dtype``: what NumPy made of ``g``, when it is not an ndarray)."""
    if isinstance(g, np.ndarray) or is_dask_array(g):
        dtype = np.dtype(g.dtype)
    what = _describe(g)
    if dtype is not None and not (isinstance(g, np.ndarray) or is_dask_array(g)):
        what += f" (as an array: dtype {dtype})"
    unsupported = ""
    if dtype is not None and dtype.kind == "c":
        unsupported = " (complex gradients are not supported)"
    raise TypeError(
        f"{run.g_source} returned {what} at iteration {run.t}; expected the "
        f"gradient: an array of real numbers of x's shape {run.x.shape}{unsupported}"
    )


class NumpyArrays:
    """One process: ``x`` a NumPy array updated in place."""

    #: the ``xk`` of ``callback(xk)``: a copy of the live parameters
    copy = staticmethod(np.copy)

    def refuse(self, run, l1) -> None:
        """Every setting runs on NumPy arrays."""

    def start(self, x0, dtype) -> np.ndarray:
        return _start(x0, dtype)

    def optimizer(self, method, x, l1, l1_mode, backend, hyperparameters):
        if method == "lbfgs":
            from fastgd.lbfgs import History

            history = History(x.size, x.dtype, backend=backend, **hyperparameters)
            history.l1 = l1  # refused by the L-BFGS loop unless 0
            return history
        if method == "nesterov":
            return Momentum(x, form="heavy_ball", l1=l1, l1_mode=l1_mode, backend=backend,
                            **hyperparameters)  # fmt: skip
        return OPTIMIZERS[method](x, l1=l1, l1_mode=l1_mode, backend=backend, **hyperparameters)

    def attach(self, run, x) -> None:
        """Set ``run.x`` (the live parameters) and ``run.view`` (read-only)."""
        run.x = x
        run.view = x.view()
        run.view.flags.writeable = False

    def current(self, run) -> None:
        """After a step: ``run.x`` is updated in place already."""

    def buffer(self, x):
        """The buffer early stopping keeps the best ``x`` in."""
        return np.empty_like(x)

    def settle(self, run, f, g):
        return f, g

    def gradient(self, run, g) -> np.ndarray:
        """The gradient as the optimizer takes it: ``x``'s dtype and shape, C order.

        ``fun``'s own array when it already is that and nothing clips it;
        otherwise a copy in one preallocated buffer.
        """
        x = run.x
        returned = g
        if type(g) is not np.ndarray:
            g = self.gradient_array(run, g)
        if g.shape != x.shape:
            if g.size != x.size or (g.ndim > 1 and x.ndim > 1):  # (3, 2) for (2, 3): ambiguous
                raise ValueError(
                    f"{run.g_source} returned {_describe(returned)} at iteration {run.t}; the "
                    f"gradient must have x's shape {x.shape} (or its size, {x.size}, flat)"
                )
            g = g.reshape(x.shape)
        if run.copy_grad or g.dtype != x.dtype or not g.flags.c_contiguous:
            if g.dtype.kind not in "fiu":
                bad_gradient(run, g)
            if run.gbuf is None:
                run.gbuf = np.empty_like(x)
            np.copyto(run.gbuf, g, casting="same_kind")
            return run.gbuf
        return g

    def gradient_array(self, run, g) -> np.ndarray:
        """A gradient that is not an ndarray (a list, a scalar, an ndarray subclass)
        as an ndarray of real numbers."""
        if is_dask_array(g):
            raise TypeError(
                f"{run.g_source} returned {_describe(g)} at iteration {run.t}, but x0 is not "
                "a dask array: minimize would compute the whole gradient on this machine at "
                "every step. Pass x0 as a dask array (dask.array.from_array(x0, chunks=...)) "
                "to keep the parameters and the steps on the dask workers, or return a "
                "NumPy gradient (g.compute())"
            )
        if g is None or isinstance(g, (str, bytes)):
            bad_gradient(run, g)
        try:
            a = np.asarray(g)
        except (TypeError, ValueError):
            bad_gradient(run, g)
        if a.dtype.kind not in "fiu":
            bad_gradient(run, g, a.dtype)
        return a

    def measures(self, run, point, work):
        p = point if point.ndim == 1 else point.reshape(-1)
        w = work if work.ndim == 1 else work.reshape(-1)
        return _gradient_measures(p, w, run.l1)

    def clip(self, run, work, l2):
        """Clip ``work`` (the loop's own copy) in place."""
        if run.clip_norm is not None:
            clip_grad_norm_(work, run.clip_norm)
        if run.clip_value is not None:
            clip_grad_value_(work, run.clip_value)
        return work

    def keep(self, run) -> None:
        np.copyto(run.best_x, run.x)

    def restore(self, run) -> None:
        np.copyto(run.x, run.best_x)


class DaskArrays:
    """``x`` a dask array: a :mod:`fastgd.dask` optimizer on the workers."""

    def __init__(self):
        self.x0 = None
        self.measured = None  # (gradient, its measures), computed with the loss

    @staticmethod
    def copy(x):
        """The ``xk`` of ``callback(xk)``: the snapshot itself, which is immutable."""
        return x

    def refuse(self, run, l1) -> None:
        """Refusals come with the optimizer (:meth:`optimizer`)."""

    def start(self, x0, dtype):
        """``x0`` checked and cast to ``dtype`` lazily; nothing is computed."""
        dtype = _dtype(dtype)
        kind = np.dtype(x0.dtype).kind
        if kind not in "fiu":
            what = " (complex numbers are not supported)" if kind == "c" else ""
            raise TypeError(f"x0 must be an array of real numbers, got {_describe(x0)}{what}")
        if any(math.isnan(s) for s in x0.shape):
            raise ValueError("x0 has unknown chunk sizes; call x0.compute_chunk_sizes() first")
        if x0.size == 0:
            raise ValueError(f"x0 is empty (shape {x0.shape}); it needs at least one parameter")
        if x0.ndim == 0:
            x0 = x0.reshape(1)
        self.x0 = x0
        return x0 if x0.dtype == dtype else x0.astype(dtype)

    def optimizer(self, method, x, l1, l1_mode, backend, hyperparameters):
        """The :mod:`fastgd.dask` optimizer (its chunks copy ``x``), once
        ``x`` is known to be finite."""
        if method == "lbfgs":
            raise ValueError(
                "method='lbfgs' runs on NumPy arrays: a dask x0 takes the first-order "
                "methods ('adam', 'sgd', ...); compute x0 to NumPy for L-BFGS"
            )
        if method == "nesterov":
            raise ValueError(
                "method='nesterov' is not available for a dask x0: it needs the velocity at "
                "the look-ahead point on this machine. Use method='sgd' with "
                "options=dict(momentum=..., nesterov=True) (torch's Nesterov form, whose "
                "iterates are the look-ahead points)"
            )
        import fastgd.dask
        from fastgd.dask._reductions import first_nonfinite, measures_delayed

        opt = fastgd.dask.OPTIMIZERS[method](
            x, l1=l1, l1_mode=l1_mode, backend=backend, **hyperparameters
        )
        params = opt.params
        if not opt.client.compute(measures_delayed(params, params, 0.0)).result()[0]:
            i = first_nonfinite(params)
            where = i if x.ndim == 1 else tuple(int(k) for k in np.unravel_index(i, x.shape))
            at = (where,) if x.ndim == 1 else where
            given, value = opt.client.compute([self.x0[at], params[at]], sync=True)
            raise _nonfinite_x0(where, given[()], value[()], np.dtype(x.dtype))
        return opt

    def attach(self, run, x) -> None:
        self.current(run)

    def current(self, run) -> None:
        """After a step (or a restore): the optimizer's new snapshot."""
        run.x = run.view = run.opt.params

    def buffer(self, x):
        return None  # the best x is a snapshot: nothing to copy into

    def settle(self, run, f, g):
        """Check ``g``, persist it (with ``f`` if that is one dask number: they
        share ``fun``'s graph) and compute ``f`` and the measures of ``g``
        together; ``g`` in ``x``'s dtype."""
        from fastgd.dask._reductions import measures_delayed

        x = run.x
        if not is_dask_array(g):
            raise TypeError(
                f"{run.g_source} returned {_describe(g)} at iteration {run.t}; x0 is a dask "
                f"array, so the gradient must be a dask array with x's shape {x.shape} and "
                f"chunks {x.chunks} (dask.array.from_array(g, chunks=x.chunks))"
            )
        if np.dtype(g.dtype).kind not in "fiu":
            bad_gradient(run, g)
        if g.shape != x.shape or g.chunks != x.chunks:
            what = "shapes" if g.shape != x.shape else "chunks"
            raise ValueError(
                f"{run.g_source} returned {_describe(g)} at iteration {run.t}; the gradient "
                f"must have x's shape {x.shape} and chunks {x.chunks}; the {what} differ: "
                f"got shape {g.shape}, chunks {g.chunks}"
                + ("; use g.rechunk(x.chunks)" if what == "chunks" else "")
            )
        if g.dtype != x.dtype:
            g = g.astype(x.dtype)
        client = run.opt.client
        lazy_f = is_dask_array(f) and f.size == 1  # any other dask f: refused, not computed
        if lazy_f:
            f, g = client.persist([f, g])
        else:
            g = client.persist(g)
        measures = measures_delayed(x, g, run.l1)
        if lazy_f:
            f, m = client.compute([f, measures], sync=True)
        else:
            m = client.compute(measures, sync=True)
        self.measured = (g, m)
        return f, g

    def gradient(self, run, g):
        return g  # checked by settle

    def measures(self, run, point, work):
        if self.measured is not None and self.measured[0] is work:
            return self.measured[1]
        from fastgd.dask._reductions import measures_delayed

        return run.opt.client.compute(measures_delayed(point, work, run.l1), sync=True)

    def clip(self, run, work, l2):
        """New lazy arrays: scaled with the norm measured already (no second
        pass), then clamped."""
        from fastgd.dask._reductions import clip_grad_value_, scale_to_norm

        if run.clip_norm is not None:
            work = scale_to_norm(work, l2, run.clip_norm)
        if run.clip_value is not None:
            work = clip_grad_value_(work, run.clip_value)
        return work

    def keep(self, run) -> None:
        run.best_x = run.x  # an immutable snapshot

    def restore(self, run) -> None:
        """The optimizer's parameters set to the best snapshot, which (equal
        to them, and immutable) is ``x`` from now on."""
        run.opt.set_params(run.best_x)
        run.x = run.view = run.best_x
