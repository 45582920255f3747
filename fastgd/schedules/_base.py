"""The :class:`Schedule` base class and the helper its subclasses share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from fastgd import _checks
from fastgd.schedules._validate import _step_index


def _times_power(x: float, base: float, k: int) -> float:
    """``x * base ** k`` for ``x, base >= 0``, as torch's repeated ``x * base``
    reaches it: ``inf`` once the power leaves the float range (Python's
    ``float ** int`` raises there), and 0 for ``x == 0``."""
    try:
        return x * base**k
    except OverflowError:
        return math.inf if x else 0.0


class Schedule(ABC):
    """Base class: an immutable learning-rate schedule ``sched(t) -> lr``.

    Subclasses validate their arguments in ``__init__``, list them in
    ``_fields`` (for ``repr``) and implement ``_lr(t)`` for a validated
    Python int ``t >= 0``.
    """

    _fields: tuple[str, ...] = ()

    def __call__(self, t: int) -> float:
        """The learning rate for step ``t`` (0-based number of steps taken).

        Raises
        ------
        TypeError
            ``t`` is not an integer (Python or NumPy).
        ValueError
            ``t`` is negative or at least ``2**63``.
        """
        return self._lr(_step_index(t))

    @abstractmethod
    def _lr(self, t: int) -> float:
        """The learning rate for a validated step ``t >= 0``."""

    def values(self, n: int) -> list[float]:
        """The learning rates of the first ``n`` steps, ``[sched(0), ..., sched(n - 1)]``."""
        n = _checks.integer("n", n)
        return [self._lr(t) for t in range(n)]

    def __setattr__(self, name: str, value) -> None:
        if self.__dict__.get("_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable; build a new schedule instead"
            )
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        self._frozen = True

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({args})"
