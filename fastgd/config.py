"""Tunable knobs, in one place.

Every value can be overridden at run time by assigning to the attribute
(``fastgd.config.PARALLEL_MIN_BYTES = ...``) or, before ``import fastgd``,
through the environment variable named beside it. Both are validated: a bad
environment value makes ``import fastgd`` raise ``ValueError`` naming the
variable; a bad assignment raises ``ValueError`` (or ``TypeError`` for a value
of the wrong kind) naming the attribute and keeps the old value; assigning an
unknown upper-case name (a typo) raises ``AttributeError``.

Assignments take effect without re-creating anything: optimizers re-resolve
``backend="auto"`` at their next step, CUDA launches read the launch
configuration at each launch, and kernels compiled after a change of
``CACHE``/``CACHE_DIR`` go to the new place (kernels already compiled in this
process are kept).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import threading
import types

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# -- validators: one per setting, shared by the environment and assignments ---------


def _integer(name: str, value, *, minimum: int, maximum: int | None = None, multiple: int = 1):
    """``value`` as an int in ``[minimum, maximum]``, a multiple of ``multiple``.

    Integral floats (``3.5e5``) are accepted; bools, strings and other types
    raise ``TypeError``, out-of-range or fractional numbers ``ValueError``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral):
        value = float(value)
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum) or value % multiple:
        rule = f">= {minimum}"
        if maximum is not None:
            rule += f" and <= {maximum}"
        if multiple != 1:
            rule += f", a multiple of {multiple}"
        raise ValueError(f"{name} must be an integer {rule}, got {value}")
    return value


def _parallel_min_bytes(name: str, value) -> int:
    return _integer(name, value, minimum=0)


def _simulator() -> bool:
    """Whether numba's CUDA simulator is requested (``NUMBA_ENABLE_CUDASIM``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0").strip() not in ("", "0")


def _threads_per_block(name: str, value) -> int:
    # whole warps on a GPU; the simulator has no warps, and its tests use tiny
    # blocks so that a few elements span many blocks
    if _simulator():
        return _integer(name, value, minimum=1, maximum=1024)
    return _integer(name, value, minimum=32, maximum=1024, multiple=32)


def _blocks_per_sm(name: str, value) -> int:
    return _integer(name, value, minimum=1)


def _cache(name: str, value) -> bool:
    kind = type(value)
    if kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def _cache_dir(name: str, value) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r}")
    if not value.strip() or "\0" in value:
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return os.path.abspath(value)


#: attribute -> validator(attribute name, value) -> normalized value
_VALIDATORS = {
    "PARALLEL_MIN_BYTES": _parallel_min_bytes,
    "CACHE": _cache,
    "CACHE_DIR": _cache_dir,
    "CUDA_THREADS_PER_BLOCK": _threads_per_block,
    "CUDA_BLOCKS_PER_SM": _blocks_per_sm,
}


# -- the environment ----------------------------------------------------------------


def _env(variable: str) -> str | None:
    """The variable's value, or None if it is unset or empty."""
    value = os.environ.get(variable, "")
    return value if value.strip() else None


def _env_integer(variable: str, validator, default: int) -> int:
    text = _env(variable)
    if text is None:
        return default
    try:
        number = int(text.strip())
    except ValueError:
        try:
            number = float(text.strip())
        except ValueError:
            number = None
    try:
        if number is None:
            raise ValueError
        return validator(variable, number)
    except (TypeError, ValueError) as e:
        detail = str(e) if number is not None else f"{variable} must be an integer"
        raise ValueError(f"invalid environment variable {variable}={text!r}: {detail}") from None


def _env_flag(variable: str, default: bool) -> bool:
    text = _env(variable)
    if text is None:
        return default
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(
        f"invalid environment variable {variable}={text!r}: expected one of "
        "1/true/yes/on or 0/false/no/off (case-insensitive), or empty for the default"
    )


def _env_path(variable: str, default: str) -> str:
    text = os.environ.get(variable)
    if text is None or text == "":
        return default
    try:
        return _cache_dir(variable, text)
    except ValueError as e:
        raise ValueError(f"invalid environment variable {variable}={text!r}: {e}") from None


# -- the settings ---------------------------------------------------------------------

#: ``backend="auto"`` runs the multi-threaded (``prange``) loop when one step
#: moves at least this many bytes (reads plus writes of params, grad and
#: state), and the serial loop below it. Measured with ``fastgd bench
#: --crossover`` on the 2-core development machine (float32 Adam, 28 bytes per
#: element): parallel ties serial at about 0.28 MB per step (N = 1e4) and is
#: 1.4x faster at 0.9 MB (N = 31,623); at 0.35 MB it is about 10% faster, so
#: ``auto`` stays within 1.1x of the better loop on both sides. Override with
#: ``FASTGD_PARALLEL_MIN_BYTES`` (an integer >= 0; ``3.5e5`` is accepted).
PARALLEL_MIN_BYTES: int = _env_integer("FASTGD_PARALLEL_MIN_BYTES", _parallel_min_bytes, 350_000)

#: Keep compiled kernels on disk between processes (numba ``cache=True``).
#: ``FASTGD_DISABLE_CACHE=1`` (or true/yes/on; 0/false/no/off or empty keep
#: the cache) compiles afresh in every process, into a private temporary
#: directory removed at interpreter exit.
CACHE: bool = not _env_flag("FASTGD_DISABLE_CACHE", False)

#: Directory for the generated kernel modules and numba's cache files.
#: Defaults to ``$XDG_CACHE_HOME/fastgd`` (``~/.cache/fastgd``). If it cannot
#: be written, fastgd warns once and uses ``<tempdir>/fastgd-<uid>``.
CACHE_DIR: str = _env_path(
    "FASTGD_CACHE_DIR",
    os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fastgd",
    ),
)

#: CUDA launch configuration: threads per block (a multiple of 32, at most
#: 1024; any 1-1024 under the CUDA simulator), and blocks per streaming
#: multiprocessor for the grid-stride kernels. Read at every launch.
CUDA_THREADS_PER_BLOCK: int = _env_integer("FASTGD_CUDA_THREADS_PER_BLOCK", _threads_per_block, 256)
CUDA_BLOCKS_PER_SM: int = _env_integer("FASTGD_CUDA_BLOCKS_PER_SM", _blocks_per_sm, 8)

#: Bumped by every accepted assignment to a setting (and by fastgd itself
#: when the environment changes under it, e.g. in a forked child). Private:
#: objects that cache a decision derived from the settings (an optimizer's
#: plan) store it and re-decide when it differs.
_generation: int = 0

_generation_lock = threading.Lock()


def _bump() -> None:
    """Invalidate every cached decision derived from the settings."""
    global _generation
    with _generation_lock:
        _generation += 1


class _ConfigModule(types.ModuleType):
    """This module's type: validates assignments to the settings."""

    def __setattr__(self, name: str, value) -> None:
        validator = _VALIDATORS.get(name)
        if validator is not None:
            value = validator(name, value)
            super().__setattr__(name, value)
            _bump()
        elif name.isupper():
            raise AttributeError(
                f"fastgd.config has no setting {name!r} (known: {', '.join(_VALIDATORS)})"
            )
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in _VALIDATORS:
            raise AttributeError(f"fastgd.config.{name} cannot be deleted; assign a value")
        super().__delattr__(name)


sys.modules[__name__].__class__ = _ConfigModule
