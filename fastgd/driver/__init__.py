"""The driver layer: :func:`minimize`, a gradient-descent loop around one optimizer
object, and :func:`scipy_method`, which plugs that loop into ``scipy.optimize.minimize``.

The loop owns everything around the update rule: learning-rate schedules,
gradient clipping, L1 regularization, mini-batches, stopping tests, early
stopping, divergence diagnosis, callbacks and a progress bar. The update itself
is one call of the optimizer's fused kernel, and the per-step bookkeeping is
one more fused pass over the gradient
(:func:`fastgd.driver._measures._gradient_measures`), so a step allocates
nothing beyond what ``fun``/``jac`` return.

The same loop runs on a dask ``x0``: the optimizer is then a
:mod:`fastgd.dask` one, with the parameters and state on the workers
(:mod:`fastgd.driver._arrays` holds what differs; ``import fastgd`` does not
import dask).

>>> from fastgd.driver import minimize
>>> from fastgd.problems import Rosenbrock
>>> p = Rosenbrock(2)
>>> res = minimize(p.fun_and_grad, p.x0, jac=True, method="nesterov",
...                options=dict(lr=1e-3, momentum=0.9, maxiter=20_000))
>>> res.success, bool(res.fun < 1e-9)
(True, True)
"""

from __future__ import annotations

from fastgd.driver._common import DEFAULT_OPTIONS, METHODS, Status
from fastgd.driver._minimize import minimize
from fastgd.driver._scipy import scipy_method

__all__ = [
    "METHODS",
    "DEFAULT_OPTIONS",
    "FULL_EVALUATION_LIMIT",
    "Status",
    "minimize",
    "scipy_method",
]

# The loop (fastgd.driver._loop) reads these two from this module at call time,
# so setting fastgd.driver.FULL_EVALUATION_LIMIT (or VANISHING_RATIO) takes effect.

#: A gradient whose measure fell below this fraction of its first value counts
#: as vanished (see ``f_target`` in :func:`minimize`).
VANISHING_RATIO = 1e-12

#: In mini-batch mode the result's ``fun``/``jac`` come from one evaluation on
#: all samples (``idx = arange(n_samples)``) only up to this many samples
#: (2**27: 1 GiB of int64 indices, before whatever ``fun`` allocates for them);
#: above it the result reports the mean batch loss of the last epoch and
#: ``jac=None`` (see ``batch_size`` in :func:`minimize`).
FULL_EVALUATION_LIMIT = 2**27
