"""fastgd.clip against torch.nn.utils.clip_grad_norm_ / clip_grad_value_.

The norm is accumulated in float64 (torch accumulates float32 gradients in
float32), so the returned norm is checked against a float64 reference to
float64 accuracy and against torch to torch's own float32 summation error;
the clipping step is torch's, in the gradient's dtype, so given the same norm
the clipped gradient is bit-identical to torch's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastgd import config
from fastgd.clip import clip_grad_norm_, clip_grad_value_

torch = pytest.importorskip("torch")

NORM_TYPES = [1.0, 2.0, 3.5, math.inf]
SIZES = [1, 7, 1000, 300_000]  # 300k float64 = 2.4 MB: above PARALLEL_MIN_BYTES


def torch_clip_norm(g: np.ndarray, max_norm, norm_type, **kw):
    """torch's result on a copy: (clipped gradient, returned norm)."""
    p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
    p.grad = torch.from_numpy(g.copy())
    total = torch.nn.utils.clip_grad_norm_(p, max_norm, norm_type, **kw)
    return p.grad.numpy(), float(total)


def reference_norm(g: np.ndarray, norm_type) -> float:
    """The norm in float64 (torch on a float64 copy)."""
    return float(torch.linalg.vector_norm(torch.from_numpy(g.astype(np.float64)), norm_type))


def torch_scaled(g: np.ndarray, max_norm, total: float) -> np.ndarray:
    """torch's clipping step given the total norm (rounded to g's dtype)."""
    total = torch.tensor(total, dtype=torch.from_numpy(g).dtype)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return (torch.from_numpy(g.copy()) * coef).numpy()


def sample(n, dtype, seed=0, scale=1.0, shape=None):
    g = scale * np.random.default_rng(seed).standard_normal(n)
    return g.astype(dtype).reshape(shape if shape is not None else (n,))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p={p}")
@pytest.mark.parametrize("clips", [True, False], ids=["clipping", "no-clip"])
def test_clip_grad_norm_matches_torch(n, norm_type, clips, dtype):
    g = sample(n, dtype, seed=n)
    exact = reference_norm(g, norm_type)
    max_norm = 0.5 * exact if clips else 2.0 * exact + 1.0
    expected, torch_total = torch_clip_norm(g, max_norm, norm_type)
    before = g.copy()

    total = clip_grad_norm_(g, max_norm, norm_type)

    assert isinstance(total, float)
    assert total == pytest.approx(exact, rel=1e-13)
    # torch's float32 sums drift by up to ~1e-4 relative at 300k elements
    rtol = 2e-4 if dtype == np.float32 else 1e-12
    assert total == pytest.approx(torch_total, rel=rtol)
    np.testing.assert_allclose(g, expected, rtol=rtol, atol=0)
    np.testing.assert_array_equal(g, torch_scaled(before, max_norm, total))
    if not clips:
        np.testing.assert_array_equal(g, before)
    else:
        assert reference_norm(g, norm_type) <= max_norm * (1 + 1e-6)


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p={p}")
def test_parallel_path_equals_serial(norm_type, dtype, monkeypatch):
    g = sample(100_003, dtype, seed=3)
    g_serial = g.copy()
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 1 << 62)
    n_serial = clip_grad_norm_(g_serial, 1.0, norm_type)
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 0)
    n_parallel = clip_grad_norm_(g, 1.0, norm_type)
    assert n_parallel == pytest.approx(n_serial, rel=1e-13)
    np.testing.assert_allclose(g, g_serial, rtol=2e-7 if dtype == np.float32 else 1e-15)


def test_any_shape(dtype):
    g = sample(24, dtype, shape=(2, 3, 4))
    expected, total_t = torch_clip_norm(g, 0.3, 2.0)
    total = clip_grad_norm_(g, 0.3)
    assert g.shape == (2, 3, 4)
    assert total == pytest.approx(total_t, rel=1e-6)
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_zero_d_array(dtype):
    g = np.array(-4.0, dtype=dtype)
    assert clip_grad_norm_(g, 1.0) == 4.0
    assert g == pytest.approx(-1.0, rel=1e-6)


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p={p}")
def test_empty(norm_type, dtype):
    g = np.zeros(0, dtype)
    assert clip_grad_norm_(g, 1.0, norm_type) == 0.0  # torch raises for p = inf
    assert clip_grad_value_(g, 1.0) is None
    if norm_type != math.inf:
        assert torch_clip_norm(g, 1.0, norm_type)[1] == 0.0


def test_zero_gradient_and_zero_max_norm(dtype):
    g = np.zeros(5, dtype)
    assert clip_grad_norm_(g, 0.0) == 0.0
    np.testing.assert_array_equal(g, 0)
    g = sample(5, dtype)
    expected, _ = torch_clip_norm(g, 0.0, 2.0)
    clip_grad_norm_(g, 0.0)
    np.testing.assert_array_equal(g, expected)
    np.testing.assert_array_equal(g, 0)


def test_string_inf_norm(dtype):
    g = np.array([1.0, -3.0, 2.0], dtype)
    assert clip_grad_norm_(g, 10.0, "inf") == 3.0


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=lambda p: f"p={p}")
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_like_torch(norm_type, bad, dtype):
    g = sample(11, dtype)
    g[4] = bad
    expected, total_t = torch_clip_norm(g, 1.0, norm_type)
    total = clip_grad_norm_(g, 1.0, norm_type)
    np.testing.assert_equal(total, total_t)  # nan == nan, inf == inf
    np.testing.assert_array_equal(g, expected)  # NaN everywhere, or 0 with NaN at inf


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_error_if_nonfinite(bad, dtype):
    g = sample(11, dtype)
    g[2] = bad
    before = g.copy()
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(g, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch_clip_norm(g, 1.0, 2.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(g, before)


def test_error_if_nonfinite_uses_the_dtype_norm():
    # finite in float64, beyond the float32 range: torch's float32 norm is inf
    g = np.full(4, 3e38, np.float32)
    before = g.copy()
    with pytest.raises(RuntimeError):
        clip_grad_norm_(g, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(g, before)
    assert clip_grad_norm_(g, 1.0) == pytest.approx(6e38, rel=1e-6)
    np.testing.assert_array_equal(g, 0)  # coef = 1 / inf, as in torch
    g64 = np.full(4, 3e38)
    assert clip_grad_norm_(g64, 1.0, error_if_nonfinite=True) == pytest.approx(6e38)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("clip_value", [0.0, 0.1, 1.0, np.inf])
def test_clip_grad_value_matches_torch(n, clip_value, dtype):
    g = sample(n, dtype, seed=n)
    g[0] = np.nan
    if n > 2:
        g[1], g[2] = np.inf, -np.inf
    p = torch.nn.Parameter(torch.zeros(n, dtype=torch.from_numpy(g).dtype))
    p.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_(p, clip_value)
    assert clip_grad_value_(g, clip_value) is None
    np.testing.assert_array_equal(g, p.grad.numpy())
    assert np.isnan(g[0])


def test_clip_grad_value_parallel(dtype, monkeypatch):
    g = sample(10_001, dtype, seed=5)
    expected = np.clip(g, dtype.type(-0.5), dtype.type(0.5))
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 0)
    clip_grad_value_(g, 0.5)
    np.testing.assert_array_equal(g, expected)


def test_clip_grad_value_rounds_bound_to_dtype():
    g = np.array([0.1, 0.2, -0.3], np.float32)
    clip_grad_value_(g, 0.1)
    np.testing.assert_array_equal(g, np.float32([0.1, 0.1, -0.1]))


# -- errors ----------------------------------------------------------------

BAD_ARRAYS = {
    "list": [1.0, 2.0],
    "int": np.arange(4),
    "float16": np.ones(4, np.float16),
    "complex": np.ones(4, np.complex128),
    "strided": np.ones(8)[::2],
    "fortran": np.asfortranarray(np.ones((3, 4))),
    "readonly": np.ones(4),
}
BAD_ARRAYS["readonly"].setflags(write=False)


@pytest.mark.parametrize("g", BAD_ARRAYS.values(), ids=BAD_ARRAYS.keys())
@pytest.mark.parametrize("fn", [clip_grad_norm_, clip_grad_value_])
def test_bad_arrays_raise_type_error(g, fn):
    before = np.array(g, copy=True)
    with pytest.raises(TypeError):
        fn(g, 1.0)
    np.testing.assert_array_equal(np.asarray(g), before)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_norm=-1.0),
        dict(max_norm=np.nan),
        dict(max_norm="1"),
        dict(max_norm=True),
        dict(max_norm=1.0, norm_type=0.0),
        dict(max_norm=1.0, norm_type=-2.0),
        dict(max_norm=1.0, norm_type=np.nan),
        dict(max_norm=1.0, norm_type=-np.inf),
        dict(max_norm=1.0, norm_type="fro"),
        dict(max_norm=1.0, norm_type=None),
    ],
    ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_bad_arguments_raise_value_error(kwargs):
    g = np.array([3.0, 4.0])
    with pytest.raises(ValueError):
        clip_grad_norm_(g, **kwargs)
    np.testing.assert_array_equal(g, [3.0, 4.0])


@pytest.mark.parametrize("clip_value", [-0.1, np.nan, "1", None])
def test_bad_clip_value(clip_value):
    g = np.array([3.0, -4.0])
    with pytest.raises(ValueError):
        clip_grad_value_(g, clip_value)
    np.testing.assert_array_equal(g, [3.0, -4.0])


def test_max_norm_inf_changes_nothing(dtype):
    g = sample(9, dtype)
    before = g.copy()
    clip_grad_norm_(g, math.inf)
    np.testing.assert_array_equal(g, before)
