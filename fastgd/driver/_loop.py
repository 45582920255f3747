"""The loop of :func:`fastgd.driver.minimize`: one run's settings, state, steps,
stopping tests and result."""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import OptimizeResult

from fastgd import _checks
from fastgd import driver as _driver  # FULL_EVALUATION_LIMIT, VANISHING_RATIO: read at call time
from fastgd.driver._arrays import arrays_for, is_dask_array
from fastgd.driver._common import _SUCCESS, Status
from fastgd.driver._validate import (
    _callback,
    _describe,
    _early_stopping,
    _integer,
    _method_name,
    _nonneg,
    _optional_callable,
    _real_scalar,
    _split_options,
)
from fastgd.schedules import ReduceLROnPlateau


class _Run:
    """One call of :func:`minimize`: validated settings, state and the loop."""

    def __init__(self, fun, x0, jac, method, options, schedule, clip_norm, clip_value, l1,
                 l1_mode, callback, early_stopping, val_fun, batch_size, n_samples, shuffle,
                 seed, progress, backend, dtype):  # fmt: skip
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if isinstance(jac, np.bool_) and jac:
            jac = True
        if jac is not True and not callable(jac):
            raise ValueError(
                "fastgd.minimize needs the gradient: pass jac=True when fun returns (f, g), "
                f"or jac=<callable returning g>; got jac={jac!r}. fastgd takes no finite "
                "differences (n evaluations per step); fastgd.check_grad checks a "
                "hand-written gradient against them."
            )
        self.fun, self.jac = fun, jac
        # NumPy or dask: what the loop does to x and gradients (fastgd.driver._arrays)
        self.arrays = arrays = arrays_for(x0)
        # who returns the gradient, for error messages
        self.g_source = "jac" if callable(jac) else "fun's g (of (f, g))"
        self.method = _method_name(method)
        hyperparameters, driver = _split_options(self.method, options)
        self.maxiter = _integer("maxiter", driver["maxiter"])
        self.gtol = _nonneg("gtol", driver["gtol"])
        self.ftol = _nonneg("ftol", driver["ftol"])
        f_target = driver["f_target"]
        self.f_target = None if f_target is None else _checks.real("f_target", f_target)
        self.disp = _checks.flag("disp", driver["disp"])
        self.clip_norm = None if clip_norm is None else _nonneg("clip_norm", clip_norm)
        self.clip_value = None if clip_value is None else _nonneg("clip_value", clip_value)
        self.callback = _callback(callback, arrays.copy)
        self.val_fun = _optional_callable("val_fun", val_fun)
        self.early = _early_stopping(early_stopping)
        self.progress = _checks.flag("progress", progress)

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
        self.shuffle = _checks.flag("shuffle", shuffle)
        self.rng = _checks.rng(seed)
        if self.batched:
            self.n_samples = _integer("n_samples", n_samples, 1)
            self.batch_size = min(_integer("batch_size", batch_size, 1), self.n_samples)

        arrays.refuse(self, l1)  # what this kind of array does not take, before fun runs
        x = arrays.start(x0, dtype)
        self.opt = arrays.optimizer(self.method, x, l1, l1_mode, backend, hyperparameters)
        if self.method == "nesterov":
            self.look = np.empty_like(x)
        self.l1 = float(self.opt.l1)
        arrays.attach(self, x)  # self.x: the parameters; self.view: what callbacks get
        self.gbuf = None  # private gradient copy, made on first need
        self.copy_grad = self.clip_norm is not None or self.clip_value is not None
        if self.early and self.early["restore_best"]:
            self.best_x = arrays.buffer(x)

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
        self.best_epoch_loss = None  # the training loss of the best epoch
        self.val_diverged = None  # a non-finite val_fun value that ended the run
        self.epoch_total = 0.0  # sum and count of the batch losses of the epoch
        self.epoch_batches = 0
        self.wait = 0
        self.bar = None

    # -- evaluations ------------------------------------------------------------

    def point(self):
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
            if isinstance(out, (tuple, list)) and len(out) == 2:
                f, g = out
            else:
                raise TypeError(
                    f"fun returned {_describe(out)} at iteration {self.t}; with jac=True "
                    "fun must return (f, g): the loss and its gradient"
                )
            who = "fun returned f ="
        else:
            f = self.fun(point, *args)
            g = self.jac(point, *args)
            who = "fun returned"
        self.nfev += 1
        self.njev += 1
        f, g = self.arrays.settle(self, f, g)
        if type(f) is not float:
            f = self.as_loss(f, who, "the loss")
        return f, g

    def as_loss(self, value, who: str, what: str) -> float:
        """``value``, returned by ``fun`` or ``val_fun``, as a float: one real number."""
        f = _real_scalar(value)
        if f is None:
            hint = ""
            if (isinstance(value, np.ndarray) or is_dask_array(value)) and not value.size <= 1:
                hint = (
                    "; a 0-d or one-element array is fine, a vector of losses is not "
                    "(sum or average it)"
                )
            elif who == "fun returned" and isinstance(value, (tuple, list)) and len(value) == 2:
                hint = "; pass jac=True if fun returns (f, g)"
            raise TypeError(
                f"{who} {_describe(value)} at iteration {self.t}; expected a float ({what}){hint}"
            )
        return f

    def work(self, g):
        """The gradient as the optimizer takes it (see the arrays' ``gradient``)."""
        return self.arrays.gradient(self, g)

    def measure(self, point, work):
        """``(finite, optimality, l2)`` of a gradient; see :func:`_gradient_measures`."""
        finite, optimality, l2 = self.gradient_measures(point, work)
        if self.g_first is None:
            self.g_first = optimality
        return finite, optimality, l2

    def gradient_measures(self, point, work):
        """The measures themselves, from the arrays' namespace."""
        return self.arrays.measures(self, point, work)

    # -- the pieces of a step ---------------------------------------------------

    def step(self, f: float, work, l2: float) -> None:
        opt = self.opt
        if self.schedule_fn is not None:
            lr = self.scheduled_lr()
            if lr != opt.lr:
                opt.lr = lr
        h = self.history
        h["loss"].append(f)
        h["lr"].append(opt.lr)
        h["grad_norm"].append(l2)
        if self.copy_grad:  # clip_norm or clip_value
            work = self.arrays.clip(self, work, l2)
        opt.step(work)
        self.arrays.current(self)
        self.t += 1
        if self.bar is not None:
            now = time.monotonic()
            if now >= self.next_postfix:
                self.bar.set_postfix(loss=f"{f:.4g}", lr=f"{opt.lr:.3g}", refresh=False)
                self.next_postfix = now + self.bar.mininterval
            self.bar.update(1)

    def scheduled_lr(self) -> float:
        """``schedule(t)``, checked: a finite real number ``>= 0``."""
        t = self.t
        value = self.schedule_fn(t)
        lr = float(value) if type(value) is float else _real_scalar(value)
        if lr is None:
            raise TypeError(
                f"schedule({t}) returned {_describe(value)}; a learning rate must be a "
                "real number (finite and >= 0)"
            )
        if not 0.0 <= lr < math.inf:
            raise ValueError(
                f"schedule({t}) returned {lr!r}; a learning rate must be finite and >= 0"
            )
        return lr

    def call_back(self, f: float) -> bool:
        """Call the callback; True when it raised StopIteration."""
        if self.callback is None:
            return False
        try:
            self.callback(self.view, f, self.t)
        except StopIteration:
            return True
        return False

    def monitor(self, train_loss: float) -> Status | None:
        """Validation, ReduceLROnPlateau and early stopping, on a finite training
        loss: ``EARLY_STOPPING`` to stop early, ``DIVERGED`` for a non-finite
        validation loss."""
        value = train_loss
        if self.val_fun is not None:
            out = self.val_fun(self.x)
            value = self.as_loss(out, "val_fun returned", "the validation loss")
            self.history["val_loss"].append(value)
            if not math.isfinite(value):
                self.val_diverged = value
                return Status.DIVERGED
        if self.plateau is not None:
            lr = self.plateau.step(value)
            if lr != self.opt.lr:
                self.opt.lr = lr
        es = self.early
        if es is None:
            return None
        if value < self.best - es["min_delta"]:
            self.best, self.best_t, self.wait = value, self.t, 0
            self.best_epoch_loss = train_loss
            if es["restore_best"]:
                self.arrays.keep(self)
            return None
        self.wait += 1
        return Status.EARLY_STOPPING if self.wait >= es["patience"] else None

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
            and optimality <= _driver.VANISHING_RATIO * self.g_first
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
            if self.t > 0:  # after a step; never on a non-finite loss or gradient
                status = self.monitor(f)
                if status is not None:
                    return self.finish(status, f, g, at_x=point is self.x)
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

    def _batched(self) -> OptimizeResult:
        n, size = self.n_samples, self.batch_size
        while self.t < self.maxiter:
            # an epoch cut short by maxiter draws only the samples it will use
            stop = min(n, (self.maxiter - self.t) * size)
            order = None
            if self.shuffle:
                if stop == n:
                    order = self.rng.permutation(n)
                else:
                    order = self.rng.choice(n, size=stop, replace=False)
                order = order.astype(np.int64, copy=False)
                order.flags.writeable = False
            self.epoch_total = 0.0
            self.epoch_batches = 0
            largest = 0.0
            for start in range(0, stop, size):
                if order is None:
                    idx = np.arange(start, min(start + size, n), dtype=np.int64)
                    idx.flags.writeable = False
                else:
                    idx = order[start : start + size]
                point = self.point()
                f, g = self.evaluate(point, idx)
                work = self.work(g)
                finite, optimality, l2 = self.measure(point, work)
                if not (finite and math.isfinite(f)):
                    return self.diverged(f, g, finite)
                self.epoch_total += f
                self.epoch_batches += 1
                largest = max(largest, optimality)
                self.step(f, work, l2)
                if self.call_back(f):
                    return self.finish(Status.CALLBACK)
            if stop < n:  # maxiter reached inside the epoch
                break
            epoch_loss = self.epoch_total / self.epoch_batches
            self.history["epoch_loss"].append(epoch_loss)
            status = self.monitor(epoch_loss)
            if status is not None:
                return self.finish(status)
            status = self.converged(epoch_loss, largest)
            if status is not None:
                return self.finish(status)
        return self.finish(Status.MAXITER)

    # -- the result ---------------------------------------------------------------

    def finish(self, status: Status, f=None, g=None, at_x=False) -> OptimizeResult:
        restored = False
        if status == Status.EARLY_STOPPING and self.early["restore_best"]:
            if self.best_t is not None and self.best_t != self.t:
                self.arrays.restore(self)
                restored = True
        message = self.message(status, restored)
        if restored or not at_x:
            if not self.batched:
                f, g = self.evaluate(self.x)
            elif self.n_samples <= _driver.FULL_EVALUATION_LIMIT:
                idx = np.arange(self.n_samples, dtype=np.int64)
                idx.flags.writeable = False
                f, g = self.evaluate(self.x, idx)
            else:  # idx = arange(n_samples) alone would take 8 * n_samples bytes
                f, g, which = self.last_epoch_loss(restored)
                message += (
                    f" fun is the mean batch loss of {which} and jac is None: n_samples = "
                    f"{self.n_samples} is above FULL_EVALUATION_LIMIT = "
                    f"{_driver.FULL_EVALUATION_LIMIT}, so fun is not evaluated on all samples."
                )
        return self.result(status, f, g, message)

    def last_epoch_loss(self, restored: bool):
        """``(f, None, which)``: the mean batch loss standing in for ``fun`` on all
        samples, and which epoch's it is."""
        if restored:
            return self.best_epoch_loss, None, f"the best epoch (iteration {self.best_t})"
        if self.epoch_batches == 0:
            return math.nan, None, "no batch (none was evaluated)"
        which = f"the last epoch ({self.epoch_batches} batches"
        if self.epoch_batches * self.batch_size < self.n_samples:
            which += f" of {-(-self.n_samples // self.batch_size)}, cut short by maxiter"
        return self.epoch_total / self.epoch_batches, None, which + ")"

    def diverged(self, f: float, g, finite_grad: bool) -> OptimizeResult:
        what = "loss" if not math.isfinite(f) else "gradient"
        if not math.isfinite(f) and not finite_grad:
            what = "loss and the gradient"
        if self.t == 0:
            where = "x0" if not self.batched else "x0 (the first batch)"
            message = (
                f"Diverged at iteration 0: the {what} is non-finite at {where}, before any "
                f"step (loss = {f}). The step size is not the cause: check fun"
                f"{' and jac' if callable(self.jac) else ''} at x0."
            )
        else:
            message = (
                f"Diverged at iteration {self.t}: the {what} became non-finite (loss = {f}). "
                f"The step size is probably too large for this problem: try a smaller lr "
                f"(it was {self.opt.lr:g}), or clip_norm= to bound exploding gradients."
            )
        return self.result(Status.DIVERGED, f, g, message)

    def message(self, status: Status, restored: bool) -> str:
        if status == Status.DIVERGED:  # only val_fun ends a run this way through finish
            return (
                f"Diverged at iteration {self.t}: val_fun returned {self.val_diverged} (the "
                "validation loss must be finite). If x diverged, try a smaller lr (it was "
                f"{self.opt.lr:g}) or clip_norm=; otherwise val_fun fails at this x."
            )
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
