"""Checks of :func:`fastgd.driver.minimize`'s arguments (options, ``x0``,
flags, seed, early stopping, callback) and of what user functions return."""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np
from scipy.optimize import OptimizeResult

from fastgd import _checks
from fastgd.driver._common import (
    _OPTION_HINTS,
    DEFAULT_OPTIONS,
    LBFGS_FTOL,
    LBFGS_OPTIONS,
    METHODS,
    is_dask_array,
)
from fastgd.driver._measures import _gradient_measures
from fastgd.optimizers import OPTIMIZERS


def _nonneg(name: str, value) -> float:
    """Non-negative, inf allowed (``clip_norm=inf`` means no clipping)."""
    return _checks.nonnegative(name, value, allow_inf=True)


def _method_name(method) -> str:
    if not isinstance(method, str):
        raise TypeError(
            f"method must be a str, one of {', '.join(METHODS)}; got {type(method).__name__} "
            f"{method!r}"
        )
    name = method.lower()
    if name not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}")
    return name


def _hyperparameter_names(method: str) -> tuple[str, ...]:
    if method == "nesterov":
        return ("lr", "momentum")
    if method == "lbfgs":
        return tuple(LBFGS_OPTIONS)
    # minimize's parameters are float32/float64: of the storage options only
    # state_dtype applies (16-bit state for float32 parameters)
    skip = ("params", "maximize", "l1", "l1_mode", "backend")
    skip += ("kahan", "stochastic_rounding", "seed")
    params = inspect.signature(OPTIMIZERS[method]).parameters
    return tuple(p for p in params if p not in skip)


def _split_options(method: str, options) -> tuple[dict, dict]:
    """``options`` -> (hyperparameters, driver options with defaults)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    names = _hyperparameter_names(method)
    unknown = [k for k in options if k not in names and k not in DEFAULT_OPTIONS]
    if unknown:
        hints = "".join(f"; {k}: {_OPTION_HINTS[k]}" for k in unknown if k in _OPTION_HINTS)
        raise ValueError(
            f"Unknown options {unknown} for method {method!r}{hints}. Method options: "
            f"{', '.join(names)}; driver options: {', '.join(DEFAULT_OPTIONS)}"
        )
    hyperparameters = {k: v for k, v in options.items() if k in names}
    defaults = DEFAULT_OPTIONS if method != "lbfgs" else {**DEFAULT_OPTIONS, "ftol": LBFGS_FTOL}
    driver = {k: options.get(k, v) for k, v in defaults.items()}
    if method == "lbfgs":
        hyperparameters = {
            "m": _integer("m", hyperparameters.get("m", LBFGS_OPTIONS["m"]), 1),
            "maxls": _integer("maxls", hyperparameters.get("maxls", LBFGS_OPTIONS["maxls"]), 1),
            "form": _checks.choice("two_loop", "vector_free")(
                "form", hyperparameters.get("form", LBFGS_OPTIONS["form"])
            ),
        }
    return hyperparameters, driver


def _integer(name: str, value, minimum: int = 0) -> int:
    return _checks.integer(name, value, minimum, maximum=None)


def _optional_callable(name: str, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def _early_stopping(settings) -> dict | None:
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise TypeError("early_stopping must be a dict(patience, min_delta, restore_best)")
    unknown = set(settings) - {"patience", "min_delta", "restore_best"}
    if unknown or "patience" not in settings:
        raise ValueError(
            "early_stopping takes dict(patience, min_delta=0.0, restore_best=True); "
            f"got {sorted(settings)}"
        )
    return {
        "patience": _integer("patience", settings["patience"], 1),
        "min_delta": _nonneg("min_delta", settings.get("min_delta", 0.0)),
        "restore_best": _checks.flag("restore_best", settings.get("restore_best", True)),
    }


def _dtype(dtype) -> np.dtype:
    """``minimize``'s ``dtype``: float32 or float64, float64 for None."""
    if dtype is None:
        return np.dtype(np.float64)
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    return _checks.check_dtype(dtype, "dtype")


def _nonfinite_x0(where, given, value, dtype) -> ValueError:
    """The error for ``x0``'s first non-finite element ``value`` (after the
    conversion to ``dtype``; ``given``: before it) at index ``where``."""
    if np.isfinite(given):
        return ValueError(f"x0 at index {where} is {given!r}, which overflows {dtype} (to {value})")
    return ValueError(
        f"x0 contains NaN/inf (first at index {where}: {value}); fun cannot be evaluated there"
    )


def _start(x0, dtype) -> np.ndarray:
    """A validated, C-contiguous copy of ``x0`` in ``dtype`` (float64 by default)."""
    dtype = _dtype(dtype)
    if isinstance(x0, (str, bytes)):
        raise TypeError(f"x0 must be an array_like of real numbers, got {_describe(x0)}")
    a = _checks.real_array(x0, "x0")
    if a.size == 0:
        raise ValueError(f"x0 is empty (shape {a.shape}); it needs at least one parameter")
    with np.errstate(over="ignore"):
        x = np.array(np.atleast_1d(a), dtype=dtype, order="C", copy=True)
    flat = x.reshape(-1)
    if not _gradient_measures(flat, flat, 0.0)[0]:
        i = int(np.flatnonzero(~np.isfinite(flat))[0])
        where = i if x.ndim == 1 else tuple(int(k) for k in np.unravel_index(i, x.shape))
        raise _nonfinite_x0(where, np.atleast_1d(a).reshape(-1)[i], flat[i], dtype)
    return x


def _real_scalar(value) -> float | None:
    """``value`` as a float if it is one real number (a NumPy scalar, or a 0-d or
    one-element array of ints or floats, too), else None. Bools, strings and
    complex numbers are not real numbers here."""
    if isinstance(value, (bool, np.bool_, str, bytes, complex, np.complexfloating)):
        return None
    if is_dask_array(value) and not value.size == 1:  # never computed (nan: unknown size)
        return None
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # an int beyond float64
            return math.inf if value > 0 else -math.inf
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        try:
            a = np.asarray(value)
        except Exception:  # e.g. a tensor on a GPU: try float() below
            a = None
        if a is not None:
            if a.size == 1 and a.dtype.kind in "fiu":
                return float(a.reshape(-1)[0])
            return None
    if hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def _describe(value) -> str:
    """What a user's function returned, for error messages."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    if is_dask_array(value):
        return (
            f"a dask array of shape {value.shape}, dtype {value.dtype} and chunks {value.chunksize}"
        )
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _callback(callback, copy=np.copy):
    """``callback`` as ``call(x_view, f, nit)``, following SciPy's two conventions;
    ``copy(x)`` makes the ``xk`` of ``callback(xk)`` (the identity for an
    immutable dask snapshot)."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        params = set()
    if params == {"intermediate_result"}:

        def call(x, f, nit):
            callback(intermediate_result=OptimizeResult(x=x, fun=f, nit=nit))

    else:

        def call(x, f, nit):
            callback(copy(x))

    return call
