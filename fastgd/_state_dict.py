"""``state_dict`` / ``load_state_dict`` of the optimizer classes: the
checkpoint format and its validation (every field checked before anything
changes)."""

from __future__ import annotations

import dataclasses

import numpy as np

from fastgd import _checks, _precision

STATE_FORMAT = "fastgd.state_dict/1"
_STATE_DICT_FIELDS = (
    "format", "rule", "dtype", "shape", "step", "hyperparameters", "state", "host", "storage",
)  # fmt: skip


class StateDict:
    """The checkpoint methods of :class:`fastgd.optim.Optimizer` (a mixin: it
    reads and writes the optimizer's attributes)."""

    def state_dict(self) -> dict:
        """A snapshot of the optimizer: plain NumPy arrays and Python scalars.

        Returns
        -------
        dict
            ``format``, ``rule``, ``dtype``, ``shape``, ``step`` (int),
            ``hyperparameters``, ``state`` (name -> array copy, host NumPy even
            for CUDA params, in the state's storage dtype; with ``kahan``
            also ``"kahan_comp"``), ``host`` (rule scalars such as NAdam's
            ``mu_product``) and ``storage`` (``state_dtype`` name, ``kahan``,
            ``stochastic_rounding``, ``seed``). Loading it into an optimizer
            of the same rule, shape, dtype and storage options and continuing
            gives bit-identical results.
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
            "storage": _precision.describe(self._precision),
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
        missing = set(_STATE_DICT_FIELDS) - set(sd) - {"storage"}  # optional: see below
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
        sd_dtype = None
        if isinstance(sd["dtype"], (str, np.dtype)):
            sd_dtype = _precision.as_dtype(sd["dtype"])
        if sd_dtype is None:
            raise TypeError(f"state dict 'dtype' {sd['dtype']!r} is not a dtype")
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
        # checkpoints made before the storage options existed hold the defaults
        storage = sd.get("storage", _precision.describe(_precision.resolve(dtype)))
        seed = _precision.checked_description(self._precision, storage)
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
            kahan = (_precision.KAHAN,) if self._precision.kahan else ()
            needed = (*active, *kahan, *rule.host)
            lacking = [n for n in needed if n not in arrays and n not in host]
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
        self._reseed(seed)
        self._plan = None

    def _reseed(self, seed: int | None) -> None:
        """Take the stochastic rounding's ``seed`` (a checkpoint's; validated),
        from the next step on."""
        self._precision = dataclasses.replace(self._precision, seed=seed)
        self._plan = None  # the plan holds the seed

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
        kahan = (_precision.KAHAN,) if self._precision.kahan else ()
        for name, arr in state.items():
            if name not in (*self.rule.states, *kahan):
                raise ValueError(
                    f"unknown state {name!r} for rule {self.rule.name!r} "
                    f"(expected some of {(*self.rule.states, *kahan)})"
                )
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"state {name!r} must be a NumPy array, got {type(arr).__name__}")
            arr = _checks.host_array(arr, f"state {name!r}")
            expected = self._dtype if name in kahan else self._precision.state
            if arr.dtype != expected:
                which = "state_dtype" if expected != self._dtype else "params dtype"
                raise TypeError(
                    f"state {name!r} has dtype {arr.dtype}, expected {expected} (this "
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


def _find(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise KeyError(name)  # pragma: no cover
