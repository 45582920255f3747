"""The equivalents of torch.optim.lr_scheduler's step-indexed schedulers."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from fastgd import _checks as c
from fastgd.schedules._base import Schedule, _times_power
from fastgd.schedules._validate import _integers
from fastgd.schedules.plateau import ReduceLROnPlateau


class StepLR(Schedule):
    """Decay by ``gamma`` every ``step_size`` steps; torch.optim.lr_scheduler.StepLR.

    .. code-block:: text

        lr_t = lr * gamma ** (t // step_size)

    torch multiplies the previous value by ``gamma`` at each multiple of
    ``step_size``; the closed form differs from that product by rounding only.

    Parameters
    ----------
    lr : float
        The base learning rate (torch: the optimizer's ``lr``).
    step_size : int
        Period of the decay, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    """

    _fields = ("lr", "step_size", "gamma")

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.step_size = c.integer("step_size", step_size, 1)
        self.gamma = c.nonnegative("gamma", gamma)
        self._freeze()

    def _lr(self, t: int) -> float:
        return _times_power(self.lr, self.gamma, t // self.step_size)


class MultiStepLR(Schedule):
    """Decay by ``gamma`` at each milestone; torch.optim.lr_scheduler.MultiStepLR.

    .. code-block:: text

        lr_t = lr * gamma ** (number of milestones m with m <= t)

    A milestone listed twice counts twice, as in torch. torch multiplies the
    previous value at each milestone; the closed form differs by rounding only.

    Parameters
    ----------
    lr : float
        The base learning rate.
    milestones : iterable of int
        Steps (>= 0) at which the rate is multiplied by ``gamma``; any order.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    """

    _fields = ("lr", "milestones", "gamma")

    def __init__(self, lr: float, milestones: Iterable[int], gamma: float = 0.1) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.milestones = tuple(sorted(_integers("milestones", milestones)))
        self.gamma = c.nonnegative("gamma", gamma)
        self._freeze()

    def _lr(self, t: int) -> float:
        return _times_power(self.lr, self.gamma, bisect_right(self.milestones, t))


class ExponentialLR(Schedule):
    """Decay by ``gamma`` every step; torch.optim.lr_scheduler.ExponentialLR.

    .. code-block:: text

        lr_t = lr * gamma ** t

    torch multiplies the previous value by ``gamma`` each step; ``gamma ** t``
    differs from that product by at most about ``t`` ulp.

    Parameters
    ----------
    lr : float
        The base learning rate.
    gamma : float
        Multiplicative factor per step, >= 0.
    """

    _fields = ("lr", "gamma")

    def __init__(self, lr: float, gamma: float) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.gamma = c.nonnegative("gamma", gamma)
        self._freeze()

    def _lr(self, t: int) -> float:
        return _times_power(self.lr, self.gamma, t)


class LinearLR(Schedule):
    """Linear ramp of a multiplicative factor; torch.optim.lr_scheduler.LinearLR.

    .. code-block:: text

        lr_t = lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)

    torch applies the ratio of consecutive factors each step; the closed form
    differs by rounding only.

    Parameters
    ----------
    lr : float
        The base learning rate.
    start_factor : float, default 1/3
        Factor at ``t = 0``, in (0, 1] (torch's range).
    end_factor : float, default 1.0
        Factor from ``t = total_iters`` on, in [0, 1].
    total_iters : int, default 5
        Length of the ramp, >= 1.
    """

    _fields = ("lr", "start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        lr: float,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.start_factor = c.closed_unit_interval("start_factor", start_factor)
        if self.start_factor == 0.0:
            raise ValueError("Invalid start_factor: 0.0 (must be in (0, 1])")
        self.end_factor = c.closed_unit_interval("end_factor", end_factor)
        self.total_iters = c.integer("total_iters", total_iters, 1)
        self._freeze()

    def _lr(self, t: int) -> float:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return self.lr * (s + (e - s) * min(n, t) / n)


class CosineAnnealingLR(Schedule):
    """Cosine annealing without restarts; torch.optim.lr_scheduler.CosineAnnealingLR.

    .. code-block:: text

        lr_t = eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    for every ``t``: past ``T_max`` the rate rises again with period
    ``2 * T_max``, as torch's does. This is the SGDR closed form; torch steps
    a recursion (``eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T)) /
    (1 + cos(pi (t - 1) / T))``) whose products telescope to the same value up
    to rounding; observed differences stay below 1e-12 relative over hundreds
    of steps (``1 + cos`` near the minimum carries the largest error).

    Parameters
    ----------
    lr : float
        The base (maximum) learning rate.
    T_max : int
        Half-period in steps, >= 1.
    eta_min : float, default 0.0
        Minimum learning rate, >= 0.
    """

    _fields = ("lr", "T_max", "eta_min")

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.T_max = c.integer("T_max", T_max, 1)
        self.eta_min = c.nonnegative("eta_min", eta_min)
        self._freeze()

    def _lr(self, t: int) -> float:
        eta_min = self.eta_min
        return eta_min + (self.lr - eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class CosineAnnealingWarmRestarts(Schedule):
    """SGDR: cosine annealing with warm restarts; torch's CosineAnnealingWarmRestarts.

    .. code-block:: text

        T_i   = T_0 * T_mult ** i          length of cycle i = 0, 1, ...
        T_cur = t - (T_0 + T_0 * T_mult + ... + T_0 * T_mult ** (i - 1))
                                           steps into the cycle that holds t
        lr_t  = eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    The rate restarts at ``lr`` when ``T_cur`` returns to 0 and never reaches
    ``eta_min`` exactly. Bit-identical to torch (which also uses this form).

    Parameters
    ----------
    lr : float
        The base (maximum) learning rate.
    T_0 : int
        Length of the first cycle, >= 1.
    T_mult : int, default 1
        Growth factor of the cycle length, >= 1.
    eta_min : float, default 0.0
        Minimum learning rate, >= 0.
    """

    _fields = ("lr", "T_0", "T_mult", "eta_min")

    def __init__(self, lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.T_0 = c.integer("T_0", T_0, 1)
        self.T_mult = c.integer("T_mult", T_mult, 1)
        self.eta_min = c.nonnegative("eta_min", eta_min)
        self._freeze()

    def _lr(self, t: int) -> float:
        T_i = self.T_0
        if self.T_mult == 1:
            T_cur = t % T_i
        else:
            T_cur = t
            while T_cur >= T_i:  # O(log t) cycles
                T_cur -= T_i
                T_i *= self.T_mult
        eta_min = self.eta_min
        return eta_min + (self.lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


class PolynomialLR(Schedule):
    """Polynomial decay to 0; torch.optim.lr_scheduler.PolynomialLR.

    .. code-block:: text

        lr_t = lr * (1 - min(t, total_iters) / total_iters) ** power

    0 from ``t = total_iters`` on (for ``power > 0``). torch applies the ratio
    of consecutive factors each step; the closed form differs by rounding only.

    Parameters
    ----------
    lr : float
        The base learning rate.
    total_iters : int, default 5
        Steps until the rate reaches 0, >= 1.
    power : float, default 1.0
        Exponent, >= 0.
    """

    _fields = ("lr", "total_iters", "power")

    def __init__(self, lr: float, total_iters: int = 5, power: float = 1.0) -> None:
        self.lr = c.nonnegative("lr", lr)
        self.total_iters = c.integer("total_iters", total_iters, 1)
        self.power = c.nonnegative("power", power)
        self._freeze()

    def _lr(self, t: int) -> float:
        n = self.total_iters
        return self.lr * (1.0 - min(n, t) / n) ** self.power


class CyclicLR(Schedule):
    """Cyclical learning rate (CLR); torch.optim.lr_scheduler.CyclicLR (learning rate only).

    .. code-block:: text

        size  = step_size_up + step_size_down
        cycle = floor(1 + t / size)                        1, 2, ...
        x     = 1 + t / size - cycle                       position in the cycle, [0, 1)
        r     = step_size_up / size
        h     = x / r  if x <= r  else  (x - 1) / (r - 1)  0 -> 1 -> 0 triangle
        lr_t  = base_lr + (max_lr - base_lr) * h * scale

        scale = 1                      mode="triangular"
              = 1 / 2 ** (cycle - 1)   mode="triangular2"
              = gamma ** t             mode="exp_range"
              = scale_fn(cycle)        scale_fn given, scale_mode="cycle"
              = scale_fn(t)            scale_fn given, scale_mode="iterations"

    Bit-identical to torch. torch's ``cycle_momentum`` (cycling the
    optimizer's momentum inversely) is not part of a learning-rate schedule;
    compute it from ``h * scale`` if needed.

    Parameters
    ----------
    base_lr : float
        Lower boundary of the cycle (the rate at ``t = 0``).
    max_lr : float
        Upper boundary; ``max_lr - base_lr`` is the amplitude.
    step_size_up : int, default 2000
        Steps in the rising half of a cycle, >= 1.
    step_size_down : int, optional
        Steps in the falling half, >= 0; defaults to ``step_size_up``.
    mode : {"triangular", "triangular2", "exp_range"}, default "triangular"
        Amplitude scaling policy; ignored when ``scale_fn`` is given.
    gamma : float, default 1.0
        Base of ``exp_range``'s scaling, >= 0. Above 1 the amplitude grows
        without bound (as in torch); ``gamma ** t`` past the float range is
        ``inf``.
    scale_fn : callable, optional
        Custom scaling ``float -> float`` with values in [0, 1]. A value that
        is not a finite real number, or one that makes the rate negative,
        raises ``ValueError`` when ``sched(t)`` is evaluated.
    scale_mode : {"cycle", "iterations"}, default "cycle"
        Argument of ``scale_fn``; only used with ``scale_fn`` (the built-in
        modes fix it, as in torch).
    """

    _fields = (
        "base_lr",
        "max_lr",
        "step_size_up",
        "step_size_down",
        "mode",
        "gamma",
        "scale_fn",
        "scale_mode",
    )

    def __init__(
        self,
        base_lr: float,
        max_lr: float,
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: Literal["cycle", "iterations"] = "cycle",
    ) -> None:
        self.base_lr = c.nonnegative("base_lr", base_lr)
        self.max_lr = c.nonnegative("max_lr", max_lr)
        self.step_size_up = c.integer("step_size_up", step_size_up, 1)
        self.step_size_down = (
            self.step_size_up
            if step_size_down is None
            else c.integer("step_size_down", step_size_down, 0)
        )
        if scale_fn is None:
            self.mode = c.choice("triangular", "triangular2", "exp_range")("mode", mode)
        elif not callable(scale_fn):
            raise ValueError(f"scale_fn must be callable or None, got {scale_fn!r}")
        else:
            self.mode = mode
        self.gamma = c.nonnegative("gamma", gamma)
        self.scale_fn = scale_fn
        self.scale_mode = c.choice("cycle", "iterations")("scale_mode", scale_mode)
        self._size = float(self.step_size_up) + float(self.step_size_down)
        self._ratio = float(self.step_size_up) / self._size
        self._amplitude = self.max_lr - self.base_lr
        if scale_fn is not None:
            self._by_cycle = self.scale_mode == "cycle"
        else:
            self._by_cycle = self.mode != "exp_range"
        self._freeze()

    def _lr(self, t: int) -> float:
        # Same operations in the same order as torch, for bit-identical values.
        cycle = math.floor(1 + t / self._size)
        x = 1.0 + t / self._size - cycle
        r = self._ratio
        h = x / r if x <= r else (x - 1) / (r - 1)
        arg = cycle if self._by_cycle else t
        if self.scale_fn is not None:
            scale = c.real(f"scale_fn({arg})", self.scale_fn(arg))
        elif self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1 / (2.0 ** (arg - 1))
        else:
            scale = _times_power(1.0, self.gamma, arg)  # inf past the float range
        height = self._amplitude * h
        # height == 0 skips the product: 0 * inf would be NaN (same value otherwise)
        lr = self.base_lr + (height * scale if height else height)
        if not lr >= 0.0:
            why = (
                "scale_fn must return values in [0, 1]"
                if self.scale_fn is not None
                else "use gamma <= 1"
            )
            raise ValueError(
                f"CyclicLR gives a negative rate {lr} at t = {t} (scale {scale}); {why}"
            )
        return lr


class OneCycleLR(Schedule):
    """The 1cycle policy; torch.optim.lr_scheduler.OneCycleLR (learning rate only).

    .. code-block:: text

        initial = max_lr / div_factor
        final   = initial / final_div_factor
        N       = total_steps  (or epochs * steps_per_epoch)
        p       = pct_start * N

        phase     ends at step e      anneals from -> to
        1         p - 1               initial -> max_lr
        2         N - 1               max_lr  -> final          (three_phase=False)
        2, 3      2p - 2, N - 1       max_lr  -> initial -> final  (three_phase=True)

        lr_t = anneal(from, to, (t - s) / (e - s))    s: the previous phase's end (0 for
                                                      the first), in the first phase with
                                                      t <= e, else the last phase
        anneal(a, b, q) = b + (a - b) / 2 * (cos(pi * q) + 1)   anneal_strategy="cos"
                        = (b - a) * q + a                        anneal_strategy="linear"

    Defined for ``0 <= t <= total_steps``; larger ``t`` raises ``ValueError``
    as torch's ``step()`` does. ``t = total_steps`` extrapolates the last
    phase one step, as torch does: the rate after the last step, never one
    to train with; with ``anneal_strategy="linear"`` it lies below ``final``
    and is usually negative (torch's value, kept for parity). Bit-identical
    to torch; its momentum cycling is not part of a learning-rate schedule.

    Parameters
    ----------
    max_lr : float
        Peak learning rate.
    total_steps : int, optional
        Length of the cycle, >= 1; else ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
        Used when ``total_steps`` is None; both >= 1.
    pct_start : float, default 0.3
        Fraction of the cycle spent rising, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
    div_factor : float, default 25.0
        ``initial = max_lr / div_factor``, > 0 (``initial`` must be finite).
    final_div_factor : float, default 1e4
        ``final = initial / final_div_factor``, > 0 (``final`` must be finite).
    three_phase : bool, default False
        Return to ``initial`` symmetrically before annealing to ``final``
        (the original paper) instead of annealing from the peak (fastai).
    """

    _fields = (
        "max_lr",
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )

    def __init__(
        self,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        self.max_lr = c.nonnegative("max_lr", max_lr)
        if total_steps is not None:
            self.total_steps = c.integer("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = c.integer(
                "epochs * steps_per_epoch",
                c.integer("epochs", epochs, 1) * c.integer("steps_per_epoch", steps_per_epoch, 1),
                1,
            )
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        self.pct_start = c.closed_unit_interval("pct_start", pct_start)
        self.anneal_strategy = c.choice("cos", "linear")("anneal_strategy", anneal_strategy)
        self.div_factor = c.positive("div_factor", div_factor)
        self.final_div_factor = c.positive("final_div_factor", final_div_factor)
        self.three_phase = c.flag("three_phase", three_phase)

        n = self.total_steps
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        # an infinite end point makes the anneal inf - inf = NaN
        if initial == math.inf:
            raise ValueError(
                f"Invalid div_factor: {self.div_factor} (max_lr / div_factor must be finite)"
            )
        if final == math.inf:
            raise ValueError(
                f"Invalid final_div_factor: {self.final_div_factor} "
                "(max_lr / div_factor / final_div_factor must be finite)"
            )
        rise_end = float(self.pct_start * n) - 1
        if self.three_phase:
            phases = [
                (rise_end, initial, self.max_lr),
                (float(2 * self.pct_start * n) - 2, self.max_lr, initial),
                (n - 1, initial, final),
            ]
        else:
            phases = [(rise_end, initial, self.max_lr), (n - 1, self.max_lr, final)]
        # torch divides by zero where a phase that some t in [0, N] selects is empty.
        if rise_end == 0:
            raise ValueError(
                f"pct_start * total_steps = {self.pct_start * n} leaves an empty first phase; "
                "it must not be 1"
            )
        if phases[-1][0] == phases[-2][0]:
            raise ValueError(
                f"pct_start={self.pct_start} leaves an empty last phase for total_steps={n}"
            )
        self._phases = tuple(phases)
        self._cos = self.anneal_strategy == "cos"
        self._freeze()

    def _lr(self, t: int) -> float:
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR is defined for t <= total_steps = {self.total_steps}, got t = {t}"
            )
        start = 0.0
        last = len(self._phases) - 1
        for i, (end, a, b) in enumerate(self._phases):
            if t <= end or i == last:
                q = (t - start) / (end - start)
                if self._cos:
                    return b + (a - b) / 2.0 * (math.cos(math.pi * q) + 1)
                return (b - a) * q + a
            start = end
        raise AssertionError("unreachable")  # pragma: no cover


class SequentialLR(Schedule):
    """Schedules one after another; torch.optim.lr_scheduler.SequentialLR.

    .. code-block:: text

        i    = number of milestones m with m <= t
        lr_t = schedules[i](t - milestones[i - 1])     (t itself for i = 0)

    Each schedule restarts its own clock at its milestone and uses its own
    base rate (torch's all share the optimizer's initial ``lr``; give them the
    same ``lr`` to reproduce it).

    Parameters
    ----------
    schedules : sequence of Schedule
        At least one.
    milestones : sequence of int
        ``len(schedules) - 1`` strictly increasing steps >= 0.
    """

    _fields = ("schedules", "milestones")

    def __init__(self, schedules: Sequence[Schedule], milestones: Sequence[int]) -> None:
        if isinstance(schedules, (str, bytes, Mapping)) or not isinstance(schedules, Iterable):
            raise ValueError(f"schedules must be a sequence of Schedule objects, got {schedules!r}")
        schedules = tuple(schedules)
        if not schedules:
            raise ValueError("SequentialLR expects at least one schedule, got none")
        for i, s in enumerate(schedules):
            if not isinstance(s, Schedule):
                why = " (it follows a metric, not t)" if isinstance(s, ReduceLROnPlateau) else ""
                raise ValueError(
                    f"schedules[{i}] must be a fastgd Schedule, got {type(s).__name__}{why}"
                )
        milestones = _integers("milestones", milestones)
        if len(milestones) != len(schedules) - 1:
            raise ValueError(
                f"SequentialLR expects one milestone fewer than schedules, got "
                f"{len(schedules)} schedules and {len(milestones)} milestones"
            )
        if any(b <= a for a, b in zip(milestones[:-1], milestones[1:], strict=True)):
            raise ValueError(f"milestones must be strictly increasing, got {list(milestones)}")
        self.schedules = schedules
        self.milestones = milestones
        self._freeze()

    def _lr(self, t: int) -> float:
        i = bisect_right(self.milestones, t)
        if i:
            t -= self.milestones[i - 1]
        return self.schedules[i]._lr(t)
