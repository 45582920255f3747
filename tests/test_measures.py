"""The driver's per-step gradient measures (fastgd.driver._measures) against NumPy.

One pass per chunk of a fixed partition (a function of n alone), chunk sums
added in chunk order: the serial and the prange loop give the same bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastgd import config
from fastgd.driver._measures import _gradient_measures, _partials_parallel, _partials_serial

SIZES = [1, 7, 2047, 2049, 600_001]


def reference(x, g, l1):
    g64, x64 = g.astype(np.float64), x.astype(np.float64)
    if l1 > 0:
        sub = np.where(x64 > 0, np.abs(g64 + l1), np.where(x64 < 0, np.abs(g64 - l1), 0.0))
        sub = np.where(x64 == 0, np.maximum(np.abs(g64) - l1, 0.0), sub)
        optimality = float(sub.max())
    else:
        optimality = float(np.abs(g64).max())
    return bool(np.isfinite(g64).all()), optimality, float(np.sqrt(np.dot(g64, g64)))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("l1", [0.0, 0.25])
def test_measures_match_numpy_and_serial_equals_parallel(n, l1, dtype):
    rng = np.random.default_rng(n)
    g = rng.standard_normal(n).astype(dtype)
    x = rng.standard_normal(n).astype(dtype)
    x[::5] = 0.0  # the subgradient's x == 0 case
    part = np.zeros((3, 256))
    serial = _partials_serial(x, g, l1, part)
    assert _partials_parallel(x, g, l1, part) == serial  # bit for bit
    finite, optimality, l2 = _gradient_measures(x, g, l1)
    assert (finite, optimality, l2) == (serial[0], serial[1], math.sqrt(serial[2]))
    ref = reference(x, g, l1)
    assert finite is ref[0] is True
    assert optimality == ref[1]  # a maximum: exact
    assert l2 == pytest.approx(ref[2], rel=1e-14)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_element_in_any_chunk_is_seen(bad, monkeypatch):
    n = 600_001
    g = np.ones(n)
    for where in (0, n // 2, n - 1):
        h = g.copy()
        h[where] = bad
        for threshold in (0, 10**12):  # parallel, then serial
            monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", threshold)
            assert _gradient_measures(h, h, 0.0)[0] is False
