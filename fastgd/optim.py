"""Optimizer objects: hyperparameters, state, validation; one kernel call per step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fastgd import _checks, backends
from fastgd.rules import RULES, Rule

STATE_FORMAT = "fastgd.state_dict/1"
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

    def __init__(self, params, *, backend: str = "auto", **hyperparameters):
        self._device = _checks.is_cuda_array(params)
        if self._device:
            from fastgd import cuda as _cuda

            flat = _cuda.flat_view(params, "params")
        else:
            _checks.check_params(params)
            flat = params.reshape(-1)
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
        self.params = params
        self.__dict__["backend"] = backend
        self._flat_params = flat
        self._shape = tuple(params.shape)
        self._dtype = np.dtype(flat.dtype)
        self.state: dict[str, np.ndarray] = {}
        self._flat_state: dict[str, np.ndarray] = {}
        self._host: dict[str, float | bool] = {}
        self.steps = 0

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
        return (self._plan or self._make_plan()).backend

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
                full = np.full(self._shape, value, dtype=self._dtype)
            self.state[name] = full
            arr = self._flat_state[name] = full.reshape(full.size)
        return arr

    def _make_plan(self) -> _Plan:
        """Everything a step needs that depends only on the hyperparameters."""
        self._check_consistency()
        plan = _Plan()
        plan.hp = SimpleNamespace(**self.hyperparameters)
        plan.prepare = self.rule.prepare
        plan.common, plan.common_scalars = self._common()
        plan.active = self.rule.active(self)
        plan.states = tuple(self._state_array(name) for name in plan.active)
        if self._device:
            plan.backend = "cuda"
        else:
            n_bytes = backends.traffic_bytes(self._flat_params.nbytes, len(plan.active))
            plan.backend = backends.select(n_bytes, self.backend)
        plan.loops = {}
        self.__dict__["_plan"] = plan
        return plan

    def _loop(self, plan: _Plan, flags: tuple[bool, ...]):
        if self._device:
            from fastgd import cuda as _cuda

            loop = _cuda.kernel_launcher(self, plan, flags)
        else:
            dtype = self._dtype.name
            loop = backends.cpu_loop(
                self.rule, plan.common, flags, plan.active, plan.backend, dtype
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
                g = grad
            else:
                g = _checks.check_grad(grad, self.params)
            launch = ()
        plan = self._plan or self._make_plan()
        t = self.steps + 1
        host = self._host.copy()
        flags, scalars = plan.prepare(plan.hp, t, host)
        loop = plan.loops.get(flags) or self._loop(plan, flags)
        loop(self._flat_params, g, *plan.states, plan.common_scalars + scalars, *launch)
        self._host = host
        self.steps = t

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

            state = {k: _cuda.to_host(v) for k, v in self.state.items()}
        else:
            state = {k: v.copy() for k, v in self.state.items()}
        return {
            "format": STATE_FORMAT,
            "rule": self.rule.name,
            "dtype": self._dtype.name,
            "shape": self._shape,
            "step": int(self.steps),
            "hyperparameters": self.hyperparameters,
            "state": state,
            "host": dict(self._host),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a snapshot made by :meth:`state_dict` (validated before any change).

        Raises
        ------
        ValueError
            Wrong format, rule, shape, step, unknown state names or bad
            hyperparameters.
        TypeError
            Wrong dtype.
        """
        sd = state_dict
        if not isinstance(sd, dict) or sd.get("format") != STATE_FORMAT:
            raise ValueError(f"not a fastgd state dict (expected format {STATE_FORMAT!r})")
        missing = {"rule", "dtype", "shape", "step", "hyperparameters", "state"} - set(sd)
        if missing:
            raise ValueError(f"state dict lacks {sorted(missing)}")
        if sd["rule"] != self.rule.name:
            raise ValueError(
                f"state dict is for rule {sd['rule']!r}, this optimizer is {self.rule.name!r}"
            )
        dtype = self._dtype
        if np.dtype(sd["dtype"]) != dtype:
            raise TypeError(f"state dict dtype {sd['dtype']} differs from params dtype {dtype}")
        if tuple(sd["shape"]) != self._shape:
            raise ValueError(f"state dict shape {tuple(sd['shape'])} != params shape {self._shape}")
        step = sd["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"invalid step {step!r}")
        arrays = {}
        for name, arr in sd["state"].items():
            if name not in self.rule.states:
                raise ValueError(f"unknown state {name!r} for rule {self.rule.name!r}")
            arr = np.asarray(arr)
            if arr.dtype != dtype:
                raise TypeError(f"state {name!r} has dtype {arr.dtype}, expected {dtype}")
            if arr.shape != self._shape:
                raise ValueError(f"state {name!r} has shape {arr.shape}, expected {self._shape}")
            arrays[name] = arr
        hp = sd["hyperparameters"]
        unknown = set(hp) - set(self.hyperparameter_names())
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}")
        values = {n: _find(type(self), n).check(n, v) for n, v in hp.items()}
        # relations between hyperparameters: try them, and put the old ones back if refused
        old = self.hyperparameters
        self.__dict__.update(values)
        try:
            self._check_consistency()
        except ValueError:
            self.__dict__.update(old)
            raise
        # everything is valid: now change the optimizer
        for name in list(self.state):
            if name not in arrays:
                del self.state[name], self._flat_state[name]
        for name, arr in arrays.items():
            target = self._state_array(name)  # existing arrays are reused in place
            if self._device:
                from fastgd import cuda as _cuda

                _cuda.copy_to_device(arr, target)
            else:
                target[...] = arr.reshape(-1)
        self._host = dict(sd.get("host", {}))
        self.steps = int(step)
        self._plan = None

    # -- copies -------------------------------------------------------------------

    def __getstate__(self) -> dict:
        # compiled loops and flat views are rebuilt, so copies update their own arrays
        state = self.__dict__.copy()
        for key in ("_plan", "_flat_params", "_flat_state"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plan = None
        if self._device:
            from fastgd import cuda as _cuda

            self._flat_params = _cuda.flat_view(self.params, "params")
            self._flat_state = {k: _cuda.flat_view(v, k) for k, v in self.state.items()}
        else:
            self._flat_params = self.params.reshape(-1)
            self._flat_state = {k: v.reshape(-1) for k, v in self.state.items()}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return (
            f"{type(self).__name__}(params: {self._shape} {self._dtype.name}, "
            f"{hp}, backend={self.backend!r})"
        )


def _check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"Invalid backend {backend!r} (expected one of {BACKENDS})")


def _find(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise KeyError(name)  # pragma: no cover


def rule_of(cls) -> Rule:
    return RULES[cls.rule.name]
