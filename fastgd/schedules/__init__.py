"""Learning-rate schedules with torch.optim.lr_scheduler's names, defaults and values.

A schedule is an immutable callable ``sched(t) -> lr``: ``t`` is the number of
steps already taken (``0`` for the first step) and the result is the learning
rate to use for step ``t``. Where torch takes an optimizer, these take the base
learning rate::

    >>> from fastgd.schedules import StepLR
    >>> sched = StepLR(0.1, step_size=2, gamma=0.5)
    >>> sched.values(5)
    [0.1, 0.1, 0.05, 0.05, 0.025]
    >>> sched(4)
    0.025

``sched(t)`` equals the ``optimizer.param_groups[0]["lr"]`` that torch's
scheduler of the same name and arguments sets after ``t`` calls of
``scheduler.step()``. Several torch schedulers compute that value recursively
from the previous one (``lr * gamma`` each step); fastgd evaluates the
closed form, which equals torch's recursion up to its accumulated rounding
(below 1e-12 relative over 1000 steps, see each class). The others are
bit-identical.

:class:`ReduceLROnPlateau` is not a function of ``t`` but of the monitored
metric; it is the one stateful class here (``step(metric) -> lr``).
"""

from __future__ import annotations

from fastgd.schedules._base import Schedule
from fastgd.schedules.extra import InverseTimeDecay, WarmupCosine
from fastgd.schedules.plateau import ReduceLROnPlateau
from fastgd.schedules.torch_equal import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    SequentialLR,
    StepLR,
)

__all__ = [
    "Schedule",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "LinearLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "PolynomialLR",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "InverseTimeDecay",
    "WarmupCosine",
    "ReduceLROnPlateau",
    "SCHEDULES",
]


#: Every schedule by name (the torch class name where torch has one).
SCHEDULES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        StepLR,
        MultiStepLR,
        ExponentialLR,
        LinearLR,
        CosineAnnealingLR,
        CosineAnnealingWarmRestarts,
        PolynomialLR,
        CyclicLR,
        OneCycleLR,
        SequentialLR,
        InverseTimeDecay,
        WarmupCosine,
        ReduceLROnPlateau,
    )
}

# The classes live in submodules but are public (and pickled) as
# ``fastgd.schedules.<name>``, as before the split.
for _cls in (Schedule, *SCHEDULES.values()):
    _cls.__module__ = __name__
del _cls
