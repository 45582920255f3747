"""fastgd: every gradient-descent update rule as one fused pass over memory.

>>> import numpy as np, fastgd
>>> x = np.ones(5, np.float32)
>>> opt = fastgd.Adam(x, lr=0.1)
>>> opt.step(np.ones(5, np.float32))
>>> x
array([0.9, 0.9, 0.9, 0.9, 0.9], dtype=float32)
"""

from fastgd import config, functional, gradcheck, problems, schedules
from fastgd.clip import clip_grad_norm_, clip_grad_value_
from fastgd.comparison import compare
from fastgd.driver import minimize, scipy_method
from fastgd.gradcheck import GradCheckResult, check_grad
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
