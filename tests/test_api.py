"""Behaviour of the public API: defaults, settable hyperparameters, state dicts,
shapes, non-finite gradients, backends, ``pack``, docs.

Every test is parametrized over the registry ``fastgd.OPTIMIZERS`` so a new
rule is covered without new test code.
"""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgd
from fastgd import backends, config

RULE_NAMES = list(fastgd.OPTIMIZERS)
DTYPES = [np.float32, np.float64]

CONFIGS = EXTRA_STATE_CONFIGS

#: torch.optim has no class of these names.
NOT_IN_TORCH = {"Momentum", "Lion"}


def make(name: str, params: np.ndarray, **overrides) -> fastgd.Optimizer:
    kwargs = {**CONFIGS.get(name, {}), **overrides}
    return fastgd.OPTIMIZERS[name](params, **kwargs)


def grads(shape, dtype, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def start(shape=(13,), dtype=np.float64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run(opt: fastgd.Optimizer, gs) -> None:
    for g in gs:
        opt.step(g)


def assert_same_state(a: fastgd.Optimizer, b: fastgd.Optimizer) -> None:
    """Bit-identical params, state arrays, step count and host state."""
    assert np.array_equal(a.params, b.params, equal_nan=True)
    assert a.params.tobytes() == b.params.tobytes()
    assert sorted(a.state) == sorted(b.state)
    for name in a.state:
        assert a.state[name].tobytes() == b.state[name].tobytes(), name
    assert a.steps == b.steps
    assert a.state_dict()["host"] == b.state_dict()["host"]


# -- defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [n for n, c in fastgd.OPTIMIZERS.items() if c.__name__ not in NOT_IN_TORCH]
)
def test_defaults_match_torch(name):
    import torch

    cls = fastgd.OPTIMIZERS[name]
    torch_defaults = getattr(torch.optim, cls.__name__)([torch.zeros(1)]).defaults
    ours = cls(np.zeros(3)).hyperparameters
    shared = set(ours) & set(torch_defaults)
    assert {"lr", "maximize"} <= shared
    for key in shared:
        assert ours[key] == torch_defaults[key], key
        assert type(ours[key]) is not bool or type(torch_defaults[key]) is bool, key


def test_adamw_defaults():
    hp = fastgd.AdamW(np.zeros(3)).hyperparameters
    assert hp["weight_decay"] == 1e-2
    assert hp["decoupled_weight_decay"] is True


def test_lion_defaults_are_optax():
    hp = fastgd.Lion(np.zeros(3)).hyperparameters
    assert hp["lr"] == 1e-4
    assert tuple(hp["betas"]) == (0.9, 0.99)
    assert hp["weight_decay"] == 1e-3


@pytest.mark.parametrize("name", RULE_NAMES)
def test_defaults_are_in_the_signature(name):
    """Constructing with defaults equals passing the reported values back in."""
    cls = fastgd.OPTIMIZERS[name]
    hp = cls(np.zeros(3)).hyperparameters
    if name == "adamw":
        hp.pop("decoupled_weight_decay")
    assert cls(np.zeros(3), **hp).hyperparameters == cls(np.zeros(3)).hyperparameters


# -- settable hyperparameters ------------------------------------------------


def _with_weight_decay(name: str) -> dict:
    names = fastgd.OPTIMIZERS[name].hyperparameter_names()
    return {"weight_decay": 0.1} if "weight_decay" in names else {}


@pytest.mark.parametrize("name", RULE_NAMES)
def test_lr_zero_leaves_params_unchanged(name):
    """lr = 0 freezes params (decoupled decay is 1 - lr * wd = 1) from the next step on."""
    x = start()
    opt = make(name, x, **_with_weight_decay(name))
    if name == "momentum" and opt.form == "heavy_ball":
        pytest.skip("heavy-ball momentum keeps coasting with lr=0: see the test below")
    gs = grads(x.shape, x.dtype, 4)
    run(opt, gs[:3])
    before = x.copy()
    opt.lr = 0.0
    assert opt.lr == 0.0
    opt.step(gs[3])
    assert np.array_equal(x, before)
    assert opt.steps == 4


def test_heavy_ball_lr_zero_coasts_on_its_velocity():
    x = start()
    opt = fastgd.Momentum(x, lr=0.1, momentum=0.9, form="heavy_ball")
    gs = grads(x.shape, x.dtype, 4)
    run(opt, gs[:3])
    p, v = x.copy(), opt.state["velocity"].copy()
    opt.lr = 0.0
    opt.step(gs[3])
    assert np.array_equal(opt.state["velocity"], 0.9 * v)
    assert np.array_equal(x, p + 0.9 * v)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_lr_change_mid_run_equals_fresh_optimizer_from_state(name):
    x = start()
    opt = make(name, x)
    gs = grads(x.shape, x.dtype, 6)
    run(opt, gs[:3])
    sd = opt.state_dict()
    saved = x.copy()
    new_lr = opt.lr * 0.37
    opt.lr = new_lr
    run(opt, gs[3:])

    sd["hyperparameters"]["lr"] = new_lr
    y = saved.copy()
    fresh = make(name, y)
    fresh.load_state_dict(sd)
    assert fresh.lr == new_lr
    run(fresh, gs[3:])
    assert_same_state(opt, fresh)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_every_hyperparameter_is_readable_and_settable(name):
    opt = make(name, start())
    for key, value in opt.hyperparameters.items():
        assert getattr(opt, key) == value
        setattr(opt, key, value)
        assert getattr(opt, key) == value
    opt.step(grads(opt.params.shape, opt.params.dtype, 1)[0])


# -- state_dict ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_state_dict_round_trip_is_bit_identical(name, dtype):
    x = start(dtype=dtype)
    opt = make(name, x)
    gs = grads(x.shape, dtype, 12)
    run(opt, gs[:5])
    sd = opt.state_dict()
    saved = x.copy()
    run(opt, gs[5:])

    y = saved.copy()
    restored = make(name, y)
    restored.load_state_dict(sd)
    assert restored.steps == 5
    run(restored, gs[5:])
    assert_same_state(opt, restored)
    assert restored.params is y


@pytest.mark.parametrize("name", RULE_NAMES)
def test_state_dict_is_a_copy_of_plain_values(name):
    x = start(dtype=np.float32)
    opt = make(name, x)
    run(opt, grads(x.shape, x.dtype, 3))
    sd = opt.state_dict()

    assert sd["format"] == fastgd.optim.STATE_FORMAT
    assert sd["rule"] == opt.rule.name
    assert type(sd["step"]) is int and sd["step"] == 3
    assert np.dtype(sd["dtype"]) == np.float32
    assert tuple(sd["shape"]) == x.shape
    assert set(sd["state"]) == set(opt.state)
    for name_, arr in sd["state"].items():
        assert type(arr) is np.ndarray, name_
        assert not np.shares_memory(arr, opt.state[name_])
        assert not np.shares_memory(arr, x)
    plain = (bool, int, float, str, type(None))
    for key, value in sd["hyperparameters"].items():
        items = value if isinstance(value, tuple) else (value,)
        assert all(type(v) in plain for v in items), key
    for key, value in sd["host"].items():
        assert type(value) in plain, key

    # mutating the snapshot does not touch the optimizer
    before = copy.deepcopy(opt.state_dict())
    for arr in sd["state"].values():
        arr[...] = 123.0
    sd["hyperparameters"]["lr"] = 99.0
    sd["host"]["mu_product"] = -1.0
    sd["step"] = 77
    after = opt.state_dict()
    assert after["hyperparameters"] == before["hyperparameters"]
    assert after["host"] == before["host"]
    assert after["step"] == 3
    for key in before["state"]:
        assert np.array_equal(after["state"][key], before["state"][key])


@pytest.mark.parametrize("name", RULE_NAMES)
def test_state_dict_survives_pickle(name):
    x = start()
    opt = make(name, x)
    gs = grads(x.shape, x.dtype, 6)
    run(opt, gs[:3])
    blob = pickle.dumps(opt.state_dict())
    saved = x.copy()
    run(opt, gs[3:])

    restored = make(name, saved)
    restored.load_state_dict(pickle.loads(blob))
    run(restored, gs[3:])
    assert_same_state(opt, restored)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_optimizer_copies(how):
    """torch optimizers can be deep-copied and pickled; a fastgd one should too."""
    x = start()
    opt = fastgd.Adam(x, lr=0.1)
    gs = grads(x.shape, x.dtype, 4)
    run(opt, gs[:2])
    sd, saved = opt.state_dict(), x.copy()
    clone = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    assert not np.shares_memory(clone.params, x)
    run(clone, gs[2:])
    assert np.array_equal(x, saved)
    twin = fastgd.Adam(saved.copy())
    twin.load_state_dict(sd)
    run(twin, gs[2:])
    assert_same_state(clone, twin)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_load_state_dict_restores_saved_hyperparameters(name):
    x = start()
    opt = make(name, x, lr=0.05)
    gs = grads(x.shape, x.dtype, 5)
    run(opt, gs[:2])
    sd = opt.state_dict()
    saved = x.copy()
    run(opt, gs[2:])

    other = make(name, saved, lr=0.9, maximize=True, l1=0.5)
    other.load_state_dict(sd)
    assert other.hyperparameters == sd["hyperparameters"]
    assert other.lr == 0.05 and other.maximize is False and other.l1 == 0.0
    run(other, gs[2:])
    assert_same_state(opt, other)


# -- shapes ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "serial", "parallel"])
@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=["0", "3x0"])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_zero_size_params(name, shape, backend):
    x = np.zeros(shape)
    opt = make(name, x, backend=backend)
    for _ in range(2):
        opt.step(np.zeros(shape))
    assert x.shape == shape and opt.params is x
    assert opt.steps == 2
    for arr in opt.state.values():
        assert arr.shape == shape
    sd = opt.state_dict()
    other = make(name, np.zeros(shape), backend=backend)
    other.load_state_dict(sd)
    other.step(np.zeros(shape))


@pytest.mark.parametrize("shape", [(1,), (2, 3, 4), ()], ids=["1", "2x3x4", "0d"])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_any_shape_updates_in_place(name, shape):
    x = start(shape=shape)
    opt = make(name, x, lr=0.1)
    assert opt.params is x
    gs = grads(shape, x.dtype, 3)
    flat = x.reshape(-1).copy()
    flat_opt = make(name, flat, lr=0.1)
    before = x.copy()
    run(opt, gs)
    run(flat_opt, [g.reshape(-1) for g in gs])
    assert opt.params is x and x.shape == shape
    assert not np.array_equal(x, before)
    # the update does not depend on the shape
    assert x.reshape(-1).tobytes() == flat.tobytes()
    for key, arr in opt.state.items():
        assert arr.shape == shape
        assert arr.reshape(-1).tobytes() == flat_opt.state[key].tobytes()


# -- non-finite gradients -------------------------------------------------------

BAD = {1: np.nan, 4: np.inf, 6: -np.inf}


def _nonfinite_runs(name, dtype):
    """A run with NaN/inf at the BAD indices on step 3 of 5, and one without."""
    shape = (9,)
    gs = grads(shape, dtype, 5)
    bad_gs = [g.copy() for g in gs]
    for i, value in BAD.items():
        bad_gs[2][i] = value
        gs[2][i] = 0.25  # any finite value
    x, y = start(shape, dtype), start(shape, dtype)
    good, bad = make(name, x), make(name, y)
    return good, bad, gs, bad_gs


@pytest.mark.parametrize("name", RULE_NAMES)
def test_nonfinite_grad_leaves_other_elements_exact(name):
    good, bad, gs, bad_gs = _nonfinite_runs(name, np.float32)
    run(good, gs)
    run(bad, bad_gs)
    keep = np.ones(good.params.shape, bool)
    keep[list(BAD)] = False
    assert good.params[keep].tobytes() == bad.params[keep].tobytes()
    for key in good.state:
        assert good.state[key][keep].tobytes() == bad.state[key][keep].tobytes(), key


@pytest.mark.parametrize("name", RULE_NAMES)
def test_nonfinite_grad_makes_param_nonfinite(name):
    """As the Optimizer docstring promises: a NaN/inf in grad[i] makes params[i]
    non-finite; for Lion (sign(inf) = 1) an inf makes only its momentum non-finite."""
    good, bad, gs, bad_gs = _nonfinite_runs(name, np.float32)
    run(bad, bad_gs[:3])
    idx = list(BAD)
    assert np.isnan(bad.params[1])
    watched = bad.state["exp_avg"] if name == "lion" else bad.params
    assert not np.isfinite(watched[idx]).any(), watched[idx]
    run(bad, bad_gs[3:])
    assert not np.isfinite(watched[idx]).any(), watched[idx]


# -- step counter -----------------------------------------------------------------


@pytest.mark.parametrize("name", RULE_NAMES)
def test_step_counter(name):
    x = start()
    opt = make(name, x)
    assert opt.steps == 0 and type(opt.steps) is int
    for k, g in enumerate(grads(x.shape, x.dtype, 3), start=1):
        opt.step(g)
        assert opt.steps == k and type(opt.steps) is int
    assert opt.state_dict()["step"] == 3


@pytest.mark.parametrize("name", RULE_NAMES)
def test_huge_step_count_stays_finite(name):
    x = start()
    opt = make(name, x)
    gs = grads(x.shape, x.dtype, 3)
    run(opt, gs[:2])
    sd = opt.state_dict()
    sd["step"] = 10**12
    opt.load_state_dict(sd)
    assert opt.steps == 10**12
    before = x.copy()
    opt.step(gs[2])
    assert opt.steps == 10**12 + 1 and type(opt.steps) is int
    assert np.isfinite(x).all()
    assert not np.array_equal(x, before)
    for arr in opt.state.values():
        assert np.isfinite(arr).all()


def test_huge_step_count_adam_bias_corrections_are_one():
    x = start()
    opt = fastgd.Adam(x, lr=0.1)
    gs = grads(x.shape, x.dtype, 3)
    run(opt, gs[:2])
    sd = opt.state_dict()
    sd["step"] = 10**12
    opt.load_state_dict(sd)
    p = x.copy()
    m = sd["state"]["exp_avg"] * 0.9 + 0.1 * gs[2]
    v = sd["state"]["exp_avg_sq"] * 0.999 + 0.001 * gs[2] ** 2
    opt.step(gs[2])
    np.testing.assert_allclose(x, p - 0.1 * m / (np.sqrt(v) + 1e-8), rtol=1e-12, atol=1e-15)


# -- backends ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_backends_give_identical_results(name, dtype):
    gs = grads((257,), dtype, 4)
    opts = {b: make(name, start((257,), dtype), backend=b) for b in ("auto", "serial", "parallel")}
    for opt in opts.values():
        run(opt, gs)
    assert_same_state(opts["auto"], opts["serial"])
    assert_same_state(opts["auto"], opts["parallel"])


def test_auto_backend_threshold(monkeypatch):
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 1000)
    assert backends.select(999, "auto") == "serial"
    assert backends.select(1000, "auto") == "parallel"
    for b in ("serial", "parallel"):
        assert backends.select(10, b) == b
        assert backends.select(10**9, b) == b


@pytest.mark.parametrize("name", ["sgd", "adam", "lion"])
def test_explicit_backends_below_and_above_threshold(name, monkeypatch):
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 64 * 1024)
    for n in (10, 64 * 1024 // 4 + 1):  # below, and above even counting params alone
        gs = grads((n,), np.float32, 3)
        opts = [
            make(name, start((n,), np.float32), backend=b) for b in ("auto", "serial", "parallel")
        ]
        for opt in opts:
            run(opt, gs)
        assert_same_state(opts[0], opts[1])
        assert_same_state(opts[0], opts[2])


# -- pack ---------------------------------------------------------------------------


def test_pack_copies_into_views_of_one_buffer():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7.0, 8.0], np.float32)
    s = np.array(9.0, np.float32)
    flat, views = fastgd.pack([w, b, s])
    assert flat.shape == (9,) and flat.dtype == np.float32 and flat.flags.c_contiguous
    assert [v.shape for v in views] == [(2, 3), (2,), ()]
    assert np.array_equal(flat, [0, 1, 2, 3, 4, 5, 7, 8, 9])
    for view, original in zip(views, (w, b, s), strict=True):
        assert np.array_equal(view, original)
        assert np.shares_memory(view, flat)
        assert not np.shares_memory(view, original)
    views[1][0] = -1.0
    assert flat[6] == -1.0 and b[0] == 7.0


def test_pack_mixed_dtypes_needs_dtype():
    arrays = [np.ones(2, np.float32), np.ones(3, np.float64)]
    with pytest.raises(TypeError):
        fastgd.pack(arrays)
    flat, views = fastgd.pack(arrays, dtype=np.float64)
    assert flat.dtype == np.float64 and all(v.dtype == np.float64 for v in views)
    flat, views = fastgd.pack([np.arange(3), [1, 2]], dtype=np.float32)
    assert flat.dtype == np.float32
    assert np.array_equal(flat, [0, 1, 2, 1, 2])


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_pack_refuses_complex(dtype):
    with pytest.raises(TypeError):
        fastgd.pack([np.ones(2), np.ones(2, np.complex128)], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.int64, np.complex64, np.float16])
def test_pack_refuses_non_float_dtype(dtype):
    with pytest.raises(TypeError):
        fastgd.pack([np.ones(2)], dtype=dtype)


def test_pack_empty():
    flat, views = fastgd.pack([])
    assert flat.size == 0 and views == []
    opt = fastgd.Adam(flat)
    opt.step(np.zeros_like(flat))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_pack_one_optimizer_equals_one_per_array(name, dtype):
    shapes = [(3, 4), (5,), (), (2, 0), (2, 2, 2)]
    arrays = [start(s, dtype, seed=k) for k, s in enumerate(shapes)]
    flat, views = fastgd.pack(arrays)
    packed = make(name, flat)
    separate = [make(name, a) for a in arrays]
    gs_per_array = [grads(s, dtype, 4, seed=10 + k) for k, s in enumerate(shapes)]
    for step in range(4):
        gs = [g[step] for g in gs_per_array]
        flat_grad, _ = fastgd.pack(gs)
        packed.step(flat_grad)
        for opt, g in zip(separate, gs, strict=True):
            opt.step(g)
    for view, opt in zip(views, separate, strict=True):
        assert view.tobytes() == opt.params.tobytes()
    for key, arr in packed.state.items():
        offset = 0
        for opt in separate:
            n = opt.params.size
            assert arr[offset : offset + n].tobytes() == opt.state[key].reshape(-1).tobytes()
            offset += n


# -- repr and docs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", RULE_NAMES)
def test_repr(name):
    opt = make(name, np.zeros((2, 3), np.float32), lr=0.125)
    text = repr(opt)
    assert type(opt).__name__ in text
    assert "lr=0.125" in text


@pytest.mark.parametrize("name", RULE_NAMES)
def test_docstring_has_formula_and_parameters(name):
    doc = fastgd.OPTIMIZERS[name].__doc__
    assert doc
    assert re.search(r"(^|\W)p\s+= ", doc), "no update formula for p"
    assert "Parameters\n    ----------" in doc
    assert "lr :" in doc
    assert "{common}" not in doc
    for key in fastgd.OPTIMIZERS[name].hyperparameter_names():
        if key == "decoupled_weight_decay" and name == "adamw":
            continue
        assert f"{key} :" in doc, key


# -- read-only gradients and property test -------------------------------------------


@pytest.mark.parametrize("name", RULE_NAMES)
def test_read_only_grad_is_accepted(name):
    x, y = start(), start()
    a, b = make(name, x), make(name, y)
    for g in grads(x.shape, x.dtype, 3):
        frozen = g.copy()
        frozen.setflags(write=False)
        a.step(frozen)
        b.step(g)
    assert_same_state(a, b)


SHAPES = [(1,), (7,), (2, 3), (4, 1, 5), (0,), (33,)]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(RULE_NAMES),
    shape=st.sampled_from(SHAPES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 4),
)
def test_serial_equals_parallel_and_grad_is_never_written(name, shape, dtype, seed, steps):
    gs = grads(shape, dtype, steps, seed=seed)
    copies = [g.copy() for g in gs]
    serial = make(name, start(shape, dtype, seed=seed + 1), backend="serial")
    parallel = make(name, start(shape, dtype, seed=seed + 1), backend="parallel")
    for g, original in zip(gs, copies, strict=True):
        serial.step(g)
        assert g.tobytes() == original.tobytes()
        parallel.step(g)
        assert g.tobytes() == original.tobytes()
    assert_same_state(serial, parallel)
