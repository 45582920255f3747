"""Limited-memory BFGS: the history, the search direction and the line search.

The driver is :func:`fastgd.minimize` with ``method="lbfgs"``
(:mod:`fastgd.driver._lbfgs`); this package holds its parts:

- :class:`History`: the last ``m`` pairs ``s = x_{k+1} - x_k``,
  ``y = g_{k+1} - g_k`` in preallocated ring buffers, and the direction
  ``d = -H g`` by the two-loop recursion with ``H0 = gamma I``,
  ``gamma = s.y / y.y`` of the newest pair (Nocedal & Wright, Algorithm 7.4);
- :mod:`fastgd.lbfgs._kernels`: the fused vector kernels (float64
  accumulation, serial or parallel by size) and the recursion's pass plan
  (:func:`fastgd.lbfgs._kernels.two_loop_pass`), written once;
- :mod:`fastgd.lbfgs._cuda`: the same passes as CUDA kernels, for a
  ``History`` with ``backend="cuda"`` over device arrays;
- :mod:`fastgd.lbfgs._linesearch`: the strong-Wolfe line search of Moré and
  Thuente (MINPACK-2's dcsrch), scalar logic on the host.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["History"]


class History:
    """The L-BFGS memory over flat arrays of ``n`` elements of ``dtype``.

    Parameters
    ----------
    n : int
        Parameters.
    dtype : numpy dtype
        float32 or float64: the ring buffers' and the direction's dtype (dot
        products accumulate in float64).
    m : int
        Pairs kept (SciPy's ``maxcor``).
    backend : {"auto", "serial", "parallel", "cuda"}
        The kernels' loop; ``"cuda"``: the ring buffers and the direction are
        device arrays and every vector operation a CUDA kernel
        (:mod:`fastgd.lbfgs._cuda`), for parameters and gradients on the GPU.
    form : {"two_loop", "vector_free"}
        How the direction is computed: fused passes over the vectors
        (:func:`fastgd.lbfgs._kernels.two_loop`, ``8k + 7`` vectors of traffic
        per iteration with the push), or the two-loop recursion on scalars over
        the Gram matrix of ``[s.., y.., g]`` (:mod:`fastgd.lbfgs._vectorfree`,
        ``4k + 5``). The same direction to rounding (measured 1e-14 relative).
        ``"two_loop"`` is the default: on the machines measured the vector-free
        passes, which stream ``2k + 1`` rows at once, are slower despite moving
        half the bytes (see :mod:`fastgd.lbfgs._vectorfree`).
    """

    def __init__(
        self,
        n: int,
        dtype,
        m: int = 10,
        maxls: int = 20,
        backend: str = "auto",
        form: str = "two_loop",
    ):
        if form not in ("vector_free", "two_loop"):
            raise ValueError(f"form must be 'vector_free' or 'two_loop', got {form!r}")
        self.cuda = backend == "cuda"
        if self.cuda and form != "two_loop":
            raise ValueError("form='vector_free' runs on NumPy arrays; CUDA arrays take 'two_loop'")
        self.form = form
        self.m = m
        self.maxls = maxls
        self.l1 = 0.0  # what the driver loop reads of an optimizer
        self.lr = math.nan  # the last accepted step length
        self.n = n
        self.dtype = np.dtype(dtype)
        if self.cuda:
            from numba import cuda

            from fastgd.lbfgs import _cuda

            self._scratch = _cuda.Scratch()
            self.S = cuda.device_array((m, n), self.dtype)
            self.Y = cuda.device_array((m, n), self.dtype)
            self.d = cuda.device_array(n, self.dtype)
            self.g = cuda.device_array(n, self.dtype)
        else:
            self.S = np.zeros((m, n), self.dtype)
            self.Y = np.zeros((m, n), self.dtype)
            self.d = np.empty(n, self.dtype)
            self.g = np.empty(n, self.dtype)  # the driver's copy of the gradient at x
        self.rho = np.zeros(m)  # 1 / s.y of each row
        self.alpha = np.zeros(m)  # scratch of the two-loop recursion
        self.order = np.zeros(m, np.int64)  # the valid rows, newest first
        self.count = 0
        self.head = 0  # the row the next pair goes to
        self.gamma = 1.0
        self.dg = 0.0  # g . d of the last direction
        self.backend = backend
        self.skipped = 0  # pairs not stored because s.y was not positive enough
        self._gram = None
        if form == "vector_free":
            from fastgd.lbfgs._vectorfree import Gram

            self._gram = Gram(m, n)

    def clear(self) -> None:
        """Forget every pair (a restart: the next direction is -g)."""
        self.count = 0
        self.head = 0
        if self._gram is not None:
            self._gram.clear()

    def direction(self, g: np.ndarray) -> np.ndarray:
        """``d = -H g`` into the preallocated direction; ``-g`` without pairs.
        ``self.dg`` is then ``g . d`` (float64, from the same pass)."""
        from fastgd.lbfgs import _kernels

        g = g.reshape(g.size)
        if self.cuda:
            from fastgd.lbfgs import _cuda

            gamma = self.gamma if self.count else 1.0
            self.dg = _cuda.two_loop(
                g, self.S, self.Y, self.rho, self.order, self.count, gamma, self.d,
                self.alpha, self._scratch,
            )  # fmt: skip
            return self.d
        if self.count == 0:
            self.dg = _kernels.negate(g, self.d, self.backend)
            if self._gram is not None:
                self._gram.clear()
            return self.d
        if self._gram is not None:
            g = _kernels._vec(g, "g", (self.n,), self.dtype)
            parallel = _kernels._parallel((2 * self.count + 2) * g.nbytes, self.backend)
            self.dg = self._gram.direction(self, g, parallel)
            return self.d
        self.dg = _kernels.two_loop(
            g, self.S, self.Y, self.rho, self.order, self.count, self.gamma, self.d,
            self.alpha, self.backend,
        )  # fmt: skip
        return self.d

    def push(self, stp: float, d: np.ndarray, g_new: np.ndarray, g_old: np.ndarray) -> bool:
        """Store ``s = stp d``, ``y = g_new - g_old`` (one fused pass) if
        ``s.y > eps y.y`` (SciPy's L-BFGS-B test, eps = float64's machine
        epsilon); True if stored."""
        from fastgd.lbfgs import _kernels

        row = self.head
        commit = None
        if self.cuda:
            from fastgd.lbfgs import _cuda

            sy, yy = _cuda.update_pair(
                stp, d, g_new.reshape(g_new.size), g_old.reshape(g_old.size), self.S[row],
                self.Y[row], self._scratch,
            )  # fmt: skip
        elif self._gram is None:
            sy, yy = _kernels.update_pair(
                stp, d, g_new.reshape(-1), g_old.reshape(-1), self.S[row], self.Y[row], self.backend
            )
        else:
            sy, yy, commit = self._push_gram(stp, d, g_new, g_old, row)
        accepted = sy > np.finfo(np.float64).eps * yy
        if commit is not None:
            commit(accepted)
        if not accepted:
            self.skipped += 1
            if self.count == self.m:  # the row written was the oldest pair: drop it
                self.count -= 1
            return False
        self.rho[row] = 1.0 / sy
        self.gamma = sy / yy
        self.count = min(self.count + 1, self.m)
        self.head = (row + 1) % self.m
        # newest first: head - 1, head - 2, ... (mod m)
        self.order[: self.count] = (self.head - 1 - np.arange(self.count)) % self.m
        return True

    def _push_gram(self, stp, d, g_new, g_old, row):
        from fastgd.lbfgs import _kernels

        n, dt = self.n, self.dtype
        d = _kernels._vec(d, "d", (n,), dt)
        g_new = _kernels._vec(g_new.reshape(-1), "g_new", (n,), dt)
        g_old = _kernels._vec(g_old.reshape(-1), "g_old", (n,), dt)
        for name, a in (("d", d), ("g_new", g_new), ("g_old", g_old)):
            _kernels._apart(self.S, "the history", (name, a))
            _kernels._apart(self.Y, "the history", (name, a))
        parallel = _kernels._parallel((2 * self.count + 5) * d.nbytes, self.backend)
        return self._gram.push(self, float(stp), d, g_new, g_old, row, parallel)

    def keep(self, g) -> tuple[float, float]:
        """Copy ``g`` (the gradient at the current point) into ``self.g`` and
        return its ``(g . g, max |g|)`` in float64 (NaN max if any ``g`` is
        NaN), in one pass: the driver's copy and its measures together."""
        g = g.reshape(g.size)
        if self.cuda:
            from fastgd.lbfgs import _cuda

            return _cuda.dot_and_maxabs(g, g, self._scratch, out=self.g)
        from fastgd.lbfgs import _kernels

        return _kernels.copy_and_measure(g, self.g, self.backend)

    def step_to(self, x0, stp: float, out) -> None:
        """``out = x0 + stp d`` (a trial point along the last direction), one pass."""
        if self.cuda:
            from fastgd.lbfgs import _cuda

            _cuda.step_to(x0, self.d, stp, out, self._scratch)
        else:
            from fastgd.lbfgs import _kernels

            _kernels.step_to(x0, self.d, stp, out, self.backend)

    def slope(self, g) -> float:
        """``g . d`` in float64 (the line search's slope at a trial point), one pass."""
        g = g.reshape(g.size)
        if self.cuda:
            from fastgd.lbfgs import _cuda

            return _cuda.dot_and_maxabs(g, self.d, self._scratch)[0]
        from fastgd.lbfgs import _kernels

        return _kernels.dot(g, self.d, self.backend)

    @property
    def nbytes(self) -> int:
        return self.S.nbytes + self.Y.nbytes + self.d.nbytes + self.g.nbytes
