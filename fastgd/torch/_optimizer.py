"""The ``torch.optim.Optimizer`` subclass behind every ``fastgd.torch`` class."""

from __future__ import annotations

import inspect
import operator
import secrets
from collections import defaultdict

import torch
import torch.autograd.profiler as _autograd_profiler
import torch.optim.optimizer as _torch_optimizer

from fastgd import _checks
from fastgd.torch import _device
from fastgd.torch._buffer import _HOST_IN_STATE, SEED_MODULUS, STORAGE, _Buffer, _uniform
from fastgd.torch._state import _check_loaded_state, _copy_in

#: torch.optim keywords accepted for a drop-in swap, with the only values allowed
#: (``None`` = any): fastgd's loop is always one fused pass, so ``foreach`` and
#: ``fused`` change nothing; ``capturable`` and ``differentiable`` are not built.
_TORCH_KEYWORDS = {"foreach": None, "fused": None, "capturable": False, "differentiable": False}
_LOW = (torch.bfloat16, torch.float16)
_DTYPES = (torch.float32, torch.float64, *_LOW, torch.complex64, torch.complex128)
#: Rules whose torch class creates every parameter's state in ``__init__``.
_EAGER_STATE = frozenset({"adagrad"})

_const_data_ptr = torch.Tensor.const_data_ptr  # data_ptr() without its mutation checks
_get_grad = operator.attrgetter("grad")
_is = operator.is_
_profiler_enabled = torch.autograd._profiler_enabled
_set_grad_enabled = torch._C._set_grad_enabled
_is_grad_enabled = torch.is_grad_enabled


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
        self._released: list = []  # gradients copied in, dropped at zero_grad()
        super().__init__(params, defaults)

    # -- groups and buffers ---------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (torch semantics) and move its tensors into flat buffers.

        Raises
        ------
        TypeError
            A tensor that is not a dense float32/float64/bfloat16/float16 (or
            complex64/complex128) CPU or CUDA tensor, a bfloat16 CUDA tensor,
            or a sparse gradient.
        ValueError
            Bad hyperparameters (fastgd's checks), a tensor twice in the
            group, ``kahan`` or ``stochastic_rounding`` with a tensor that is
            not 16-bit (fastgd's check).
        """
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            buffers = self._build(group, len(self.param_groups) - 1)
        except BaseException:
            self.param_groups.pop()
            raise
        self._adopt(group, buffers, {})

    def _adopt(self, group: dict, buffers: list[_Buffer], loaded: dict) -> None:
        """Move the group's tensors into ``buffers``, with the torch-format
        state ``loaded`` (parameter -> entry; initial values where none)."""
        with torch.no_grad():
            for buf in buffers:
                buf.adopt(with_grads=True)
                for i, p in enumerate(buf.params):
                    entry = loaded.get(p, {})
                    if entry:
                        _copy_in(entry, buf, i)
                    if entry or buf.rule.name in _EAGER_STATE:
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
        backend = group["backend"]
        on_host_as_device = backend == "cuda" and _device.simulated()
        by_kind: dict[tuple, list] = {}
        for i, p in enumerate(params):
            where = f"parameter {i} of param group {index}"
            if p.device.type not in ("cpu", "cuda"):
                raise TypeError(
                    f"{where} is on {p.device}; fastgd.torch supports CPU and CUDA tensors"
                )
            if p.layout != torch.strided:
                raise TypeError(f"{where} has layout {p.layout}; only dense tensors are supported")
            if p.dtype not in _DTYPES:
                raise TypeError(
                    f"{where} has dtype {p.dtype}; fastgd.torch supports float32, float64, "
                    "bfloat16, float16, complex64 and complex128 parameters"
                )
            if p.dtype == torch.bfloat16 and (p.is_cuda or on_host_as_device):
                raise TypeError(
                    f"{where} is a bfloat16 tensor on {p.device} with backend={backend!r}; "
                    "fastgd.torch does not carry bfloat16 CUDA tensors yet (their state would "
                    "come back through the untyped '<V2' typestr): use float16 on CUDA, "
                    "bfloat16 on the CPU, or torch.optim"
                )
            if p.grad is not None and p.grad.layout != torch.strided:
                raise TypeError(_sparse_message(where))
            if p.is_cuda and backend not in ("auto", "cuda"):
                raise ValueError(
                    f"{where} is a CUDA tensor; backend={backend!r} runs on the CPU: "
                    "use backend='auto' or 'cuda'"
                )
            if not p.is_cuda and backend == "cuda" and not on_host_as_device:
                raise ValueError(
                    f"backend='cuda' needs CUDA tensors; {where} is on the CPU "
                    "(move the model with model.cuda() before making the optimizer)"
                )
            by_kind.setdefault((p.dtype, p.device), []).append((i, p))
        if group["stochastic_rounding"] is True and group["seed"] is None:
            group["seed"] = secrets.randbits(63)  # one per group, kept in the group
        first = sum(map(len, self._buffers))  # this optimizer's buffers so far
        buffers = []
        for (dtype, _), ips in by_kind.items():
            try:
                buffers.append(
                    _Buffer(
                        ips,
                        self._numpy_class,
                        group,
                        self._names_in_init,
                        device=ips[0][1].is_cuda or on_host_as_device,
                        seed_offset=first + len(buffers),
                    )
                )
            except ValueError as e:
                rounding = group["kahan"] is True or group["stochastic_rounding"] is True
                if not rounding or dtype in _LOW:
                    raise
                raise ValueError(
                    f"{e} (parameter {ips[0][0]} of param group {index} is {dtype}: give the "
                    "bfloat16/float16 tensors a param group of their own with this option)"
                ) from None
        return buffers

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
                len(params) != len(plist) or not all(map(_is, params, plist))
            ):
                raise RuntimeError(
                    f"the tensors of param group {index} were changed in place; "
                    "use add_param_group, or re-create the optimizer"
                )

    def _check_buffer(self, buf: _Buffer, group: dict, index: int) -> list[bool] | None:
        """Check that the tensors still live in ``buf``, bring the hyperparameters
        over from ``group`` (fastgd validates them), gather the gradients into
        the flat gradient buffer. Returns which tensors have a gradient, or
        None when all have one and every ``.grad`` is already ``buf``'s view.

        The common case is a few C-level passes (``map``) over the tensors;
        any difference falls back to the per-tensor loops."""
        params = buf.params
        if list(map(_const_data_ptr, params)) != buf.ptrs:
            for i, (p, ptr) in enumerate(zip(params, buf.ptrs, strict=True)):
                if p.data_ptr() != ptr:
                    raise RuntimeError(
                        f"parameter {buf.indices[i]} of param group {index} no longer lives "
                        "in fastgd's flat buffer (its .data was re-assigned, or the model was "
                        "moved or cast with .to()/.double()/.cuda()); nothing was updated. "
                        "Re-create the optimizer after moving the model."
                    )
        opt = buf.opt
        seen = buf.seen
        # tuple == compares item by item, identity first: unequal iff some
        # value is neither the one seen nor == to it (the loop's condition)
        if buf.get_hyperparameters(group) != tuple(seen.values()):
            for name in STORAGE:
                value, old = group[name], seen[name]
                if value is not old and value != old:
                    raise ValueError(
                        f"param group {index}: {name} was changed from {old!r} to {value!r}; "
                        "the storage options are fixed at construction (re-create the "
                        "optimizer, or load_state_dict a checkpoint made with the same options)"
                    )
            for name, old in seen.items():
                value = group[name]
                if value is not old and value != old:
                    setattr(opt, name, value)
                    seen[name] = value
        if opt._plan is None:
            opt._make_plan()
            if buf.refresh_views():
                for i, p in enumerate(params):
                    if self.state.get(p):
                        self.state[p] = buf.state_of(i)
        grads = list(map(_get_grad, params))
        if all(map(_is, grads, buf.grads)):
            return None
        have = []
        for i, (p, g, gview) in enumerate(zip(params, grads, buf.grads, strict=True)):
            if g is None:
                have.append(False)
                continue
            if g is not gview:
                if g.layout != torch.strided:
                    where = f"parameter {buf.indices[i]} of param group {index}"
                    raise TypeError(_sparse_message(where))
                gview.copy_(g)
                p.grad = gview
                # freed at zero_grad(), when torch.optim frees it: freed here,
                # glibc can trim the heap and the next backward page-faults
                # every gradient in again
                self._released.append(g)
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
        # torch's wrapper (Optimizer.profile_hook_step: step hooks, the
        # profiler's record_function) only when it has something to do; without
        # hooks or profiler it would cost 10-15 us a step and do nothing. Not
        # reproduced: RecordFunction observers registered outside torch's
        # profiler do not see an Optimizer.step region.
        if (
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or _torch_optimizer._global_optimizer_pre_hooks
            or _torch_optimizer._global_optimizer_post_hooks
            or _autograd_profiler._is_profiler_enabled
            or _profiler_enabled()
        ):
            return _hooked_step(self, closure)
        return self._step(closure)

    #: Optimizer._patch_step_function does not wrap a step marked hooked
    step.hooked = True

    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_was = _is_grad_enabled()
        _set_grad_enabled(False)  # torch.no_grad() without the context manager's 1.5 us
        try:
            self._check_structure()
            # at most one step's copied-in gradients are kept (a model.zero_grad()
            # instead of opt.zero_grad() must not make them pile up)
            self._released = []
            todo = []
            for index, (group, buffers) in enumerate(
                zip(self.param_groups, self._buffers, strict=True)
            ):
                for buf in buffers:
                    todo.append((buf, self._check_buffer(buf, group, index)))
            for buf, have in todo:
                self._step_buffer(buf, have)
        finally:
            _set_grad_enabled(grad_was)
        return loss

    def _step_buffer(self, buf: _Buffer, have: list[bool] | None) -> None:
        n = len(buf.params)
        if (have is None or all(have)) and _uniform(buf):  # the common case: one kernel call
            self._step_run(buf, 0, n)
            return
        if have is None:
            have = [True] * n
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
        steps = buf.steps_np
        t = int(steps.item(i)) + 1
        hosts = buf.host
        if hosts:
            host = {name: arr.item(i) for name, (_, arr) in hosts.items()}
            started = host.get("momentum_started", True)
        else:
            host, started = {}, True
        stream = _device.stream(buf.flat) if buf.device else None
        buf.opt._step_range(buf.np_grad, buf.bounds[i], buf.bounds[j], t, host, stream)
        if buf.has_step:
            steps[i:j] = t
        for name, (_, arr) in hosts.items():
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
        self._released = []
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
        scalars = _host_scalars(state_dict, old_groups)
        super().load_state_dict(state_dict)
        try:
            for p, entry in scalars.items():  # as saved, not cast to p's dtype by torch
                self.state[p].update(entry)
            self._load_into_buffers(old_groups)
        except BaseException:
            self.state, self.param_groups = old_state, old_groups
            raise

    def _load_into_buffers(self, old_groups: list[dict]) -> None:
        loaded = self.state
        self._check_structure()
        for index, (group, old) in enumerate(zip(self.param_groups, old_groups, strict=True)):
            # the storage options are the optimizer's: a state dict without them
            # (torch.optim's) keeps them, one with them must agree
            for key in STORAGE:
                group.setdefault(key, old[key])
            for key in ("kahan", "stochastic_rounding"):
                if group[key] != old[key]:
                    raise ValueError(
                        f"state dict param group {index} was saved with {key}={group[key]!r}, "
                        f"this optimizer has {key}={old[key]!r}; construct it with the "
                        "checkpoint's storage options"
                    )
            if old["stochastic_rounding"]:
                _checks.integer("state dict seed", group["seed"], 0, SEED_MODULUS - 1)
            elif group["seed"] is not None:
                raise ValueError(
                    f"state dict param group {index} has a seed ({group['seed']!r}) "
                    "without stochastic rounding"
                )
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
                        if name not in STORAGE:
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
                    if buf.opt.stochastic_rounding:
                        seed = buf.core_seed(group["seed"])
                        buf.opt._reseed(seed)
                    buf.refresh_views()
                    for i, p in enumerate(buf.params):
                        entry = loaded.get(p, {})
                        _copy_in(entry, buf, i)
                        if entry or buf.rule.name in _EAGER_STATE:
                            state[p] = buf.state_of(i)
        self.state = state

    # -- copies -------------------------------------------------------------------

    def __getstate__(self) -> dict:
        """torch's pickled fields, with the state as copies of the buffers.

        ``copy.deepcopy(opt)`` (or of ``(model, opt)`` together) and
        ``pickle`` give an optimizer whose tensors are the copies' tensors,
        moved into new flat buffers with the same state; torch.optim copies the
        same way. Prefer ``torch.save`` for files: it stores the flat storage
        once, where ``pickle`` stores each parameter's view of it separately.
        """
        state = {
            p: {name: v.clone() if torch.is_tensor(v) else v for name, v in s.items()}
            for p, s in self.state.items()
        }
        return {"defaults": self.defaults, "state": state, "param_groups": self.param_groups}

    def __reduce_ex__(self, protocol):
        # rebuilt by _restore, not __setstate__: torch's load_state_dict calls
        # __setstate__ itself
        return _restore, (type(self), self.__getstate__())

    def _restore(self, state: dict) -> None:
        loaded = state["state"]
        torch.optim.Optimizer.__setstate__(self, {**state, "state": defaultdict(dict)})
        self._buffers, self._group_params, self._released = [], [], []
        for index, group in enumerate(self.param_groups):
            buffers = self._build(group, index)
            for buf in buffers:
                for i, p in enumerate(buf.params):
                    _check_loaded_state(loaded.get(p, {}), buf, i, index)
            self._adopt(group, buffers, loaded)


def _host_scalars(state_dict: dict, groups: list[dict]) -> dict:
    """The host scalars (NAdam's ``mu_product``) of ``state_dict``, by the
    parameter of ``groups`` they belong to: torch's ``load_state_dict`` casts
    every state tensor but ``step`` to its parameter's dtype, which would round
    a float32 ``mu_product`` to a 16-bit parameter's dtype."""
    try:
        saved = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in groups for p in g["params"]]
        states = state_dict["state"]
    except (KeyError, TypeError):
        return {}  # torch's load_state_dict reports it
    found = {}
    for i, p in zip(saved, params, strict=False):
        entry = states.get(i) if isinstance(states, dict) else None
        if isinstance(entry, dict):
            kept = {k: entry[k] for k in _HOST_IN_STATE if k in entry}
            if kept:
                found[p] = kept
    return found


def _restore(cls: type, state: dict) -> FlatOptimizer:
    """A ``fastgd.torch`` optimizer from :meth:`FlatOptimizer.__getstate__`'s
    fields (pickle, deepcopy): its tensors moved into new flat buffers."""
    opt = cls.__new__(cls)
    opt._restore(state)
    return opt


#: torch's own step wrapper around the bare step, for when hooks or the profiler need it
_hooked_step = torch.optim.Optimizer.profile_hook_step(FlatOptimizer._step)


def _sparse_message(where: str) -> str:
    return (
        f"{where} has a sparse gradient; fastgd.torch needs dense gradients: use "
        "torch.optim.SparseAdam, or a dense gradient (e.g. nn.Embedding(sparse=False))"
    )
