"""Misuse of the optimizer objects is handled exactly or refused, never silently wrong.

ndarray subclasses, arrays that overlap in memory, public attributes that the
kernel would ignore, hyperparameters outside their mathematical domain or
beyond the parameters' dtype, and run-time changes of ``fastgd.config``. Every
handled case is checked against the same update on a plain ndarray, every
refusal against an untouched twin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS
from test_errors import Snapshot, assert_unchanged, grads, stepped

import fastgd
from fastgd import config

RULE_NAMES = list(fastgd.OPTIMIZERS)

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


def make(name: str, x, **overrides) -> fastgd.Optimizer:
    return fastgd.OPTIMIZERS[name](x, **{**EXTRA_STATE_CONFIGS.get(name, {}), **overrides})


# -- ndarray subclasses -------------------------------------------------------------


@pytest.mark.parametrize("name", RULE_NAMES)
def test_matrix_params_update_every_element(name):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 6))
    g = rng.standard_normal((1, 6))
    plain = data.copy()
    matrix = np.asmatrix(data.copy())
    make(name, plain).step(g)
    opt = make(name, matrix)
    opt.step(np.asmatrix(g))
    assert type(opt.params) is np.matrix and opt.params is matrix
    assert np.asarray(matrix).tobytes() == plain.tobytes()
    assert not np.array_equal(np.asarray(matrix), data)  # every element moved


def test_memmap_params_are_updated_in_place(tmp_path):
    path = tmp_path / "x.f32"
    x = np.memmap(path, dtype=np.float32, mode="w+", shape=(10,))
    x[:] = 1.0
    ref = np.ones(10, np.float32)
    g = np.arange(10, dtype=np.float32)
    fastgd.Adam(x, lr=0.1).step(g)
    fastgd.Adam(ref, lr=0.1).step(g)
    x.flush()
    assert np.fromfile(path, np.float32).tobytes() == ref.tobytes()


@pytest.mark.parametrize("name", RULE_NAMES)
def test_masked_gradient_is_refused(name):
    opt, twin = stepped(name), stepped(name)
    g = grads(n=1)[0]
    masked = np.ma.masked_array(g, mask=g > 0)
    before = Snapshot.of(opt)
    with pytest.raises(TypeError, match="grad is a masked array"):
        opt.step(masked)
    assert_unchanged(opt, before, twin)


def test_masked_params_are_refused():
    with pytest.raises(TypeError, match="params is a masked array"):
        fastgd.SGD(np.ma.masked_array(np.ones(3), mask=[0, 1, 0]))


def test_matrix_gradient_for_plain_params():
    x, ref = np.ones((1, 3)), np.ones((1, 3))
    fastgd.SGD(x, lr=0.5).step(np.matrix([[1.0, 2.0, 3.0]]))
    fastgd.SGD(ref, lr=0.5).step(np.array([[1.0, 2.0, 3.0]]))
    assert x.tobytes() == ref.tobytes()


# -- overlapping memory -------------------------------------------------------------


@pytest.mark.parametrize("name", RULE_NAMES)
def test_gradient_overlapping_params_is_refused(name):
    buf = np.linspace(-1, 1, 11)
    opt = make(name, buf[1:])
    before = buf.copy()
    with pytest.raises(ValueError, match="grad and params overlap"):
        opt.step(buf[:10])
    assert buf.tobytes() == before.tobytes() and opt.steps == 0 and not opt.state


def test_issue_example_shifted_view():
    b = np.arange(9.0)
    opt = fastgd.SGD(b[1:], lr=0.5)
    with pytest.raises(ValueError, match="overlap"):
        opt.step(b[:8])
    assert np.array_equal(b, np.arange(9.0))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_gradient_that_is_params_is_exact(name):
    """The exact same memory is fine: each element is read before it is written."""
    x = np.linspace(-1, 1, 12)
    ref = x.copy()
    opt = make(name, x)
    other = make(name, ref)
    for _ in range(3):
        g = ref.copy()
        opt.step(x)  # grad is params itself
        other.step(g)
    assert x.tobytes() == ref.tobytes()


def test_gradient_that_owns_the_buffer_params_view():
    buf = np.ones(8)
    opt = fastgd.SGD(buf[2:], lr=0.1)
    with pytest.raises(ValueError, match="overlap"):
        opt.step(buf[:6])
    whole = np.ones(8)
    opt = fastgd.SGD(whole.reshape(2, 4)[1], lr=0.1)  # params is a row of whole
    with pytest.raises(ValueError, match="overlap"):
        opt.step(whole[2:6])


def test_disjoint_views_of_one_buffer_are_fine():
    buf = np.ones(8)
    p, g = buf[:4], buf[4:]
    g[:] = 2.0
    fastgd.SGD(p, lr=0.25).step(g)
    assert np.array_equal(buf, [0.5] * 4 + [2.0] * 4)


# -- public attributes are read-only or effective --------------------------------------


@pytest.mark.parametrize("attribute", ["params", "steps", "state"])
def test_structural_attributes_are_read_only(attribute):
    opt = stepped("adam")
    twin = stepped("adam")
    before = Snapshot.of(opt)
    with pytest.raises(AttributeError):
        setattr(opt, attribute, getattr(opt, attribute))
    assert_unchanged(opt, before, twin)


def test_state_entries_cannot_be_replaced_or_removed():
    opt, twin = stepped("adam"), stepped("adam")
    before = Snapshot.of(opt)
    with pytest.raises(TypeError):
        opt.state["exp_avg"] = np.zeros_like(opt.params)
    with pytest.raises(TypeError):
        del opt.state["exp_avg"]
    assert_unchanged(opt, before, twin)


def test_state_arrays_edited_in_place_take_effect_and_are_saved():
    opt, twin = stepped("adam"), stepped("adam")
    opt.state["exp_avg"][...] = 0.0
    twin_sd = twin.state_dict()
    twin_sd["state"]["exp_avg"][...] = 0.0
    twin.load_state_dict(twin_sd)
    assert opt.state_dict()["state"]["exp_avg"].tobytes() == twin_sd["state"]["exp_avg"].tobytes()
    g = grads(n=1, seed=5)[0]
    opt.step(g)
    twin.step(g)
    assert Snapshot.of(opt) == Snapshot.of(twin)


# -- hyperparameter domains ------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.5, 1.0 + 1e-12, -0.1])
def test_rmsprop_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fastgd.RMSprop(np.ones(3), alpha=alpha)


def test_rmsprop_alpha_one_is_valid():
    x = np.ones(3)
    fastgd.RMSprop(x, alpha=1.0).step(np.ones(3))
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", RULE_NAMES)
def test_huge_integer_lr_names_lr(name):
    with pytest.raises(ValueError, match=r"Invalid lr: an integer of about 401 digits"):
        fastgd.OPTIMIZERS[name](np.ones(3), lr=10**400)
    with pytest.raises(ValueError, match=r"Invalid lr: an integer of about 5001 digits"):
        fastgd.OPTIMIZERS[name](np.ones(3), lr=10**5000)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_lr_beyond_float32_is_refused_at_the_step(name):
    x = np.ones(4, np.float32)
    opt = make(name, x, lr=1e300)
    with pytest.raises(ValueError, match="lr.*overflows the float32"):
        opt.step(np.ones(4, np.float32))
    assert np.array_equal(x, np.ones(4, np.float32)) and opt.steps == 0


def test_lr_beyond_float32_is_fine_for_float64():
    x = np.ones(4)
    fastgd.SGD(x, lr=1e300).step(np.full(4, 1e-300))
    assert np.allclose(x, 0.0)


def test_lr_times_weight_decay_overflow_is_refused():
    x = np.ones(4)
    opt = fastgd.AdamW(x, lr=1e200, weight_decay=1e200)
    with pytest.raises(ValueError, match="lr \\* weight_decay"):
        opt.step(np.ones(4))
    assert np.array_equal(x, np.ones(4))


# -- fastgd.config changes take effect at the next step --------------------------------


def test_parallel_threshold_change_takes_effect_after_stepping(monkeypatch):
    x = np.zeros(1000, np.float32)
    opt = fastgd.Adam(x)
    opt.step(np.ones(1000, np.float32))
    assert opt.resolved_backend == "serial"
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 0)
    assert opt.resolved_backend == "parallel"
    opt.step(np.ones(1000, np.float32))
    assert opt._plan.backend == "parallel"
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 10**12)
    opt.step(np.ones(1000, np.float32))
    assert opt._plan.backend == "serial"


def test_results_do_not_depend_on_a_threshold_change(monkeypatch):
    gs = [np.cos(np.arange(500.0) + k) for k in range(4)]
    a, b = np.linspace(-1, 1, 500), np.linspace(-1, 1, 500)
    oa, ob = fastgd.NAdam(a), fastgd.NAdam(b, backend="serial")
    used = set()
    for k, g in enumerate(gs):
        monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 0 if k % 2 else 10**12)
        oa.step(g)
        used.add(oa._plan.backend)
    for g in gs:
        ob.step(g)
    assert used == {"serial", "parallel"}
    assert a.tobytes() == b.tobytes() and math.isfinite(a.sum())


@pytest.mark.parametrize("name", RULE_NAMES)
def test_unknown_public_attribute_is_refused(name):
    opt = make(name, np.ones(4))
    with pytest.raises(AttributeError, match="no settable attribute 'learning_rate'.*lr"):
        opt.learning_rate = 0.1
    with pytest.raises(AttributeError, match="'rule'"):
        opt.rule = fastgd.OPTIMIZERS["sgd"].rule
    assert not hasattr(opt, "learning_rate") and type(opt).rule is opt.rule


@pytest.mark.parametrize("name", RULE_NAMES)
def test_l1_subgradient_of_a_nan_parameter_is_nan(name):
    """sign(NaN) = NaN, as np.sign: a NaN parameter stays NaN and so does the
    state it feeds; the other elements are exact."""
    x = np.array([np.nan, 0.5, -0.25, 0.0])
    ref = x[1:].copy()
    opt = make(name, x, l1=0.1)
    other = make(name, ref, l1=0.1)
    g = np.array([1.0, 0.5, -2.0, 0.25])
    opt.step(g)
    other.step(g[1:].copy())
    assert np.isnan(x[0]) and x[1:].tobytes() == ref.tobytes()
    for key, arr in opt.state.items():
        assert np.isnan(arr[0]), key
        assert arr[1:].tobytes() == other.state[key].tobytes(), key
