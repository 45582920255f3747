"""How an optimizer stores its arrays: the parameters' and state's dtypes, and
how 16-bit parameters are rounded after the update.

The loops always compute in float32 (float64 for float64 parameters); 16-bit
arrays are read and written as their ``uint16`` bits by the loops that
:class:`fastgd.backends.Storage` describes. This module turns the user's
constructor arguments into that description, and refuses what no loop stores.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from fastgd import _checks, backends

#: The constructor arguments that choose storage, not arithmetic: every
#: optimizer class takes them; adapters that do not offer them leave them out.
STORAGE_OPTIONS = ("state_dtype", "kahan", "stochastic_rounding", "seed")
#: The name of the Kahan compensation buffer in ``state`` and ``state_dict()``
#: (optimi's name).
KAHAN = "kahan_comp"


def bfloat16() -> np.dtype:
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def kind(dtype: np.dtype) -> str:
    """The :data:`fastgd.backends.STORAGE_KINDS` entry of an array of ``dtype``."""
    return dtype.name if dtype.name in _checks.LOW_DTYPE_NAMES else "native"


def is_low(dtype) -> bool:
    """True for bfloat16 and float16."""
    return np.dtype(dtype).name in _checks.LOW_DTYPE_NAMES


def as_dtype(value) -> np.dtype | None:
    """``value`` (a name such as ``"bfloat16"``, a dtype or a scalar type) as a
    NumPy dtype if it names a floating-point type, else None."""
    if isinstance(value, str) and value == "bfloat16":
        return bfloat16()
    if isinstance(value, (bool, np.bool_)):
        return None  # np.dtype(True) is bool
    try:
        dtype = np.dtype(value)
    except TypeError:
        return None
    return dtype if dtype.kind == "f" or dtype.name == "bfloat16" else None


@dataclass(frozen=True)
class Precision:
    """The resolved storage of one optimizer.

    ``compute``: the loops' dtype (float32 for 16-bit parameters); ``state``:
    the state arrays' dtype; ``storage``: the loops' :class:`backends.Storage`;
    ``seed``: the stochastic rounding's seed (None without it).
    """

    compute: np.dtype
    state: np.dtype
    storage: backends.Storage
    seed: int | None

    @property
    def kahan(self) -> bool:
        return self.storage.rounding == "kahan"

    @property
    def stochastic(self) -> bool:
        return self.storage.rounding == "stochastic"

    @property
    def bits(self) -> bool:
        """The parameters (and gradients) are 16-bit, passed to the loops as ``uint16``."""
        return self.storage.params != "native"


def resolve(params: np.dtype, state_dtype=None, kahan=False,
            stochastic_rounding=False, seed=None) -> Precision:  # fmt: skip
    """The :class:`Precision` of parameters of dtype ``params`` with these
    constructor arguments; ``ValueError``/``TypeError`` naming the argument
    for anything no loop stores."""
    kahan = _checks.flag("kahan", kahan)
    stochastic = _checks.flag("stochastic_rounding", stochastic_rounding)
    low = is_low(params)
    compute = np.dtype(np.float32) if low else params
    if state_dtype is None:
        state = params
    else:
        state = as_dtype(state_dtype)
        if state is None:
            raise TypeError(
                'state_dtype must be None, "float32", "bfloat16" or "float16" (or the dtype), '
                f"got {state_dtype!r}"
            )
    if state != params and not (is_low(state) or state == compute):
        raise ValueError(
            f"state_dtype={state.name} with {params.name} parameters: the state is stored in "
            "the parameters' dtype, in float32 for 16-bit parameters, or in 16 bits (bfloat16, "
            "float16) for float32 parameters"
        )
    if state != params and is_low(state) and params == np.float64:
        raise ValueError(
            f"state_dtype={state.name} with float64 parameters: 16-bit state needs float32 "
            "(or 16-bit) parameters"
        )
    if kahan and stochastic:
        raise ValueError(
            "kahan=True and stochastic_rounding=True are two ways to store the parameters; "
            "choose one"
        )
    if (kahan or stochastic) and not low:
        which = "kahan=True" if kahan else "stochastic_rounding=True"
        raise ValueError(
            f"{which} rounds 16-bit parameters; {params.name} parameters are stored exactly "
            "as computed"
        )
    if seed is not None and not stochastic:
        raise ValueError("seed applies to stochastic_rounding=True only")
    if stochastic:
        seed = secrets.randbits(63) if seed is None else _checks.integer("seed", seed)
    rounding = "kahan" if kahan else "stochastic" if stochastic else "nearest"
    storage = backends.Storage(
        params=kind(params), grad=kind(params), state=kind(state), rounding=rounding
    )
    return Precision(compute=compute, state=state, storage=storage, seed=seed)


def describe(p: Precision) -> dict:
    """The ``storage`` entry of ``state_dict()``."""
    return {
        "state_dtype": p.state.name,
        "kahan": p.kahan,
        "stochastic_rounding": p.stochastic,
        "seed": p.seed,
    }


def checked_description(p: Precision, entry) -> int | None:
    """Validate a checkpoint's ``storage`` entry against this optimizer's
    :class:`Precision`; return its seed."""
    if not isinstance(entry, dict) or set(entry) != set(describe(p)):
        raise ValueError(
            f"state dict 'storage' must be a dict with keys {sorted(describe(p))}, got {entry!r}"
        )
    if entry["state_dtype"] != p.state.name:
        raise TypeError(
            f"state dict was saved with state_dtype={entry['state_dtype']}, this optimizer "
            f"stores {p.state.name}; fastgd never changes a state's precision silently"
        )
    for name, have in (("kahan", p.kahan), ("stochastic_rounding", p.stochastic)):
        if entry[name] is not have:
            raise ValueError(
                f"state dict was saved with {name}={entry[name]!r}, this optimizer has "
                f"{name}={have}; construct it with the checkpoint's storage options"
            )
    if p.stochastic:
        return _checks.integer("state dict seed", entry["seed"])
    if entry["seed"] is not None:
        raise ValueError(f"state dict has a seed ({entry['seed']!r}) without stochastic rounding")
    return None
