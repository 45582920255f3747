"""fastgd's update rules as drop-in ``torch.optim.Optimizer`` classes.

>>> opt = fastgd.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)  # doctest: +SKIP

Each parameter group's tensors of one dtype live in one flat buffer: at
construction the parameters are copied into it and every ``p.data`` becomes a
view of it, so the model's tensors *are* the buffer. Gradients get a matching
flat buffer; autograd accumulates into an existing ``.grad`` in place, and a
gradient torch allocated itself (after ``zero_grad()``, which sets grads to
None as in torch) is copied into the buffer at the next step and ``p.grad``
re-pointed to its view. A step is then one call of fastgd's generated loop
per buffer (per run of tensors with equal step counts), on NumPy views of the
tensors' memory: the validation, hyperparameters, formulas and kernels are
those of :data:`fastgd.OPTIMIZERS`, this module only translates.

``import fastgd`` does not import torch; ``import fastgd.torch`` does.
"""

from __future__ import annotations

import inspect
from collections import defaultdict

import numpy as np
import torch

from fastgd import optimizers as _optimizers
from fastgd.optimizers import OPTIMIZERS

__all__ = [*_optimizers.__all__, "FlatOptimizer"]  # the same class names as fastgd's

#: torch.optim keywords accepted for a drop-in swap, with the only values allowed
#: (``None`` = any): fastgd's loop is always one fused pass, so ``foreach`` and
#: ``fused`` change nothing; ``capturable`` and ``differentiable`` are not built.
_TORCH_KEYWORDS = {"foreach": None, "fused": None, "capturable": False, "differentiable": False}
_DTYPES = (torch.float32, torch.float64)
#: Rules whose torch state has no ``step`` (torch.optim.SGD keeps none).
_NO_STEP = frozenset({"sgd"})
#: Rules whose torch class creates every parameter's state in ``__init__``.
_EAGER_STATE = frozenset({"adagrad"})
#: Host scalars torch keeps per parameter as 0-d tensors in the state.
_HOST_IN_STATE = ("mu_product",)


def _scalar_dtype() -> torch.dtype:
    # torch.optim keeps ``step`` and ``mu_product`` in this dtype on CPU
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class _Buffer:
    """The tensors of one (param group, dtype): flat parameter, gradient and
    state buffers, and the NumPy optimizer that steps them."""

    def __init__(self, indexed_params, numpy_class, group, names_in_init):
        self.indices = [i for i, _ in indexed_params]  # positions in the group
        params = self.params = [p for _, p in indexed_params]
        self.shapes = [p.shape for p in params]
        bounds = [0]
        for p in params:
            bounds.append(bounds[-1] + p.numel())
        self.bounds = bounds
        dtype = params[0].dtype
        self.flat = torch.empty(bounds[-1], dtype=dtype)
        self.flat_grad = torch.zeros(bounds[-1], dtype=dtype)
        self.np_grad = self.flat_grad.numpy()
        # fastgd's own constructor and descriptors validate the hyperparameters
        kwargs = {k: group[k] for k in names_in_init}
        opt = numpy_class(self.flat.numpy(), backend=group["backend"], **kwargs)
        for name in numpy_class.hyperparameter_names():
            if name not in names_in_init:
                setattr(opt, name, group[name])
        opt._make_plan()
        self.opt = opt
        self.rule = opt.rule
        self.seen = {name: group[name] for name in (*numpy_class.hyperparameter_names(), "backend")}
        self.grads = [self.view(self.flat_grad, i) for i in range(len(params))]
        n = len(params)
        scalar = _scalar_dtype()
        self.steps = torch.zeros(n, dtype=scalar)
        self.steps_np = self.steps.numpy()
        self.has_step = self.rule.name not in _NO_STEP
        self.host = {}  # host scalar name -> (torch tensor or None, NumPy array) per tensor
        for name in self.rule.host:
            if name in _HOST_IN_STATE:
                t = torch.ones(n, dtype=scalar)
                self.host[name] = (t, t.numpy())
            else:  # a flag (SGD's momentum_started): torch shows it by the state's presence
                self.host[name] = (None, np.zeros(n, dtype=bool))
        self.views = {}
        self.active = ()
        self.refresh_views()

    def view(self, flat: torch.Tensor, i: int) -> torch.Tensor:
        return flat[self.bounds[i] : self.bounds[i + 1]].view(self.shapes[i])

    def refresh_views(self) -> bool:
        """Per-tensor views of the state arrays the current plan uses; True if
        the set changed (a hyperparameter switched a state on)."""
        active = self.opt._plan.active
        if active == self.active:
            return False
        for name in active:
            if name not in self.views:
                flat = torch.from_numpy(self.opt._flat_state[name])
                self.views[name] = [self.view(flat, i) for i in range(len(self.params))]
        self.active = active
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
        if self.rule.name in _NO_STEP and not self.host["momentum_started"][1][i]:
            return {}
        for name in self.active:
            state[name] = self.views[name][i]
        return state


class FlatOptimizer(torch.optim.Optimizer):
    """Base class of the ``fastgd.torch`` optimizers (see :class:`AdamW`).

    Subclasses are made by :func:`_make_class` from a :data:`fastgd.OPTIMIZERS`
    class: hyperparameter names, defaults and validation all come from it.
    """

    _numpy_class: type
    _signature: inspect.Signature
    _names_in_init: tuple[str, ...]

    def __init__(self, params, *args, **kwargs):
        bound = self._signature.bind(params, *args, **kwargs)
        bound.apply_defaults()
        defaults = {**self._all_defaults, **bound.arguments}
        del defaults["params"]
        self._buffers: list[list[_Buffer]] = []
        self._group_params: list[list] = []
        super().__init__(params, defaults)

    # -- groups and buffers ---------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (torch semantics) and move its tensors into flat buffers.

        Raises
        ------
        TypeError
            A tensor that is not a dense float32/float64 CPU tensor, or a
            sparse gradient.
        ValueError
            Bad hyperparameters (fastgd's checks), a tensor twice in the group.
        """
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            buffers = self._build(group, len(self.param_groups) - 1)
        except BaseException:
            self.param_groups.pop()
            raise
        with torch.no_grad():
            for buf in buffers:
                buf.adopt(with_grads=True)
                if buf.rule.name in _EAGER_STATE:
                    for i, p in enumerate(buf.params):
                        self.state[p] = buf.state_of(i)
        self._buffers.append(buffers)
        self._group_params.append(group["params"])

    def _check_keywords(self, group: dict) -> None:
        for key, allowed in _TORCH_KEYWORDS.items():
            if allowed is not None and group.get(key, allowed) != allowed:
                raise ValueError(
                    f"{type(self).__name__}: {key}={group[key]!r} is not supported by "
                    f"fastgd.torch (only {key}={allowed!r}); use torch.optim for it"
                )

    def _build(self, group: dict, index: int) -> list[_Buffer]:
        self._check_keywords(group)
        params = group["params"]
        if len({id(p) for p in params}) != len(params):
            raise ValueError(
                f"param group {index} holds a tensor more than once; each tensor can live "
                "in one place of fastgd's flat buffer"
            )
        by_dtype: dict[torch.dtype, list] = {}
        for i, p in enumerate(params):
            where = f"parameter {i} of param group {index}"
            if p.device.type != "cpu":
                raise TypeError(
                    f"{where} is on {p.device}: CUDA support for the fastgd.torch adapter is "
                    "not built yet. Use torch.optim, or fastgd's NumPy-API classes, which "
                    "take CUDA tensors (fastgd.Adam(flat_cuda_tensor))"
                )
            if p.layout != torch.strided:
                raise TypeError(f"{where} has layout {p.layout}; only dense tensors are supported")
            if p.dtype not in _DTYPES:
                if p.is_complex():
                    hint = "optimize torch.view_as_real(p) as a float parameter, or use torch.optim"
                elif p.dtype in (torch.float16, torch.bfloat16):
                    hint = (
                        "keep float32 master parameters (model.float()) or use torch.optim "
                        "for low-precision parameters"
                    )
                else:
                    hint = "use float32 or float64 parameters"
                raise TypeError(
                    f"{where} has dtype {p.dtype}; fastgd.torch supports float32 and "
                    f"float64 parameters: {hint}"
                )
            if p.grad is not None and p.grad.layout != torch.strided:
                raise TypeError(_sparse_message(where))
            by_dtype.setdefault(p.dtype, []).append((i, p))
        return [
            _Buffer(ips, self._numpy_class, group, self._names_in_init) for ips in by_dtype.values()
        ]

    def _check_structure(self) -> None:
        groups = self.param_groups
        if len(groups) != len(self._buffers):
            raise RuntimeError(
                "param_groups was changed outside add_param_group; fastgd.torch keeps "
                "each group in flat buffers: re-create the optimizer"
            )
        for index, (group, plist) in enumerate(zip(groups, self._group_params, strict=True)):
            params = group["params"]
            if params is not plist and (
                len(params) != len(plist)
                or any(a is not b for a, b in zip(params, plist, strict=True))
            ):
                raise RuntimeError(
                    f"the tensors of param group {index} were changed in place; "
                    "use add_param_group, or re-create the optimizer"
                )

    def _check_buffer(self, buf: _Buffer, group: dict, index: int) -> list[bool]:
        """Check that the tensors still live in ``buf``, bring the hyperparameters
        over from ``group`` (fastgd validates them), gather the gradients into
        the flat gradient buffer. Returns which tensors have a gradient."""
        for i, (p, ptr) in enumerate(zip(buf.params, buf.ptrs, strict=True)):
            if p.data_ptr() != ptr:
                raise RuntimeError(
                    f"parameter {buf.indices[i]} of param group {index} no longer lives in "
                    "fastgd's flat buffer (its .data was re-assigned, or the model was "
                    "moved or cast with .to()/.double()/.cuda()); nothing was updated. "
                    "Re-create the optimizer after moving the model."
                )
        opt = buf.opt
        seen = buf.seen
        for name, old in seen.items():
            value = group[name]
            if value is not old and value != old:
                setattr(opt, name, value)
                seen[name] = value
        if opt._plan is None:
            opt._make_plan()
            if buf.refresh_views():
                for i, p in enumerate(buf.params):
                    if self.state.get(p):
                        self.state[p] = buf.state_of(i)
        have = []
        for i, (p, gview) in enumerate(zip(buf.params, buf.grads, strict=True)):
            g = p.grad
            if g is None:
                have.append(False)
                continue
            if g is not gview:
                if g.layout != torch.strided:
                    where = f"parameter {buf.indices[i]} of param group {index}"
                    raise TypeError(_sparse_message(where))
                gview.copy_(g)
                p.grad = gview
            have.append(True)
        return have

    # -- the step ---------------------------------------------------------------

    def step(self, closure=None):
        """One update of every tensor that has a gradient (torch semantics).

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; run under
            ``torch.enable_grad()`` before the update.

        Returns
        -------
        The closure's loss, or None.

        Raises
        ------
        RuntimeError
            A parameter no longer lives in the optimizer's buffer (re-assigned
            ``.data``, ``model.to(...)``), or the param groups were changed
            outside :meth:`add_param_group`. Nothing is updated.
        ValueError, TypeError
            Bad hyperparameters in ``param_groups`` (fastgd's checks), a sparse
            gradient. Nothing is updated.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._check_structure()
            pairs = enumerate(zip(self.param_groups, self._buffers, strict=True))
            todo = [
                (buf, self._check_buffer(buf, group, index))
                for index, (group, buffers) in pairs
                for buf in buffers
            ]
            for buf, have in todo:
                self._step_buffer(buf, have)
        return loss

    def _step_buffer(self, buf: _Buffer, have: list[bool]) -> None:
        n = len(have)
        if all(have) and _uniform(buf):  # the common case: one kernel call
            self._step_run(buf, 0, n)
            return
        steps = buf.steps_np.tolist()
        hosts = [arr.tolist() for _, arr in buf.host.values()]
        i = 0
        while i < n:
            if not have[i]:
                i += 1
                continue
            key = (steps[i], *(values[i] for values in hosts))
            j = i + 1
            while j < n and have[j] and (steps[j], *(v[j] for v in hosts)) == key:
                j += 1
            self._step_run(buf, i, j)
            i = j

    def _step_run(self, buf: _Buffer, i: int, j: int) -> None:
        """One kernel call for tensors ``[i, j)`` of ``buf``, which share their
        step count and host scalars."""
        t = int(buf.steps_np[i]) + 1
        host = {name: arr[i].item() for name, (_, arr) in buf.host.items()}
        started = host.get("momentum_started", True)
        buf.opt._step_range(buf.np_grad, buf.bounds[i], buf.bounds[j], t, host)
        if buf.has_step:
            buf.steps_np[i:j] = t
        for name, (_, arr) in buf.host.items():
            arr[i:j] = host[name]
        if (buf.has_step and t == 1) or not started and host["momentum_started"]:
            # first step of these tensors (SGD: first with momentum): torch
            # creates their state now
            for k in range(i, j):
                self.state[buf.params[k]] = buf.state_of(k)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients, as torch.

        ``set_to_none=True`` (torch's default) sets every ``.grad`` to None;
        the gradients autograd then allocates are copied into the flat
        gradient buffer at the next step. ``set_to_none=False`` zeroes the
        flat gradient buffer (one call per buffer); gradients that are None
        stay None.
        """
        if set_to_none:
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad = None
            return
        with torch.no_grad():
            for buffers in self._buffers:
                for buf in buffers:
                    buf.flat_grad.zero_()
                    for p, gview in zip(buf.params, buf.grads, strict=True):
                        g = p.grad
                        if g is not None and g is not gview:
                            p.grad = gview

    # -- state ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """torch's format: ``state`` (per-tensor index: torch's names and a
        ``step`` tensor) and ``param_groups``. Unlike torch, the state tensors
        are copies, not references to the live buffers."""
        sd = super().state_dict()
        sd["state"] = {
            k: {name: v.clone() if torch.is_tensor(v) else v for name, v in s.items()}
            for k, s in sd["state"].items()
        }
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict of this class or of the matching ``torch.optim``
        class; the state is copied into the flat buffers.

        Hyperparameters fastgd has and torch lacks (``l1``, ``backend``, ...)
        keep this optimizer's defaults when the state dict has none. Everything
        is validated before the buffers change: on error the optimizer is as
        before.
        """
        old_state, old_groups = self.state, self.param_groups
        super().load_state_dict(state_dict)
        try:
            self._load_into_buffers()
        except BaseException:
            self.state, self.param_groups = old_state, old_groups
            raise

    def _load_into_buffers(self) -> None:
        loaded = self.state
        self._check_structure()
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        # validate: hyperparameters (tried on each NumPy optimizer, then put back)
        # and every state entry
        trials = []
        try:
            pairs = enumerate(zip(self.param_groups, self._buffers, strict=True))
            for index, (group, buffers) in pairs:
                self._check_keywords(group)
                for buf in buffers:
                    trials.append((buf, dict(buf.opt.__dict__)))
                    for name in buf.seen:
                        setattr(buf.opt, name, group[name])
                    buf.opt._make_plan()
                    for i, p in enumerate(buf.params):
                        _check_loaded_state(loaded.get(p, {}), buf, i, index)
        except BaseException:
            for buf, saved in trials:
                buf.opt.__dict__.update(saved)
            raise
        # commit
        state = defaultdict(dict)
        with torch.no_grad():
            for group, buffers in zip(self.param_groups, self._buffers, strict=True):
                for buf in buffers:
                    buf.seen = {name: group[name] for name in buf.seen}
                    buf.refresh_views()
                    for i, p in enumerate(buf.params):
                        entry = loaded.get(p, {})
                        _copy_in(entry, buf, i)
                        if entry or buf.rule.name in _EAGER_STATE:
                            state[p] = buf.state_of(i)
        self.state = state

    # -- copies -------------------------------------------------------------------

    def __getstate__(self):
        raise TypeError(
            f"fastgd.torch.{type(self).__name__} cannot be pickled or deep-copied: its "
            "flat buffers are the model's parameters. Save opt.state_dict() (torch.save "
            "works) and load it into an optimizer made for the copied model."
        )


def _uniform(buf: _Buffer) -> bool:
    """Whether every tensor of ``buf`` has the same step count and host scalars
    (checked on the arrays, since ``state[p]["step"]`` may be edited in place)."""
    return all((arr == arr[0]).all() for arr in (buf.steps_np, *(a for _, a in buf.host.values())))


def _sparse_message(where: str) -> str:
    return (
        f"{where} has a sparse gradient; fastgd.torch needs dense gradients: use "
        "torch.optim.SparseAdam, or a dense gradient (e.g. nn.Embedding(sparse=False))"
    )


def _check_loaded_state(entry: dict, buf: _Buffer, i: int, index: int) -> None:
    where = f"state of parameter {buf.indices[i]} (param group {index})"
    known = {*buf.rule.states, *_HOST_IN_STATE}
    if buf.has_step:
        known.add("step")
    unknown = set(entry) - known
    if unknown:
        raise ValueError(
            f"{where} has unknown entries {sorted(unknown)} for rule {buf.rule.name!r} "
            f"(expected some of {sorted(known)})"
        )
    shape = buf.shapes[i]
    for name, value in entry.items():
        if name in buf.rule.states and value is not None:
            if not torch.is_tensor(value) or value.shape != shape:
                got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise ValueError(f"{where}: {name!r} is {got}, expected a tensor of {tuple(shape)}")
    if "step" in entry:
        step = float(entry["step"])
        if not (step >= 0 and step == int(step)):
            raise ValueError(f"{where}: step {step} is not a count")
    if "mu_product" in entry:
        buf.rule.host["mu_product"]("mu_product", float(entry["mu_product"]))


def _copy_in(entry: dict, buf: _Buffer, i: int) -> None:
    """Tensor ``i``'s loaded torch state into the flat buffers (initial values
    where it has none)."""
    buf.steps_np[i] = float(entry["step"]) if "step" in entry else 0.0
    for name, (tensor, arr) in buf.host.items():
        if tensor is not None:
            arr[i] = float(entry.get(name, 1.0))
        else:  # SGD: momentum has started iff torch kept a momentum buffer
            arr[i] = entry.get("momentum_buffer") is not None
    for name in buf.active:
        view = buf.views[name][i]
        value = entry.get(name)
        if value is None:
            view.fill_(buf.rule.initial(buf.opt, name))
        else:
            view.copy_(value)


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
    hyperparameters), as torch.optim. Dense float32/float64 CPU tensors; each
    group's tensors of one dtype are copied into one contiguous buffer and
    ``p.data`` becomes a (contiguous) view of it.
{params}
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
* Not picklable nor deep-copyable; checkpoint with :meth:`state_dict`.
* Hyperparameters in ``param_groups`` must be Python numbers (no tensors);
  they are validated with fastgd's errors at the next :meth:`step`.
* A tensor may appear once per group (torch only warns).
* CUDA tensors, float16/bfloat16, complex parameters and sparse gradients
  raise ``TypeError``.
"""


def _make_class(key: str, numpy_class: type) -> type:
    """The ``fastgd.torch`` class of ``fastgd.OPTIMIZERS[key]``."""
    numpy_sig = inspect.signature(numpy_class.__init__)
    parameters = [p for name, p in numpy_sig.parameters.items() if name != "self"]
    parameters += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None if v is None else v)
        for k, v in _TORCH_KEYWORDS.items()
    ]
    signature = inspect.Signature(parameters)
    init_names = tuple(n for n in numpy_sig.parameters if n not in ("self", "params", "backend"))
    # every default from the NumPy class itself (AdamW's decoupled_weight_decay
    # is not a constructor argument there)
    all_defaults = {
        **numpy_class(np.zeros(1)).hyperparameters,
        "backend": numpy_sig.parameters["backend"].default,
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
        if pname not in ("self", "params"):
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
