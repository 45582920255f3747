"""Optimizer objects: hyperparameters, state, validation; one kernel call per step."""

from __future__ import annotations

import functools
from types import MappingProxyType, SimpleNamespace

import numpy as np

from fastgd import _checks, _precision, backends, config
from fastgd._state_dict import STATE_FORMAT, StateDict  # noqa: F401 (STATE_FORMAT: public)
from fastgd.rules import RULES, Rule

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
        "params",
        "bits",
        "seed",
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


class Optimizer(StateDict):
    """Base class: one parameter array, updated in place by one fused kernel.

    Subclasses set :attr:`rule` and declare their hyperparameters as
    :class:`Hyperparameter` attributes.

    Parameters
    ----------
    params : ndarray
        C-contiguous, writeable float32, float64, bfloat16 (``ml_dtypes``) or
        float16 array of any shape (or a CUDA array, see ``backend``). It is
        updated in place and kept by reference. 16-bit parameters (and their
        gradients, which have the parameters' dtype) are loaded exactly into
        float32, the rule's arithmetic runs in float32, and the new parameters
        are stored rounded to nearest even (or as ``kahan`` /
        ``stochastic_rounding`` say).
    backend : {"auto", "serial", "parallel", "cuda"}
        ``"serial"``: one-thread loop. ``"parallel"``: multi-threaded ``prange``
        loop. ``"cuda"``: grid-stride CUDA kernel on device arrays. ``"auto"``:
        ``"cuda"`` for CUDA arrays, else ``"serial"`` below
        :data:`fastgd.config.PARALLEL_MIN_BYTES` of traffic per step and
        ``"parallel"`` above.
    state_dtype : {None, "float32", "bfloat16", "float16"} or dtype, optional
        The state arrays' storage (read-only after construction). ``None``
        (or the parameters' dtype): the parameters' dtype. ``"float32"`` for
        16-bit parameters. ``"bfloat16"`` (``ml_dtypes.bfloat16``) or
        ``"float16"`` for float32 (or 16-bit) parameters; the loop loads each
        state element exactly into float32, runs the rule's arithmetic in
        float32 and stores the new state rounded to nearest even (NaN stays
        NaN, overflow gives inf), so with float32 parameters a step moves
        ``12 + 4 k`` bytes per element for ``k`` state arrays instead of
        ``12 + 8 k``. ``state`` and ``state_dict()`` hold the 16-bit arrays.
        On CUDA, bfloat16 arrays are numba device arrays of
        ``ml_dtypes.bfloat16`` or ``__cuda_array_interface__`` objects with
        torch's bfloat16 typestr ``"<V2"``.
    kahan : bool, default False
        16-bit parameters only: keep a compensation buffer ``k`` (the
        parameters' dtype, zero at the start, ``state["kahan_comp"]``) that
        holds what rounding the parameters lost, as in the optimi library:
        ``u = k + (p_new - p);  p = round(p + u);  k = round(u - (p - p_old))``.
        Updates far below half an ulp of ``p``, which plain 16-bit storage
        loses entirely, then accumulate. Costs one more 16-bit array of traffic.
    stochastic_rounding : bool, default False
        16-bit parameters only: round the new parameters up or down at
        random, with the probability of each the fraction of the gap, so
        the stored value is unbiased. The random bits are a hash of
        ``(seed, step, element index)``: the same bits on every backend,
        for every thread count, and after resuming from ``state_dict()``.
    seed : int, optional
        The stochastic rounding's seed, in ``[0, 2**63)`` (read-only; kept in
        ``state_dict()``); default a random one drawn at construction.

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

    def __init__(self, params, *, backend: str = "auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None, **hyperparameters):  # fmt: skip
        self._device = _checks.is_cuda_array(params)
        if self._device:
            from fastgd import cuda as _cuda

            flat = _cuda.flat_view(params, "params", low=True)
            array = None
        else:
            array = _checks.check_params(params, low=True)
            flat = array.reshape(-1)
        precision = _precision.resolve(
            np.dtype(flat.dtype), state_dtype, kahan, stochastic_rounding, seed
        )
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
        self._precision = precision
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
        return self._precision.state

    @property
    def kahan(self) -> bool:
        """Whether 16-bit parameters keep a Kahan compensation buffer (read-only)."""
        return self._precision.kahan

    @property
    def stochastic_rounding(self) -> bool:
        """Whether 16-bit parameters are stored with stochastic rounding (read-only)."""
        return self._precision.stochastic

    @property
    def seed(self) -> int | None:
        """The stochastic rounding's seed, None without it (read-only;
        :meth:`load_state_dict` restores a checkpoint's)."""
        return self._precision.seed

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
            if name == _precision.KAHAN:  # the compensation: the parameters' dtype, zero
                value, dtype = 0.0, self._dtype
            else:
                value, dtype = self.rule.initial(self, name), self._precision.state
            if self._device:
                from fastgd import cuda as _cuda

                full = _cuda.full(self._shape, value, dtype)
            else:
                full = np.full(self._shape, value, dtype=dtype)
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
        _check_representable(plan.hp, plan.common_scalars, self._precision.compute)
        plan.active = self.rule.active(self)
        states = [self._state_array(name) for name in plan.active]
        precision = self._precision
        if precision.storage.state != "native":  # the loops read 16-bit storage as its bits
            states = [a.view(np.uint16) for a in states]
        if precision.kahan:  # the loops take the compensation after the state
            states.append(self._state_array(_precision.KAHAN).view(np.uint16))
        plan.states = tuple(states)
        flat = self._flat_params
        plan.bits = precision.bits  # 16-bit params and grad: the loops read their bits
        plan.params = flat.view(np.uint16) if precision.bits else flat
        plan.seed = precision.seed  # None without stochastic rounding
        if self._device:
            plan.backend = "cuda"
        else:
            params = self._flat_params
            state_nbytes = params.size * precision.state.itemsize
            n_bytes = backends.traffic_bytes(
                params.nbytes, len(plan.active), state_nbytes, precision.kahan
            )
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
            dtype = self._precision.compute.name
            loop = backends.cpu_loop(
                self.rule,
                plan.common,
                flags,
                plan.active,
                plan.backend,
                dtype,
                self._precision.storage,
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
        if plan.bits:
            g = g.view(np.uint16)
        t = self._steps + 1
        host = self._host.copy()
        flags, scalars = plan.prepare(plan.hp, t, host)
        loop = plan.loops.get(flags) or self._loop(plan, flags)
        if plan.seed is not None:  # stochastic rounding's counter: (seed, step, index)
            launch = (plan.seed, t, 0, *launch)
        loop(plan.params, g, *plan.states, plan.common_scalars + scalars, *launch)
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
        ``stream``: as in :meth:`step`, CUDA arrays only. Stochastic rounding
        draws element ``i`` of the slice as element ``lo + i`` of the buffer.
        """
        plan = self._plan  # _current_plan(), inlined: this is the per-step path
        if plan is None or plan.generation != config._generation:
            plan = self._make_plan()
        flags, scalars = plan.prepare(plan.hp, t, host)
        loop = plan.loops.get(flags) or self._loop(plan, flags)
        launch = (stream,) if self._device else ()
        if plan.seed is not None:
            launch = (plan.seed, t, lo, *launch)
        params = plan.params
        if plan.bits:
            grad = grad.view(np.uint16)
        if lo == 0 and hi == params.shape[0]:  # the whole buffer: no slices to make
            loop(params, grad, *plan.states, plan.common_scalars + scalars, *launch)
        else:
            states = [s[lo:hi] for s in plan.states]
            loop(params[lo:hi], grad[lo:hi], *states, plan.common_scalars + scalars, *launch)

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

            self._flat_params = _cuda.flat_view(self._params, "params", low=True)
            self._flat_state = {k: _cuda.flat_view(v, k, low=True) for k, v in self._state.items()}
            self._array = self._root = None
        else:
            self._array = _checks.host_array(self._params, "params")
            self._root = _checks.memory_root(self._array)
            self._flat_params = self._array.reshape(-1)
            self._flat_state = {k: v.reshape(-1) for k, v in self._state.items()}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        state = ""
        if self._precision.state != self._dtype:
            state = f", state_dtype={self._precision.state.name}"
        if self._precision.kahan:
            state += ", kahan=True"
        if self._precision.stochastic:
            state += f", stochastic_rounding=True, seed={self._precision.seed}"
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


def rule_of(cls) -> Rule:
    return RULES[cls.rule.name]
