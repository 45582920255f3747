"""The one stateful, metric-driven schedule: :class:`ReduceLROnPlateau`."""

from __future__ import annotations

import math
from typing import Any, Literal

from fastgd import _checks as c
from fastgd.schedules._validate import _metric


class ReduceLROnPlateau:
    """Reduce the rate when a metric stops improving; torch's ReduceLROnPlateau.

    Stateful: call :meth:`step` once per evaluation with the monitored metric;
    it returns the rate to use from then on (also :attr:`lr`).

    .. code-block:: text

        better(a)  = a < best * (1 - threshold)     mode="min", threshold_mode="rel"
                   = a < best - threshold           mode="min", threshold_mode="abs"
                   = a > best * (1 + threshold)     mode="max", threshold_mode="rel"
                   = a > best + threshold           mode="max", threshold_mode="abs"

        step(metric):
            if better(metric): best = metric; num_bad_epochs = 0
            else:              num_bad_epochs += 1
            if cooldown_counter > 0: cooldown_counter -= 1; num_bad_epochs = 0
            if num_bad_epochs > patience:
                new = max(lr * factor, min_lr)
                if lr - new > eps: lr = new
                cooldown_counter = cooldown; num_bad_epochs = 0
            return lr

    ``best`` starts at +inf (``"min"``) or -inf (``"max"``); a NaN metric never
    improves. Identical to torch, decision for decision and value for value.

    Parameters
    ----------
    lr : float
        The initial learning rate.
    mode : {"min", "max"}, default "min"
        Whether the metric should decrease (a loss) or increase (an accuracy).
    factor : float, default 0.1
        ``new_lr = lr * factor``, in [0, 1).
    patience : int, default 10
        Non-improving steps tolerated before a reduction, >= 0.
    threshold : float, default 1e-4
        Minimum significant change, >= 0.
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        Steps after a reduction during which bad steps are not counted, >= 0.
    min_lr : float, default 0.0
        Lower bound of the rate, >= 0.
    eps : float, default 1e-8
        Reductions smaller than this are skipped, >= 0.
    """

    _fields = (
        "mode",
        "factor",
        "patience",
        "threshold",
        "threshold_mode",
        "cooldown",
        "min_lr",
        "eps",
    )
    _state = ("lr", "best", "num_bad_epochs", "cooldown_counter", "last_epoch")

    def __init__(
        self,
        lr: float,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.lr: float = c.nonnegative("lr", lr)
        self.mode = c.choice("min", "max")("mode", mode)
        self.factor = c.unit_interval("factor", factor)
        self.patience = c.integer("patience", patience)
        self.threshold = c.nonnegative("threshold", threshold)
        self.threshold_mode = c.choice("rel", "abs")("threshold_mode", threshold_mode)
        self.cooldown = c.integer("cooldown", cooldown)
        self.min_lr = c.nonnegative("min_lr", min_lr)
        self.eps = c.nonnegative("eps", eps)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    @property
    def in_cooldown(self) -> bool:
        """Whether bad steps are currently ignored after a reduction."""
        return self.cooldown_counter > 0

    def _is_better(self, a: float) -> bool:
        best, th = self.best, self.threshold
        if self.mode == "min":
            return a < best * (1.0 - th) if self.threshold_mode == "rel" else a < best - th
        return a > best * (th + 1.0) if self.threshold_mode == "rel" else a > best + th

    def step(self, metric: float) -> float:
        """Record one value of the monitored metric; return the (possibly reduced) rate.

        ``metric`` is a real number: a Python or NumPy int or float (not a
        bool), a 0-d real array, or another object ``float()`` accepts, such as
        a one-element tensor; strings, complex numbers, masked arrays and
        arrays of more than one element raise ``TypeError``. NaN and
        infinities are values (a NaN never improves).
        """
        current = _metric(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and state as a plain dict (picklable, JSON-able)."""
        return {k: getattr(self, k) for k in self._fields + self._state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; validated before anything changes."""
        missing = set(self._fields + self._state) - set(state_dict)
        extra = set(state_dict) - set(self._fields + self._state)
        if missing or extra:
            raise ValueError(
                f"not a ReduceLROnPlateau state_dict: missing {sorted(missing)}, "
                f"unexpected {sorted(extra)}"
            )
        fresh = type(self)(state_dict["lr"], **{k: state_dict[k] for k in self._fields})
        fresh.best = c._real("best", state_dict["best"])
        fresh.num_bad_epochs = c.integer("num_bad_epochs", state_dict["num_bad_epochs"])
        fresh.cooldown_counter = c.integer("cooldown_counter", state_dict["cooldown_counter"])
        fresh.last_epoch = c.integer("last_epoch", state_dict["last_epoch"])
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("lr",) + self._fields)
        return f"{type(self).__name__}({args})"
