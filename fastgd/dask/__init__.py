"""fastgd's update rules on Dask: parameter vectors larger than one machine.

>>> import dask.array as da, fastgd.dask                     # doctest: +SKIP
>>> opt = fastgd.dask.Adam(x, lr=1e-3)                        # doctest: +SKIP
>>> opt.step(grad_fn(opt.params))                             # doctest: +SKIP

Each chunk of the parameters becomes a fastgd NumPy-API optimizer over its own
copy of the chunk, with its state beside it, on the worker that held the
chunk; a step is one task per chunk running the same generated kernel as one
process would, so the results are bit-identical to ``fastgd.Adam`` on the
whole array. Dask's scheduler, workers and futures do the distribution.

``import fastgd`` does not import dask; ``import fastgd.dask`` does.
"""

from __future__ import annotations

import inspect

import numpy as np

from fastgd import _precision
from fastgd.dask._checkpoint import from_zarr
from fastgd.dask._chunk import LostStateError
from fastgd.dask._optimizer import DaskOptimizer
from fastgd.optimizers import OPTIMIZERS

__all__ = [
    "SGD", "Momentum", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax",
    "NAdam", "RAdam", "Lion", "DaskOptimizer", "LostStateError", "OPTIMIZERS", "from_zarr",
]  # fmt: skip

DaskOptimizer.__module__ = __name__
LostStateError.__module__ = __name__

_DOC = """{summary}

:class:`fastgd.{name}` on a Dask array: the parameters and state live on the
workers, chunk by chunk, and a step is one task per chunk running fastgd's
fused {name} kernel where the chunk lives. Hyperparameters, defaults,
validation and formula are those of :class:`fastgd.{name}`.

Parameters
----------
params : dask.array.Array
    The initial parameters, float32 or float64, any shape and chunking (known
    chunk sizes). They are copied into the chunks' own memory.
client : distributed.Client, optional
    Where the chunks live. Default: the current client, else a new
    ``distributed.LocalCluster`` (one worker process per core).
backend : {{"serial", "parallel", "auto"}}, default "serial"
    The loop each chunk's task runs. ``"serial"`` suits workers that run one
    task per thread (Dask's default); ``"parallel"`` suits one task per worker.
{params}
"""


#: Constructor arguments of the NumPy classes that the dask classes do not take
#: (the storage options: chunks keep their state in the parameters' dtype for now).
_NOT_OFFERED = ("self", "params", "backend", *_precision.STORAGE_OPTIONS)


def _make_class(key: str, numpy_class: type) -> type:
    sig = inspect.signature(numpy_class.__init__)
    lines = [
        f"{name} : default {p.default!r}"
        for name, p in sig.parameters.items()
        if name not in _NOT_OFFERED
    ]
    name = numpy_class.__name__
    doc = _DOC.format(
        summary=numpy_class.__doc__.strip().splitlines()[0],
        name=name,
        params="\n".join(lines) + f"\n    As :class:`fastgd.{name}`.",
    )
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default="serial"),
        *(
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for n, p in sig.parameters.items()
            if n not in _NOT_OFFERED
        ),
    ]
    defaults = numpy_class(np.zeros(1)).hyperparameters

    def __init__(self, params, *, client=None, backend="serial", **hyperparameters):
        unknown = set(hyperparameters) - set(defaults)
        if unknown:
            raise TypeError(f"{name} got unexpected arguments {sorted(unknown)}")
        DaskOptimizer.__init__(self, params, client=client, backend=backend, **hyperparameters)

    __init__.__signature__ = inspect.Signature(params)
    __init__.__qualname__ = f"{name}.__init__"
    return type(
        name,
        (DaskOptimizer,),
        {"__init__": __init__, "__doc__": doc, "__module__": __name__, "__qualname__": name,
         "_numpy_class": numpy_class},
    )  # fmt: skip


_CLASSES = {key: _make_class(key, cls) for key, cls in OPTIMIZERS.items()}
SGD = _CLASSES["sgd"]
Momentum = _CLASSES["momentum"]
Adagrad = _CLASSES["adagrad"]
RMSprop = _CLASSES["rmsprop"]
Adadelta = _CLASSES["adadelta"]
Adam = _CLASSES["adam"]
AdamW = _CLASSES["adamw"]
Adamax = _CLASSES["adamax"]
NAdam = _CLASSES["nadam"]
RAdam = _CLASSES["radam"]
Lion = _CLASSES["lion"]

#: The classes by rule name, as :data:`fastgd.OPTIMIZERS`.
OPTIMIZERS = dict(_CLASSES)

from fastgd.dask._reductions import clip_grad_norm_, clip_grad_value_, gradient_measures  # noqa: E402

__all__ += ["clip_grad_norm_", "clip_grad_value_", "gradient_measures"]
