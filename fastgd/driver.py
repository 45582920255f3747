"""The driver layer: :func:`minimize`, a gradient-descent loop around one optimizer
object, and :func:`scipy_method`, which plugs that loop into ``scipy.optimize.minimize``.

The loop owns everything around the update rule: learning-rate schedules,
gradient clipping, L1 regularization, mini-batches, stopping tests, early
stopping, divergence diagnosis, callbacks and a progress bar. The update itself
is one call of the optimizer's fused kernel, and the per-step bookkeeping is
one more fused pass over the gradient (:func:`_gradient_measures`), so a step
allocates nothing beyond what ``fun``/``jac`` return.

>>> from fastgd.driver import minimize
>>> from fastgd.problems import Rosenbrock
>>> p = Rosenbrock(2)
>>> res = minimize(p.fun_and_grad, p.x0, jac=True, method="nesterov",
...                options=dict(lr=1e-3, momentum=0.9, maxiter=20_000))
>>> res.success, bool(res.fun < 1e-9)
(True, True)
"""

from __future__ import annotations

import enum
import inspect
import math
import numbers
import time
import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from scipy.optimize import OptimizeResult

from fastgd import _checks
from fastgd.clip import clip_grad_norm_, clip_grad_value_
from fastgd.optimizers import OPTIMIZERS, Momentum
from fastgd.schedules import ReduceLROnPlateau


def _nonneg(name: str, value) -> float:
    """Non-negative, inf allowed (``clip_norm=inf`` means no clipping)."""
    return _checks.nonnegative(name, value, allow_inf=True)


__all__ = ["METHODS", "DEFAULT_OPTIONS", "Status", "minimize", "scipy_method"]

#: Every ``method`` of :func:`minimize`: the optimizer registry plus ``"nesterov"``.
METHODS: tuple[str, ...] = (*OPTIMIZERS, "nesterov")

#: The driver options (everything in ``options`` that is not a hyperparameter).
DEFAULT_OPTIONS: dict[str, Any] = {
    "maxiter": 1000,
    "gtol": 1e-5,
    "ftol": 0.0,
    "f_target": None,
    "disp": False,
}

#: A gradient whose measure fell below this fraction of its first value counts
#: as vanished (see ``f_target`` in :func:`minimize`).
VANISHING_RATIO = 1e-12

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

# options people try that belong elsewhere
_OPTION_HINTS = {
    "maximize": "minimize() minimizes; negate fun instead",
    "l1": "pass l1= as a keyword argument of minimize()",
    "l1_mode": "pass l1_mode= as a keyword argument of minimize()",
    "backend": "pass backend= as a keyword argument of minimize()",
    "tol": "use gtol (or ftol)",
    "params": "x0 is the parameters",
}


class Status(enum.IntEnum):
    """``OptimizeResult.status`` of :func:`minimize` (``success`` in brackets)."""

    #: (True) the gradient's inf-norm reached ``gtol``.
    GTOL = 0
    #: (False) ``maxiter`` steps taken; SciPy's code for the same.
    MAXITER = 1
    #: (True) the relative change of the loss fell to ``ftol``.
    FTOL = 2
    #: (True) early stopping: no improvement for ``patience`` checks.
    EARLY_STOPPING = 3
    #: (False) the loss or the gradient became NaN or infinite.
    DIVERGED = 4
    #: (False) the gradient vanished while the loss is above ``f_target``.
    VANISHING_GRADIENT = 5
    #: (False) the callback raised ``StopIteration``; SciPy's code and message.
    CALLBACK = 99


_SUCCESS = {Status.GTOL, Status.FTOL, Status.EARLY_STOPPING}


# The per-step bookkeeping, fused into one pass. ``reassoc`` lets LLVM vectorize
# the float64 sum; it changes only the summation order, never NaN semantics.
@numba.njit(error_model="numpy", cache=True, nogil=True, fastmath={"reassoc"})
def _gradient_measures(x, g, l1):
    """``(finite, optimality, l2)`` of the gradient ``g`` at ``x``, in float64.

    ``finite``: every ``g_i`` is finite. ``l2``: ``||g||_2``. ``optimality``:
    ``||g||_inf``, or for ``l1 > 0`` the inf-norm of the minimum-norm
    subgradient of ``f + l1 ||x||_1``: ``g_i + l1 sign(x_i)`` where ``x_i != 0``
    and ``max(|g_i| - l1, 0)`` where ``x_i == 0``.
    """
    big = 0.0
    sq = 0.0
    nan = False
    n = g.shape[0]
    for i in range(n):
        a = abs(np.float64(g[i]))
        nan = nan | (a != a)
        big = max(big, a)
        sq += a * a
    optimality = big
    if l1 > 0.0:
        optimality = 0.0
        for i in range(n):
            gi = np.float64(g[i])
            xi = x[i]
            if xi > 0:
                r = abs(gi + l1)
            elif xi < 0:
                r = abs(gi - l1)
            else:
                r = max(abs(gi) - l1, 0.0)
            optimality = max(optimality, r)
    return (not nan) and big < np.inf, optimality, math.sqrt(sq)


def minimize(
    fun: Callable,
    x0,
    jac: bool | Callable | None = None,
    method: str = "adam",
    options: dict | None = None,
    *,
    schedule: Callable[[int], float] | ReduceLROnPlateau | None = None,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    l1: float = 0.0,
    l1_mode: str = "subgradient",
    callback: Callable | None = None,
    early_stopping: dict | None = None,
    val_fun: Callable | None = None,
    batch_size: int | None = None,
    n_samples: int | None = None,
    shuffle: bool = True,
    seed=None,
    progress: bool = False,
    backend: str = "auto",
    dtype=None,
) -> OptimizeResult:
    """Minimize ``fun`` by gradient descent with one fastgd optimizer.

    Full-batch gradient descent by default; stochastic and mini-batch
    gradient descent with ``batch_size`` and ``n_samples``. Each step:

    .. code-block:: text

        f, g = fun(x) (and jac(x))           at the look-ahead point for "nesterov"
        stop?   non-finite f or g, gtol, ftol, vanishing gradient, maxiter
        lr    = schedule(t)                  (callable schedule)
        g     = clip(g)                      (clip_norm, clip_value)
        x     = optimizer step(x, g)         (in place, one fused kernel)
        callback, ReduceLROnPlateau, early stopping

    Parameters
    ----------
    fun : callable
        ``fun(x) -> f`` (a float), or ``-> (f, g)`` with ``jac=True``. In
        mini-batch mode ``fun(x, idx)``, ``idx`` the batch's sample indices.
    x0 : array_like
        The start; copied to a C-contiguous array of ``dtype`` (float64 by
        default) of the same shape, which the optimizer updates in place.
    jac : True or callable
        ``True``: ``fun`` returns ``(f, g)`` as in SciPy. A callable:
        ``jac(x) -> g`` (``jac(x, idx)`` in mini-batch mode). ``g`` has
        ``x``'s shape, or its size where one of the two is flat. Required:
        fastgd has no finite differences (use ``fastgd.check_grad`` to check
        a hand-written gradient).
    method : str, default "adam"
        An optimizer of :data:`fastgd.OPTIMIZERS` (``"sgd"``, ``"momentum"``,
        ``"adagrad"``, ``"rmsprop"``, ``"adadelta"``, ``"adam"``, ``"adamw"``,
        ``"adamax"``, ``"nadam"``, ``"radam"``, ``"lion"``), or
        ``"nesterov"``: the textbook Nesterov accelerated gradient (Sutskever
        et al. 2013), the gradient evaluated at the look-ahead point:

        .. code-block:: text

            v = mu * v - lr * g(x + mu * v);   x = x + v       (v starts at 0)

        with options ``lr`` (default 1e-2) and ``momentum`` (``mu``, default
        0.9); it runs :class:`fastgd.Momentum` (heavy ball) on gradients taken
        at ``x + mu * v``, computed into one preallocated buffer.
        ``torch.optim.SGD(nesterov=True)`` is the reformulation in the
        look-ahead variable that needs the gradient at the iterate only; its
        iterates are this method's look-ahead points, and its ``lr`` is the
        same, so use ``"sgd"`` with ``nesterov=True`` for torch's form.
        ``history`` records the loss at the look-ahead points, where the
        stopping tests are made too: a run that stops on ``gtol``/``ftol``
        returns the look-ahead point that passed, any other ends at ``x``
        with one more evaluation of ``fun`` there.
    options : dict, optional
        The method's hyperparameters by torch's names (``lr``, ``betas``,
        ``momentum``, ``weight_decay``, ...; the class defaults where not
        given), plus:

        - ``maxiter`` (int, default 1000): the most optimizer steps (in
          mini-batch mode too: steps, not epochs).
        - ``gtol`` (float, default 1e-5): stop (success) when the gradient's
          inf-norm is ``<= gtol`` (with ``l1 > 0``: the inf-norm of the
          minimum-norm subgradient of ``f + l1 ||x||_1``).
        - ``ftol`` (float, default 0, off): stop (success) when
          ``|f_prev - f| <= ftol * max(|f|, |f_prev|, 1)`` between two checks.
          Off by default because a first-order method with a small step size
          changes the loss slowly long before it converges.
        - ``f_target`` (float, default None): the loss a solved problem
          reaches. When given, a run that stops on ``gtol`` or ``ftol``, or
          whose gradient measure falls below ``1e-12`` (:data:`VANISHING_RATIO`)
          of its first value, while the loss is still above ``f_target``,
          ends with ``status=5`` ("vanishing gradient", ``success=False``).
          Without it a small gradient counts as convergence, as in SciPy.
        - ``disp`` (bool, default False): print a summary at the end.

        Unknown options raise ``ValueError``.
    schedule : callable or ReduceLROnPlateau, optional
        A callable ``t -> lr`` (any :mod:`fastgd.schedules` schedule): before
        step ``t`` (0-based) the optimizer's ``lr`` is set to ``schedule(t)``
        (``options["lr"]`` is then unused). Or a
        :class:`~fastgd.schedules.ReduceLROnPlateau`: the run starts at its
        ``lr`` and steps it with the monitored loss (``val_fun(x)`` if given,
        else the training loss) after every step, or after every epoch in
        mini-batch mode, applying the rate it returns.
    clip_norm, clip_value : float, optional
        Clip the gradient before each step with
        :func:`fastgd.clip.clip_grad_norm_` (L2 norm at most ``clip_norm``)
        and/or :func:`fastgd.clip.clip_grad_value_` (entries in
        ``[-clip_value, clip_value]``). The gradient ``fun`` returned is
        never modified: it is copied into one preallocated buffer first (one
        pass per step), since ``fun`` may keep and reuse it (SciPy's
        ``MemoizeJac`` does).
    l1 : float, default 0
        L1 regularization strength, passed to the optimizer.
    l1_mode : {"subgradient", "proximal"}, default "subgradient"
        Passed to the optimizer; ``"proximal"`` soft-thresholds ``x`` after
        each step and yields exact zeros. The reported loss is ``fun``'s,
        without the L1 term.
    callback : callable, optional
        Called after every step, with SciPy's conventions: a callable whose
        only parameter is named ``intermediate_result`` gets an
        ``OptimizeResult`` with ``x`` (a read-only view of the live
        parameters, which keep changing: copy it to keep it), ``fun`` and
        ``nit``; any other callable gets ``callback(xk)`` with a copy of ``x``.
        ``fun`` is the loss at the new ``x`` in full-batch mode, and the batch
        loss of the step just taken (at the point before it) in mini-batch
        mode. Raising ``StopIteration`` ends the run as SciPy does:
        ``status=99``, ``success=False``.
    early_stopping : dict, optional
        ``dict(patience, min_delta=0.0, restore_best=True)``: after every step
        (every epoch in mini-batch mode) the monitored loss, ``val_fun(x)`` if
        given, else the training loss (the epoch's mean batch loss in
        mini-batch mode), counts as an improvement if it is below the best so
        far by more than ``min_delta``; after ``patience`` checks in a row
        without one the run stops (``status=3``, success). ``restore_best``
        copies the best ``x`` back (kept in one preallocated buffer) and
        re-evaluates ``fun`` there.
    val_fun : callable, optional
        ``val_fun(x) -> float``, a validation loss, evaluated at every check
        (see ``early_stopping``) and recorded as ``history["val_loss"]``.
    batch_size, n_samples : int, optional
        Both or neither. Mini-batch gradient descent (``batch_size=1``:
        stochastic): ``fun``/``jac`` get ``(x, idx)``, ``idx`` a read-only
        int64 view of the epoch's order. Epoch ``e`` visits the samples in
        the order of the ``e``-th ``rng.permutation(n_samples)`` of ``rng =
        np.random.default_rng(seed)`` (``shuffle=True``), or ``0 ..
        n_samples - 1`` every epoch (``shuffle=False``), in batches of
        ``batch_size`` (the last may be smaller). ``gtol``/``ftol`` are tested
        once per epoch on the largest batch-gradient measure and the mean
        batch loss of the epoch. At the end ``fun`` is evaluated on all
        samples (``idx = arange(n_samples)``) for ``fun``/``jac`` of the result.
    shuffle : bool, default True
    seed : int or numpy Generator seed, optional
    progress : bool, default False
        Show a tqdm progress bar with the loss and learning rate (needs tqdm).
    backend : {"auto", "serial", "parallel"}, default "auto"
        The optimizer's loop; see :class:`fastgd.optim.Optimizer`.
    dtype : float32 or float64, optional
        Of the parameters (float64 by default). A gradient of another dtype
        (a float64 gradient for float32 parameters) is converted into a
        preallocated buffer every step; return gradients in ``x``'s dtype to
        avoid that pass.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun`` and ``jac`` (at ``x``; ``fun``'s loss without the L1
        term), ``nit`` (steps taken), ``nfev``/``njev`` (calls of
        ``fun``/``jac``; with ``jac=True`` both count each call of ``fun``),
        ``status`` (a :class:`Status`), ``success``, ``message`` and
        ``history``: NumPy arrays with one entry per step, ``loss`` (at the
        point the step's gradient was taken; the batch loss in mini-batch
        mode), ``lr`` (used by the step) and ``grad_norm`` (the gradient's L2
        norm before clipping); ``val_loss`` (one per check) when ``val_fun``
        is given; ``epoch_loss`` (mean batch loss per epoch) in mini-batch mode.

    Raises
    ------
    ValueError
        ``jac`` missing, unknown method or options, bad hyperparameters or
        driver settings; raised before ``fun`` is called.

    Notes
    -----
    Status codes: 0 gtol, 1 maxiter, 2 ftol, 3 early stopping, 4 diverged (a
    non-finite loss or gradient: the message names the iteration and suggests
    a smaller ``lr`` or ``clip_norm``), 5 vanishing gradient, 99 callback
    ``StopIteration``. A diverged run returns the non-finite iterate.
    """
    run = _Run(
        fun, x0, jac, method, options, schedule, clip_norm, clip_value, l1, l1_mode, callback,
        early_stopping, val_fun, batch_size, n_samples, shuffle, seed, progress, backend, dtype,
    )  # fmt: skip
    return run.run()


class _Run:
    """One call of :func:`minimize`: validated settings, state and the loop."""

    def __init__(self, fun, x0, jac, method, options, schedule, clip_norm, clip_value, l1,
                 l1_mode, callback, early_stopping, val_fun, batch_size, n_samples, shuffle,
                 seed, progress, backend, dtype):  # fmt: skip
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if jac is not True and not callable(jac):
            raise ValueError(
                "fastgd.minimize needs the gradient: pass jac=True when fun returns (f, g), "
                f"or jac=<callable returning g>; got jac={jac!r}. fastgd takes no finite "
                "differences (n evaluations per step); fastgd.check_grad checks a "
                "hand-written gradient against them."
            )
        self.fun, self.jac = fun, jac
        self.method = _method_name(method)
        hyperparameters, driver = _split_options(self.method, options)
        self.maxiter = _integer("maxiter", driver["maxiter"])
        self.gtol = _nonneg("gtol", driver["gtol"])
        self.ftol = _nonneg("ftol", driver["ftol"])
        f_target = driver["f_target"]
        self.f_target = None if f_target is None else _checks.real("f_target", f_target)
        self.disp = bool(driver["disp"])
        self.clip_norm = None if clip_norm is None else _nonneg("clip_norm", clip_norm)
        self.clip_value = None if clip_value is None else _nonneg("clip_value", clip_value)
        self.callback = _callback(callback)
        self.val_fun = _optional_callable("val_fun", val_fun)
        self.early = _early_stopping(early_stopping)
        self.progress = bool(progress)

        self.schedule_fn = self.plateau = None
        if isinstance(schedule, ReduceLROnPlateau):
            self.plateau = schedule
            hyperparameters["lr"] = schedule.lr
        elif callable(schedule):
            self.schedule_fn = schedule
        elif schedule is not None:
            raise TypeError(
                "schedule must be a callable t -> lr or a ReduceLROnPlateau, "
                f"got {type(schedule).__name__}"
            )

        if (batch_size is None) != (n_samples is None):
            raise ValueError("mini-batch mode needs both batch_size and n_samples")
        self.batched = batch_size is not None
        if self.batched:
            self.n_samples = _integer("n_samples", n_samples, 1)
            self.batch_size = min(_integer("batch_size", batch_size, 1), self.n_samples)
            self.shuffle = bool(shuffle)
            self.rng = np.random.default_rng(seed)

        dtype = np.dtype(np.float64 if dtype is None else dtype)
        x = np.array(np.atleast_1d(np.asarray(x0)), dtype=dtype, order="C", copy=True)
        if self.method == "nesterov":
            self.opt = Momentum(x, form="heavy_ball", l1=l1, l1_mode=l1_mode, backend=backend,
                                **hyperparameters)  # fmt: skip
            self.look = np.empty_like(x)
        else:
            self.opt = OPTIMIZERS[self.method](x, l1=l1, l1_mode=l1_mode, backend=backend,
                                               **hyperparameters)  # fmt: skip
        self.x = x
        self.x_flat = x.reshape(-1)
        self.l1 = float(self.opt.l1)
        self.view = x.view()
        self.view.flags.writeable = False
        self.gbuf = None  # private gradient copy, made on first need
        self.copy_grad = self.clip_norm is not None or self.clip_value is not None
        if self.early and self.early["restore_best"]:
            self.best_x = np.empty_like(x)

        self.t = self.nfev = self.njev = 0
        self.history = {"loss": [], "lr": [], "grad_norm": []}
        if self.val_fun is not None:
            self.history["val_loss"] = []
        if self.batched:
            self.history["epoch_loss"] = []
        self.g_first = None  # the first gradient measure (vanishing gradients)
        self.prev_loss = None  # the loss at the previous check (ftol)
        self.best = math.inf  # early stopping
        self.best_t = None
        self.wait = 0
        self.bar = None

    # -- evaluations ------------------------------------------------------------

    def point(self) -> np.ndarray:
        """Where the gradient is taken: ``x``, or ``x + mu * v`` for Nesterov."""
        if self.method != "nesterov":
            return self.x
        v = self.opt.state.get("velocity")
        if v is None:  # before the first step v = 0
            return self.x
        np.multiply(v, self.opt.momentum, out=self.look)
        np.add(self.look, self.x, out=self.look)
        return self.look

    def evaluate(self, point, idx=None):
        args = () if idx is None else (idx,)
        if self.jac is True:
            out = self.fun(point, *args)
            try:
                f, g = out
            except (TypeError, ValueError):
                raise TypeError(
                    f"with jac=True fun must return (f, g); it returned {type(out).__name__}"
                ) from None
        else:
            f = self.fun(point, *args)
            g = self.jac(point, *args)
        self.nfev += 1
        self.njev += 1
        return float(f), g

    def work(self, g) -> np.ndarray:
        """The gradient as the optimizer takes it: ``x``'s dtype and shape, C order.

        ``fun``'s own array when it already is that and nothing clips it;
        otherwise a copy in one preallocated buffer.
        """
        if type(g) is not np.ndarray:
            g = np.asarray(g)
        x = self.x
        if g.shape != x.shape:
            if g.size != x.size or (g.ndim > 1 and x.ndim > 1):  # (3, 2) for (2, 3): ambiguous
                raise ValueError(f"the gradient has shape {g.shape}, x has shape {x.shape}")
            g = g.reshape(x.shape)
        if self.copy_grad or g.dtype != x.dtype or not g.flags.c_contiguous:
            if self.gbuf is None:
                self.gbuf = np.empty_like(x)
            np.copyto(self.gbuf, g, casting="same_kind")
            return self.gbuf
        return g

    def measure(self, point, work):
        """``(finite, optimality, l2)`` of a gradient; see :func:`_gradient_measures`."""
        p = point if point.ndim == 1 else point.reshape(-1)
        w = work if work.ndim == 1 else work.reshape(-1)
        finite, optimality, l2 = _gradient_measures(p, w, self.l1)
        if self.g_first is None:
            self.g_first = optimality
        return finite, optimality, l2

    # -- the pieces of a step ---------------------------------------------------

    def step(self, f: float, work: np.ndarray, l2: float) -> None:
        opt = self.opt
        if self.schedule_fn is not None:
            lr = float(self.schedule_fn(self.t))
            if lr != opt.lr:
                opt.lr = lr  # validated by the optimizer
        h = self.history
        h["loss"].append(f)
        h["lr"].append(opt.lr)
        h["grad_norm"].append(l2)
        if self.clip_norm is not None:
            clip_grad_norm_(work, self.clip_norm)
        if self.clip_value is not None:
            clip_grad_value_(work, self.clip_value)
        opt.step(work)
        self.t += 1
        if self.bar is not None:
            now = time.monotonic()
            if now >= self.next_postfix:
                self.bar.set_postfix(loss=f"{f:.4g}", lr=f"{opt.lr:.3g}", refresh=False)
                self.next_postfix = now + self.bar.mininterval
            self.bar.update(1)

    def call_back(self, f: float) -> bool:
        """Call the callback; True when it raised StopIteration."""
        if self.callback is None:
            return False
        try:
            self.callback(self.view, f, self.t)
        except StopIteration:
            return True
        return False

    def monitor(self, train_loss: float) -> bool:
        """Validation, ReduceLROnPlateau and early stopping; True to stop early."""
        value = train_loss
        if self.val_fun is not None:
            value = float(self.val_fun(self.x))
            self.history["val_loss"].append(value)
        if self.plateau is not None:
            lr = self.plateau.step(value)
            if lr != self.opt.lr:
                self.opt.lr = lr
        es = self.early
        if es is None:
            return False
        if value < self.best - es["min_delta"]:
            self.best, self.best_t, self.wait = value, self.t, 0
            if es["restore_best"]:
                np.copyto(self.best_x, self.x)
            return False
        self.wait += 1
        return self.wait >= es["patience"]

    def converged(self, loss: float, optimality: float) -> Status | None:
        """gtol, ftol and vanishing-gradient tests at a check point."""
        prev, self.prev_loss = self.prev_loss, loss
        self.why = ""
        status = None
        if optimality <= self.gtol:
            status = Status.GTOL
        elif (
            self.ftol > 0
            and prev is not None
            and abs(prev - loss) <= self.ftol * max(abs(loss), abs(prev), 1.0)
        ):
            status = Status.FTOL
            self.rel_change = abs(prev - loss) / max(abs(loss), abs(prev), 1.0)
        elif (
            self.f_target is not None
            and loss > self.f_target
            and optimality <= VANISHING_RATIO * self.g_first
        ):
            status = Status.VANISHING_GRADIENT
        if status is not None and self.f_target is not None and loss > self.f_target:
            self.why = status.name.lower()
            status = Status.VANISHING_GRADIENT
        self.optimality, self.loss = optimality, loss
        return status

    # -- the loops --------------------------------------------------------------

    def run(self) -> OptimizeResult:
        if self.progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError(
                    "progress=True needs tqdm, which is not installed: pip install tqdm"
                ) from None
            self.bar = tqdm(total=self.maxiter, desc=f"fastgd {self.method}", unit="step")
            self.next_postfix = 0.0
        try:
            return self._batched() if self.batched else self._full_batch()
        finally:
            if self.bar is not None:
                self.bar.close()

    def _full_batch(self) -> OptimizeResult:
        point = self.point()
        f, g = self.evaluate(point)
        while True:
            work = self.work(g)
            finite, optimality, l2 = self.measure(point, work)
            if not (finite and math.isfinite(f)):
                return self.diverged(f, g, finite)
            status = self.converged(f, optimality)
            if status is not None:
                if point is not self.x:  # Nesterov: the look-ahead point passed the test
                    np.copyto(self.x, point)
                return self.finish(status, f, g, at_x=True)
            if self.t >= self.maxiter:
                return self.finish(Status.MAXITER, f, g, at_x=point is self.x)
            self.step(f, work, l2)
            point = self.point()
            f, g = self.evaluate(point)
            if self.call_back(f):
                return self.finish(Status.CALLBACK, f, g, at_x=point is self.x)
            if self.monitor(f):
                return self.finish(Status.EARLY_STOPPING, f, g, at_x=point is self.x)

    def _batched(self) -> OptimizeResult:
        n, size = self.n_samples, self.batch_size
        order = None
        if not self.shuffle:
            order = np.arange(n, dtype=np.int64)
            order.flags.writeable = False
        while self.t < self.maxiter:
            if self.shuffle:
                order = self.rng.permutation(n).astype(np.int64, copy=False)
                order.flags.writeable = False
            total = 0.0
            largest = 0.0
            batches = 0
            for start in range(0, n, size):
                if self.t >= self.maxiter:
                    return self.finish(Status.MAXITER)
                point = self.point()
                f, g = self.evaluate(point, order[start : start + size])
                work = self.work(g)
                finite, optimality, l2 = self.measure(point, work)
                if not (finite and math.isfinite(f)):
                    return self.diverged(f, g, finite)
                total += f
                largest = max(largest, optimality)
                batches += 1
                self.step(f, work, l2)
                if self.call_back(f):
                    return self.finish(Status.CALLBACK)
            epoch_loss = total / batches
            self.history["epoch_loss"].append(epoch_loss)
            if self.monitor(epoch_loss):
                return self.finish(Status.EARLY_STOPPING)
            status = self.converged(epoch_loss, largest)
            if status is not None:
                return self.finish(status)
        return self.finish(Status.MAXITER)

    # -- the result ---------------------------------------------------------------

    def finish(self, status: Status, f=None, g=None, at_x=False) -> OptimizeResult:
        restored = False
        if status == Status.EARLY_STOPPING and self.early["restore_best"]:
            if self.best_t is not None and self.best_t != self.t:
                np.copyto(self.x, self.best_x)
                restored = True
        if restored or not at_x:
            idx = np.arange(self.n_samples, dtype=np.int64) if self.batched else None
            f, g = self.evaluate(self.x, idx)
        return self.result(status, f, g, self.message(status, restored))

    def diverged(self, f: float, g, finite_grad: bool) -> OptimizeResult:
        what = "loss" if not math.isfinite(f) else "gradient"
        if not math.isfinite(f) and not finite_grad:
            what = "loss and the gradient"
        message = (
            f"Diverged at iteration {self.t}: the {what} became non-finite (loss = {f}). "
            f"The step size is probably too large for this problem: try a smaller lr "
            f"(it was {self.opt.lr:g}), or clip_norm= to bound exploding gradients."
        )
        return self.result(Status.DIVERGED, f, g, message)

    def message(self, status: Status, restored: bool) -> str:
        if status == Status.GTOL:
            what = (
                "the inf-norm of the minimum-norm subgradient of f + l1*||x||_1"
                if self.l1 > 0
                else "the gradient's inf-norm"
            )
            return (
                f"Optimization terminated successfully: {what} {self.optimality:.3g} "
                f"<= gtol = {self.gtol:g}."
            )
        if status == Status.FTOL:
            return (
                "Optimization terminated successfully: the relative change of the loss "
                f"{self.rel_change:.3g} <= ftol = {self.ftol:g}."
            )
        if status == Status.MAXITER:
            return f"Maximum number of iterations has been exceeded (maxiter = {self.maxiter})."
        if status == Status.CALLBACK:
            return "`callback` raised `StopIteration`."
        if status == Status.VANISHING_GRADIENT:
            trigger = {
                "gtol": f" (it stopped on gtol = {self.gtol:g})",
                "ftol": f" (the loss stalled: ftol = {self.ftol:g})",
            }.get(self.why, "")
            factor = self.g_first / self.optimality if self.optimality > 0 else math.inf
            return (
                f"Vanishing gradient at iteration {self.t}: the gradient's inf-norm fell "
                f"from {self.g_first:.3g} to {self.optimality:.3g} (by a factor of "
                f"{factor:.3g}){trigger} while the loss {self.loss:.6g} is still above "
                f"f_target = {self.f_target:g}. The run is on a plateau or at a saddle "
                "point; try a larger lr, an adaptive method such as 'adam' or 'rmsprop', "
                "or rescale the problem."
            )
        # early stopping
        es = self.early
        monitored = "validation loss" if self.val_fun is not None else "training loss"
        unit = "epochs" if self.batched else "iterations"
        kept = (
            f"restored x from iteration {self.best_t} ({monitored} {self.best:.6g})"
            if restored
            else "kept the last x"
        )
        return (
            f"Early stopping at iteration {self.t}: the {monitored} did not improve by more "
            f"than min_delta = {es['min_delta']:g} for {es['patience']} {unit}; {kept}."
        )

    def result(self, status: Status, f, g, message: str) -> OptimizeResult:
        history = {k: np.asarray(v, dtype=np.float64) for k, v in self.history.items()}
        res = OptimizeResult(
            x=self.x,
            fun=f,
            jac=g,
            nit=self.t,
            nfev=self.nfev,
            njev=self.njev,
            status=int(status),
            success=status in _SUCCESS,
            message=message,
            history=history,
        )
        if self.disp:
            print(message)
            print(f"         Current function value: {f:.6f}")
            print(f"         Iterations: {self.t}")
            print(f"         Function evaluations: {self.nfev}")
            print(f"         Gradient evaluations: {self.njev}")
        return res


# -- validation -------------------------------------------------------------------


def _method_name(method) -> str:
    name = method.lower() if isinstance(method, str) else method
    if name not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}")
    return name


def _hyperparameter_names(method: str) -> tuple[str, ...]:
    if method == "nesterov":
        return ("lr", "momentum")
    skip = ("params", "maximize", "l1", "l1_mode", "backend")
    params = inspect.signature(OPTIMIZERS[method]).parameters
    return tuple(p for p in params if p not in skip)


def _split_options(method: str, options) -> tuple[dict, dict]:
    """``options`` -> (hyperparameters, driver options with defaults)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    names = _hyperparameter_names(method)
    unknown = [k for k in options if k not in names and k not in DEFAULT_OPTIONS]
    if unknown:
        hints = "".join(f"; {k}: {_OPTION_HINTS[k]}" for k in unknown if k in _OPTION_HINTS)
        raise ValueError(
            f"Unknown options {unknown} for method {method!r}{hints}. Method options: "
            f"{', '.join(names)}; driver options: {', '.join(DEFAULT_OPTIONS)}"
        )
    hyperparameters = {k: v for k, v in options.items() if k in names}
    driver = {k: options.get(k, v) for k, v in DEFAULT_OPTIONS.items()}
    return hyperparameters, driver


def _integer(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"Invalid {name}: {value} (must be >= {minimum})")
    return int(value)


def _optional_callable(name: str, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def _early_stopping(settings) -> dict | None:
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise TypeError("early_stopping must be a dict(patience, min_delta, restore_best)")
    unknown = set(settings) - {"patience", "min_delta", "restore_best"}
    if unknown or "patience" not in settings:
        raise ValueError(
            "early_stopping takes dict(patience, min_delta=0.0, restore_best=True); "
            f"got {sorted(settings)}"
        )
    return {
        "patience": _integer("patience", settings["patience"], 1),
        "min_delta": _nonneg("min_delta", settings.get("min_delta", 0.0)),
        "restore_best": bool(settings.get("restore_best", True)),
    }


def _callback(callback):
    """``callback`` as ``call(x_view, f, nit)``, following SciPy's two conventions."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        params = set()
    if params == {"intermediate_result"}:

        def call(x, f, nit):
            callback(intermediate_result=OptimizeResult(x=x, fun=f, nit=nit))

    else:

        def call(x, f, nit):
            callback(np.copy(x))

    return call


# -- SciPy ------------------------------------------------------------------------


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
    """
    method = _method_name(name)
    _split_options(method, {k: v for k, v in defaults.items() if k not in _KEYWORDS})

    def fastgd_method(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
                      constraints=(), callback=None, **options):  # fmt: skip
        if bounds is not None:
            raise ValueError(f"fastgd method {method!r} does not support bounds")
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
