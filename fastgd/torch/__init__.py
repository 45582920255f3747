"""fastgd's update rules as drop-in ``torch.optim.Optimizer`` classes.

>>> opt = fastgd.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)  # doctest: +SKIP

Each parameter group's tensors of one dtype and device live in one flat buffer: at
construction the parameters are copied into it and every ``p.data`` becomes a
view of it, so the model's tensors *are* the buffer. Gradients get a matching
flat buffer; autograd accumulates into an existing ``.grad`` in place, and a
gradient torch allocated itself (after ``zero_grad()``, which sets grads to
None as in torch) is copied into the buffer at the next step and ``p.grad``
re-pointed to its view. A step is then one call of fastgd's generated loop
per buffer (per run of tensors with equal step counts), on NumPy views of the
tensors' memory (CPU) or numba device arrays over it (CUDA, launched on
torch's current stream): the validation, hyperparameters, formulas and
kernels are those of :data:`fastgd.OPTIMIZERS`, this module only translates.
Complex tensors are stored as their ``view_as_real``, as torch.optim updates
them.

bfloat16 and float16 tensors (bfloat16 on the CPU only) are stepped by
fastgd's 16-bit loops, zero-copy: each value is loaded exactly into float32,
the rule's arithmetic runs in float32, and each new parameter and state value
is stored once, rounded to nearest even, with the state in the parameters'
dtype as torch keeps it (torch's ``fused=True`` CPU Adam/AdamW compute the same
way; its default implementation rounds every intermediate, learning rate
included, to 16 bits). ``kahan=True`` or ``stochastic_rounding=True`` (per
param group, 16-bit tensors only) keep updates far below half an ulp.

Refused (``TypeError``): dtypes other than float32, float64, bfloat16,
float16, complex64 and complex128; bfloat16 tensors on CUDA (not yet: their
state would come back through the untyped ``"<V2"`` typestr; use float16
there); sparse
gradients; devices other than the CPU and CUDA; ``state_dtype`` (torch's
``load_state_dict`` casts every state tensor to its parameter's dtype, so a
state in another dtype would not survive a checkpoint: use
:class:`fastgd.Adam` and friends for it).

``import fastgd`` does not import torch; ``import fastgd.torch`` does.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from fastgd import _precision
from fastgd import optimizers as _optimizers
from fastgd.optimizers import OPTIMIZERS
from fastgd.torch._buffer import STORAGE
from fastgd.torch._optimizer import _TORCH_KEYWORDS, FlatOptimizer

__all__ = [*_optimizers.__all__, "FlatOptimizer"]  # the same class names as fastgd's

FlatOptimizer.__module__ = __name__


_DOC = """{summary}

A ``torch.optim.Optimizer`` whose step is fastgd's fused {name} kernel, one
call per flat buffer: the hyperparameters, their defaults, validation and the
update formula are those of :class:`fastgd.{name}`.

.. code-block:: python

    opt = fastgd.torch.{name}(model.parameters(), lr={lr})  # was {torch_name}

Parameters
----------
params : iterable
    Tensors, ``(name, tensor)`` pairs or param-group dicts (per-group
    hyperparameters and storage options), as torch.optim. Dense float32,
    float64, complex64 or complex128 tensors on the CPU or a CUDA device,
    float16 tensors on either, bfloat16 tensors on the CPU; each group's
    tensors of one dtype and device are copied into one contiguous buffer and
    ``p.data`` becomes a (contiguous) view of it. 16-bit tensors are computed
    in float32 and stored rounded to nearest even; their state has their dtype.
{params}
kahan : bool, default False
    bfloat16/float16 tensors only (``ValueError`` for a group with others:
    give them a group of their own): keep a Kahan compensation buffer,
    ``state[p]["kahan_comp"]`` (the parameter's dtype, in :meth:`state_dict`),
    so that updates far below half an ulp accumulate. As :class:`fastgd.{name}`.
stochastic_rounding : bool, default False
    bfloat16/float16 tensors only: store the new parameters rounded up or down
    at random (unbiased). The random bits are a hash of (seed, step, element
    offset in the buffer). With either option SGD keeps ``state[p]["step"]``,
    which torch.optim.SGD lacks (the rounding's counter).
seed : int, optional
    The stochastic rounding's seed, in ``[0, 2**63)``; default a random one
    per param group, drawn when the group is added. Kept in the param group
    (so in :meth:`state_dict`, and restored by :meth:`load_state_dict`).
    Buffer ``k`` of the optimizer (in group order, then dtype and device)
    rounds with ``seed + k``, so no two tensors share random bits.
foreach, fused : bool or None
    Accepted for a drop-in swap and ignored: the update is always one fused loop.
capturable, differentiable : bool, default False
    Only False is supported.

Notes
-----
Deliberate differences from torch.optim:

* ``p.data`` becomes a view of the optimizer's buffer at construction (memory
  format contiguous, channels-last included). Re-assigning ``p.data`` or
  moving/casting the model afterwards makes :meth:`step` raise
  ``RuntimeError``: re-create the optimizer.
* :meth:`state_dict` returns copies of the state tensors, not references.
* ``pickle`` and ``copy.deepcopy`` work as torch's (the copy's tensors get
  their own buffer); ``torch.save`` stores the buffer once where ``pickle``
  stores each parameter's view of it.
* With float64 parameters and a float32 default dtype, torch keeps NAdam's
  ``mu_product`` in float32 and steps with the rounded value; fastgd keeps
  the same float32 tensor but steps with the float64 product (the runs differ
  at ~1e-9 relative).
* Hyperparameters in ``param_groups`` must be Python numbers (no tensors);
  they are validated with fastgd's errors at the next :meth:`step`.
* A tensor may appear once per group (torch only warns).
* bfloat16 parameters on CUDA, sparse gradients and devices other than the
  CPU and CUDA raise ``TypeError``. ``state_dtype`` is not offered: torch's
  ``load_state_dict`` casts the state to the parameters' dtype.
* ``kahan``, ``stochastic_rounding`` and ``seed`` are fixed at construction
  (changing them in ``param_groups`` makes :meth:`step` raise ``ValueError``);
  :meth:`load_state_dict` takes a checkpoint with the same ``kahan`` and
  ``stochastic_rounding`` (or none, as torch.optim's) and restores its seed.
* NAdam's ``mu_product`` is loaded as saved, where torch casts it to a
  16-bit parameter's dtype.
"""


def _make_class(key: str, numpy_class: type) -> type:
    """The ``fastgd.torch`` class of ``fastgd.OPTIMIZERS[key]``."""
    numpy_sig = inspect.signature(numpy_class.__init__)
    # state_dtype is not offered: torch's load_state_dict casts every state
    # tensor to its parameter's dtype, so a state in another dtype would not
    # survive a checkpoint
    skip = ("self", *(o for o in _precision.STORAGE_OPTIONS if o not in STORAGE))
    parameters = [p for name, p in numpy_sig.parameters.items() if name not in skip]
    parameters += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None if v is None else v)
        for k, v in _TORCH_KEYWORDS.items()
    ]
    signature = inspect.Signature(parameters)
    not_hyper = (*skip, *STORAGE, "params", "backend")
    init_names = tuple(n for n in numpy_sig.parameters if n not in not_hyper)
    # every default from the NumPy class itself (AdamW's decoupled_weight_decay
    # is not a constructor argument there)
    all_defaults = {
        **numpy_class(np.zeros(1)).hyperparameters,
        "backend": numpy_sig.parameters["backend"].default,
        **{k: numpy_sig.parameters[k].default for k in STORAGE},
        **_TORCH_KEYWORDS,
    }
    name = numpy_class.__name__

    def __init__(self, params, *args, **kwargs):
        FlatOptimizer.__init__(self, params, *args, **kwargs)

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *parameters]
    )
    torch_name = getattr(torch.optim, name, None)
    lines = []
    for pname, p in numpy_sig.parameters.items():
        if pname not in (*skip, *STORAGE, "params"):
            lines.append(f"{pname} : default {p.default!r}")
    doc = _DOC.format(
        summary=numpy_class.__doc__.strip().splitlines()[0],
        name=name,
        lr=all_defaults["lr"],
        torch_name=f"torch.optim.{name}" if torch_name else f"fastgd.{name} (torch has none)",
        params="\n".join(lines) + f"\n    As :class:`fastgd.{name}`.",
    )
    cls = type(
        name,
        (FlatOptimizer,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
            "_numpy_class": numpy_class,
            "_signature": signature,
            "_names_in_init": init_names,
            "_all_defaults": all_defaults,
        },
    )
    __init__.__qualname__ = f"{name}.__init__"
    return cls


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
