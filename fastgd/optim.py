"""Optimizer objects: hyperparameters, state, validation; one kernel call per step."""

from __future__ import annotations

import functools
from types import MappingProxyType, SimpleNamespace

import numpy as np

from fastgd import _checks, backends, config
from fastgd.rules import RULES, Rule

STATE_FORMAT = "fastgd.state_dict/1"
_STATE_DICT_FIELDS = (
    "format", "rule", "dtype", "shape", "step", "hyperparameters", "state", "host",
)  # fmt: skip
BACKENDS = ("auto", "serial", "parallel", "cuda")


class _Plan:
    """What a step needs that changes only with the hyperparameters."""

    __slots__ = (
        "hp",
        "prepare",
        "common",
        "common_scalars",
        "active",
        "states",
        "backend",
        "loops",
        "generation",
    )


class Hyperparameter:
    """A settable, validated hyperparameter attribute.

    Assigning a bad value raises ``ValueError`` at once; the optimizer keeps
    the old one. Relations between hyperparameters (``nesterov`` needs
    ``momentum``) are checked at the next ``step``.
    """

    def __init__(self, check, doc: str = ""):
        self.check = check
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return obj.__dict__[self.name]

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(self.name, value)
        obj.__dict__["_plan"] = None


class Optimizer:
    """Base class: one parameter array, updated in place by one fused kernel.

    Subclasses set :attr:`rule` and declare their hyperparameters as
    :class:`Hyperparameter` attributes.

    Parameters
    ----------
    params : ndarray
        C-contiguous, writeable float32 or float64 array of any shape (or a
        CUDA array, see ``backend``). It is updated in place and kept by reference.
    backend : {"auto", "serial", "parallel", "cuda"}
        ``"serial"``: one-thread loop. ``"parallel"``: multi-threaded ``prange``
        loop. ``"cuda"``: grid-stride CUDA kernel on device arrays. ``"auto"``:
        ``"cuda"`` for CUDA arrays, else ``"serial"`` below
        :data:`fastgd.config.PARALLEL_MIN_BYTES` of traffic per step and
        ``"parallel"`` above.
    state_dtype : {None, "float32", "bfloat16", "float16"} or dtype, optional
        The state arrays' storage (read-only after construction). ``None``
        (or the parameters' dtype): the parameters' dtype. ``"bfloat16"``
        (``ml_dtypes.bfloat16``) or ``"float16"``: for float32 parameters on
        the CPU; the loop loads each state element exactly into float32, runs
        the rule's arithmetic in float32 and stores the new state rounded to
        nearest even (NaN stays NaN, overflow gives inf), so a step moves
        ``8 + 4 k`` bytes per element for ``k`` state arrays instead of
        ``12 + 8 k``. ``state`` and ``state_dict()`` hold the 16-bit arrays.

    Notes
    -----
    Non-finite gradients propagate element-wise, as in torch.optim: a NaN in
    ``grad[i]`` makes ``params[i]`` NaN, an inf makes it (or, for Lion, whose
    update is ``sign(inf) = 1``, only its momentum) non-finite, and every
    other element is exactly as a finite gradient would leave it. Use
    ``fastgd.clip_grad_norm_`` or check ``np.isfinite(grad).all()`` first if a
    run must skip such steps.
    """

    rule: Rule
    maximize = Hyperparameter(_checks.flag, "Ascend instead of descend (negate the gradient).")
    l1 = Hyperparameter(_checks.nonnegative, "L1 regularization strength.")
    l1_mode = Hyperparameter(
        _checks.choice("subgradient", "proximal"),
        "``'subgradient'``: g += l1 * sign(p); ``'proximal'``: soft-threshold p by "
        "lr * l1 after the step (exact zeros).",
    )

    def __init__(self, params, *, backend: str = "auto", state_dtype=None, **hyperparameters):
        self._device = _checks.is_cuda_array(params)
        if self._device:
            from fastgd import cuda as _cuda

            flat = _cuda.flat_view(params, "params")
            array = None
        else:
            array = _checks.check_params(params)
            flat = array.reshape(-1)
        _check_backend(backend)
        if backend == "cuda" and not self._device:
            raise TypeError(
                "backend='cuda' needs a CUDA array (e.g. CuPy, numba device array or a "
                "torch CUDA tensor); got a host array. fastgd never copies silently."
            )
        if self._device and backend in ("serial", "parallel"):
            raise TypeError(
                f"backend={backend!r} runs on the CPU but params is a CUDA array; "
                "use backend='cuda' or 'auto'"
            )
        names = self.hyperparameter_names()
        unknown = set(hyperparameters) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        for name in names:
            setattr(self, name, hyperparameters[name])
        self._check_consistency()
        self._params = params
        self._array = array  # params as a plain ndarray (host) or None (CUDA)
        self._root = _checks.memory_root(array)
        self.__dict__["backend"] = backend
        self._flat_params = flat
        self._shape = tuple(params.shape)
        self._dtype = np.dtype(flat.dtype)
        self._state_dtype, self._storage = _state_storage(state_dtype, self._dtype, self._device)
        self._state: dict[str, np.ndarray] = {}
        self._flat_state: dict[str, np.ndarray] = {}
        self._host: dict[str, float | bool] = {}
        self._steps = 0

    def __setattr__(self, name: str, value) -> None:
        # public attributes are the hyperparameters and ``backend``: a typo
        # (``opt.learning_rate = ...``) or a structural attribute must not be
        # accepted and then ignored by the kernel
        if name[0] != "_" and name not in _settable(type(self)):
            raise AttributeError(
                f"{type(self).__name__} has no settable attribute {name!r}; settable: "
                f"{', '.join(_settable(type(self)))}"
            )
        object.__setattr__(self, name, value)

    @property
    def params(self):
        """The parameter array passed at construction (read-only attribute: the
        array is updated in place, and kernels hold its memory)."""
        return self._params

    @property
    def state_dtype(self) -> np.dtype:
        """The state arrays' dtype (read-only: chosen at construction)."""
        return self._state_dtype

    @property
    def steps(self) -> int:
        """Steps taken (read-only; :meth:`load_state_dict` restores it)."""
        return self._steps

    @property
    def state(self) -> MappingProxyType:
        """The state arrays by torch's names, created at the first step.

        A read-only mapping: the arrays themselves may be modified in place
        (the kernels read that memory), but entries cannot be replaced or
        removed; use :meth:`load_state_dict` to install other state.
        """
        return MappingProxyType(self._state)

    @property
    def backend(self) -> str:
        """Where the loop runs; settable (``"auto"``, ``"serial"``, ``"parallel"``, ``"cuda"``)."""
        return self.__dict__["backend"]

    @backend.setter
    def backend(self, value: str) -> None:
        _check_backend(value)
        if (value == "cuda") != self._device and value != "auto":
            where = "a CUDA array" if self._device else "a host array"
            raise TypeError(f"backend={value!r} cannot run params that are {where}")
        self.__dict__["backend"] = value
        self._plan = None

    @property
    def resolved_backend(self) -> str:
        """The loop the next step runs: ``"serial"``, ``"parallel"`` or ``"cuda"``
        (what ``backend="auto"`` resolves to for this array and configuration)."""
        return self._current_plan().backend

    # -- hyperparameters ------------------------------------------------------

    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        names = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Hyperparameter) and name not in names:
                    names.append(name)
        return tuple(names)

    @property
    def hyperparameters(self) -> dict:
        """The current hyperparameters, by torch's names."""
        return {n: getattr(self, n) for n in self.hyperparameter_names()}

    def _check_consistency(self) -> None:
        """Check relations between hyperparameters (subclasses extend)."""

    # -- the step ---------------------------------------------------------------

    def _common(self) -> tuple[tuple[bool, ...], tuple[float, ...]]:
        """Flags and scalars of :func:`fastgd.rules.prologue` / ``epilogue``."""
        rule = self.rule
        wd = getattr(self, "weight_decay", 0.0) if rule.decay != "none" else 0.0
        decoupled = rule.decay == "decoupled" or (
            rule.decay == "option" and self.decoupled_weight_decay
        )
        l1_on = self.l1 != 0.0
        flags = (
            self.maximize,
            wd != 0.0 and not decoupled,
            wd != 0.0 and decoupled,
            l1_on and self.l1_mode == "subgradient",
            l1_on and self.l1_mode == "proximal",
        )
        return flags, (wd, 1.0 - self.lr * wd, self.l1, self.lr * self.l1)

    def _state_array(self, name: str):
        arr = self._flat_state.get(name)
        if arr is None:
            value = self.rule.initial(self, name)
            if self._device:
                from fastgd import cuda as _cuda

                full = _cuda.full(self._shape, value, self._dtype)
            else:
                full = np.full(self._shape, value, dtype=self._state_dtype)
            self._state[name] = full
            arr = self._flat_state[name] = full.reshape(full.size)
        return arr

    def _current_plan(self) -> _Plan:
        """The cached plan, made again after a hyperparameter or a
        ``fastgd.config`` setting changed."""
        plan = self._plan
        if plan is None or plan.generation != config._generation:
            plan = self._make_plan()
        return plan

    def _make_plan(self) -> _Plan:
        """Everything a step needs that depends only on the hyperparameters."""
        self._check_consistency()
        plan = _Plan()
        plan.hp = SimpleNamespace(**self.hyperparameters)
        plan.prepare = self.rule.prepare
        plan.common, plan.common_scalars = self._common()
        _check_representable(plan.hp, plan.common_scalars, self._dtype)
        plan.active = self.rule.active(self)
        states = tuple(self._state_array(name) for name in plan.active)
        if self._storage.state != "native":  # the loops read 16-bit storage as its bits
            states = tuple(a.view(np.uint16) for a in states)
        plan.states = states
        if self._device:
            plan.backend = "cuda"
        else:
            params = self._flat_params
            state_nbytes = params.size * self._state_dtype.itemsize
            n_bytes = backends.traffic_bytes(params.nbytes, len(plan.active), state_nbytes)
            plan.backend = backends.select(n_bytes, self.backend)
        plan.loops = {}
        plan.generation = config._generation
        self.__dict__["_plan"] = plan
        return plan

    def _loop(self, plan: _Plan, flags: tuple[bool, ...]):
        if self._device:
            from fastgd import cuda as _cuda

            loop = _cuda.kernel_launcher(self, plan, flags)
        else:
            dtype = self._dtype.name
            loop = backends.cpu_loop(
                self.rule, plan.common, flags, plan.active, plan.backend, dtype, self._storage
            )
        plan.loops[flags] = loop
        return loop

    def step(self, grad, *, stream=None) -> None:
        """Apply one update to ``params`` in place.

        Parameters
        ----------
        grad : ndarray
            Gradient of the loss with respect to ``params``: same shape and
            dtype, C-contiguous (a CUDA array on the CUDA backend). It is
            only read.
        stream : optional
            CUDA backend only: the stream to launch on (a numba stream, a CuPy
            or torch CUDA stream, or a raw ``cudaStream_t`` int), so the
            update is ordered with the caller's work. Default: the default stream.

        Raises
        ------
        TypeError
            Wrong dtype, non-contiguous, or host/device mismatch.
        ValueError
            Shape mismatch, or inconsistent hyperparameters.
        """
        if self._device:
            from fastgd import cuda as _cuda

            g = _cuda.flat_grad(grad, self._shape, self._dtype)
            launch = (stream,)
        else:
            if stream is not None:
                raise TypeError("stream= applies to CUDA arrays only; params is a host array")
            if (  # the common case, checked inline: this path is the per-step overhead
                type(grad) is np.ndarray
                and grad.ndim == 1
                and grad.dtype is self._dtype
                and grad.shape == self._shape
                and grad.flags.c_contiguous
            ):
                # a gradient that owns its memory can only overlap params if it is
                # the array params lives in
                if grad.base is not None or grad is self._root:
                    _checks.check_overlap(grad, self._flat_params, "grad", "params")
                g = grad
            else:
                g = _checks.check_grad(grad, self._array)
            launch = ()
        plan = self._current_plan()
        t = self._steps + 1
        host = self._host.copy()
        flags, scalars = plan.prepare(plan.hp, t, host)
        loop = plan.loops.get(flags) or self._loop(plan, flags)
        loop(self._flat_params, g, *plan.states, plan.common_scalars + scalars, *launch)
        d = self.__dict__  # past __setattr__: this is the per-step path
        d["_host"] = host
        d["_steps"] = t

    def _step_range(self, grad, lo: int, hi: int, t: int, host: dict, stream=None) -> None:
        """Update elements ``[lo, hi)`` of the flat parameters as step ``t``.

        For adapters that keep a step count and host state per tensor inside
        one flat buffer (``fastgd.torch``): the same plan, prologue/epilogue
        flags and compiled loop as :meth:`step`, on a slice. ``host`` is
        updated in place; this optimizer's own step count and host state are
        not touched. ``grad`` must already be validated (1-D, C-contiguous,
        the parameters' dtype, size and memory kind, not overlapping them);
        ``stream``: as in :meth:`step`, CUDA arrays only.
        """
        plan = self._plan  # _current_plan(), inlined: this is the per-step path
        if plan is None or plan.generation != config._generation:
            plan = self._make_plan()
        flags, scalars = plan.prepare(plan.hp, t, host)
        loop = plan.loops.get(flags) or self._loop(plan, flags)
        launch = (stream,) if self._device else ()
        params = self._flat_params
        if lo == 0 and hi == params.shape[0]:  # the whole buffer: no slices to make
            loop(params, grad, *plan.states, plan.common_scalars + scalars, *launch)
        else:
            states = [s[lo:hi] for s in plan.states]
            loop(params[lo:hi], grad[lo:hi], *states, plan.common_scalars + scalars, *launch)

    # -- state ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """A snapshot of the optimizer: plain NumPy arrays and Python scalars.

        Returns
        -------
        dict
            ``format``, ``rule``, ``dtype``, ``shape``, ``step`` (int),
            ``hyperparameters``, ``state`` (name -> array copy, host NumPy even
            for CUDA params) and ``host`` (rule scalars such as NAdam's
            ``mu_product``). Loading it into an optimizer of the same rule,
            shape and dtype and continuing gives bit-identical results.
        """
        if self._device:
            from fastgd import cuda as _cuda

            state = {k: _cuda.to_host(v) for k, v in self._state.items()}
        else:
            state = {k: v.copy() for k, v in self._state.items()}
        return {
            "format": STATE_FORMAT,
            "rule": self.rule.name,
            "dtype": self._dtype.name,
            "shape": self._shape,
            "step": self._steps,
            "hyperparameters": self.hyperparameters,
            "state": state,
            "host": dict(self._host),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a snapshot made by :meth:`state_dict`.

        Every field is validated before anything changes: on any error the
        optimizer (parameters, state, step count, host scalars and
        hyperparameters) is exactly as before the call.

        Raises
        ------
        ValueError
            Wrong format, rule, shape or step; unknown or missing fields,
            state arrays or host scalars; bad hyperparameters.
        TypeError
            Wrong dtype, or a state entry that is not a NumPy array.
        """
        sd = state_dict
        if not isinstance(sd, dict) or sd.get("format") != STATE_FORMAT:
            raise ValueError(f"not a fastgd state dict (expected format {STATE_FORMAT!r})")
        missing = set(_STATE_DICT_FIELDS) - set(sd)
        if missing:
            raise ValueError(f"state dict lacks {sorted(missing)}")
        unknown = set(sd) - set(_STATE_DICT_FIELDS)
        if unknown:
            raise ValueError(f"state dict has unknown fields {sorted(unknown)}")
        rule = self.rule
        if sd["rule"] != rule.name:
            raise ValueError(
                f"state dict is for rule {sd['rule']!r}, this optimizer is {rule.name!r}"
            )
        dtype = self._dtype
        try:
            if not isinstance(sd["dtype"], (str, np.dtype)):
                raise TypeError
            sd_dtype = np.dtype(sd["dtype"])
        except TypeError:
            raise TypeError(f"state dict 'dtype' {sd['dtype']!r} is not a dtype") from None
        if sd_dtype != dtype:
            raise TypeError(f"state dict dtype {sd['dtype']} differs from params dtype {dtype}")
        shape = sd["shape"]
        if not (
            isinstance(shape, (tuple, list))
            and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)
            and tuple(shape) == self._shape
        ):
            raise ValueError(f"state dict shape {shape!r} != params shape {self._shape}")
        step = _checks.integer("step", sd["step"], 0)
        values = self._checked_hyperparameters(sd["hyperparameters"])
        arrays = self._checked_state(sd["state"])
        host = sd["host"]
        if not isinstance(host, dict):
            raise ValueError(f"state dict 'host' must be a dict, got {type(host).__name__}")
        host = {name: self._checked_host(name, value) for name, value in host.items()}
        # relations between hyperparameters and the state they need: try the new
        # hyperparameters, and put the old ones back whatever happens
        old = self.hyperparameters
        self.__dict__.update(values)
        try:
            self._check_consistency()
            active = rule.active(self)
        finally:
            self.__dict__.update(old)
        if step == 0 and (arrays or host):
            raise ValueError(
                "state dict has step 0 but holds state "
                f"{sorted(arrays) + sorted(host)}; state exists only after a step"
            )
        if step > 0:
            lacking = [n for n in (*active, *rule.host) if n not in arrays and n not in host]
            if lacking:
                raise ValueError(
                    f"state dict at step {step} lacks {lacking}, which {rule.name!r} with these "
                    "hyperparameters keeps; loading it would silently restart that state"
                )
        # everything is valid: now change the optimizer
        self.__dict__.update(values)
        for name in list(self._state):
            if name not in arrays:
                del self._state[name], self._flat_state[name]
        for name, arr in arrays.items():
            target = self._state_array(name)  # existing arrays are reused in place
            if self._device:
                from fastgd import cuda as _cuda

                _cuda.copy_to_device(arr, target)
            else:
                target[...] = arr.reshape(-1)
        self._host = host
        self._steps = step
        self._plan = None

    def _checked_hyperparameters(self, hp) -> dict:
        if not isinstance(hp, dict):
            raise ValueError(
                f"state dict 'hyperparameters' must be a dict, got {type(hp).__name__}"
            )
        names = self.hyperparameter_names()
        unknown = set(hp) - set(names)
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}")
        missing = [n for n in names if n not in hp]
        if missing:
            raise ValueError(f"state dict lacks hyperparameters {missing}")
        return {n: _find(type(self), n).check(n, hp[n]) for n in names}

    def _checked_state(self, state) -> dict[str, np.ndarray]:
        if not isinstance(state, dict):
            raise ValueError(f"state dict 'state' must be a dict, got {type(state).__name__}")
        arrays = {}
        for name, arr in state.items():
            if name not in self.rule.states:
                raise ValueError(
                    f"unknown state {name!r} for rule {self.rule.name!r} "
                    f"(expected some of {self.rule.states})"
                )
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"state {name!r} must be a NumPy array, got {type(arr).__name__}")
            arr = _checks.host_array(arr, f"state {name!r}")
            if arr.dtype != self._state_dtype:
                which = "state_dtype" if self._state_dtype != self._dtype else "params dtype"
                raise TypeError(
                    f"state {name!r} has dtype {arr.dtype}, expected {self._state_dtype} (this "
                    f"optimizer's {which}); fastgd never changes a state's precision silently"
                )
            if arr.shape != self._shape:
                raise ValueError(f"state {name!r} has shape {arr.shape}, expected {self._shape}")
            arrays[name] = arr
        return arrays

    def _checked_host(self, name, value):
        check = self.rule.host.get(name)
        if check is None:
            raise ValueError(
                f"unknown host scalar {name!r} for rule {self.rule.name!r} "
                f"(expected some of {tuple(self.rule.host)})"
            )
        return check(name, value)

    # -- copies -------------------------------------------------------------------

    def __getstate__(self) -> dict:
        # compiled loops and flat views are rebuilt, so copies update their own arrays
        state = self.__dict__.copy()
        for key in ("_plan", "_flat_params", "_flat_state", "_array", "_root"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plan = None
        if self._device:
            from fastgd import cuda as _cuda

            self._flat_params = _cuda.flat_view(self._params, "params")
            self._flat_state = {k: _cuda.flat_view(v, k) for k, v in self._state.items()}
            self._array = self._root = None
        else:
            self._array = _checks.host_array(self._params, "params")
            self._root = _checks.memory_root(self._array)
            self._flat_params = self._array.reshape(-1)
            self._flat_state = {k: v.reshape(-1) for k, v in self._state.items()}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        state = ""
        if self._state_dtype != self._dtype:
            state = f", state_dtype={self._state_dtype.name}"
        return (
            f"{type(self).__name__}(params: {self._shape} {self._dtype.name}, "
            f"{hp}, backend={self.backend!r}{state})"
        )


@functools.cache
def _settable(cls) -> tuple[str, ...]:
    """The public attributes of ``cls`` that may be assigned."""
    return (*cls.hyperparameter_names(), "backend")


def _check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"Invalid backend {backend!r} (expected one of {BACKENDS})")


#: ``state_dtype`` names and the 16-bit storage kind of each (``fastgd.backends.Storage``).
_STATE_KINDS = {"bfloat16": "bfloat16", "float16": "float16"}


def _state_storage(value, dtype: np.dtype, device: bool):
    """``(state dtype, backends.Storage)`` for ``state_dtype=value`` and
    parameters of ``dtype``; refuses what the loops cannot store."""
    if value is None:
        return dtype, backends.NATIVE
    if isinstance(value, str) and value == "bfloat16":
        import ml_dtypes

        value = ml_dtypes.bfloat16
    if isinstance(value, bool):
        value = object()  # np.dtype(True) is bool: refuse it below
    try:
        state = np.dtype(value)
    except TypeError:
        state = None
    if state is None or not (state.kind == "f" or state.name == "bfloat16"):
        raise TypeError(
            'state_dtype must be None, "float32", "bfloat16" or "float16" (or the dtype), '
            f"got {value!r}"
        )
    if state == dtype:
        return dtype, backends.NATIVE
    kind = _STATE_KINDS.get(state.name)
    if kind is None or dtype != np.float32:
        raise ValueError(
            f"state_dtype={state.name} with {dtype.name} parameters: the state is stored in the "
            "parameters' dtype, or in 16 bits (bfloat16, float16) for float32 parameters"
        )
    if device:
        raise ValueError(
            f"state_dtype={state.name} runs on the CPU for now; CUDA parameters keep their "
            "state in their own dtype (state_dtype=None)"
        )
    return state, backends.Storage(state=kind)


def _check_representable(hp: SimpleNamespace, common_scalars: tuple, dtype: np.dtype) -> None:
    """Refuse hyperparameters that overflow the parameters' dtype (``lr=1e300``
    with float32 parameters would silently become inf in the kernel)."""
    big = float(np.finfo(dtype).max)
    for name, value in vars(hp).items():
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and abs(v) > big:
                raise ValueError(
                    f"Invalid {name}: {value!r} overflows the {dtype} parameters "
                    f"(largest finite value {big:.4g})"
                )
    wd, decay, l1, l1_thresh = common_scalars
    if not (abs(decay) <= big and abs(l1_thresh) <= big):
        raise ValueError(
            f"lr * weight_decay or lr * l1 overflows the {dtype} parameters; "
            "lower lr, weight_decay or l1"
        )


def _find(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise KeyError(name)  # pragma: no cover


def rule_of(cls) -> Rule:
    return RULES[cls.rule.name]
