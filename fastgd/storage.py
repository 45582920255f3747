"""Low-precision storage: element conversions between float32 and 16-bit floats.

Parameters, gradients and optimizer state may be *stored* as bfloat16 (the
``ml_dtypes.bfloat16`` NumPy dtype) or IEEE float16, while the fused loops do
their arithmetic in float32: **load converts up, store rounds down**. Numba
has no bfloat16 type, so a loop reads and writes such storage as ``uint16``
arrays (``a.view(np.uint16)``) and converts each element with the functions
of this module, using integer bit operations only:

* ``bf16_bits_to_f32`` / ``f16_bits_to_f32``: exact widening to float32.
* ``f32_to_bf16_bits`` / ``f32_to_f16_bits``: round to nearest, ties to even
  (RNE), as IEEE 754, NumPy and ``ml_dtypes`` do: subnormals are rounded
  correctly, overflow gives an infinity, a NaN stays a quiet NaN of the same
  sign (it never rounds to an infinity).
* ``bf16_lo`` / ``bf16_hi`` / ``f32_to_bf16_word`` / ``bf16_pack``: the same
  bfloat16 conversions on two elements held in one 32-bit word, for the
  loops of :mod:`fastgd._pairs`.
* ``f32_to_bf16_bits_sr`` / ``f32_to_f16_bits_sr``: stochastic rounding, up
  with probability equal to the fraction of the gap between the two
  neighbouring 16-bit values, so the stored value is unbiased. The random
  bits come from :func:`random_bits`, a counter-based hash of ``(seed, step,
  index)``, not from a global generator: the same inputs give the same bits
  on the serial, ``prange`` and CUDA loops. ``f32_to_bf16_bits_sr_with`` /
  ``f32_to_f16_bits_sr_with`` take those bits ready-made: the CPU loops
  hash the seed, step and index high word once (:func:`random_prefix`) and
  each element's low index word (:func:`random_word`).

Each function is plain Python: the same source compiles with
``numba.njit(inline="always", error_model="numpy")`` for the CPU
(:func:`cpu_function`) and ``numba.cuda.jit(device=True)`` for CUDA
(:func:`cuda_function`), and runs as is under the CUDA simulator. The only
non-Python pieces are the float32 <-> uint32 reinterpretations, which compile
to one LLVM ``bitcast`` (a register move, no memory, no call) through an
``@intrinsic`` registered for each target: the CPU one when this module is
imported, the CUDA one on the first :func:`cuda_function` or
:func:`register_cuda` call, so importing this module never loads
``numba.cuda``. Float16 goes through integer operations too: numba's CPU
target cannot even load a float16 array element (``NotImplementedError`` in
numba 0.68), and one route gives the same bits on every target.

Integer types are chosen so that nothing is ever promoted to float64: the
conversions work on ``int64`` values holding 32-bit patterns (no overflow,
so numba's ``nsw`` flags are safe), the hash on ``uint64`` values holding
32-bit words, whose ``fmix32`` rounds (:func:`_absorb`) compiled code runs
in 32-bit integers (an intrinsic, as the bitcasts: numba would widen
``uint32`` arithmetic to 64 bits). The bfloat16 stores handle NaN with a
select before their final shift, so a vectorized loop (AVX-512: 16 elements
per instruction) narrows each value once, with one masked OR for the NaN case.
"""

from __future__ import annotations

import functools
import threading
import types as pytypes
from collections.abc import Callable

import numba
import numpy as np
from llvmlite import ir
from numba.core import errors, types
from numba.core import extending as _cpu_extending

__all__ = ["ELEMENT_FUNCTIONS", "cpu_function", "cuda_function", "register_cuda"]
__all__ += ["bf16_bits_to_f32", "f32_to_bf16_bits", "f32_to_bf16_bits_sr", "random_bits"]
__all__ += ["f16_bits_to_f32", "f32_to_f16_bits", "f32_to_f16_bits_sr"]
__all__ += ["f32_to_bf16_bits_sr_with", "f32_to_f16_bits_sr_with", "random_prefix", "random_word"]
__all__ += ["bf16_hi", "bf16_lo", "bf16_pack", "f32_to_bf16_word"]

# -- float32 <-> bits: plain Python here, one LLVM bitcast when compiled ----------


def _f32_bits(x):
    """The IEEE bits of float32 ``x`` as a non-negative integer < 2**32 (int64)."""
    return int(np.float32(x).view(np.uint32))


def _f32_from_bits(b):
    """The float32 whose IEEE bits are the low 32 bits of integer ``b``."""
    return np.uint32(int(b) & 0xFFFFFFFF).view(np.float32)


def _bits_typer(typingctx, x):
    """``int64(float32)``: zero-extended ``bitcast`` (the caller checked ``x``)."""

    def codegen(context, builder, sig, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))

    return types.int64(types.float32), codegen


def _from_bits_typer(typingctx, b):
    """``float32(integer)``: the low 32 bits, ``bitcast`` (the caller checked ``b``)."""

    def codegen(context, builder, sig, args):
        (value,) = args
        if b.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif b.bitwidth < 32:
            value = builder.zext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(b), codegen


def _select(c, a, b):
    """``a if c else b`` for integers ``a``, ``b``: in compiled code one LLVM
    ``select`` of their int64 values (no branch: numba's branches and phis
    inside a function inlined into another inlined one trip its IR checks)."""
    return a if c else b


def _select_typer(typingctx, c, a, b):
    """``int64(boolean, integer, integer)``: ``select`` (the caller checked the types)."""

    def codegen(context, builder, sig, args):
        cond, x, y = args
        x = context.cast(builder, x, sig.args[1], types.int64)
        y = context.cast(builder, y, sig.args[2], types.int64)
        return builder.select(cond, x, y)

    return types.int64(c, a, b), codegen


def _native_half() -> bool:
    """Whether compiled code converts float16 with the hardware (LLVM's
    ``fpext``/``fptrunc`` on ``half``): x86 with F16C (or NUMBA_CPU_NAME set
    to something else: then the integer route, which needs nothing). Other
    CPUs and numba's "generic" target take the integer route, which LLVM
    compiles without library calls. Both give the same bits but NaN payloads."""
    import numba

    if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES:
        return False
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("f16c", False))
    except Exception:  # pragma: no cover - a platform without the query
        return False


#: Convert float16 with the hardware in compiled code (see :func:`_native_half`).
_NATIVE_HALF = _native_half()


def _half_bits_to_f32(u):
    """float16 bits (an integer) -> float32, exactly. The integer route
    (:func:`_f16_widen_int`) here, under the CUDA simulator and in CUDA
    kernels; one ``fpext half`` (``vcvtph2ps``) in CPU code with
    :data:`_NATIVE_HALF`. The same bits: both quiet a signalling NaN."""
    return _f16_widen_int(u)


def _f32_to_half_bits(x):
    """float32 -> float16 bits rounded to nearest even (int64). The integer
    route (:func:`_f16_round_int`) here and in CUDA kernels; one ``fptrunc`` to
    ``half`` (``vcvtps2ph``) in CPU code with :data:`_NATIVE_HALF`. The same
    bits, NaNs included."""
    return _f16_round_int(x)


def _half_typer(typingctx, u):
    """``float32(integer)``: the low 16 bits as ``half``, widened by ``fpext``."""

    def codegen(context, builder, sig, args):
        (value,) = args
        if u.bitwidth > 16:
            value = builder.trunc(value, ir.IntType(16))
        elif u.bitwidth < 16:
            value = builder.zext(value, ir.IntType(16))
        return builder.fpext(builder.bitcast(value, ir.HalfType()), ir.FloatType())

    return types.float32(u), codegen


def _to_half_typer(typingctx, x):
    """``int64(float32)``: ``fptrunc`` to ``half`` (round to nearest even), its bits."""

    def codegen(context, builder, sig, args):
        half = builder.fptrunc(args[0], ir.HalfType())
        return builder.zext(builder.bitcast(half, ir.IntType(16)), ir.IntType(64))

    return types.int64(types.float32), codegen


def _register(extending) -> None:
    """Register this module's functions with one target's ``extending`` module:
    the two bitcasts and the 32-bit hash round as intrinsics, the rest callable
    from jit code as they are."""
    to_bits = extending.intrinsic(_bits_typer)
    from_bits = extending.intrinsic(_from_bits_typer)

    @extending.overload(_f32_bits, inline="always")
    def _f32_bits_impl(x):
        if x != types.float32:
            raise errors.TypingError(
                f"fastgd.storage: the float32 conversions take a float32 value, got {x}; "
                "cast it with numba.float32(...) first (float64 is never used here)"
            )
        return lambda x: to_bits(x)

    @extending.overload(_f32_from_bits, inline="always")
    def _f32_from_bits_impl(b):
        if not isinstance(b, types.Integer):
            raise errors.TypingError(f"fastgd.storage: bits must be an integer, got {b}")
        return lambda b: from_bits(b)

    half_in = extending.intrinsic(_half_typer)
    half_out = extending.intrinsic(_to_half_typer)

    if extending is _cpu_extending:  # CUDA kernels get the integer route (_CUDA_ELEMENTS)

        @extending.overload(_half_bits_to_f32, inline="always")
        def _half_bits_to_f32_impl(u):
            if not isinstance(u, types.Integer):
                raise errors.TypingError(f"fastgd.storage: bits must be an integer, got {u}")
            return lambda u: half_in(u)

        @extending.overload(_f32_to_half_bits, inline="always")
        def _f32_to_half_bits_impl(x):
            if x != types.float32:
                raise errors.TypingError(
                    f"fastgd.storage: the float32 conversions take a float32 value, got {x}"
                )
            return lambda x: half_out(x)

    absorb = extending.intrinsic(_absorb_typer)
    select = extending.intrinsic(_select_typer)

    @extending.overload(_select, inline="always")
    def _select_impl(c, a, b):
        if not (
            isinstance(c, types.Boolean)
            and isinstance(a, types.Integer)
            and isinstance(b, types.Integer)
        ):
            raise errors.TypingError(
                f"fastgd.storage: select takes (bool, int, int), got {c}, {a}, {b}"
            )
        return lambda c, a, b: select(c, a, b)

    @extending.overload(_absorb, inline="always")
    def _absorb_impl(h, w):
        if not (isinstance(h, types.Integer) and isinstance(w, types.Integer)):
            raise errors.TypingError(f"fastgd.storage: the hash takes integers, got {h}, {w}")
        return lambda h, w: absorb(h, w)

    helpers = (_f16_widen_int, _f16_round_int, *_CUDA_ELEMENTS.values())
    for f in (*helpers, *ELEMENT_FUNCTIONS.values()):
        extending.register_jitable(inline="always")(f)


# -- the counter-based hash ------------------------------------------------------

_M32 = np.uint64(0xFFFFFFFF)
_FMIX1 = np.uint64(0x85EBCA6B)
_FMIX2 = np.uint64(0xC2B2AE35)
_GOLDEN = np.uint64(0x9E3779B9)


def _absorb(h, w):
    """One round of the hash: MurmurHash3's ``fmix32`` of the 32-bit word
    ``(h ^ w) mod 2**32``, a bijection of 32-bit words for a fixed ``w``.

    ``h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16``
    (products modulo 2**32); ``h``, ``w``: integers, of which only the low 32
    bits count. Compiled code truncates both to ``i32`` first and runs the
    round in 32-bit integers (:func:`_absorb_typer`: ``i32`` multiplies,
    ``vpmulld`` when vectorized, not 64-bit ones), with the same result, a
    uint64 below 2**32.
    """
    h = (np.uint64(h) ^ np.uint64(w)) & _M32
    h = h ^ (h >> np.uint64(16))
    h = (h * _FMIX1) & _M32
    h = h ^ (h >> np.uint64(13))
    h = (h * _FMIX2) & _M32
    return h ^ (h >> np.uint64(16))


def _absorb_typer(typingctx, h, w):
    """``uint64(integer, integer)``: :func:`_absorb` in ``i32`` arithmetic."""

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        words = []
        for value, ty in zip(args, sig.args, strict=True):
            if ty.bitwidth > 32:
                value = builder.trunc(value, i32)
            elif ty.bitwidth < 32:
                value = builder.zext(value, i32)
            words.append(value)
        value = builder.xor(*words)
        for shift, factor in ((16, int(_FMIX1)), (13, int(_FMIX2))):
            value = builder.xor(value, builder.lshr(value, ir.Constant(i32, shift)))
            signed = factor - (1 << 32) if factor >= 1 << 31 else factor
            value = builder.mul(value, ir.Constant(i32, signed))
        value = builder.xor(value, builder.lshr(value, ir.Constant(i32, 16)))
        return builder.zext(value, ir.IntType(64))

    return types.uint64(h, w), codegen


def random_bits(seed, step, index):
    """32 random bits for element ``index`` of step ``step`` under ``seed``.

    The counter ``(seed, step, index)`` is six 32-bit words, absorbed as
    ``h = fmix32(h ^ w)`` (MurmurHash3's finalizer, :func:`_absorb`) from
    ``h = 0x9E3779B9`` in this order: seed low, seed high, step low, step
    high, index high, index low; the last ``h`` is the result. The first five
    are :func:`random_prefix`, the last :func:`random_word`. For a fixed seed,
    step and ``index >> 32`` the map from the index's low word to the result
    is a bijection of ``[0, 2**32)``: the ``2**32`` indices of a block get
    distinct values. A compiled loop computes the prefix once per block of
    ``2**32`` indices (almost always once per call), so an element costs one
    ``fmix32`` round (two 32-bit multiplies) of a 32-bit word.

    Parameters
    ----------
    seed, step, index : int
        Integers in ``[0, 2**64)`` (compiled code wraps other values modulo 2**64).

    Returns
    -------
    uint64
        A value in ``[0, 2**32)``.
    """
    i = np.uint64(index)
    return random_word(random_prefix(seed, step, i >> np.uint64(32)), i)


def random_prefix(seed, step, index_hi):
    """:func:`random_bits`' state after the seed, step and index-high words.

    ``index_hi``: ``index >> 32`` (only its low 32 bits count), the same for
    ``2**32`` consecutive indices. Returns a uint32 (a loop passes it to the
    per-element hash as a 32-bit value, not a 64-bit one to truncate).
    """
    s, t = np.uint64(seed), np.uint64(step)
    h = _absorb(_absorb(_GOLDEN, s), s >> np.uint64(32))
    h = _absorb(_absorb(h, t), t >> np.uint64(32))
    return np.uint32(_absorb(h, index_hi))


def random_word(prefix, index_lo):
    """:func:`random_bits` from its :func:`random_prefix` and the index's low
    word: ``fmix32(prefix ^ index_lo)``. Only the low 32 bits of ``index_lo``
    (any integer type) count, so a loop may pass its 64-bit counter as is;
    compiled, it is 32-bit arithmetic. Returns a uint64 below 2**32."""
    return _absorb(prefix, index_lo)


# -- bfloat16 ---------------------------------------------------------------------


def bf16_bits_to_f32(u):
    """Widen bfloat16 bits ``u`` (any integer type) to float32, exactly: ``u << 16``.

    bfloat16 is the top half of a float32 (1 sign, 8 exponent, 7 fraction
    bits), so every value, NaN payloads included, is kept.

    Returns
    -------
    float32
    """
    return _f32_from_bits(np.int64(u) << 16)


def f32_to_bf16_bits(x):
    """Round float32 ``x`` to bfloat16 bits, to nearest with ties to even.

    With ``u`` the float32 bits: ``(u + 0x7FFF + ((u >> 16) & 1)) >> 16`` (a
    carry out of the fraction bumps the exponent, so the largest values round
    to the infinity exactly as IEEE RNE does, and the subnormals, which share
    float32's exponent range, need nothing special). A NaN (``x != x``)
    becomes ``(u | 0x00400000) >> 16``: the quiet bit is set, so a payload
    only in the low half cannot turn it into an infinity; sign and top
    payload bits are kept. The NaN case is a select before the shift (one
    masked OR where LLVM vectorizes), not a second result to narrow and blend.

    Returns
    -------
    uint16
    """
    return np.uint16(f32_to_bf16_word(x) >> 16)


def f32_to_bf16_bits_sr(x, seed, step, index):
    """Round float32 ``x`` to bfloat16 bits stochastically (unbiased).

    ``(u + (r >> 16)) >> 16`` with ``r = random_bits(seed, step, index)``:
    the discarded low 16 bits ``f`` carry into the kept half with probability
    ``f / 2**16``, the fraction of the gap, so ``E[result] = x``. Exactly
    representable values (``f = 0``) and infinities are unchanged; NaN gives
    the same bits as :func:`f32_to_bf16_bits` (a select, as there). A finite
    ``x`` above the largest bfloat16 (``0x7F7F``) rounds to the infinity with
    probability ``f / 2**16``, the infinity taking the place of the next
    value, as in IEEE arithmetic.

    Parameters
    ----------
    x : float32
    seed, step, index : int
        The counter of :func:`random_bits`.

    Returns
    -------
    uint16
    """
    return f32_to_bf16_bits_sr_with(x, random_bits(seed, step, index))


def f32_to_bf16_bits_sr_with(x, r):
    """:func:`f32_to_bf16_bits_sr` with its random bits ``r`` given (an integer
    in ``[0, 2**32)``): what a loop calls with :func:`random_word`."""
    u = _f32_bits(x)
    v = u | 0x00400000 if x != x else u + (np.int64(r) >> 16)
    return np.uint16(v >> 16)


# -- bfloat16 pairs: two elements in one 32-bit word --------------------------------


def bf16_lo(w):
    """The bfloat16 in the low half of the 32-bit word ``w``, as float32: ``w << 16``.

    A loop over a bfloat16 array viewed as ``uint32`` (two elements a word,
    the even-indexed one in the low half, as on every little-endian machine)
    widens each half with one shift or one mask, where a ``uint16`` loop
    zero-extends every element first."""
    return _f32_from_bits(np.int64(w) << 16)


def bf16_hi(w):
    """The bfloat16 in the high half of the 32-bit word ``w``, as float32:
    ``w & 0xFFFF0000``. Also the value of a :func:`f32_to_bf16_word` result."""
    return _f32_from_bits(np.int64(w) & 0xFFFF0000)


def f32_to_bf16_word(x):
    """:func:`f32_to_bf16_bits` before its final shift: a uint32 whose high
    half is the rounded bfloat16 (nearest, ties to even; the low half is
    whatever the rounding left there). The one formula of the bfloat16 store:
    ``(u + 0x7FFF + ((u >> 16) & 1))``, ``u | 0x00400000`` for a NaN."""
    u = _f32_bits(x)
    return np.uint32(_select(x != x, u | 0x00400000, u + 0x7FFF + ((u >> 16) & 1)))


def bf16_pack(lo, hi):
    """The 32-bit word of two :func:`f32_to_bf16_word` results: ``lo``'s
    bfloat16 in the low half, ``hi``'s in the high half (uint32)."""
    return np.uint32((np.int64(hi) & 0xFFFF0000) | (np.int64(lo) >> 16))


# -- float16 ----------------------------------------------------------------------


def f16_bits_to_f32(u):
    """Widen IEEE binary16 bits ``u`` (any integer type) to float32, exactly.

    With ``e = (u >> 10) & 0x1F`` and ``m = u & 0x3FF``: normal numbers get
    ``((e + 112) << 23) | (m << 13)`` (the exponent rebiased from 15 to 127);
    ``e = 31`` gives ``0x7F800000 | (m << 13)`` (infinity, or NaN with its
    payload); zero and subnormals (``e = 0``, value ``m * 2**-24``) are
    ``(0.5 + m * 2**-24) - 0.5`` in float32, built from the bits
    ``0x3F000000 | m`` and exact. The sign bit moves from bit 15 to bit 31.

    Compiled on a CPU with F16C (:data:`_NATIVE_HALF`) this is the hardware
    conversion instead, with the same result.

    Returns
    -------
    float32
    """
    if _NATIVE_HALF:
        return _half_bits_to_f32(u)
    return _f16_widen_int(u)


def _f16_widen_int(u):
    """:func:`f16_bits_to_f32` by integer operations (a signalling NaN comes
    out quiet, as from the hardware)."""
    h = np.int64(u)
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0x1F:
        bits = 0x7F800000 | (m << 13) | (0x400000 if m != 0 else 0)
    elif e != 0:
        bits = ((e + 112) << 23) | (m << 13)
    else:
        bits = _f32_bits(_f32_from_bits(0x3F000000 | m) - _f32_from_bits(0x3F000000))
    return _f32_from_bits(sign | bits)


def f32_to_f16_bits(x):
    """Round float32 ``x`` to IEEE binary16 bits, to nearest with ties to even.

    With ``a = u & 0x7FFFFFFF`` the magnitude bits of ``x`` and ``s`` its sign
    moved to bit 15:

    * NaN (``a > 0x7F800000``): ``s | 0x7E00 | ((a >> 13) & 0x3FF)``, a quiet
      NaN keeping the top payload bits;
    * ``a >= 0x477FF000`` (``|x| >= 65520``, halfway between the largest
      float16, 65504, and 2**16): infinity ``s | 0x7C00``;
    * normal (``|x| >= 2**-14``): ``b = a - (112 << 23)`` rebiases the
      exponent, then ``(b + 0xFFF + ((b >> 13) & 1)) >> 13``;
    * subnormal or zero: the 24-bit significand ``m`` (implicit bit set) is
      shifted right by ``k = 126 - e`` bits (``e = a >> 23``; ``k`` capped at
      25, where everything rounds to zero) with the same RNE rule,
      ``(m + 2**(k-1) - 1 + ((m >> k) & 1)) >> k``; a result of ``0x400`` is
      the smallest normal, as it should be.

    Compiled on a CPU with F16C (:data:`_NATIVE_HALF`) this is the hardware
    conversion instead (the same bits; a NaN's payload may differ).

    Returns
    -------
    uint16
    """
    if _NATIVE_HALF:
        return np.uint16(_f32_to_half_bits(x))
    return np.uint16(_f16_round_int(x))


def _f16_round_int(x):
    """:func:`f32_to_f16_bits` by integer operations, as an int64."""
    u = _f32_bits(x)
    s = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a > 0x7F800000:
        h = 0x7E00 | ((a >> 13) & 0x3FF)
    elif a >= 0x477FF000:
        h = 0x7C00
    elif a >= 0x38800000:
        b = a - 0x38000000
        h = (b + 0xFFF + ((b >> 13) & 1)) >> 13
    else:
        k = min(126 - (a >> 23), 25)
        m = (a & 0x7FFFFF) | 0x800000
        h = (m + (1 << (k - 1)) - 1 + ((m >> k) & 1)) >> k
    return s | h


def f32_to_f16_bits_sr(x, seed, step, index):
    """Round float32 ``x`` to IEEE binary16 bits stochastically (unbiased).

    As :func:`f32_to_f16_bits`, with the RNE increment replaced by random bits
    of ``r = random_bits(seed, step, index)``, so the ``k`` discarded bits
    carry with probability equal to their fraction of ``2**k``:

    * normal: ``(b + (r >> 19)) >> 13``; a carry past the largest float16
      (``|x| > 65504``) gives the infinity, with probability the fraction of
      the gap to 2**16; ``|x| >= 2**16`` gives the infinity;
    * subnormal (``k = 126 - e`` from 14 to 62): ``(m + ((r << 30) >> (62 - k))) >> k``.
      For ``k <= 32`` the added number is uniform on ``[0, 2**k)`` and the
      rounding exactly unbiased; for ``k > 32`` (``|x| < 2**-33``) only 32
      random bits are available and the probability is off by less than
      2**-32. ``|x| < 2**-63`` (float32 subnormals included) rounds to zero.

    NaN and infinity are handled as in :func:`f32_to_f16_bits`; exactly
    representable values are unchanged.

    Parameters
    ----------
    x : float32
    seed, step, index : int
        The counter of :func:`random_bits`.

    Returns
    -------
    uint16
    """
    return f32_to_f16_bits_sr_with(x, random_bits(seed, step, index))


def f32_to_f16_bits_sr_with(x, r):
    """:func:`f32_to_f16_bits_sr` with its random bits ``r`` given (an integer
    in ``[0, 2**32)``): what a loop calls with :func:`random_word`."""
    u = _f32_bits(x)
    s = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    if a > 0x7F800000:
        return np.uint16(_f16_round_int(x))  # NaN: as to nearest
    r = np.int64(r)
    if a >= 0x47800000:
        h = 0x7C00
    elif a >= 0x38800000:
        h = (a - 0x38000000 + (r >> 19)) >> 13
    elif a >= 0x20000000:
        k = 126 - (a >> 23)
        m = (a & 0x7FFFFF) | 0x800000
        h = (m + ((r << 30) >> (62 - k))) >> k
    else:
        h = 0
    return np.uint16(s | h)


# -- compiled versions -------------------------------------------------------------

#: The element functions, by name: what :func:`cpu_function` and
#: :func:`cuda_function` compile.
ELEMENT_FUNCTIONS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        bf16_bits_to_f32,
        f32_to_bf16_bits,
        f32_to_bf16_bits_sr,
        f16_bits_to_f32,
        f32_to_f16_bits,
        f32_to_f16_bits_sr,
        f32_to_bf16_bits_sr_with,
        f32_to_f16_bits_sr_with,
        random_bits,
        random_prefix,
        random_word,
        bf16_lo,
        bf16_hi,
        f32_to_bf16_word,
        bf16_pack,
    )
}


def _f32_to_f16_bits_int(x):
    """:func:`f32_to_f16_bits` by integer operations only (CUDA kernels)."""
    return np.uint16(_f16_round_int(x))


#: The element functions CUDA kernels run in place of :data:`ELEMENT_FUNCTIONS`'
#: of the same name: float16 by integer operations. (The CPU's hardware route
#: must not reach a CUDA kernel through numba's overload resolution, which
#: shares the functions' types between the two targets.)
_CUDA_ELEMENTS: dict[str, Callable] = {
    "f16_bits_to_f32": _f16_widen_int,
    "f32_to_f16_bits": _f32_to_f16_bits_int,
}
_register(_cpu_extending)

_lock = threading.Lock()
_cuda_ns: dict | None = None  # register_cuda's namespace


def _cuda_simulator() -> bool:
    """Whether ``numba.cuda`` is numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM``)."""
    from numba import cuda

    return bool(getattr(cuda, "simulator_enabled", False) or cuda.config.ENABLE_CUDASIM)


def _cuda_namespace() -> dict:
    """This module's globals with every function replaced by a copy whose
    globals are the new namespace.

    numba types a Python function object once for every target (its
    ``types.Function`` and the IR it inlines are shared), so a function the
    CPU compiled first would reach CUDA kernels with the CPU's implementation;
    CUDA kernels get copies the CPU never sees.
    """
    ns = dict(globals())
    for name, value in globals().items():
        if isinstance(value, pytypes.FunctionType) and value.__module__ == __name__:
            ns[name] = pytypes.FunctionType(
                value.__code__, ns, value.__name__, value.__defaults__, value.__closure__
            )
    for table in ("ELEMENT_FUNCTIONS", "_CUDA_ELEMENTS"):
        ns[table] = {key: ns[f.__name__] for key, f in globals()[table].items()}
    return ns


def register_cuda() -> dict:
    """Make this module's functions compilable by ``numba.cuda`` (idempotent):
    copies of them (:func:`_cuda_namespace`), registered with numba-cuda's
    own registries (``numba.cuda.extending``); under the CUDA simulator they
    run as plain Python and nothing is registered. Imports ``numba.cuda``.
    Returns the copies' namespace.
    """
    global _cuda_ns
    with _lock:
        if _cuda_ns is None:
            ns = _cuda_namespace()
            if not _cuda_simulator():
                from numba.cuda import extending

                ns["_register"](extending)
            _cuda_ns = ns
    return _cuda_ns


def _element(name: str) -> Callable:
    if name not in ELEMENT_FUNCTIONS:
        known = ", ".join(sorted(ELEMENT_FUNCTIONS))
        raise ValueError(f"unknown storage function {name!r}; expected one of {known}")
    return ELEMENT_FUNCTIONS[name]


@functools.cache
def cpu_function(name: str) -> Callable:
    """``numba.njit(inline="always", error_model="numpy")`` of the element
    function ``name`` (a key of :data:`ELEMENT_FUNCTIONS`), one per process."""
    return numba.njit(inline="always", error_model="numpy")(_element(name))


@functools.cache
def cuda_function(name: str) -> Callable:
    """``numba.cuda.jit(device=True)`` of the element function ``name``, one
    per process, after :func:`register_cuda`; imports ``numba.cuda``."""
    ns = register_cuda()
    from numba import cuda

    _element(name)  # a known name
    return cuda.jit(device=True)(ns["_CUDA_ELEMENTS"].get(name) or ns["ELEMENT_FUNCTIONS"][name])
