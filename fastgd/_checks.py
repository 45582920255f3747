"""Input validation shared by the optimizers and the functional API.

Every check runs before anything is written, so a rejected call leaves
parameters and state untouched.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: The 16-bit storage dtypes the optimizer classes also take (by name:
#: ``ml_dtypes.bfloat16`` and NumPy's float16).
LOW_DTYPE_NAMES = ("bfloat16", "float16")


def is_cuda_array(x) -> bool:
    """True for CUDA arrays: ``__cuda_array_interface__`` (CuPy, numba, torch CUDA
    tensors) or numba's own device arrays (also the simulator's)."""
    if isinstance(x, np.ndarray):
        return False
    try:
        if hasattr(x, "__cuda_array_interface__"):
            return True
    except RuntimeError:  # torch raises this for CUDA tensors that require grad
        return True
    return type(x).__module__.startswith("numba.cuda")


def check_dtype(dtype, what: str, low: bool = False) -> np.dtype:
    """float32 or float64 (with ``low``, also bfloat16 and float16) or ``TypeError``."""
    dtype = np.dtype(dtype)
    if low and dtype.name in LOW_DTYPE_NAMES:
        return dtype
    if dtype not in FLOAT_DTYPES:
        kind = "complex" if dtype.kind == "c" else str(dtype)
        also = " (or bfloat16, float16)" if low else ""
        raise TypeError(
            f"{what} must be float32 or float64{also}, got {kind}"
            + (" (complex numbers are not supported)" if dtype.kind == "c" else "")
        )
    return dtype


def host_array(x, what: str) -> np.ndarray:
    """``x`` as a plain ``ndarray`` view of the same memory.

    ndarray subclasses are handled exactly: ``np.matrix``, ``np.memmap`` and
    the like are updated through a base-class view of their memory (a
    ``matrix`` would otherwise stay 2-D when flattened). Masked arrays are
    refused: the mask has no meaning to an optimizer, and using the data
    under it would apply masked values silently.
    """
    if type(x) is np.ndarray:
        return x
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{what} must be a NumPy array (or a CUDA array), got {type(x).__name__}; "
            "fastgd updates it in place, so it cannot convert it for you"
        )
    refuse_masked(x, what)
    return x.view(np.ndarray)


def refuse_masked(x, what: str) -> None:
    """Masked arrays are refused everywhere: ``np.asarray`` would drop the mask
    and the data under it would be used silently."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{what} is a masked array; fastgd does not apply masks: pass a plain "
            "array (.filled(...) with the values you mean)"
        )


def real_array(value, what: str, dtype_error: type[Exception] = TypeError) -> np.ndarray:
    """``value`` (array_like) as a plain ndarray of integers or floats, without a
    copy where it already is one; subclasses through a base-class view.

    Raises ``TypeError`` for masked arrays, ``dtype_error`` for other dtypes
    (bool, complex, object, strings) and ``ValueError`` for ragged sequences,
    each naming ``what``.
    """
    refuse_masked(value, what)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists, arrays on a GPU
        raise ValueError(f"{what} must be an array of real numbers ({e})") from None
    if arr.dtype.kind not in "iuf":
        why = "complex numbers are not supported, got" if arr.dtype.kind == "c" else "got"
        hint = " (None or mixed types?)" if arr.dtype.kind == "O" else ""
        raise dtype_error(
            f"{what} must be real (integers or floats); {why} dtype {arr.dtype}{hint}"
        )
    return arr if type(arr) is np.ndarray else arr.view(np.ndarray)


def check_params(x, what: str = "params", low: bool = False) -> np.ndarray:
    """Validate a host parameter (or state) array that will be updated in place;
    return it as a plain ``ndarray`` (see :func:`host_array`). ``low``: accept
    16-bit storage dtypes too."""
    x = host_array(x, what)
    check_dtype(x.dtype, what, low)
    if not x.flags.c_contiguous:
        raise TypeError(f"{what} must be C-contiguous; use np.ascontiguousarray first")
    if not x.flags.writeable:
        raise TypeError(f"{what} is read-only; fastgd updates it in place")
    return x


def check_grad(g, params: np.ndarray, what: str = "grad") -> np.ndarray:
    """Validate a gradient against its (plain ndarray) parameters; return it as
    a 1-D view.

    ``Optimizer.step`` checks the common case (a 1-D ndarray gradient) inline
    and calls this for everything else.
    """
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, got {type(g).__name__}")
    g = host_array(g, what)
    if g.dtype != params.dtype:
        if g.dtype not in FLOAT_DTYPES:
            check_dtype(g.dtype, what, low=True)
        raise TypeError(
            f"{what} dtype {g.dtype} differs from params dtype {params.dtype}; "
            "fastgd never casts silently"
        )
    if g.shape != params.shape:
        raise ValueError(f"{what} shape {g.shape} does not match params shape {params.shape}")
    if not g.flags.c_contiguous:
        raise TypeError(f"{what} must be C-contiguous; use np.ascontiguousarray first")
    check_overlap(g, params, what, "params")
    return g.reshape(-1)


def check_overlap(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    """Refuse ``a`` and ``b`` (C-contiguous, same shape and dtype) sharing part
    of their memory. The exact same memory is fine: every loop reads element
    ``i`` of all its inputs before it writes element ``i``."""
    if np.may_share_memory(a, b) and not same_memory(a, b):
        raise ValueError(
            f"{a_name} and {b_name} overlap in memory without being the same array "
            f"(e.g. shifted views of one buffer); the in-place update would read "
            f"elements it has already written. Pass a copy of {a_name}."
        )


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Exactly the same bytes: same start, size and layout."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.nbytes == b.nbytes
        and a.strides == b.strides
    )


def memory_root(x):
    """The object that owns ``x``'s memory (the end of its ``.base`` chain)."""
    while isinstance(x, np.ndarray) and x.base is not None:
        x = x.base
    return x


# -- hyperparameters ---------------------------------------------------------


def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float64, such as 10**400
        digits = math.floor(abs(int(value)).bit_length() * math.log10(2)) + 1
        raise ValueError(
            f"Invalid {name}: an integer of about {digits} digits is beyond float64's range"
        ) from None
    if math.isnan(value):
        raise ValueError(f"{name} must be a real number, not NaN")
    return value + 0.0  # -0.0 -> 0.0


def nonnegative(name: str, value, allow_inf: bool = False) -> float:
    value = _real(name, value)
    if allow_inf and value == math.inf:
        return value
    if not 0.0 <= value < math.inf:
        bound = ">= 0 (inf allowed)" if allow_inf else "finite and >= 0"
        raise ValueError(f"Invalid {name}: {value} (must be {bound})")
    return value


def positive(name: str, value) -> float:
    """A finite real number > 0 (a scale such as ``eps`` or a division factor)."""
    value = nonnegative(name, value)
    if value == 0.0:
        raise ValueError(f"Invalid {name}: {value} (must be finite and > 0)")
    return value


def real(name: str, value) -> float:
    value = _real(name, value)
    if math.isinf(value):
        raise ValueError(f"Invalid {name}: {value} (must be finite)")
    return value


def unit_interval(name: str, value) -> float:
    """A value in [0, 1) (a decay rate such as a beta)."""
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name}: {value} (must be in [0, 1))")
    return value


def closed_unit_interval(name: str, value) -> float:
    value = _real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid {name}: {value} (must be in [0, 1])")
    return value


def betas(name: str, value) -> tuple[float, float]:
    try:
        b1, b2 = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}") from None
    return unit_interval(f"{name}[0]", b1), unit_interval(f"{name}[1]", b2)


#: The largest step count: bias corrections raise ``beta ** t`` with ``t`` a
#: Python int, which must convert to a float.
MAX_STEP = 2**63 - 1


def integer(name: str, value, minimum: int = 0, maximum: int | None = MAX_STEP) -> int:
    """An int (Python or NumPy, not a bool) in ``[minimum, maximum]``: counts,
    sizes and step numbers (``maximum=None``: no upper bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {show(value)}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"an integer in [{minimum}, 2**63 - 1]"
        raise ValueError(f"Invalid {name}: {show(value)} (must be {bound})")
    return value


def show(value) -> str:
    """``repr(value)``, short for integers beyond int64 (which may not even have a str)."""
    if isinstance(value, numbers.Integral) and abs(int(value)) > MAX_STEP:
        return f"an integer of {abs(int(value)).bit_length()} bits"
    return repr(value)


def rng(seed) -> np.random.Generator:
    """``np.random.default_rng(seed)``, with errors that name ``seed``:
    ``TypeError`` for a seed of the wrong kind (a bool, a float, a string),
    ``ValueError`` for a negative one. A Generator is used as it is."""
    accepted = (
        "seed must be None, an int >= 0, a sequence of such ints, or a SeedSequence, "
        "BitGenerator or Generator"
    )
    if isinstance(seed, (bool, np.bool_)):  # an int to numpy, but surely a mistake
        raise TypeError(f"{accepted}; got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{accepted}; got {show(seed)} ({e})") from None


def flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(*options: str):
    def check(name: str, value) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"Invalid {name}: {value!r} (expected one of {options})")
        return value

    return check
