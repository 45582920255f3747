"""Test problems: objectives with gradients, Hessians and known minima.

Every problem has the same interface (:class:`Problem`): ``f(x)``,
``grad(x)``, ``fun_and_grad(x)`` (for ``scipy.optimize.minimize(...,
jac=True)``), ``hessp(x, v)`` and, for small ``n``, a dense ``hess(x)``; a
deterministic start ``x0``; the minimizer ``x_star`` and minimum ``f_star``;
and a target ``tol`` (a run has converged when ``f(x) - f_star <= tol``).
The data problems (:class:`LeastSquares`, :class:`LogisticRegression`,
:class:`SoftmaxRegression`) also take ``idx``, a 1-D integer array of sample
indices in ``[0, n_samples)`` (repeats allowed; negative indices are refused,
not wrapped), to evaluate the mean loss over that mini-batch only.

The objectives are plain vectorized NumPy, evaluated in float64 whatever the
dtype of ``x``; gradients and Hessian-vector products come back in ``x``'s
dtype when it is float32 or float64, so they can be passed straight to a
fastgd optimizer stepping float32 parameters.

>>> import numpy as np
>>> from fastgd.problems import PROBLEMS
>>> p = PROBLEMS["rosenbrock"](n=4)
>>> p.f(p.x_star), p.grad(p.x0).dtype
(0.0, dtype('float64'))
"""

from __future__ import annotations

import math

import numpy as np

from fastgd import _checks

__all__ = [
    "PROBLEMS",
    "IllConditionedQuadratic",
    "LeastSquares",
    "LogisticRegression",
    "Problem",
    "Rosenbrock",
    "SoftmaxRegression",
    "large_problem",
]

#: Largest ``n`` for which :meth:`Problem.hess` builds a dense matrix.
HESS_MAX_N = 4096


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Problem:
    """The interface every test problem implements.

    Attributes
    ----------
    name : str
        The key of the problem's factory in :data:`PROBLEMS`.
    n : int
        The number of parameters.
    tol : float
        The target: a run has converged when ``f(x) - f_star <= tol``.
    x0 : ndarray
        The starting point; a new float64 array on each access, so an
        optimizer can update it in place without changing the problem.
    x_star : ndarray or None
        A minimizer (read-only), ``None`` where unknown.
    f_star : float or None
        The minimum, ``None`` where unknown.
    """

    name: str = ""
    n: int
    tol: float

    def f(self, x) -> float:
        """The objective at ``x`` (a length-``n`` vector), as a Python float."""
        return self.fun_and_grad(x)[0]

    def grad(self, x) -> np.ndarray:
        """The gradient at ``x``, in ``x``'s dtype (float64 unless float32)."""
        return self.fun_and_grad(x)[1]

    def fun_and_grad(self, x) -> tuple[float, np.ndarray]:
        """``(f(x), grad(x))``, sharing the work."""
        raise NotImplementedError

    def hessp(self, x, v) -> np.ndarray:
        """The Hessian at ``x`` times the vector ``v``."""
        raise NotImplementedError

    def hess(self, x) -> np.ndarray:
        """The dense ``n x n`` Hessian at ``x``; only for ``n <= HESS_MAX_N``.

        Built from ``n`` Hessian-vector products unless a problem has a direct form.
        """
        self._check_dense()
        x = self._point(x)
        eye = np.eye(self.n)
        return np.column_stack([self.hessp(x, e) for e in eye])

    @property
    def x0(self) -> np.ndarray:
        return np.zeros(self.n)

    @property
    def x_star(self) -> np.ndarray | None:
        return None

    @property
    def f_star(self) -> float | None:
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"{type(self).__name__}({args})"

    # -- helpers ------------------------------------------------------------

    _args: dict = {}

    def _point(self, x, what: str = "x") -> np.ndarray:
        """``x`` as an array of shape ``(n,)``, float32/float64 kept, else float64."""
        x = _checks.real_array(x, what)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"{what} must have shape ({self.n},), got {x.shape}")
        return x

    def _check_dense(self):
        if self.n > HESS_MAX_N:
            raise ValueError(
                f"a dense Hessian of {self.n} x {self.n} is too large "
                f"(limit {HESS_MAX_N}); use hessp(x, v)"
            )


def _tol(tol) -> float:
    return _checks.nonnegative("tol", tol)


class _SampleIndexError(IndexError, ValueError):
    """A sample index out of range: an ``IndexError`` (as NumPy indexing
    raises) that is also a ``ValueError`` (a bad argument)."""


def _out(value: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A float64 result in the dtype of the point it was evaluated at."""
    return value.astype(like.dtype, copy=False)


class Rosenbrock(Problem):
    r"""The chained n-dimensional Rosenbrock function.

    .. code-block:: text

        f(x) = sum_{i=0}^{n-2} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    The global minimum is ``f = 0`` at ``x = (1, ..., 1)``; for ``4 <= n <=
    30`` there is also a local minimum near ``(-1, 1, ..., 1)``. The start is
    the standard ``(-1.2, 1, -1.2, 1, ...)``. Same function as
    ``scipy.optimize.rosen``.

    Parameters
    ----------
    n : int, default 2
        The dimension, ``>= 2``.
    tol : float, default 1e-6
    """

    name = "rosenbrock"

    def __init__(self, n: int = 2, *, tol: float = 1e-6):
        n = _checks.integer("n", n, 2)
        self.n = n
        self.tol = _tol(tol)
        self._args = dict(n=n)

    @property
    def x0(self) -> np.ndarray:
        x = np.ones(self.n)
        x[::2] = -1.2
        return x

    @property
    def x_star(self) -> np.ndarray:
        return _readonly(np.ones(self.n))

    @property
    def f_star(self) -> float:
        return 0.0

    def f(self, x) -> float:
        x = self._point(x).astype(np.float64, copy=False)
        a, b = x[:-1], x[1:]
        return float(np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2))

    def fun_and_grad(self, x) -> tuple[float, np.ndarray]:
        xp = self._point(x)
        x = xp.astype(np.float64, copy=False)
        a, b = x[:-1], x[1:]
        t = b - a * a
        f = float(np.sum(100.0 * t * t + (1.0 - a) ** 2))
        g = np.zeros(self.n)
        g[:-1] = -400.0 * a * t - 2.0 * (1.0 - a)
        g[1:] += 200.0 * t
        return f, _out(g, xp)

    def _bands(self, x):
        a = x[:-1]
        diag = np.zeros(self.n)
        diag[:-1] = 1200.0 * a * a - 400.0 * x[1:] + 2.0
        diag[1:] += 200.0
        return diag, -400.0 * a

    def hessp(self, x, v) -> np.ndarray:
        xp = self._point(x)
        v = self._point(v, "v").astype(np.float64, copy=False)
        diag, off = self._bands(xp.astype(np.float64, copy=False))
        hv = diag * v
        hv[:-1] += off * v[1:]
        hv[1:] += off * v[:-1]
        return _out(hv, xp)

    def hess(self, x) -> np.ndarray:
        self._check_dense()
        xp = self._point(x)
        diag, off = self._bands(xp.astype(np.float64, copy=False))
        h = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
        return _out(h, xp)


class IllConditionedQuadratic(Problem):
    r"""A convex quadratic with a diagonal Hessian of a chosen condition number.

    .. code-block:: text

        f(x)   = 0.5 x^T A x - b^T x,      A = diag(a),  a_i = condition^(i / (n - 1))
        x_star = b / a,                    f_star = -0.5 b^T x_star

    The eigenvalues ``a`` are log-spaced from 1 to ``condition`` (in order);
    ``b`` is standard normal from ``seed``; the start is ``x = 0``. Diagonal,
    so one evaluation is a few passes over memory and the problem scales to
    ``n = 1e7``: see :func:`large_problem`.

    Parameters
    ----------
    n : int, default 1000
    condition : float, default 1e3
        ``max(a) / min(a)``, ``>= 1``.
    seed : int, default 0
    tol : float, default 1e-6
    """

    name = "quadratic"

    def __init__(self, n: int = 1000, condition: float = 1e3, seed=0, *, tol: float = 1e-6):
        n = _checks.integer("n", n, 1)
        condition = _checks.real("condition", condition)
        if not 1.0 <= condition:
            raise ValueError(f"Invalid condition: {condition} (must be finite and >= 1)")
        rng = _checks.rng(seed)
        self.n = n
        self.condition = condition
        self.tol = _tol(tol)
        self._args = dict(n=n, condition=condition, seed=seed)
        self.diag = _readonly(np.logspace(0.0, math.log10(condition), n))
        self.b = _readonly(rng.standard_normal(n))
        self._x_star = None

    @property
    def x_star(self) -> np.ndarray:
        if self._x_star is None:
            self._x_star = _readonly(self.b / self.diag)
            self._f_star = float(-0.5 * np.dot(self.b, self._x_star))
        return self._x_star

    @property
    def f_star(self) -> float:
        self.x_star  # noqa: B018 - computes both, once
        return self._f_star

    def fun_and_grad(self, x) -> tuple[float, np.ndarray]:
        xp = self._point(x)
        x = xp.astype(np.float64, copy=False)
        g = self.diag * x
        g -= self.b
        # 0.5 x.Ax - b.x = 0.5 x.(Ax - b) - 0.5 b.x
        f = 0.5 * (float(np.dot(x, g)) - float(np.dot(self.b, x)))
        return f, _out(g, xp)

    def hessp(self, x, v) -> np.ndarray:
        xp = self._point(x)
        v = self._point(v, "v")
        return _out(self.diag * v, xp)

    def hess(self, x) -> np.ndarray:
        self._check_dense()
        return _out(np.diag(self.diag), self._point(x))


class _DataProblem(Problem):
    """A mean loss over samples, with mini-batches: ``f(x, idx)`` etc."""

    X: np.ndarray
    n_samples: int

    def f(self, x, idx=None) -> float:
        return self.fun_and_grad(x, idx)[0]

    def grad(self, x, idx=None) -> np.ndarray:
        return self.fun_and_grad(x, idx)[1]

    def _batch(self, idx):
        """``(X, *targets)`` of the mini-batch (all samples for ``None``)."""
        if idx is None:
            return (self.X, *self._targets())
        if isinstance(idx, np.ma.MaskedArray):
            raise TypeError(
                "idx is a masked array; pass the sample indices you mean as a plain array"
            )
        try:
            idx = np.asarray(idx)
        except (TypeError, ValueError):
            raise TypeError("idx must be a 1-D array of integer sample indices") from None
        if idx.ndim != 1:
            raise TypeError("idx must be a 1-D array of integer sample indices")
        if idx.size == 0:
            raise ValueError("idx is empty: the mean loss over no samples is undefined")
        if idx.dtype.kind not in "iu":
            raise TypeError(
                f"idx must be a 1-D array of integer sample indices, got dtype {idx.dtype}"
            )
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= self.n_samples:
            raise _SampleIndexError(
                f"idx must hold sample indices in [0, {self.n_samples}), got {lo if lo < 0 else hi}"
            )
        return (self.X[idx], *(t[idx] for t in self._targets()))

    def _targets(self) -> tuple[np.ndarray, ...]:
        raise NotImplementedError


class LeastSquares(_DataProblem):
    r"""Linear least squares: ``f(w) = 1 / (2 m) ||X w - y||^2`` over ``m`` samples.

    .. code-block:: text

        grad = X^T (X w - y) / m,    hess = X^T X / m
        x_star = lstsq(X, y),        f_star = f(x_star)

    With ``idx``, ``X``, ``y`` and ``m`` are those of the mini-batch. The
    synthetic data: ``X`` standard normal (``n_samples x n_features``),
    ``y = X w_true + noise * e`` with ``w_true`` and ``e`` standard normal,
    all from ``seed``. :meth:`line_fit` is the textbook line fit and
    :meth:`from_data` takes given data. The start is ``w = 0``.

    Parameters
    ----------
    n_samples : int, default 1000
    n_features : int, default 20
    noise : float, default 0.1
    seed : int, default 0
    tol : float, default 1e-6
    """

    name = "least_squares"

    def __init__(self, n_samples: int = 1000, n_features: int = 20, noise: float = 0.1,
                 seed=0, *, tol: float = 1e-6):  # fmt: skip
        n_samples = _checks.integer("n_samples", n_samples, 1)
        n_features = _checks.integer("n_features", n_features, 1)
        noise = _checks.nonnegative("noise", noise)
        rng = _checks.rng(seed)
        X = rng.standard_normal((n_samples, n_features))
        w_true = rng.standard_normal(n_features)
        y = X @ w_true + noise * rng.standard_normal(n_samples)
        self._setup(X, y, tol)
        self._args = dict(n_samples=n_samples, n_features=n_features, noise=noise, seed=seed)

    @classmethod
    def from_data(cls, X, y, *, tol: float = 1e-6) -> LeastSquares:
        """Least squares on given data: ``X`` (m x d) and ``y`` (m,).

        Both are copied to float64; they must be finite, of an integer or
        float dtype (not bool, complex or object) and not masked.
        """
        X = np.array(_checks.real_array(X, "X"), dtype=np.float64)
        y = np.array(_checks.real_array(y, "y"), dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or X.size == 0:
            raise ValueError(
                f"need X of shape (m, d) and y of shape (m,), got {X.shape}, {y.shape}"
            )
        for name, a in (("X", X), ("y", y)):
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite (no NaN or inf)")
        tol = _tol(tol)
        problem = cls.__new__(cls)
        problem._setup(X, y, tol)
        problem._args = dict(n_samples=X.shape[0], n_features=X.shape[1])
        return problem

    @classmethod
    def line_fit(cls, n_samples: int = 50, slope: float = 2.0, intercept: float = 1.0,
                 noise: float = 0.1, seed=0, *, tol: float = 1e-8) -> LeastSquares:  # fmt: skip
        """The textbook line fit ``y = a t + b``: parameters ``(a, b)``.

        ``t`` is ``n_samples`` points evenly spaced in ``[0, 1]`` and
        ``y = slope * t + intercept + noise * e``, ``e`` standard normal from
        ``seed``; ``X = [t, 1]``.
        """
        n_samples = _checks.integer("n_samples", n_samples, 2)
        slope = _checks.real("slope", slope)
        intercept = _checks.real("intercept", intercept)
        noise = _checks.nonnegative("noise", noise)
        rng = _checks.rng(seed)
        t = np.linspace(0.0, 1.0, n_samples)
        y = slope * t + intercept + noise * rng.standard_normal(n_samples)
        problem = cls.from_data(np.column_stack([t, np.ones(n_samples)]), y, tol=tol)
        problem.name = "line_fit"
        problem._args = dict(n_samples=n_samples, slope=slope, intercept=intercept,
                             noise=noise, seed=seed)  # fmt: skip
        return problem

    def _setup(self, X, y, tol):
        self.X = _readonly(X)
        self.y = _readonly(y)
        self.n_samples, self.n = X.shape
        self.tol = _tol(tol)
        self._x_star = None

    def _targets(self):
        return (self.y,)

    @property
    def x_star(self) -> np.ndarray:
        if self._x_star is None:
            self._x_star = _readonly(np.linalg.lstsq(self.X, self.y, rcond=None)[0])
        return self._x_star

    @property
    def f_star(self) -> float:
        return self.f(self.x_star)

    def f(self, x, idx=None) -> float:
        X, y = self._batch(idx)
        r = X @ self._point(x).astype(np.float64, copy=False) - y
        return float(np.dot(r, r)) / (2 * len(y))

    def fun_and_grad(self, x, idx=None) -> tuple[float, np.ndarray]:
        xp = self._point(x)
        X, y = self._batch(idx)
        r = X @ xp.astype(np.float64, copy=False) - y
        m = len(y)
        return float(np.dot(r, r)) / (2 * m), _out(X.T @ r / m, xp)

    def hessp(self, x, v, idx=None) -> np.ndarray:
        xp = self._point(x)
        X, y = self._batch(idx)
        v = self._point(v, "v").astype(np.float64, copy=False)
        return _out(X.T @ (X @ v) / len(y), xp)

    def hess(self, x, idx=None) -> np.ndarray:
        self._check_dense()
        X, y = self._batch(idx)
        return _out(X.T @ X / len(y), self._point(x))


def _log_loss_data(rng, n_samples, n_features):
    X = rng.standard_normal((n_samples, n_features))
    return X, rng.standard_normal(n_features) * (2.0 / math.sqrt(n_features))


class _Regularized(_DataProblem):
    """A mean loss plus ``l2 / 2 ||w||^2``; the minimum by a tight L-BFGS-B solve."""

    l2: float

    def _check_l2(self, l2) -> float:
        l2 = _checks.real("l2", l2)
        if not 0.0 < l2:
            raise ValueError(f"Invalid l2: {l2} (must be finite and > 0, so the minimum is unique)")
        return l2

    def _solve(self):
        """Minimize with L-BFGS-B to a gradient of about 1e-10, once."""
        if getattr(self, "_x_star", None) is None:
            from scipy.optimize import minimize

            res = minimize(
                self.fun_and_grad,
                self.x0,
                jac=True,
                method="L-BFGS-B",
                options=dict(maxiter=100_000, maxcor=30, ftol=0.0, gtol=1e-11),
            )
            self._x_star = _readonly(res.x)
            self._f_star = float(self.f(res.x))
        return self._x_star, self._f_star

    @property
    def x_star(self) -> np.ndarray:
        """The minimizer, computed on first access by L-BFGS-B (``gtol=1e-11``)."""
        return self._solve()[0]

    @property
    def f_star(self) -> float:
        """The minimum, computed on first access by L-BFGS-B (``gtol=1e-11``)."""
        return self._solve()[1]


class LogisticRegression(_Regularized):
    r"""Binary logistic regression with L2 regularization, on synthetic data.

    .. code-block:: text

        z    = X w
        f(w) = mean_i [log(1 + exp(z_i)) - y_i z_i] + l2 / 2 ||w||^2
        grad = X^T (sigmoid(z) - y) / m + l2 w
        H v  = X^T (s (1 - s) * (X v)) / m + l2 v,    s = sigmoid(z)

    the mean log-loss for labels ``y_i`` in {0, 1}, computed stably as
    ``logaddexp(0, z) - y z``; no intercept. With ``idx``, the mean runs over
    that mini-batch (the L2 term is always whole). The data, from ``seed``:
    ``X`` standard normal, ``w_true ~ N(0, 4 / n_features)`` and
    ``y_i ~ Bernoulli(sigmoid(x_i . w_true))``. ``l2 > 0`` makes the
    minimum unique; ``x_star`` and ``f_star`` come from a tight SciPy L-BFGS-B
    solve (``gtol=1e-11``), run on first access and cached. The start is ``w = 0``.

    Parameters
    ----------
    n_samples : int, default 1000
    n_features : int, default 20
    l2 : float, default 1e-3
    seed : int, default 0
    tol : float, default 1e-6
    """

    name = "logistic"

    def __init__(self, n_samples: int = 1000, n_features: int = 20, l2: float = 1e-3, seed=0,
                 *, tol: float = 1e-6):  # fmt: skip
        n_samples = _checks.integer("n_samples", n_samples, 1)
        self.n = _checks.integer("n_features", n_features, 1)
        self.l2 = self._check_l2(l2)
        self.tol = _tol(tol)
        self.n_samples = n_samples
        self._args = dict(n_samples=n_samples, n_features=self.n, l2=self.l2, seed=seed)
        rng = _checks.rng(seed)
        X, w_true = _log_loss_data(rng, n_samples, self.n)
        y = (rng.random(n_samples) < _sigmoid(X @ w_true)).astype(np.float64)
        self.X, self.y = _readonly(X), _readonly(y)
        self._x_star = None

    def _targets(self):
        return (self.y,)

    def fun_and_grad(self, x, idx=None) -> tuple[float, np.ndarray]:
        xp = self._point(x)
        w = xp.astype(np.float64, copy=False)
        X, y = self._batch(idx)
        z = X @ w
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
        f = loss + 0.5 * self.l2 * float(np.dot(w, w))
        g = X.T @ (_sigmoid(z) - y) / len(y) + self.l2 * w
        return f, _out(g, xp)

    def f(self, x, idx=None) -> float:
        w = self._point(x).astype(np.float64, copy=False)
        X, y = self._batch(idx)
        z = X @ w
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
        return loss + 0.5 * self.l2 * float(np.dot(w, w))

    def hessp(self, x, v, idx=None) -> np.ndarray:
        xp = self._point(x)
        v = self._point(v, "v").astype(np.float64, copy=False)
        X, y = self._batch(idx)
        s = _sigmoid(X @ xp.astype(np.float64, copy=False))
        hv = X.T @ (s * (1.0 - s) * (X @ v)) / len(y) + self.l2 * v
        return _out(hv, xp)


class SoftmaxRegression(_Regularized):
    r"""Multinomial logistic (softmax) regression with L2 regularization.

    The parameters are the weight matrix ``W`` (``n_features x n_classes``)
    flattened row-major: ``x = W.ravel()``, ``n = n_features * n_classes``.

    .. code-block:: text

        Z    = X W,                 P = softmax(Z) (row-wise)
        f(W) = mean_i [logsumexp(Z_i) - Z_{i, y_i}] + l2 / 2 ||W||^2
        grad = X^T (P - Y) / m + l2 W                  (Y: one-hot labels)
        H V  = X^T (P * (U - rowsum(P * U))) / m + l2 V,   U = X V

    computed with a stable log-softmax; no intercept. With ``idx``, the mean
    runs over that mini-batch. The data, from ``seed``: ``X`` standard
    normal, ``W_true ~ N(0, 4 / n_features)`` and labels drawn from
    ``softmax(x_i W_true)`` (Gumbel-max). ``x_star`` and ``f_star`` come
    from a tight L-BFGS-B solve, run on first access and cached. The start is
    ``W = 0``.

    Parameters
    ----------
    n_samples : int, default 1000
    n_features : int, default 20
    n_classes : int, default 5
        ``>= 2``.
    l2 : float, default 1e-3
    seed : int, default 0
    tol : float, default 1e-6
    """

    name = "softmax"

    def __init__(self, n_samples: int = 1000, n_features: int = 20, n_classes: int = 5,
                 l2: float = 1e-3, seed=0, *, tol: float = 1e-6):  # fmt: skip
        n_samples = _checks.integer("n_samples", n_samples, 1)
        n_features = _checks.integer("n_features", n_features, 1)
        self.n_classes = _checks.integer("n_classes", n_classes, 2)
        self.n_features = n_features
        self.n = n_features * self.n_classes
        self.l2 = self._check_l2(l2)
        self.tol = _tol(tol)
        self.n_samples = n_samples
        self._args = dict(n_samples=n_samples, n_features=n_features, n_classes=self.n_classes,
                          l2=self.l2, seed=seed)  # fmt: skip
        rng = _checks.rng(seed)
        X, _ = _log_loss_data(rng, n_samples, n_features)
        W_true = rng.standard_normal((n_features, self.n_classes)) * (2.0 / math.sqrt(n_features))
        labels = np.argmax(X @ W_true + rng.gumbel(size=(n_samples, self.n_classes)), axis=1)
        self.X, self.labels = _readonly(X), _readonly(labels.astype(np.int64))
        self._x_star = None

    def _targets(self):
        return (self.labels,)

    def _scores(self, x, idx):
        """The mini-batch, ``W``, the log-softmax ``Z - logsumexp(Z)`` and the labels."""
        X, labels = self._batch(idx)
        W = x.astype(np.float64, copy=False).reshape(self.n_features, self.n_classes)
        Z = X @ W
        Z -= Z.max(axis=1, keepdims=True)
        Z -= np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return X, W, Z, labels

    def f(self, x, idx=None) -> float:
        X, W, logp, labels = self._scores(self._point(x), idx)
        loss = -float(np.mean(logp[np.arange(len(labels)), labels]))
        return loss + 0.5 * self.l2 * float(np.vdot(W, W))

    def fun_and_grad(self, x, idx=None) -> tuple[float, np.ndarray]:
        xp = self._point(x)
        X, W, logp, labels = self._scores(xp, idx)
        rows = np.arange(len(labels))
        f = -float(np.mean(logp[rows, labels])) + 0.5 * self.l2 * float(np.vdot(W, W))
        P = np.exp(logp)
        P[rows, labels] -= 1.0
        G = X.T @ P / len(labels) + self.l2 * W
        return f, _out(G.reshape(-1), xp)

    def hessp(self, x, v, idx=None) -> np.ndarray:
        xp = self._point(x)
        V = self._point(v, "v").astype(np.float64, copy=False)
        V = V.reshape(self.n_features, self.n_classes)
        X, W, logp, labels = self._scores(xp, idx)
        P = np.exp(logp)
        U = X @ V
        R = P * (U - np.sum(P * U, axis=1, keepdims=True))
        hv = X.T @ R / len(labels) + self.l2 * V
        return _out(hv.reshape(-1), xp)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def large_problem(n: int = 1_000_000, condition: float = 1e3, seed=0) -> IllConditionedQuadratic:
    """A quadratic big enough (``n = 1e6`` by default) that the per-iteration
    cost of gradient and update dominates any per-call overhead.

    See :class:`IllConditionedQuadratic`; one ``fun_and_grad`` is about four
    passes over ``n`` float64 values.
    """
    return IllConditionedQuadratic(n, condition=condition, seed=seed)


#: Problem factories by name; each callable with no arguments for a default instance.
PROBLEMS = {
    "rosenbrock": Rosenbrock,
    "quadratic": IllConditionedQuadratic,
    "least_squares": LeastSquares,
    "line_fit": LeastSquares.line_fit,
    "logistic": LogisticRegression,
    "softmax": SoftmaxRegression,
}
