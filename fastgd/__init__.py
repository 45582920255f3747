"""fastgd: every gradient-descent update rule as one fused pass over memory.

>>> import numpy as np, fastgd
>>> x = np.ones(5)
>>> opt = fastgd.Adam(x, lr=0.1)
>>> opt.step(np.ones(5))
>>> x
array([0.9, 0.9, 0.9, 0.9, 0.9])

The optimizers import nothing heavy; the drivers (``minimize``, ``compare``,
clipping, ...) load numba or SciPy on first use, so ``import fastgd`` stays cheap.
"""

import importlib

from fastgd import config, functional, schedules
from fastgd.optim import Hyperparameter, Optimizer
from fastgd.optimizers import (
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Momentum,
    NAdam,
    RAdam,
    RMSprop,
)
from fastgd.pack import pack
from fastgd.rules import RULES

__version__ = "0.1.0"

#: Public names loaded on first access (PEP 562), by the module that defines them.
_LAZY = {
    "clip_grad_norm_": "fastgd.clip",
    "clip_grad_value_": "fastgd.clip",
    "compare": "fastgd.comparison",
    "minimize": "fastgd.driver",
    "scipy_method": "fastgd.driver",
    "check_grad": "fastgd.gradcheck",
    "GradCheckResult": "fastgd.gradcheck",
}
_LAZY_MODULES = ("bench", "clip", "comparison", "cuda", "driver", "gradcheck", "problems")


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f"fastgd.{name}")
    else:
        raise AttributeError(f"module 'fastgd' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))


__all__ = [
    "OPTIMIZERS",
    "RULES",
    "SGD",
    "Adadelta",
    "GradCheckResult",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Hyperparameter",
    "Lion",
    "Momentum",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "check_grad",
    "clip_grad_norm_",
    "clip_grad_value_",
    "compare",
    "config",
    "functional",
    "gradcheck",
    "minimize",
    "pack",
    "problems",
    "schedules",
    "scipy_method",
]
