"""One flat buffer of a ``fastgd.torch`` optimizer: the tensors of one
(param group, dtype, device), their gradients and state, and the NumPy-API
optimizer that steps them."""

from __future__ import annotations

import operator

import numpy as np
import torch

from fastgd import _precision
from fastgd.torch import _device

#: Rules whose torch state has no ``step`` (torch.optim.SGD keeps none).
_NO_STEP = frozenset({"sgd"})
#: Host scalars torch keeps per parameter as 0-d tensors in the state.
_HOST_IN_STATE = ("mu_product",)
#: The storage options a ``fastgd.torch`` class takes (kept in each param group,
#: fixed at construction); ``state_dtype`` is not offered: torch's
#: ``load_state_dict`` casts every state tensor to its parameter's dtype.
STORAGE = ("kahan", "stochastic_rounding", "seed")
#: Stochastic rounding's seeds are in ``[0, 2**63)``.
SEED_MODULUS = 2**63


def _scalar_dtype() -> torch.dtype:
    # torch.optim keeps ``step`` and ``mu_product`` in this dtype on CPU
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class _Buffer:
    """The tensors of one (param group, dtype, device): flat parameter, gradient
    and state buffers, and the NumPy-API optimizer that steps them.

    The buffers are real (float32/float64/bfloat16/float16); a complex tensor
    is stored as its ``view_as_real`` (two reals per element, as torch.optim
    updates it), and its ``.data``, ``.grad`` and state are complex views of
    the buffers. ``device``: the buffers are CUDA memory (or, under the
    simulator, host memory stepped by the CUDA backend). ``seed_offset``:
    with stochastic rounding the NumPy optimizer's seed is the group's
    ``seed`` plus this (modulo 2**63), so that no two buffers of one
    optimizer draw the same random bits.
    """

    def __init__(
        self, indexed_params, numpy_class, group, names_in_init, device: bool, seed_offset: int
    ):
        self.indices = [i for i, _ in indexed_params]  # positions in the group
        params = self.params = [p for _, p in indexed_params]
        self.shapes = [p.shape for p in params]
        self.complex = params[0].is_complex()  # one buffer never mixes real and complex
        width = 2 if self.complex else 1
        bounds = [0]
        for p in params:
            bounds.append(bounds[-1] + width * p.numel())
        self.bounds = bounds
        dtype = params[0].real.dtype
        where = params[0].device
        self.flat = torch.empty(bounds[-1], dtype=dtype, device=where)
        self.flat_grad = torch.zeros(bounds[-1], dtype=dtype, device=where)
        self.np_grad = _device.kernel_array(self.flat_grad, device)
        self.device = device
        # fastgd's own constructor and descriptors validate the hyperparameters
        kwargs = {k: group[k] for k in names_in_init}
        flat = _device.kernel_array(self.flat, device)
        self.seed_offset = seed_offset
        opt = numpy_class(
            flat,
            backend=group["backend"],
            kahan=group["kahan"],
            stochastic_rounding=group["stochastic_rounding"],
            seed=self.core_seed(group["seed"]),
            **kwargs,
        )
        for name in numpy_class.hyperparameter_names():
            if name not in names_in_init:
                setattr(opt, name, group[name])
        opt._make_plan()
        self.opt = opt
        self.rule = opt.rule
        self.kahan = opt.kahan
        names = (*numpy_class.hyperparameter_names(), "backend", *STORAGE)
        self.seen = {name: group[name] for name in names}
        # group -> the values of ``seen``'s names as a tuple, in one C call
        # (always several names: maximize, l1, l1_mode, backend, ...)
        self.get_hyperparameters = operator.itemgetter(*names)
        self.grads = [self.view(self.flat_grad, i) for i in range(len(params))]
        n = len(params)
        scalar = _scalar_dtype()
        self.steps = torch.zeros(n, dtype=scalar)
        self.steps_np = self.steps.numpy()
        # SGD keeps a step count only with stochastic rounding (the random
        # bits are drawn per step) or Kahan: torch.optim.SGD keeps none
        self.has_step = self.rule.name not in _NO_STEP or opt.kahan or opt.stochastic_rounding
        self.host = {}  # host scalar name -> (torch tensor or None, NumPy array) per tensor
        for name in self.rule.host:
            if name in _HOST_IN_STATE:
                t = torch.ones(n, dtype=scalar)
                self.host[name] = (t, t.numpy())
            else:  # a flag (SGD's momentum_started): torch shows it by the state's presence
                self.host[name] = (None, np.zeros(n, dtype=bool))
        self.uniform_arrays = (self.steps_np, *(a for _, a in self.host.values()))
        self.views = {}
        self.active = ()
        self.stored = ()  # the names with per-tensor views: the active state, kahan_comp
        self.refresh_views()

    def core_seed(self, seed):
        """The NumPy optimizer's seed for the group's ``seed``."""
        if seed is None or isinstance(seed, bool) or not isinstance(seed, int):
            return seed  # None, or something the NumPy class refuses with its message
        return (seed + self.seed_offset) % SEED_MODULUS if 0 <= seed < SEED_MODULUS else seed

    def view(self, flat: torch.Tensor, i: int) -> torch.Tensor:
        """Tensor ``i``'s part of the flat buffer ``flat``, in its shape (complex
        tensors: a complex view)."""
        part = flat[self.bounds[i] : self.bounds[i + 1]]
        if self.complex:
            return torch.view_as_complex(part.view(*self.shapes[i], 2))
        return part.view(self.shapes[i])

    def refresh_views(self) -> bool:
        """Per-tensor views of the state arrays the current plan uses; True if
        the set changed (a hyperparameter switched a state on)."""
        active = self.opt._current_plan().active
        if active == self.active:
            return False
        stored = (*active, _precision.KAHAN) if self.kahan else active
        for name in stored:
            if name not in self.views:
                flat = _device.tensor_of(self.opt._flat_state[name], self.flat)
                self.views[name] = [self.view(flat, i) for i in range(len(self.params))]
        self.active = active
        self.stored = stored
        return True

    def adopt(self, with_grads: bool) -> None:
        """Copy the parameters (and gradients) in; point ``.data`` (``.grad``) at views."""
        for i, p in enumerate(self.params):
            view = self.view(self.flat, i)
            view.copy_(p.detach())
            p.data = view
            if with_grads and p.grad is not None:
                self.grads[i].copy_(p.grad)
                p.grad = self.grads[i]
        self.ptrs = [p.data_ptr() for p in self.params]

    def state_of(self, i: int) -> dict:
        """Tensor ``i``'s torch state: views into the flat buffers."""
        state = {}
        if self.has_step:
            state["step"] = self.steps[i]
        for name, (tensor, _) in self.host.items():
            if tensor is not None:
                state[name] = tensor[i]
        names = self.stored
        if self.rule.name in _NO_STEP and not self.host["momentum_started"][1][i]:
            # torch keeps no momentum buffer before momentum starts
            names = (_precision.KAHAN,) if self.kahan else ()
        for name in names:
            state[name] = self.views[name][i]
        return state


def _uniform(buf: _Buffer) -> bool:
    """Whether every tensor of ``buf`` has the same step count and host scalars
    (checked on the arrays, since ``state[p]["step"]`` may be edited in place).

    Compared as bytes (an array is uniform iff its bytes equal themselves
    shifted by one element): 0.1 us where ``(arr == arr[0]).all()`` takes 1-2.
    Bitwise equality implies ``==`` except for NaN (those tensors then share
    one kernel call instead of one each: the same element-wise result), and
    misses only 0.0 == -0.0 (then the per-run path, which groups them anyway)."""
    for arr in buf.uniform_arrays:
        b = arr.tobytes()
        if b[arr.itemsize :] != b[: -arr.itemsize]:
            return False
    return True
