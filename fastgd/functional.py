"""Stateless update functions, one per rule, with explicit state arrays.

For tools that keep their own state. Each function applies one step in place
to ``params`` and to the state arrays passed by torch's names, and returns
the rule's updated host state (a dict; empty except for NAdam's
``mu_product`` and SGD's ``momentum_started``), which the caller passes back
as ``host=`` next step.

>>> import numpy as np
>>> from fastgd import functional as F
>>> p = np.ones(3); m = np.zeros(3); v = np.zeros(3)
>>> host = F.adam(p, np.ones(3), step=1, exp_avg=m, exp_avg_sq=v, lr=0.1)
>>> p
array([0.9, 0.9, 0.9])
"""

from __future__ import annotations

import inspect

import numpy as np

from fastgd import _checks, _precision
from fastgd.optimizers import OPTIMIZERS

__all__ = list(OPTIMIZERS)


def _functional(name: str, cls):
    rule = cls.rule
    init = inspect.signature(cls.__init__)

    def update(params, grad, *, step: int, host: dict | None = None, backend: str = "auto",
               **kwargs) -> dict:  # fmt: skip
        _checks.integer("step (the number of this update)", step, 1)
        storage = [k for k in _precision.STORAGE_OPTIONS if k in kwargs]
        if storage:
            raise TypeError(
                f"fastgd.functional.{name} takes no {', '.join(storage)}: it updates the state "
                "arrays you pass, in the parameters' dtype (use the optimizer class for 16-bit "
                "storage)"
            )

        states = {k: kwargs.pop(k) for k in rule.states if k in kwargs}
        states = {k: v for k, v in states.items() if v is not None}
        opt = cls(params, backend=backend, **kwargs)
        if opt._precision.bits:
            raise TypeError(
                f"fastgd.functional.{name} takes float32 or float64 params, got {opt._dtype}; "
                "16-bit parameters are the optimizer classes' (fastgd.{cls.__name__})"
            )
        needed = rule.active(opt)
        missing = [s for s in needed if s not in states]
        if missing:
            raise ValueError(f"{name} with these options needs state arrays {missing}")
        written = [params, grad]
        for s in needed:
            arr = states[s]
            if opt._device:
                from fastgd import cuda

                flat = cuda.flat_view(arr, s)
                if flat.size != opt._flat_params.size or np.dtype(flat.dtype) != opt._dtype:
                    raise ValueError(f"state {s!r} must match params in size and dtype")
            else:
                arr = _checks.check_params(arr, s)
                if arr.shape != opt._shape or arr.dtype != opt._dtype:
                    raise ValueError(
                        f"state {s!r} must match params: got {arr.shape} {arr.dtype}, "
                        f"expected {opt._shape} {opt._dtype}"
                    )
                if any(np.may_share_memory(arr, w) for w in written):
                    raise ValueError(f"state {s!r} overlaps params, grad or another state array")
                written.append(arr)
                flat = arr.reshape(-1)
            opt._state[s] = arr
            opt._flat_state[s] = flat
        if host is None:
            host = {}
        elif not isinstance(host, dict):
            raise TypeError(f"host must be the dict the previous call returned, got {host!r}")
        opt._host = {k: opt._checked_host(k, v) for k, v in host.items()}
        opt._steps = int(step) - 1
        opt.step(grad)
        return opt._host

    params = [
        inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("grad", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("step", inspect.Parameter.KEYWORD_ONLY, annotation=int),
    ]
    params += [
        inspect.Parameter(s, inspect.Parameter.KEYWORD_ONLY, default=None) for s in rule.states
    ]
    params += [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for n, p in init.parameters.items()
        if n not in ("self", "params", *_precision.STORAGE_OPTIONS)
    ]
    params.append(inspect.Parameter("host", inspect.Parameter.KEYWORD_ONLY, default=None))
    update.__signature__ = inspect.Signature(params)
    update.__name__ = update.__qualname__ = name
    update.__doc__ = (
        f"One {cls.__name__} step with explicit state arrays "
        f"({', '.join(rule.states)}); see :class:`fastgd.{cls.__name__}` for the formula.\n\n"
        "Parameters\n----------\n"
        "params, grad : ndarray\n    Updated in place / the gradient.\n"
        "step : int\n    The number of this update, 1 for the first.\n"
        "**states : ndarray\n    The state arrays this configuration uses, by name, "
        "updated in place.\nhost : dict, optional\n    The dict returned by the previous call.\n"
        "**hyperparameters\n    As for the class.\n\n"
        "Returns\n-------\ndict\n    The host state to pass as ``host=`` next step.\n"
    )
    return update


for _name, _cls in OPTIMIZERS.items():
    globals()[_name] = _functional(_name, _cls)
del _name, _cls
