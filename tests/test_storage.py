"""The element conversions of :mod:`fastgd.storage`, bit for bit.

References: ``ml_dtypes`` casts for bfloat16 and NumPy's casts for float16
(both round to nearest even); NaNs are compared as "any NaN". Stochastic
rounding is checked for its support (one of the two neighbours), its mean
and its reproducibility. The compiled loops are checked for a plain bitcast:
no call and no float64 in the x86 assembly and in sm_90 PTX.
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import ml_dtypes
import numba
import numpy as np
import pytest
from numba import types

from fastgd import storage

BF16 = np.dtype(ml_dtypes.bfloat16)
SEED, STEP = 1234, 7


def _cpu(name):
    return storage.cpu_function(name)


bf16_to_f32 = _cpu("bf16_bits_to_f32")
f32_to_bf16 = _cpu("f32_to_bf16_bits")
f32_to_bf16_sr = _cpu("f32_to_bf16_bits_sr")
f16_to_f32 = _cpu("f16_bits_to_f32")
f32_to_f16 = _cpu("f32_to_f16_bits")
f32_to_f16_sr = _cpu("f32_to_f16_bits_sr")


@numba.njit(error_model="numpy")
def widen_bf16(u, out):
    for i in range(u.shape[0]):
        out[i] = bf16_to_f32(u[i])


@numba.njit(error_model="numpy")
def widen_f16(u, out):
    for i in range(u.shape[0]):
        out[i] = f16_to_f32(u[i])


@numba.njit(error_model="numpy")
def round_bf16(x, out):
    for i in range(x.shape[0]):
        out[i] = f32_to_bf16(x[i])


@numba.njit(error_model="numpy")
def round_f16(x, out):
    for i in range(x.shape[0]):
        out[i] = f32_to_f16(x[i])


def _sr_loop(convert, parallel):
    @numba.njit(error_model="numpy", parallel=parallel)
    def loop(x, seed, step, out):
        for i in numba.prange(x.shape[0]):
            out[i] = convert(x[i], seed, step, i)

    return loop


SR = {
    ("bf16", False): _sr_loop(f32_to_bf16_sr, False),
    ("bf16", True): _sr_loop(f32_to_bf16_sr, True),
    ("f16", False): _sr_loop(f32_to_f16_sr, False),
    ("f16", True): _sr_loop(f32_to_f16_sr, True),
}


def _apply(loop, x, out_dtype, *args):
    out = np.empty(x.shape, out_dtype)
    loop(x, *args, out)
    return out


# -- inputs -----------------------------------------------------------------------


def _sweep_bits():
    """A strided sweep over all float32 patterns (step 65,521, a prime), every
    pattern whose low half is 0x7FFF, 0x8000 or 0x8001 (bfloat16 ties and
    near-ties), and float16 ties and near-ties: the midpoints of all adjacent
    finite float16 values (and of 65504 and 2**16), +-1 ulp of float32."""
    sweep = np.arange(0, 2**32, 65_521, dtype=np.uint64).astype(np.uint32)
    high = np.arange(2**16, dtype=np.uint32) << 16
    ties = (high[:, None] | np.array([0x7FFF, 0x8000, 0x8001], np.uint32)).ravel()
    h16 = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    h16 = np.append(h16, 2.0**16)
    mid = ((h16[:-1] + h16[1:]) / 2).astype(np.float32).view(np.uint32)
    f16_ties = np.concatenate([mid - 1, mid, mid + 1])
    f16_ties = np.concatenate([f16_ties, f16_ties | 0x80000000])
    return np.concatenate([sweep, ties, f16_ties, _specials().view(np.uint32)])


def _specials():
    f32 = np.finfo(np.float32)
    bits = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # +-0, +-inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7FFFFFFF,  # NaNs
        0x7F7FFFFF, 0xFF7FFFFF,  # float32 max
        0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001,  # largest -> bf16 max; smallest -> inf
        0x00000001, 0x80000001, 0x00000002, 0x007FFFFF, 0x00800000, 0x00008000,
        0x00007FFF, 0x00018000,  # float32 subnormals: bf16 ties around the smallest
    ]  # fmt: skip
    f16 = [65504.0, 65519.99, 65520.0, 65536.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14,
           2.0**-14 - 2.0**-25, 6e-8, 1e-8, 2.0**-26]  # fmt: skip
    bits = np.array(bits, np.uint32).view(np.float32)
    more = np.array(f16 + [float(f32.tiny), float(f32.smallest_subnormal)], np.float32)
    return np.concatenate([bits, more, -more])


SWEEP = _sweep_bits().view(np.float32)
ALL16 = np.arange(2**16, dtype=np.uint32).astype(np.uint16)


def _assert_same_bits(ours, ref, what):
    """Equal bit patterns, except that any NaN matches any NaN."""
    ours_nan, ref_nan = np.isnan(ours), np.isnan(ref)
    assert np.array_equal(ours_nan, ref_nan), f"{what}: NaN mismatch"
    u = ours.view(f"u{ours.itemsize}")[~ours_nan]
    r = ref.view(f"u{ref.itemsize}")[~ref_nan]
    bad = np.flatnonzero(u != r)
    assert bad.size == 0, f"{what}: {bad.size} differ, first {hex(u[bad[0]])} != {hex(r[bad[0]])}"


# -- round to nearest even ---------------------------------------------------------


def test_sweep_covers_ties_and_specials():
    assert SWEEP.size > 400_000
    assert np.isnan(SWEEP).any() and np.isinf(SWEEP).any()


def test_bf16_to_f32_all_patterns():
    ours = _apply(widen_bf16, ALL16, np.float32)
    _assert_same_bits(ours, ALL16.view(BF16).astype(np.float32), "bf16 -> f32")
    nan = np.isnan(ours)
    assert np.array_equal(ours.view(np.uint32)[nan] >> 16, ALL16[nan])  # payload kept


def test_f32_to_bf16_rne():
    ours = _apply(round_bf16, SWEEP, np.uint16).view(BF16)
    with np.errstate(invalid="ignore"):
        ref = SWEEP.astype(BF16)
    _assert_same_bits(ours, ref, "f32 -> bf16")
    nan = np.isnan(SWEEP)
    bits = ours.view(np.uint16)[nan]
    assert np.all(bits & 0x0040), "NaN must come out quiet"
    assert np.array_equal(bits >> 15, SWEEP.view(np.uint32)[nan] >> 31), "NaN keeps its sign"


def test_bf16_round_trip_all_patterns():
    widened = _apply(widen_bf16, ALL16, np.float32)
    back = _apply(round_bf16, widened, np.uint16)
    finite = ~np.isnan(widened)
    assert np.array_equal(back[finite], ALL16[finite])


bf16_lo, bf16_hi = _cpu("bf16_lo"), _cpu("bf16_hi")
f32_to_bf16_word, bf16_pack = _cpu("f32_to_bf16_word"), _cpu("bf16_pack")


@numba.njit(error_model="numpy")
def widen_words(w, out):
    for j in range(w.shape[0]):
        out[2 * j] = bf16_lo(w[j])
        out[2 * j + 1] = bf16_hi(w[j])


@numba.njit(error_model="numpy")
def round_words(x, out):
    for j in range(out.shape[0]):
        out[j] = bf16_pack(f32_to_bf16_word(x[2 * j]), f32_to_bf16_word(x[2 * j + 1]))


def test_bf16_words_equal_two_elements():
    """The pair loops' conversions (two bfloat16 per 32-bit word, the even
    element in the low half) equal ml_dtypes on every bfloat16 pattern in
    either half and on the float32 sweep, compiled and in plain Python."""
    rng = np.random.default_rng(5)
    halves = np.stack([ALL16, rng.permutation(ALL16)], axis=1).ravel()  # each pattern in each half
    halves = np.concatenate([halves, halves.reshape(-1, 2)[:, ::-1].ravel()])
    words = halves.view(np.uint32)
    widened = np.empty(halves.size, np.float32)
    widen_words(words, widened)
    _assert_same_bits(widened, halves.view(BF16).astype(np.float32), "word -> 2 x f32")
    x = SWEEP[: SWEEP.size // 2 * 2]
    out = np.empty(x.size // 2, np.uint32)
    round_words(x, out)
    with np.errstate(invalid="ignore"):
        ref = x.astype(BF16)
    _assert_same_bits(out.view(BF16), ref, "2 x f32 -> word")
    for k in range(0, x.size, 7919):  # plain Python: the same formulas
        k -= k % 2
        word = storage.bf16_pack(storage.f32_to_bf16_word(x[k]), storage.f32_to_bf16_word(x[k + 1]))
        assert int(word) == int(out[k // 2])
        assert storage.bf16_hi(word).view(np.uint32) == int(out[k // 2]) & 0xFFFF0000


@pytest.mark.parametrize(
    "bits, expected",
    [(0x7F7F7FFF, 0x7F7F), (0x7F7F8000, 0x7F80), (0xFF7F8000, 0xFF80), (0x7F800001, 0x7FC0),
     (0xFF800001, 0xFFC0), (0x00008000, 0x0000), (0x00018000, 0x0002), (0x00008001, 0x0001)],
)  # fmt: skip
def test_bf16_edges(bits, expected):
    x = np.array([bits], np.uint32).view(np.float32)
    assert _apply(round_bf16, x, np.uint16)[0] == expected
    assert storage.f32_to_bf16_bits(x[0]) == expected


def test_f16_to_f32_all_patterns():
    ours = _apply(widen_f16, ALL16, np.float32)
    _assert_same_bits(ours, ALL16.view(np.float16).astype(np.float32), "f16 -> f32")


def test_f32_to_f16_rne():
    ours = _apply(round_f16, SWEEP, np.uint16).view(np.float16)
    with np.errstate(over="ignore"):
        ref = SWEEP.astype(np.float16)
    _assert_same_bits(ours, ref, "f32 -> f16")
    nan = np.isnan(SWEEP)
    assert np.all(ours.view(np.uint16)[nan] & 0x0200), "NaN must come out quiet"


def test_f16_round_trip_all_patterns():
    widened = _apply(widen_f16, ALL16, np.float32)
    back = _apply(round_f16, widened, np.uint16)
    finite = ~np.isnan(widened)
    assert np.array_equal(back[finite], ALL16[finite])


def test_plain_python_matches_compiled():
    """The same functions run as plain Python (as under the CUDA simulator)."""
    x = SWEEP[::97]
    for name, loop in [("f32_to_bf16_bits", round_bf16), ("f32_to_f16_bits", round_f16)]:
        python = np.array([getattr(storage, name)(v) for v in x], np.uint16)
        assert np.array_equal(python, _apply(loop, x, np.uint16)), name
    u = ALL16[::13]
    for name, loop in [("bf16_bits_to_f32", widen_bf16), ("f16_bits_to_f32", widen_f16)]:
        python = np.array([getattr(storage, name)(v) for v in u], np.float32)
        assert np.array_equal(python.view(np.uint32), _apply(loop, u, np.float32).view(np.uint32))
    for kind, name in [("bf16", "f32_to_bf16_bits_sr"), ("f16", "f32_to_f16_bits_sr")]:
        python = [getattr(storage, name)(v, SEED, STEP, i) for i, v in enumerate(x)]
        compiled = _apply(SR[kind, False], x, np.uint16, SEED, STEP)
        assert np.array_equal(np.array(python, np.uint16), compiled), name


def test_nan_bits_are_exact():
    """Every NaN: ``(u >> 16) | 0x0040`` exactly (quiet bit set, sign and top
    payload kept), to nearest and stochastically, compiled and plain."""
    payload = np.array([1, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x3F8000, 0x3FFFFF, 0x400000,
                        0x7F7FFF, 0x7FFFFF], np.uint32)  # fmt: skip
    u = np.concatenate([0x7F800000 | payload, 0xFF800000 | payload])
    x = u.view(np.float32)
    expected = ((u >> 16) | 0x0040).astype(np.uint16)
    assert np.array_equal(_apply(round_bf16, x, np.uint16), expected)
    assert np.array_equal(_apply(SR["bf16", False], x, np.uint16, SEED, STEP), expected)
    assert np.array_equal(np.array([storage.f32_to_bf16_bits(v) for v in x]), expected)
    python_sr = [storage.f32_to_bf16_bits_sr(v, SEED, STEP, i) for i, v in enumerate(x)]
    assert np.array_equal(np.array(python_sr, np.uint16), expected)


def _fmix32_reference(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _random_bits_reference(seed, step, index):
    """:func:`fastgd.storage.random_bits` as documented, on Python integers:
    the index's high word before its low word."""
    h = 0x9E3779B9
    words = (seed & 0xFFFFFFFF, seed >> 32, step & 0xFFFFFFFF, step >> 32, index >> 32,
             index & 0xFFFFFFFF)  # fmt: skip
    for word in words:
        h = _fmix32_reference(h ^ word)
    return h


RANDOM_BITS = _cpu("random_bits")


@numba.njit(error_model="numpy")
def _random_bits_compiled(seed, step, offset, out):
    for i in range(out.shape[0]):
        out[i] = RANDOM_BITS(seed, step, offset + i)


@pytest.mark.parametrize(
    "seed, step, index, bits",
    [(0, 0, 0, 0xE88CF1A4), (1234, 7, 0, 0x60102353), (1234, 7, 2**32 + 5, 0x2781D005),
     (2**64 - 1, 2**64 - 1, 2**64 - 1, 0xDDBBF5D1), (2**40 + 1234, 2**33 + 7, 12345, 0xB5B3CD0B),
     (2**63 - 1, 1, 2**32 - 1, 0xBE5DBAB1), (5, 2**32, 2**40 + 2**32 - 3, 0xECBFDDB3)],
)  # fmt: skip
def test_random_bits_are_pinned(seed, step, index, bits):
    """The hash's output never changes (checkpointed runs replay the same
    roundings): the documented formula, plain Python and compiled (32-bit
    ``fmix32`` there), vectorized loops across the 2**32 index boundary, and
    the prefix/word split the loops use."""
    assert _random_bits_reference(seed, step, index) == bits
    assert storage.random_bits(seed, step, index) == bits
    prefix = storage.random_prefix(seed, step, index >> 32)
    assert storage.random_word(prefix, index & 0xFFFFFFFF) == bits
    assert storage.random_word(prefix, index) == bits  # only the low word counts
    if seed < 2**63 and step < 2**63:
        offset = max(index - 40, 0) if index < 2**63 else 2**32 - 40
        out = np.empty(80, np.uint64)
        _random_bits_compiled(seed, step, offset, out)
        ref = [_random_bits_reference(seed, step, offset + i) for i in range(80)]
        assert out.tolist() == ref


def test_compiled_hash_multiplies_in_32_bits():
    """``fmix32`` is ``i32`` arithmetic in the compiled code: its constants
    appear as ``i32`` (signed), never as 64-bit multipliers."""
    kernel = _scale_kernel(*CASES["bf16_sr"])
    sig = (types.Array(types.uint16, 1, "C", readonly=True), types.Array(types.uint16, 1, "C"))
    kernel.compile(sig)
    llvm = kernel.inspect_llvm(sig)
    assert "-2048144789" in llvm and "-1028477387" in llvm  # 0x85EBCA6B, 0xC2B2AE35
    assert "2246822507" not in llvm and "3266489909" not in llvm


def test_float64_input_is_a_typing_error():
    @numba.njit
    def f(x):
        return f32_to_bf16(x)

    with pytest.raises(numba.core.errors.TypingError, match="take a float32 value"):
        f(1.0)


def test_unknown_function_name():
    with pytest.raises(ValueError, match="unknown storage function 'bf16'"):
        storage.cpu_function("bf16")


# -- stochastic rounding -----------------------------------------------------------


def _neighbours(x, rne_bits, to_float):
    """Magnitude bits of the 16-bit values just below and above ``|x|``."""
    mag = rne_bits.astype(np.int64) & 0x7FFF
    value = np.abs(to_float(rne_bits).astype(np.float64))
    target = np.abs(x.astype(np.float64))
    lo = np.where(value > target, mag - 1, mag)
    hi = np.where(value < target, mag + 1, mag)
    return lo, hi


FORMATS = {
    "bf16": (round_bf16, lambda b: b.view(BF16).astype(np.float32)),
    "f16": (round_f16, lambda b: b.view(np.float16).astype(np.float32)),
}


@pytest.mark.parametrize("kind", ["bf16", "f16"])
def test_sr_gives_a_neighbour(kind):
    rne, to_float = FORMATS[kind]
    x = SWEEP[~np.isnan(SWEEP)]
    sr = _apply(SR[kind, False], x, np.uint16, SEED, STEP)
    lo, hi = _neighbours(x, _apply(rne, x, np.uint16), to_float)
    mag = sr.astype(np.int64) & 0x7FFF
    assert np.all((mag == lo) | (mag == hi))
    signed = (sr >> 15) == (x.view(np.uint32) >> 31)
    assert np.all(signed | (mag == 0))
    exact = lo == hi
    assert np.array_equal(sr[exact], _apply(rne, x[exact], np.uint16))
    assert np.any(mag[~exact] == lo[~exact]) and np.any(mag[~exact] == hi[~exact])
    nan = SWEEP[np.isnan(SWEEP)]
    assert np.isnan(to_float(_apply(SR[kind, False], nan, np.uint16, SEED, STEP))).all()


@pytest.mark.parametrize(
    "kind, value",
    [("bf16", 1.0 + 0.3 * 2**-7), ("bf16", 2.0 - 0.3 * 2**-7), ("bf16", -3.14159265),
     ("bf16", 1.0e-3), ("bf16", 7.7e-40), ("f16", 0.1), ("f16", -1000.3), ("f16", 3.3e-5),
     ("f16", -2.0e-7)],
)  # fmt: skip
def test_sr_is_unbiased(kind, value):
    """The mean of 100,000 roundings (indices 0..99,999) is within 3e-5 relative
    of the value, as torchao tests it, and within 5 standard errors of the
    binomial; only the second holds for subnormals, where the gap is a large
    fraction of the value."""
    n = 100_000
    x = np.full(n, value, np.float32)
    out = _apply(SR[kind, False], x, np.uint16, SEED, STEP)
    decoded = FORMATS[kind][1](out).astype(np.float64)
    lo, hi = np.unique(decoded)
    target = float(x[0])
    p = (target - lo) / (hi - lo)
    assert 0 < p < 1
    error = abs(decoded.mean() - target)
    assert error <= 5 * (hi - lo) * np.sqrt(p * (1 - p) / n)
    tiny = np.finfo(np.float32 if kind == "bf16" else np.float16).tiny
    if abs(target) >= tiny:
        assert error <= 3e-5 * abs(target)


@pytest.mark.parametrize("kind", ["bf16", "f16"])
def test_sr_is_reproducible(kind):
    x = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
    serial = _apply(SR[kind, False], x, np.uint16, SEED, STEP)
    parallel = _apply(SR[kind, True], x, np.uint16, SEED, STEP)
    assert np.array_equal(serial, parallel)
    assert np.array_equal(serial, _apply(SR[kind, False], x, np.uint16, SEED, STEP))
    for seed, step in [(SEED + 1, STEP), (SEED, STEP + 1), (2**40 + SEED, STEP)]:
        other = _apply(SR[kind, False], x, np.uint16, seed, step)
        assert np.mean(other != serial) > 0.2, (seed, step)


def test_random_bits():
    n = 1 << 16
    r = np.array([storage.random_bits(SEED, STEP, i) for i in range(0, n)], np.uint64)
    assert r.max() < 2**32 and len(np.unique(r)) == n  # a bijection of the low index word
    ones = np.unpackbits(r.astype(">u4").view(np.uint8)).reshape(n, 32).mean(axis=0)
    assert np.all(np.abs(ones - 0.5) < 0.01)
    assert storage.random_bits(SEED, STEP, 2**32) != storage.random_bits(SEED, STEP, 0)
    # another block (index high word 2): a bijection of the low word too, other values
    other = np.empty(n, np.uint64)
    _random_bits_compiled(SEED, STEP, 2**33, other)
    assert len(np.unique(other)) == n and np.mean(other != r) > 0.99


# -- generated code: a bitcast, no call, no float64 -------------------------------

F64_X86 = re.compile(
    r"\b(v?(add|sub|mul|div|sqrt|min|max|movap|movup|mov|and|or|xor|blendv?|round)(sd|pd)"
    r"|v?cvt\w*2(sd|pd)|v?cvt(sd|pd)2\w*|vfn?m(add|sub)\w*(sd|pd)|v?ucomisd|v?comisd)\b"
)


def _scale_kernel(load, store, *extra):
    if extra:

        @numba.njit(error_model="numpy")
        def kernel(src, dst):
            for i in range(src.shape[0]):
                dst[i] = store(load(src[i]) * np.float32(1.0001), SEED, STEP, i)

    else:

        @numba.njit(error_model="numpy")
        def kernel(src, dst):
            for i in range(src.shape[0]):
                dst[i] = store(load(src[i]) * np.float32(1.0001))

    return kernel


CASES = {
    "bf16": (bf16_to_f32, f32_to_bf16),
    "bf16_sr": (bf16_to_f32, f32_to_bf16_sr, "sr"),
    "f16": (f16_to_f32, f32_to_f16),
    "f16_sr": (f16_to_f32, f32_to_f16_sr, "sr"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpu_loop_is_call_free_float32(case):
    kernel = _scale_kernel(*CASES[case])
    sig = (types.Array(types.uint16, 1, "C", readonly=True), types.Array(types.uint16, 1, "C"))
    kernel.compile(sig)
    src = np.arange(0, 2**16, 7, dtype=np.uint32).astype(np.uint16)
    kernel(src, np.empty_like(src))
    assert "double" not in kernel.inspect_llvm(sig), "float64 in the LLVM IR"
    asm = kernel.inspect_asm(sig)
    # the compiled function itself, not its CPython wrapper (which calls the runtime)
    name = kernel.overloads[sig].fndesc.mangled_name
    body = asm.split(f"\n{name}:", 1)[1]
    body = re.split(r"\n(?:_ZN7cpython|cfunc\.)\S*:", body, maxsplit=1)[0]
    instructions = [ln.split()[0] for ln in body.splitlines() if ln.startswith("\t") and ln.split()]
    assert instructions and not any(op.startswith("call") for op in instructions)
    assert not [op for op in instructions if F64_X86.fullmatch(op)]
    assert any(op.startswith("vmulps") or op.startswith("mulss") for op in instructions)


@pytest.fixture
def hopper(monkeypatch):
    cuda = pytest.importorskip("numba.cuda")
    if storage._cuda_simulator():  # pragma: no cover
        pytest.skip("PTX compilation is not available under the simulator")
    import numba.cuda.dispatcher as dispatcher

    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"numba.cuda's NVVM is unavailable: {exc}")
    monkeypatch.setattr(
        dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=(9, 0))
    )
    return cuda


def _cuda_scale_kernel(cuda, load, store, sr):
    if sr:

        def kernel(src, dst, seed, step):
            start, stride = cuda.grid(1), cuda.gridsize(1)
            for i in range(start, src.shape[0], stride):
                dst[i] = store(load(src[i]) * np.float32(1.0001), seed, step, i)

    else:

        def kernel(src, dst, seed, step):
            start, stride = cuda.grid(1), cuda.gridsize(1)
            for i in range(start, src.shape[0], stride):
                dst[i] = store(load(src[i]) * np.float32(1.0001))

    return kernel


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_ptx_is_call_free_float32(hopper, case):
    names = {
        "bf16": ("bf16_bits_to_f32", "f32_to_bf16_bits"),
        "bf16_sr": ("bf16_bits_to_f32", "f32_to_bf16_bits_sr"),
        "f16": ("f16_bits_to_f32", "f32_to_f16_bits"),
        "f16_sr": ("f16_bits_to_f32", "f32_to_f16_bits_sr"),
    }[case]
    load, store = (storage.cuda_function(n) for n in names)
    kernel = _cuda_scale_kernel(hopper, load, store, case.endswith("sr"))
    u16 = types.Array(types.uint16, 1, "C")
    ptx, _ = hopper.compile_ptx(kernel, (u16, u16, types.int64, types.int64), cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    assert not re.search(r"\.f64\b", ptx), "float64 in the PTX"
    assert not re.search(r"\bcall(\.uni)?\b", ptx), "a call in the PTX"
    assert re.search(r"\bmul(\.rn)?\.f32\b", ptx)
    assert re.search(r"\bmov\.b32\s+%f\d+,\s*%r\d+", ptx)  # the bitcast: a register move


def test_import_does_not_load_numba_cuda():
    import subprocess

    code = "import sys, fastgd.storage; print('numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
