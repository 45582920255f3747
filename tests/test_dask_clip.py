"""fastgd.dask's clipping and gradient measures against fastgd.clip, minimize's
kernel and torch on the same data as NumPy arrays.

The reductions are one pass per chunk with the NumPy kernels, the chunks'
partial results added in float64 (exactly): the norms equal fastgd.clip's one
pass over the whole array up to the summation order (a few ulps for float64
data; to the last bit where every partial sum is exact), and the clipping is
fastgd.clip's kernel with torch's coefficient, so equal norms give
bit-identical clipped arrays (float32: the norm rounded to float32 is the same).
"""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pytest
import torch

from fastgd import clip
from fastgd.dask import clip_grad_norm_, clip_grad_value_, gradient_measures
from fastgd.dask._reductions import first_nonfinite, scale_to_norm
from fastgd.driver._measures import _gradient_measures

pytestmark = pytest.mark.usefixtures("dask_client")

NORM_TYPES = [1.0, 2.0, 3.5, math.inf]
SEEDS = {1.0: 11, 2.0: 12, 3.5: 13, math.inf: 14}
#: the summation orders differ (chunks vs SIMD lanes of one pass): float64 sums
#: of 1200 squares agree to a few ulps
SUM_ULPS = 4
SHAPE, CHUNKS = (40, 30), (15, 12)  # 3 x 3 blocks, uneven


def sample(dtype, seed=0, scale=1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(SHAPE)).astype(dtype)


def ulps(a: float, b: float) -> float:
    return abs(a - b) / np.spacing(max(abs(a), abs(b)))


def torch_clip_norm(g: np.ndarray, max_norm, norm_type):
    p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
    p.grad = torch.from_numpy(g.copy())
    total = torch.nn.utils.clip_grad_norm_(p, max_norm, norm_type)
    return p.grad.numpy(), float(total)


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p={p}")
@pytest.mark.parametrize("clips", [True, False], ids=["clipping", "no-clip"])
def test_clip_grad_norm_matches_fastgd_clip_and_torch(norm_type, clips, dtype):
    g = sample(dtype, seed=SEEDS[norm_type])
    exact = float(torch.linalg.vector_norm(torch.from_numpy(g.astype(np.float64)), norm_type))
    max_norm = 0.5 * exact if clips else 2.0 * exact + 1.0
    gd = da.from_array(g, chunks=CHUNKS)

    clipped, total = clip_grad_norm_(gd, max_norm, norm_type)

    expected = g.copy()
    numpy_total = clip.clip_grad_norm_(expected, max_norm, norm_type)
    assert isinstance(total, float)
    assert ulps(total, numpy_total) <= (0 if norm_type == math.inf else SUM_ULPS)
    assert total == pytest.approx(exact, rel=1e-14)
    assert isinstance(clipped, da.Array) and clipped.chunks == gd.chunks
    assert clipped.dtype == dtype
    out = clipped.compute()
    if total == numpy_total or dtype == np.float32:  # the same coefficient
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_array_max_ulp(out, expected, maxulp=SUM_ULPS)
    torch_out, torch_total = torch_clip_norm(g, max_norm, norm_type)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    assert total == pytest.approx(torch_total, rel=rtol)
    np.testing.assert_allclose(out, torch_out, rtol=rtol, atol=0)
    np.testing.assert_array_equal(gd.compute(), g)  # the input is not modified
    if not clips:
        assert clipped is gd  # coefficient 1: nothing to compute


@pytest.mark.parametrize("norm_type", [1.0, 2.0, math.inf], ids=lambda p: f"p={p}")
def test_norm_is_exact_where_every_partial_sum_is(norm_type, dtype):
    # small integers: every sum is exact, so the norms agree to the last bit
    g = np.random.default_rng(5).integers(-20, 21, size=SHAPE).astype(dtype)
    clipped, total = clip_grad_norm_(da.from_array(g, chunks=CHUNKS), 10.0, norm_type)
    expected = g.copy()
    assert total == clip.clip_grad_norm_(expected, 10.0, norm_type)
    np.testing.assert_array_equal(clipped.compute(), expected)


def test_clip_grad_norm_non_finite_as_fastgd_clip():
    g = sample(np.float64, seed=2)
    g[3, 4] = np.nan
    clipped, total = clip_grad_norm_(da.from_array(g, chunks=CHUNKS), 1.0)
    assert math.isnan(total)
    assert np.all(np.isnan(clipped.compute()))  # torch: a NaN coefficient
    g[3, 4] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(da.from_array(g, chunks=CHUNKS), 1.0, error_if_nonfinite=True)
    clipped, total = clip_grad_norm_(da.from_array(g, chunks=CHUNKS), 1.0, "inf")
    assert total == math.inf
    expected = g.copy()
    clip.clip_grad_norm_(expected, 1.0, "inf")
    np.testing.assert_array_equal(clipped.compute(), expected)


def test_clip_grad_value_matches_fastgd_clip(dtype):
    g = sample(dtype, seed=4, scale=3.0)
    g[0, :3] = [np.nan, np.inf, -np.inf]
    gd = da.from_array(g, chunks=CHUNKS)
    out = clip_grad_value_(gd, 1.25)
    expected = g.copy()
    clip.clip_grad_value_(expected, 1.25)
    assert out.dtype == dtype and out.chunks == gd.chunks
    np.testing.assert_array_equal(out.compute(), expected)
    assert np.nanmax(np.abs(expected)) == 1.25
    np.testing.assert_array_equal(gd.compute(), g)
    assert clip_grad_value_(gd, math.inf) is gd


def test_scale_to_norm_uses_the_given_norm():
    g = sample(np.float32, seed=6)
    gd = da.from_array(g, chunks=CHUNKS)
    expected = g.copy()
    clip._clip_serial(expected.reshape(-1), 123.0, 2.0)  # fastgd.clip's kernel, that norm
    np.testing.assert_array_equal(scale_to_norm(gd, 123.0, 2.0).compute(), expected)
    assert scale_to_norm(gd, 1.0, 2.0) is gd


@pytest.mark.parametrize("l1", [0.0, 0.3])
def test_gradient_measures_match_minimizes_kernel(l1, dtype):
    x = sample(dtype, seed=7)
    x[x < -1.0] = 0.0  # zeros: the subgradient's other case
    g = sample(dtype, seed=8)
    finite, optimality, l2 = gradient_measures(
        da.from_array(x, chunks=CHUNKS), da.from_array(g, chunks=CHUNKS), l1
    )
    ref = _gradient_measures(x.reshape(-1), g.reshape(-1), l1)
    assert finite is True and ref[0]
    assert optimality == ref[1]  # a maximum: exact
    assert ulps(l2, ref[2]) <= SUM_ULPS
    assert l2 == pytest.approx(float(np.linalg.norm(g.astype(np.float64))), rel=1e-14)
    if l1 == 0.0:
        assert optimality == float(np.max(np.abs(g)))
    g[39, 29] = np.inf
    assert gradient_measures(da.from_array(x, CHUNKS), da.from_array(g, CHUNKS), l1)[0] is False


def test_first_nonfinite_is_the_first_in_c_order():
    x = np.zeros(SHAPE)
    assert first_nonfinite(da.from_array(x, chunks=CHUNKS)) is None
    x[20, 3] = np.nan  # a later block in column order, an earlier one in C order
    x[16, 25] = np.inf
    x[35, 0] = np.nan
    i = first_nonfinite(da.from_array(x, chunks=CHUNKS))
    assert i == int(np.flatnonzero(~np.isfinite(x))[0]) == 16 * 30 + 25


def test_refusals_are_fastgd_clips():
    gd = da.from_array(sample(np.float64), chunks=CHUNKS)
    for bad, kwargs in [
        ((-1.0,), {}),
        ((math.nan,), {}),
        ((True,), {}),
        ((1.0, 0.0), {}),
        ((1.0, "two"), {}),
        ((1.0,), {"error_if_nonfinite": "yes"}),
    ]:
        with pytest.raises(ValueError) as ours:
            clip_grad_norm_(gd, *bad, **kwargs)
        with pytest.raises(ValueError) as theirs:
            clip.clip_grad_norm_(np.zeros(3), *bad, **kwargs)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(gd, -0.5)
    with pytest.raises(TypeError, match="must be a dask array"):
        clip_grad_norm_(np.zeros(3), 1.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        clip_grad_value_(da.zeros(3, dtype=np.int64), 1.0)
    unknown = da.from_array(np.ones(4), chunks=2)
    unknown = unknown[unknown > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        clip_grad_norm_(unknown, 1.0)
    with pytest.raises(ValueError, match="same shape and chunks"):
        gradient_measures(gd, gd.rechunk(10), 0.0)


def test_works_without_a_distributed_client_too():
    # the reductions are plain dask graphs: any scheduler computes them
    g = np.arange(-6.0, 6.0)
    with dask.config.set(scheduler="synchronous"):
        clipped, total = clip_grad_norm_(da.from_array(g, chunks=5), 1.0)
        out = clipped.compute()
    expected = g.copy()
    assert total == clip.clip_grad_norm_(expected, 1.0)
    np.testing.assert_array_equal(out, expected)
