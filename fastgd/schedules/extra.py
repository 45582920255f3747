"""Schedules torch lacks: :class:`InverseTimeDecay` and :class:`WarmupCosine`."""

from __future__ import annotations

import math

from fastgd import _checks as c
from fastgd.schedules._base import Schedule


class InverseTimeDecay(Schedule):
    """Inverse time decay (Keras/TF ``InverseTimeDecay``); not in torch.

    .. code-block:: text

        p    = t / decay_steps                   (staircase=False)
             = floor(t / decay_steps)            (staircase=True)
        lr_t = lr / (1 + decay_rate * p)

    torch's closest relative is Adagrad's ``lr_decay``, which is this with
    ``decay_steps=1`` applied inside the optimizer.

    Parameters
    ----------
    lr : float
        The base learning rate.
    decay_rate : float
        >= 0.
    decay_steps : int, default 1
        >= 1.
    staircase : bool, default False
        Decay in discrete jumps every ``decay_steps`` steps.
    """

    _fields = ("lr", "decay_rate", "decay_steps", "staircase")

    def __init__(
        self, lr: float, decay_rate: float, decay_steps: int = 1, staircase: bool = False
    ) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.decay_rate = c.nonnegative("decay_rate", decay_rate)
        self.decay_steps = c.integer("decay_steps", decay_steps, 1)
        self.staircase = c.flag("staircase", staircase)
        self._freeze()

    def _lr(self, t: int) -> float:
        p = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.lr / (1 + self.decay_rate * p)


class WarmupCosine(Schedule):
    """Linear warmup from 0, then cosine decay to ``eta_min``; not in torch.

    .. code-block:: text

        lr_t = lr * t / warmup_steps                                     t < warmup_steps
             = eta_min + (lr - eta_min) * (1 + cos(pi * (t - w) / (T - w))) / 2
                                                                         w <= t <= T
             = eta_min                                                   t > T

    with ``w = warmup_steps`` and ``T = total_steps``. The peak ``lr`` is used
    at ``t = w`` and ``eta_min`` at ``t = T``. The first step has rate 0, as in
    ``optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps, total_steps,
    eta_min)`` and (for ``eta_min = 0``) transformers'
    ``get_cosine_schedule_with_warmup``, which this equals up to rounding.

    Parameters
    ----------
    lr : float
        Peak learning rate.
    warmup_steps : int
        Steps of linear warmup, >= 0 (0: plain cosine decay).
    total_steps : int
        Step at which ``eta_min`` is reached, > ``warmup_steps``.
    eta_min : float, default 0.0
        Final learning rate, >= 0.
    """

    _fields = ("lr", "warmup_steps", "total_steps", "eta_min")

    def __init__(
        self, lr: float, warmup_steps: int, total_steps: int, eta_min: float = 0.0
    ) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.warmup_steps = c.integer("warmup_steps", warmup_steps)
        self.total_steps = c.integer("total_steps", total_steps, 1)
        if self.total_steps <= self.warmup_steps:
            raise ValueError(
                f"total_steps ({self.total_steps}) must exceed warmup_steps ({self.warmup_steps})"
            )
        self.eta_min = c.nonnegative("eta_min", eta_min)
        self._freeze()

    def _lr(self, t: int) -> float:
        w, n = self.warmup_steps, self.total_steps
        if t < w:
            return self.lr * (t / w)  # not (lr * t) / w, which can overflow
        if t >= n:
            return self.eta_min
        eta_min = self.eta_min
        return eta_min + (self.lr - eta_min) * (1 + math.cos(math.pi * (t - w) / (n - w))) / 2
