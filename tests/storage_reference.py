"""The float64 reference with emulated 16-bit storage, for the low-precision tests.

Two runs of :class:`reference.Reference` on the same gradients: exact, and
with the parameters and every state array rounded to their storage dtype (by
ml_dtypes / NumPy) after each step. The distance between the two is what the
storage costs; a 16-bit fastgd run (float32 arithmetic, its own rounding)
must stay within 1.5 times that distance of the exact run, for the parameters
and for every state array: its error is what the storage implies and does not
accumulate beyond it.
"""

from __future__ import annotations

import numpy as np
from reference import Reference


def rounded(x, dtype) -> np.ndarray:
    """``x`` rounded to ``dtype`` (to nearest even), back in float64."""
    return np.asarray(x).astype(dtype).astype(np.float64)


def emulated_runs(rule, hp, p0, grads, params_dtype=np.float64, state_dtype=np.float64):
    """``(p_exact, exact, p_emulated, emulated)``: the exact float64 run and the
    one whose parameters (``params_dtype``) and state (``state_dtype``) are
    rounded after every step; ``exact``/``emulated`` are the References."""
    p_ref, p_emul = np.array(p0, np.float64), rounded(p0, params_dtype)
    ref, emul = Reference(rule, p_ref.shape, **hp), Reference(rule, p_ref.shape, **hp)
    for arr in emul.state.values():
        arr[...] = rounded(arr, state_dtype)
    for g in grads:
        g = np.asarray(g).astype(np.float64)
        ref.step(p_ref, g)
        emul.step(p_emul, g)
        p_emul[...] = rounded(p_emul, params_dtype)
        for arr in emul.state.values():
            arr[...] = rounded(arr, state_dtype)
    return p_ref, ref, p_emul, emul


def assert_within_storage_cost(opt, p, runs, scale) -> float:
    """fastgd's parameters ``p`` and ``opt.state`` within 1.5x the storage's cost
    of the exact run (plus ``1e-6`` of ``scale``, float32 rounding); returns
    that cost for the parameters."""
    p_ref, ref, p_emul, emul = runs
    assert set(opt.state) - {"kahan_comp"} == set(ref.state)
    storage_cost = np.linalg.norm(p_emul - p_ref)
    ours = np.linalg.norm(np.asarray(p).astype(np.float64) - p_ref)
    assert storage_cost > 0
    assert ours <= 1.5 * storage_cost + 1e-6 * scale, (ours, storage_cost)
    for name, exact in ref.state.items():
        cost = np.linalg.norm(emul.state[name] - exact)
        got = np.linalg.norm(opt.state[name].astype(np.float64) - exact)
        assert got <= 1.5 * cost + 1e-6 * np.linalg.norm(exact), (name, got, cost)
    return storage_cost


def bits(a: np.ndarray) -> np.ndarray:
    """``a``'s bit patterns (so NaNs and signed zeros compare exactly)."""
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


def assert_same_bits(a, b) -> None:
    """The parameters and every state array of two optimizers, bit for bit."""
    np.testing.assert_array_equal(bits(a.params), bits(b.params))
    assert set(a.state) == set(b.state)
    for name in a.state:
        np.testing.assert_array_equal(bits(a.state[name]), bits(b.state[name]))


def assert_copies_resume_bit_identically(opt, fresh, grad, steps=3) -> None:
    """``fresh`` after ``load_state_dict(opt.state_dict())``, a deepcopy and a
    pickle of ``opt``: the same bits as ``opt`` after ``steps`` more steps."""
    import copy
    import pickle

    fresh.load_state_dict(opt.state_dict())
    twins = [fresh, copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))]
    for _ in range(steps):
        opt.step(grad)
        for twin in twins:
            twin.step(grad)
    for twin in twins:
        assert_same_bits(twin, opt)
