"""What the loop of :func:`fastgd.driver.minimize` does to CUDA arrays.

``x0`` with ``__cuda_array_interface__`` (a CuPy array, a torch CUDA tensor,
a numba device array) runs on the GPU: ``x`` is a device array the optimizer
(or the L-BFGS history, :class:`fastgd.lbfgs.History` with ``backend="cuda"``)
updates in place, ``fun`` receives it and must return its gradient as a CUDA
array of ``x``'s shape and dtype, and the per-step bookkeeping is one CUDA
reduction. Nothing is copied between host and device but scalars and the
blocks' partial sums; ``result.x`` and ``result.jac`` are device arrays.

Not available on CUDA arrays (refused before ``fun`` is called): clipping,
``l1``, ``method="nesterov"`` and mini-batches.
"""

from __future__ import annotations

import math

import numpy as np

from fastgd import _checks
from fastgd.driver._validate import _describe, _dtype, _nonfinite_x0


def _cuda():
    from numba import cuda

    return cuda


class CudaArrays:
    """``x`` a device array on the GPU, updated in place."""

    def __init__(self):
        from fastgd.lbfgs._cuda import Scratch

        self.scratch = Scratch()

    @staticmethod
    def copy(x):
        """The ``xk`` of ``callback(xk)``: a device copy of the live parameters."""
        out = _cuda().device_array_like(x)
        out.copy_to_device(x)
        return out

    def start(self, x0, dtype):
        """A device copy of ``x0`` in ``dtype`` (``x0``'s own dtype by default:
        float32 or float64), checked finite."""
        from fastgd import cuda as fastgd_cuda
        from fastgd.lbfgs._cuda import cast_to, dot_and_maxabs

        cuda = _cuda()
        src = fastgd_cuda.device_array(x0, "x0", writeable=False)  # only read: copied
        if src.size == 0:
            raise ValueError(
                f"x0 is empty (shape {tuple(src.shape)}); it needs at least one parameter"
            )
        dtype = np.dtype(src.dtype) if dtype is None else _dtype(dtype)
        shape = tuple(src.shape) or (1,)
        x = cuda.device_array(shape, dtype)
        flat_src, flat_x = src.reshape(src.size), x.reshape(x.size)
        if dtype == src.dtype:
            flat_x.copy_to_device(flat_src)
        else:
            cast_to(flat_src, flat_x, self.scratch)
        _, big = dot_and_maxabs(flat_x, flat_x, self.scratch)
        if not big < math.inf:  # NaN or inf: find the first on the host (an error path)
            host = flat_x.copy_to_host()
            i = int(np.flatnonzero(~np.isfinite(host))[0])
            where = i if len(shape) == 1 else tuple(int(k) for k in np.unravel_index(i, shape))
            raise _nonfinite_x0(where, flat_src[i : i + 1].copy_to_host()[0], host[i], dtype)
        return x

    def refuse(self, run, l1) -> None:
        """What minimize does not do on CUDA arrays, refused before ``fun`` runs."""
        bad = {
            "clip_norm": run.clip_norm is not None,
            "clip_value": run.clip_value is not None,
            "l1": l1 != 0.0,
            "batch_size/n_samples (mini-batches)": run.batched,
            "method='nesterov'": run.method == "nesterov",
        }
        names = [name for name, on in bad.items() if on]
        if names:
            raise ValueError(
                f"x0 is a CUDA array: minimize does not take {', '.join(names)} on the GPU. "
                "Step a fastgd optimizer on the CUDA array yourself (fastgd.SGD(x, "
                "nesterov=True, ...), fastgd.clip_grad_norm_ ...), or pass a NumPy x0"
            )

    def optimizer(self, method, x, l1, l1_mode, backend, hyperparameters):
        if backend not in ("auto", "cuda"):
            raise ValueError(
                f"x0 is a CUDA array: backend must be 'auto' or 'cuda', got {backend!r}"
            )
        if method == "lbfgs":
            from fastgd.lbfgs import History

            if hyperparameters.get("form", "two_loop") != "two_loop":
                raise ValueError(
                    "x0 is a CUDA array: method='lbfgs' takes form='two_loop' on the GPU "
                    f"(got form={hyperparameters['form']!r})"
                )
            history = History(x.size, x.dtype, backend="cuda", **hyperparameters)
            history.l1 = l1
            return history
        from fastgd.optimizers import OPTIMIZERS

        return OPTIMIZERS[method](x, l1=l1, l1_mode=l1_mode, backend="cuda", **hyperparameters)

    def attach(self, run, x) -> None:
        """``run.x`` and ``run.view``: the device array itself (device arrays
        have no read-only flag; callbacks that take ``xk`` get a copy)."""
        run.x = run.view = x

    def current(self, run) -> None:
        """After a step: ``run.x`` is updated in place already."""

    def buffer(self, x):
        return _cuda().device_array_like(x)

    def settle(self, run, f, g):
        return f, g

    def gradient(self, run, g):
        """``g`` checked: a CUDA array of ``x``'s shape (or size, flat) and dtype."""
        x = run.x
        if not _checks.is_cuda_array(g):
            raise TypeError(
                f"{run.g_source} returned {_describe(g)} at iteration {run.t}; x0 is a CUDA "
                f"array, so the gradient must be a CUDA array of x's shape {tuple(x.shape)} "
                f"and dtype {x.dtype} (fastgd never copies between host and device silently)"
            )
        from fastgd import cuda as fastgd_cuda

        shape = tuple(getattr(g, "shape", ()))
        if shape != tuple(x.shape) and not (len(shape) == 1 and shape[0] == x.size):
            raise ValueError(
                f"{run.g_source} returned a CUDA array of shape {shape} at iteration {run.t}; "
                f"the gradient must have x's shape {tuple(x.shape)} (or its size, {x.size}, flat)"
            )
        try:
            flat = fastgd_cuda.flat_grad(g.reshape(x.shape) if shape != tuple(x.shape) else g,
                                         tuple(x.shape), np.dtype(x.dtype))  # fmt: skip
        except TypeError as e:
            raise TypeError(f"{run.g_source} at iteration {run.t}: {e}") from None
        return flat.reshape(x.shape)

    def measures(self, run, point, work):
        """``(finite, optimality, l2)``: one CUDA reduction of ``work``."""
        from fastgd.lbfgs._cuda import dot_and_maxabs

        flat = work.reshape(work.size)
        sumsq, big = dot_and_maxabs(flat, flat, self.scratch)
        finite = big < math.inf
        return finite, big, math.sqrt(sumsq)

    def clip(self, run, work, l2):  # refused up front (refuse)
        raise AssertionError("clipping is refused for CUDA arrays")

    def keep(self, run) -> None:
        run.best_x.copy_to_device(run.x)

    def restore(self, run) -> None:
        run.x.copy_to_device(run.best_x)
