"""The rule loops with 16-bit storage (fastgd.backends.Storage), bit for bit.

A loop that stores an array in bfloat16 or float16 loads it exactly into
float32, runs the same element functions and rounds its stores; so it must
equal, bit for bit, the float32 loop run on the widened arrays followed by a
rounding of its outputs with ml_dtypes / NumPy (the independent reference for
the rounding). Kahan compensation and stochastic rounding are checked against
the float64 trajectory where plain 16-bit storage stalls. Not yet wired into
the optimizer classes (issue 12): the loops are driven through an optimizer's
plan here.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS

import fastgd
from fastgd import backends
from fastgd.backends import Storage
from fastgd.storage import f32_to_bf16_bits_sr, f32_to_f16_bits_sr

N = 1000
STEPS = 12
DT = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}
RULES = sorted(fastgd.OPTIMIZERS)


def config(rule):
    return EXTRA_STATE_CONFIGS.get(rule, {})


def rounded(a, kind):
    """float32 ``a`` rounded to ``kind`` (ml_dtypes / NumPy), as uint16 bits."""
    return a.astype(DT[kind]).view(np.uint16) if kind != "native" else a


def widened(bits, kind):
    return bits.view(DT[kind]).astype(np.float32) if kind != "native" else bits


class Harness:
    """A rule's plan (flags, scalars, host state) as its optimizer makes it."""

    def __init__(self, rule, hp, n=N):
        self.opt = fastgd.OPTIMIZERS[rule](np.zeros(n, np.float32), backend="serial", **hp)
        self.plan = self.opt._current_plan()
        self.host = {}
        self.t = 0

    def initial_states(self):
        n, opt = self.opt.params.size, self.opt
        return [np.full(n, opt.rule.initial(opt, s), np.float32) for s in self.plan.active]

    def step(self, storage, backend, arrays, extra=()):
        self.t += 1
        flags, scalars = self.plan.prepare(self.plan.hp, self.t, self.host)
        plan = self.plan
        loop = backends.cpu_loop(self.opt.rule, plan.common, flags, plan.active, backend,
                                 "float32", storage)  # fmt: skip
        loop(*arrays, plan.common_scalars + scalars, *extra)


def run_native_rounded(rule, hp, p, grads, kinds):
    """The reference: the float32 loop on widened arrays, outputs rounded each step."""
    pk, gk, sk = kinds
    h = Harness(rule, hp, p.size)
    p = widened(rounded(p, pk), pk).copy()
    states = [widened(rounded(s, sk), sk).copy() for s in h.initial_states()]
    for g in grads:
        g = widened(rounded(g, gk), gk)
        h.step(backends.NATIVE, "serial", [p, g, *states])
        p[:] = widened(rounded(p, pk), pk)
        for s in states:
            s[:] = widened(rounded(s, sk), sk)
    return rounded(p, pk), [rounded(s, sk) for s in states]


def run_stored(rule, hp, p, grads, kinds, backend):
    pk, gk, sk = kinds
    h = Harness(rule, hp, p.size)
    p = rounded(p, pk).copy()
    states = [rounded(s, sk).copy() for s in h.initial_states()]
    for g in grads:
        h.step(Storage(pk, gk, sk), backend, [p, rounded(g, gk), *states])
    return p, states


def data(seed=0, n=N, steps=STEPS):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    return p, [rng.standard_normal(n).astype(np.float32) for _ in range(steps)]


KINDS = [
    ("bfloat16", "bfloat16", "bfloat16"),
    ("float16", "float16", "float16"),
    ("native", "native", "bfloat16"),  # float32 params and gradients, bfloat16 state
]


@pytest.mark.parametrize("kinds", KINDS, ids=lambda k: "-".join(k))
@pytest.mark.parametrize("rule", RULES)
def test_stored_loop_equals_float32_loop_then_rounding(rule, kinds):
    p, grads = data()
    ref_p, ref_states = run_native_rounded(rule, config(rule), p, grads, kinds)
    got_p, got_states = run_stored(rule, config(rule), p, grads, kinds, "serial")
    bits = np.uint32 if got_p.itemsize == 4 else np.uint16
    np.testing.assert_array_equal(got_p.view(bits), ref_p.view(bits))
    assert len(got_states) == len(ref_states) >= 1 or rule == "sgd"
    for got, ref in zip(got_states, ref_states, strict=True):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("rule", ["adam", "lion", "rmsprop"])
def test_parallel_equals_serial(rule):
    p, grads = data(1, n=50_001, steps=3)
    kinds = KINDS[0]
    serial = run_stored(rule, config(rule), p, grads, kinds, "serial")
    parallel = run_stored(rule, config(rule), p, grads, kinds, "parallel")
    np.testing.assert_array_equal(serial[0], parallel[0])
    for a, b in zip(serial[1], parallel[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_and_inf_survive_16_bit_storage():
    p = np.array([1.0, 2.0, np.inf, -1.0], np.float32)
    g = np.array([np.nan, 1.0, 0.0, -np.inf], np.float32)
    for kind in ("bfloat16", "float16"):
        got, _ = run_stored("sgd", {"lr": 0.5}, p, [g], (kind, kind, kind), "serial")
        out = widened(got, kind)
        assert np.isnan(out[0]) and out[1] == 1.5 and out[2] == np.inf and out[3] == np.inf


# -- Kahan compensation and stochastic rounding: past the half-ulp stall ----------------------


def sgd_run(storage, steps, n=512, lr=1e-4, seed=7):
    """SGD from p = 1 with a constant gradient 1 and lr far below half a
    bfloat16 ulp at 1 (2**-8): the float64 answer is 1 - steps * lr."""
    h = Harness("sgd", {"lr": lr}, n)
    p = rounded(np.ones(n, np.float32), "bfloat16").copy()
    g = rounded(np.ones(n, np.float32), "bfloat16")
    k = np.zeros(n, np.uint16)
    for t in range(steps):
        if storage.rounding == "kahan":
            h.step(storage, "serial", [p, g, k])
        elif storage.rounding == "stochastic":
            h.step(storage, "serial", [p, g], extra=(seed, t + 1, 0))
        else:
            h.step(storage, "serial", [p, g])
    return widened(p, "bfloat16").astype(np.float64), widened(k, "bfloat16")


@pytest.mark.parametrize("steps, lr, ulps", [(2000, 1e-4, 1), (10_000, 1e-5, 3)])
def test_plain_bfloat16_stalls_and_kahan_tracks_float64(steps, lr, ulps):
    """Updates of 1/39 and 1/390 of an ulp. The compensation is bfloat16 too
    (as in optimi): an update near the compensation's own ulp is rounded
    with a bias, so the smaller one drifts by up to 3 ulps over 10,000 steps
    (plain bfloat16: 25 ulps, it never moves)."""
    exact = 1.0 - steps * lr  # 0.8, 0.9
    plain, _ = sgd_run(Storage("bfloat16", "bfloat16", "native"), steps, lr=lr)
    assert np.all(plain == 1.0)  # every update below half an ulp: lost
    kahan, k = sgd_run(Storage("bfloat16", "bfloat16", "native", "kahan"), steps, lr=lr)
    ulp = 2.0**-8  # bfloat16's spacing in [0.5, 1)
    assert np.all(np.abs(kahan - exact) <= ulps * ulp)
    assert np.all(np.abs(k) < ulp)  # the compensation holds what p could not take


def test_stochastic_rounding_is_unbiased_and_reproducible():
    steps, lr = 2000, 1e-4
    exact = 1.0 - steps * lr
    sr = Storage("bfloat16", "bfloat16", "native", "stochastic")
    a, _ = sgd_run(sr, steps, lr=lr, seed=7)
    b, _ = sgd_run(sr, steps, lr=lr, seed=7)
    c, _ = sgd_run(sr, steps, lr=lr, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # each element's walk is unbiased: the mean over 512 elements is near the exact
    # answer (the spread of one element is a few ulps of 2**-8)
    assert abs(a.mean() - exact) < 3 * 2.0**-8 / np.sqrt(512) * 8
    assert np.all(a < 1.0)  # no element stalled


def run_stochastic_reference(rule, hp, p, g, kind, seed, step, offset):
    """The float32 loop on widened arrays, then the parameters rounded by the
    plain Python ``fastgd.storage.f32_to_bf16_bits_sr`` (or float16) with
    the counter ``(seed, step, offset + i)``, the state to nearest."""
    h = Harness(rule, hp, p.size)
    p = widened(rounded(p, kind), kind).copy()
    states = [widened(rounded(s, kind), kind).copy() for s in h.initial_states()]
    h.step(backends.NATIVE, "serial", [p, widened(rounded(g, kind), kind), *states])
    sr = {"bfloat16": f32_to_bf16_bits_sr, "float16": f32_to_f16_bits_sr}[kind]
    bits = [sr(v, seed, step, (offset + i) % 2**64) for i, v in enumerate(p)]
    return np.array(bits, np.uint16), [rounded(s, kind) for s in states]


@pytest.mark.parametrize(
    "n, offset",
    [(101, 0), (101, 2**32 - 37), (101, 5 * 2**32 - 1), (101, 2**64 - 30), (1, 2**32 - 1),
     (0, 7), (20_001, 2**32 - 15_000)],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_stochastic_loops_draw_the_documented_counter(kind, n, offset):
    """Element ``i`` of a stochastic loop rounds with ``random_bits(seed, step,
    offset + i)`` (modulo 2**64), serial and parallel, also where the indices
    cross a multiple of 2**32 (a new prefix of the hash) or 2**64."""
    seed, step = 2**40 + 3, 2**33 + 5
    p, (g,) = data(4, n=n, steps=1)
    ref_p, ref_states = run_stochastic_reference("adam", {}, p, g, kind, seed, step, offset)
    signed = offset - 2**64 if offset >= 2**63 else offset  # the loops take int64
    for backend in ("serial", "parallel"):
        h = Harness("adam", {}, n)
        got = rounded(p, kind).copy()
        states = [rounded(s, kind).copy() for s in h.initial_states()]
        sr = Storage(kind, kind, kind, "stochastic")
        h.step(sr, backend, [got, rounded(g, kind), *states], extra=(seed, step, signed))
        np.testing.assert_array_equal(got, ref_p, err_msg=backend)
        for a, b in zip(states, ref_states, strict=True):
            np.testing.assert_array_equal(a, b)
    if n > 1:  # the counter matters: one index further gives other bits
        shifted, _ = run_stochastic_reference("adam", {}, p, g, kind, seed, step, offset + 1)
        assert not np.array_equal(shifted, ref_p)


def test_storage_spec_refuses_nonsense():
    with pytest.raises(ValueError, match="params must be one of"):
        Storage("bf16")
    with pytest.raises(ValueError, match="16-bit parameters"):
        Storage(rounding="kahan")
    with pytest.raises(ValueError, match="rounding"):
        Storage("bfloat16", rounding="up")
    rule = fastgd.OPTIMIZERS["adam"].rule
    with pytest.raises(ValueError, match="float32"):
        backends.loops(rule, (False,) * 5, (False,), ("exp_avg", "exp_avg_sq"), "float64",
                       storage=Storage("bfloat16"))  # fmt: skip


def test_stored_adam_loop_has_no_call_per_element(uncached):
    """The conversions are inlined: the serial bf16 Adam loop calls nothing but
    what the float32 loop calls."""
    h = Harness("adam", {})
    p, grads = data(n=64, steps=1)
    run_stored("adam", {}, p, grads, KINDS[0], "serial")
    run_stored("adam", {}, *data(n=1000, steps=1), KINDS[0], "serial")  # the pair loop too
    flags, _ = h.plan.prepare(h.plan.hp, 1, {})
    kinds = ("bfloat16", "float16")
    for storage in (backends.NATIVE, *(Storage(k, k, k) for k in kinds)):
        backends.cpu_loop(h.opt.rule, h.plan.common, flags, h.plan.active, "serial", "float32",
                          storage)  # fmt: skip

    def calls(storage, loop="serial"):
        module = backends.loops(h.opt.rule, h.plan.common, flags, h.plan.active, "float32",
                                "cpu", storage)  # fmt: skip
        asm = "\n".join(getattr(module, loop).inspect_asm().values())
        return sorted({line.split()[-1] for line in asm.splitlines() if "\tcall" in line})

    native = calls(backends.NATIVE)
    assert calls(Storage("float16", "float16", "float16")) == native
    # bfloat16: the entry calls its loops once; each loop calls what float32's does
    assert calls(Storage("bfloat16", "bfloat16", "bfloat16"), "_serial_elements") == native
    assert calls(Storage("bfloat16", "bfloat16", "bfloat16"), "_serial_pairs") == native


# -- bfloat16 pair loops (fastgd._pairs): every alignment and length ----------------

PAIR_LENGTHS = [0, 1, 2, 255, 256, 257, 1000, 1001, 50_001]


def kahan_reference(p_bits, k_bits, p_new):
    """The Kahan store of :class:`fastgd.backends.Storage` in NumPy float32,
    rounded by ml_dtypes: ``u = k + (p_new - p); p' = p + u; k = u - (p' - p)``."""
    p0, k = widened(p_bits, "bfloat16"), widened(k_bits, "bfloat16")
    u = k + (p_new - p0)
    pw = rounded(p0 + u, "bfloat16")
    return pw, rounded(u - (widened(pw, "bfloat16") - p0), "bfloat16")


def pair_reference(h, p, g, states, k):
    """One step of the float32 loop on the widened arrays, rounded to nearest
    (the params with Kahan when ``k`` is given)."""
    p32 = widened(p, "bfloat16").copy()
    s32 = [widened(s, "bfloat16").copy() for s in states]
    h.step(backends.NATIVE, "serial", [p32, widened(g, "bfloat16"), *s32])
    out = [rounded(s, "bfloat16") for s in s32]
    if k is None:
        return [rounded(p32, "bfloat16"), *out]
    pw, kw = kahan_reference(p, k, p32)
    return [pw, *out, kw]


@pytest.mark.parametrize("rounding", ["nearest", "kahan"])
@pytest.mark.parametrize("rule", ["adam", "sgd", "lion", "adadelta"])
def test_pair_loops_at_any_alignment_and_length(rule, rounding, uncached):
    """All-bfloat16 loops read and write two elements per 32-bit word from the
    first 4-byte-aligned element, the odd ones at either end by the element
    loop: every length, a slice starting at an odd element, a gradient
    aligned unlike the params (then the element loop throughout), serial and
    parallel. Each gives the bits of the float32 loop then ml_dtypes'
    rounding (or the NumPy Kahan store), and leaves the neighbours alone."""
    rng = np.random.default_rng(11)
    storage = Storage("bfloat16", "bfloat16", "bfloat16", rounding)
    hp = config(rule)
    for n in PAIR_LENGTHS:
        h, ref_h = Harness(rule, hp, max(n, 1)), Harness(rule, hp, max(n, 1))
        n_states = len(h.plan.active)
        for start, g_shift, backend in [(0, 0, "serial"), (1, 0, "parallel"), (1, 0, "serial"),
                                        (0, 1, "serial"), (0, 0, "parallel")]:  # fmt: skip
            buffers = [rounded(rng.standard_normal(n + 2).astype(np.float32), "bfloat16")
                       for _ in range(3 + n_states)]  # fmt: skip
            for b in buffers[2:]:  # states >= 0 (second moments), compensation small
                b[:] = rounded(np.abs(widened(b, "bfloat16")) * 1e-2, "bfloat16")
            before = [b.copy() for b in buffers]
            sl = slice(start, start + n)
            p, g = buffers[0][sl], buffers[1][start + g_shift : start + g_shift + n]
            states = [b[sl] for b in buffers[2 : 2 + n_states]]
            k = buffers[-1][sl] if rounding == "kahan" else None
            # the same step number for both: each harness counts its own
            ref = pair_reference(ref_h, p.copy(), g, [s.copy() for s in states], k)
            h.step(storage, backend, [p, g, *states] + ([k] if k is not None else []))
            got = [p, *states] + ([k] if k is not None else [])
            for a, b in zip(got, ref, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"n={n} start={start} {backend}")
            for b, b0 in zip(buffers, before, strict=True):  # nothing outside the slice
                np.testing.assert_array_equal(b[:start], b0[:start])
                np.testing.assert_array_equal(b[start + n :], b0[start + n :])
    module = backends.loops(h.opt.rule, h.plan.common, h.plan.prepare(h.plan.hp, 1, {})[0],
                            h.plan.active, "float32", "cpu", storage)  # fmt: skip
    assert module._serial_pairs.signatures and module._parallel_pairs.signatures
