"""Private argument validators shared by the schedules (not public API)."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable, Mapping

import numpy as np

from fastgd import _checks as c

#: The largest integer argument (and step ``t``) accepted: int64's maximum,
#: far past any real run, and small enough that every float expression of it
#: stays finite.
_MAX_INT = 2**63 - 1


def _integers(name: str, values) -> tuple[int, ...]:
    """A sequence (any iterable but a string or mapping) of integers >= 0."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of integers >= 0, got {c.show(values)}")
    return tuple(c.integer(f"{name}[{i}]", m) for i, m in enumerate(values))


def _metric(value) -> float:
    """A monitored metric as a float (see :meth:`ReduceLROnPlateau.step`)."""
    if (
        isinstance(value, (bool, np.bool_, str, bytes, np.ma.MaskedArray))
        or (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real))
        or (isinstance(value, np.ndarray) and (value.ndim or value.dtype.kind not in "iuf"))
    ):
        raise TypeError(f"metric must be a real number (or a 0-d real array), got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"Invalid metric: {c.show(value)} (must be a real number within float64's range)"
        ) from None
    except (TypeError, ValueError):
        raise TypeError(
            f"metric must be a real number (or a 0-d real array), got {type(value).__name__}"
        ) from None


def _step_index(t) -> int:
    if type(t) is not int:
        if isinstance(t, (bool, np.bool_)):
            raise TypeError(f"the step t must be an integer >= 0, got {t!r}")
        try:
            t = operator.index(t)  # Python and NumPy integers, not floats
        except TypeError:
            raise TypeError(f"the step t must be an integer >= 0, got {c.show(t)}") from None
    if not 0 <= t <= _MAX_INT:
        raise ValueError(f"the step t must be >= 0 and < 2**63, got {c.show(t)}")
    return t
