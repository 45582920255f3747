"""The names the driver modules share: the methods, the driver options and
the result's status codes (re-exported by :mod:`fastgd.driver`)."""

from __future__ import annotations

import enum
import sys
from typing import Any

from fastgd.optimizers import OPTIMIZERS

#: Every ``method`` of :func:`minimize`: the optimizer registry plus ``"nesterov"``.
METHODS: tuple[str, ...] = (*OPTIMIZERS, "nesterov", "lbfgs")

#: The driver options (everything in ``options`` that is not a hyperparameter).
#: ``method="lbfgs"``'s own options and their defaults (SciPy L-BFGS-B's
#: ``maxcor`` and ``maxls``), and its ``ftol`` default (L-BFGS-B's
#: ``factr = 1e7`` times float64's epsilon).
LBFGS_OPTIONS: dict[str, Any] = {"m": 10, "maxls": 20, "form": "two_loop"}
LBFGS_FTOL = 1e7 * 2.220446049250313e-16

DEFAULT_OPTIONS: dict[str, Any] = {
    "maxiter": 1000,
    "gtol": 1e-5,
    "ftol": 0.0,
    "f_target": None,
    "disp": False,
}


def is_dask_array(x) -> bool:
    """True for a ``dask.array.Array``; never imports dask (an array of it
    cannot exist unless ``dask.array`` was imported)."""
    core = sys.modules.get("dask.array.core")
    return core is not None and isinstance(x, core.Array)


# options people try that belong elsewhere
_OPTION_HINTS = {
    "maximize": "minimize() minimizes; negate fun instead",
    "l1": "pass l1= as a keyword argument of minimize()",
    "l1_mode": "pass l1_mode= as a keyword argument of minimize()",
    "backend": "pass backend= as a keyword argument of minimize()",
    "tol": "use gtol (or ftol)",
    "params": "x0 is the parameters",
    "seed": "pass seed= (the mini-batch order's) as a keyword argument of minimize()",
    "kahan": "minimize runs float32/float64 parameters; Kahan storage is for 16-bit "
    "parameters of the optimizer classes",
    "stochastic_rounding": "minimize runs float32/float64 parameters; stochastic rounding "
    "is for 16-bit parameters of the optimizer classes",
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
    #: (False) ``method="lbfgs"``: no step met the strong Wolfe conditions
    #: (SciPy's ABNORMAL_TERMINATION_IN_LNSRCH).
    LINE_SEARCH = 6
    #: (False) the callback raised ``StopIteration``; SciPy's code and message.
    CALLBACK = 99


_SUCCESS = {Status.GTOL, Status.FTOL, Status.EARLY_STOPPING}
