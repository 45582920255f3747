"""Bad input raises the documented exception before anything is mutated.

Each section is a table of cases with readable ids, crossed with every rule of
``fastgd.OPTIMIZERS`` where the case applies. After every expected exception
the parameters, every state array, the step count, the host state and the
hyperparameters are checked bit for bit against a snapshot, and the next valid
step is checked against an untouched twin.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS

import fastgd
from fastgd import _checks
from fastgd import functional as F

RULE_NAMES = list(fastgd.OPTIMIZERS)
SHAPE = (2, 5)

CONFIGS = EXTRA_STATE_CONFIGS


def make(name: str, params, **overrides) -> fastgd.Optimizer:
    return fastgd.OPTIMIZERS[name](params, **{**CONFIGS.get(name, {}), **overrides})


def grads(dtype=np.float32, n: int = 3, seed: int = 0, shape=SHAPE) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def params(dtype=np.float32, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def stepped(name: str, dtype=np.float32, **overrides) -> fastgd.Optimizer:
    """An optimizer after a few valid steps, so its state is non-trivial."""
    opt = make(name, params(dtype), **overrides)
    for g in grads(dtype):
        opt.step(g)
    return opt


@dataclass
class Snapshot:
    params: bytes
    state: dict[str, bytes]
    steps: int
    host: dict
    hyperparameters: dict

    @classmethod
    def of(cls, opt: fastgd.Optimizer) -> Snapshot:
        sd = opt.state_dict()
        return cls(
            opt.params.tobytes(),
            {k: v.tobytes() for k, v in opt.state.items()},
            opt.steps,
            dict(sd["host"]),
            dict(opt.hyperparameters),
        )


def assert_unchanged(opt: fastgd.Optimizer, before: Snapshot, twin=None) -> None:
    """``opt`` equals the snapshot; if a twin with the same history is given,
    one more valid step of both must also agree (no hidden state was touched)."""
    assert Snapshot.of(opt) == before
    if twin is not None:
        g = grads(opt.params.dtype, 1, seed=99, shape=opt.params.shape)[0]
        opt.step(g)
        twin.step(g)
        assert Snapshot.of(opt) == Snapshot.of(twin)


# -- hyperparameters ----------------------------------------------------------


@dataclass
class Bad:
    """One bad hyperparameter setting; ``applies(cls)`` says for which rules."""

    id: str
    values: dict[str, Any]
    error: type[Exception] = ValueError
    applies: Callable[[type], bool] = field(default=lambda cls: True)
    settable: bool = True  # also check ``setattr`` after construction


def has(*names: str) -> Callable[[type], bool]:
    return lambda cls: set(names) <= set(cls.hyperparameter_names())


def check_is(check) -> Callable[[str], Callable[[type], bool]]:
    def applies_to(name: str) -> Callable[[type], bool]:
        def applies(cls) -> bool:
            desc = getattr(cls, name, None)
            return isinstance(desc, fastgd.Hyperparameter) and desc.check is check

        return applies

    return applies_to


def flag_names() -> list[str]:
    names = set()
    for cls in fastgd.OPTIMIZERS.values():
        for n in cls.hyperparameter_names():
            if getattr(cls, n).check is _checks.flag:
                names.add(n)
    return sorted(names)


def unit_interval_momentum(cls) -> bool:
    return check_is(_checks.unit_interval)("momentum")(cls)


BAD_HYPERPARAMETERS: list[Bad] = [
    Bad("lr-negative", {"lr": -1e-3}),
    Bad("lr-nan", {"lr": math.nan}),
    Bad("lr-inf", {"lr": math.inf}),
    Bad("lr-minus-inf", {"lr": -math.inf}),
    Bad("lr-string", {"lr": "0.1"}),
    Bad("lr-none", {"lr": None}),
    Bad("lr-bool", {"lr": True}),
    Bad("lr-complex", {"lr": 1e-3 + 0j}),
    Bad("eps-negative", {"eps": -1e-8}, applies=has("eps")),
    Bad("eps-nan", {"eps": math.nan}, applies=has("eps")),
    Bad("weight_decay-negative", {"weight_decay": -0.1}, applies=has("weight_decay")),
    Bad("weight_decay-inf", {"weight_decay": math.inf}, applies=has("weight_decay")),
    Bad("momentum-negative", {"momentum": -0.5}, applies=has("momentum")),
    Bad("momentum-nan", {"momentum": math.nan}, applies=has("momentum")),
    Bad("momentum-one", {"momentum": 1.0}, applies=unit_interval_momentum),
    Bad("dampening-inf", {"dampening": math.inf}, applies=has("dampening")),
    Bad("dampening-nan", {"dampening": math.nan}, applies=has("dampening")),
    Bad("alpha-negative", {"alpha": -0.1}, applies=has("alpha")),
    Bad("lr_decay-negative", {"lr_decay": -0.1}, applies=has("lr_decay")),
    Bad(
        "initial_acc-negative",
        {"initial_accumulator_value": -0.1},
        applies=has("initial_accumulator_value"),
    ),
    Bad("momentum_decay-negative", {"momentum_decay": -1.0}, applies=has("momentum_decay")),
    Bad("betas-beta1-one", {"betas": (1.0, 0.999)}, applies=has("betas")),
    Bad("betas-beta2-one", {"betas": (0.9, 1.0)}, applies=has("betas")),
    Bad("betas-negative", {"betas": (-0.1, 0.9)}, applies=has("betas")),
    Bad("betas-nan", {"betas": (math.nan, 0.9)}, applies=has("betas")),
    Bad("betas-one-item", {"betas": (0.9,)}, applies=has("betas")),
    Bad("betas-three-items", {"betas": (0.9, 0.99, 0.999)}, applies=has("betas")),
    Bad("betas-scalar", {"betas": 0.9}, applies=has("betas")),
    Bad("betas-string", {"betas": "ab"}, applies=has("betas")),
    Bad("rho-negative", {"rho": -0.1}, applies=has("rho")),
    Bad("rho-above-one", {"rho": 1.1}, applies=has("rho")),
    Bad("form-bogus", {"form": "bogus"}, applies=has("form")),
    Bad("l1-negative", {"l1": -0.1}),
    Bad("l1-nan", {"l1": math.nan}),
    Bad("l1_mode-bogus", {"l1_mode": "bogus"}),
    Bad("l1_mode-none", {"l1_mode": None}),
    Bad("l1_mode-array", {"l1_mode": np.array(["proximal", "x"])}),
    Bad("l1_mode-0d-array", {"l1_mode": np.array("proximal")}),
    *[
        Bad(f"{flag}-{label}", {flag: value}, applies=check_is(_checks.flag)(flag))
        for flag in flag_names()
        for label, value in (("int", 1), ("string", "yes"), ("none", None))
    ],
    Bad("backend-bogus", {"backend": "bogus"}, settable=False),
    Bad("backend-upper-case", {"backend": "SERIAL"}, settable=False),
    Bad("backend-cuda-host-array", {"backend": "cuda"}, TypeError, settable=False),
    Bad("unexpected-keyword", {"learning_rate": 0.1}, TypeError, settable=False),
    Bad(
        "nesterov-without-momentum",
        {"nesterov": True, "momentum": 0.0},
        applies=has("nesterov"),
        settable=False,
    ),
    Bad(
        "nesterov-with-dampening",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        applies=has("nesterov"),
        settable=False,
    ),
    Bad(
        "adamw-coupled",
        {"decoupled_weight_decay": False},
        TypeError,
        applies=lambda cls: cls is fastgd.AdamW,
        settable=False,
    ),
]


def _accepts(cls, keys) -> bool:
    """Whether the constructor takes these keywords (AdamW fixes decoupled_weight_decay)."""
    return set(keys) <= set(inspect.signature(cls).parameters)


def _cases(settable_only: bool):
    for bad in BAD_HYPERPARAMETERS:
        if settable_only and not bad.settable:
            continue
        for name, cls in fastgd.OPTIMIZERS.items():
            if not bad.applies(cls):
                continue
            if bad.error is ValueError and not settable_only and not _accepts(cls, bad.values):
                continue
            yield pytest.param(name, bad, id=f"{name}-{bad.id}")


@pytest.mark.parametrize("name, bad", list(_cases(settable_only=False)))
def test_bad_hyperparameter_at_construction(name, bad):
    x = params()
    before = x.tobytes()
    with pytest.raises(bad.error):
        fastgd.OPTIMIZERS[name](x, **bad.values)
    assert x.tobytes() == before


@pytest.mark.parametrize("name, bad", list(_cases(settable_only=True)))
def test_bad_hyperparameter_assignment_keeps_old_value(name, bad):
    (key, value), *_ = bad.values.items()
    opt, twin = stepped(name), stepped(name)
    before = Snapshot.of(opt)
    with pytest.raises(ValueError):
        setattr(opt, key, value)
    assert getattr(opt, key) == before.hyperparameters[key]
    assert_unchanged(opt, before, twin)


@dataclass
class Relation:
    """Values that are each valid but inconsistent together, set after construction."""

    id: str
    rule: str
    start: dict
    assign: dict


RELATIONS = [
    Relation(
        "sgd-nesterov-momentum-0", "sgd", dict(momentum=0.9, nesterov=True), dict(momentum=0.0)
    ),
    Relation(
        "sgd-nesterov-dampening", "sgd", dict(momentum=0.9, nesterov=True), dict(dampening=0.5)
    ),
    Relation(
        "sgd-enable-nesterov-without-momentum",
        "sgd",
        dict(momentum=0.0, nesterov=False),
        dict(nesterov=True),
    ),
    Relation("adamw-coupled", "adamw", {}, dict(decoupled_weight_decay=False)),
]


@pytest.mark.parametrize("case", RELATIONS, ids=lambda c: c.id)
def test_inconsistent_hyperparameters_raise_at_next_step(case):
    opt = stepped(case.rule, **case.start)
    twin = stepped(case.rule, **case.start)
    old = {k: getattr(opt, k) for k in case.assign}
    for key, value in case.assign.items():
        setattr(opt, key, value)  # each value alone is valid
    before = Snapshot.of(opt)
    g = grads(n=1, seed=5)[0]
    with pytest.raises(ValueError):
        opt.step(g)
    assert Snapshot.of(opt) == before
    with pytest.raises(ValueError):  # still refused, still nothing written
        opt.step(g)
    assert Snapshot.of(opt) == before
    for key, value in old.items():
        setattr(opt, key, value)
    assert_unchanged(opt, Snapshot.of(twin), twin)


# -- params ---------------------------------------------------------------------


def _read_only():
    a = params()
    a.setflags(write=False)
    return a


def _torch_cpu():
    torch = pytest.importorskip("torch")
    return torch.zeros(SHAPE)


BAD_PARAMS: list[tuple[str, Callable[[], Any]]] = [
    ("int32", lambda: np.zeros(SHAPE, np.int32)),
    ("int64", lambda: np.zeros(SHAPE, np.int64)),
    ("int16", lambda: np.zeros(SHAPE, np.int16)),  # float16 and bfloat16 are accepted
    ("longdouble", lambda: np.zeros(SHAPE, np.longdouble)),
    ("complex64", lambda: np.zeros(SHAPE, np.complex64)),
    ("complex128", lambda: np.zeros(SHAPE, np.complex128)),
    ("bool", lambda: np.zeros(SHAPE, bool)),
    ("object", lambda: np.zeros(SHAPE, object)),
    ("list", lambda: [0.0, 1.0, 2.0]),
    ("tuple", lambda: (0.0, 1.0)),
    ("python-float", lambda: 1.0),
    ("numpy-scalar", lambda: np.float64(1.0)),
    ("strided-1d", lambda: np.zeros(20)[::2]),
    ("transposed-2d", lambda: np.zeros((5, 2)).T),
    ("column-slice", lambda: np.zeros((4, 6))[:, 1:3]),
    ("fortran-order", lambda: np.zeros((3, 4), order="F")),
    ("read-only", _read_only),
    ("torch-cpu-tensor", _torch_cpu),
]


@pytest.mark.parametrize("make_params", [c[1] for c in BAD_PARAMS], ids=[c[0] for c in BAD_PARAMS])
@pytest.mark.parametrize("name", RULE_NAMES)
def test_bad_params_type_error(name, make_params):
    x = make_params()
    before = np.array(x, copy=True) if isinstance(x, np.ndarray) else None
    with pytest.raises(TypeError):
        make(name, x)
    if before is not None:
        assert np.array_equal(x, before)


# -- gradients ------------------------------------------------------------------------

BAD_GRADS: list[tuple[str, type[Exception], Callable[[np.ndarray], Any]]] = [
    ("float64-for-float32", TypeError, lambda p: np.zeros(p.shape, np.float64)),
    ("float16", TypeError, lambda p: np.zeros(p.shape, np.float16)),
    ("int32", TypeError, lambda p: np.zeros(p.shape, np.int32)),
    ("int64", TypeError, lambda p: np.zeros(p.shape, np.int64)),
    ("bool", TypeError, lambda p: np.zeros(p.shape, bool)),
    ("complex64", TypeError, lambda p: np.zeros(p.shape, np.complex64)),
    ("complex128", TypeError, lambda p: np.zeros(p.shape, np.complex128)),
    ("strided", TypeError, lambda p: np.zeros((p.shape[0], 2 * p.shape[1]), p.dtype)[:, ::2]),
    ("transposed", TypeError, lambda p: np.zeros(p.shape[::-1], p.dtype).T),
    ("fortran-order", TypeError, lambda p: np.zeros(p.shape, p.dtype, order="F")),
    ("list", TypeError, lambda p: np.zeros_like(p).tolist()),
    ("python-float", TypeError, lambda p: 0.0),
    ("none", TypeError, lambda p: None),
    ("torch-cpu-tensor", TypeError, lambda p: _torch_cpu().to(dtype=_torch_dtype(p))),
    ("same-size-other-shape", ValueError, lambda p: np.zeros(p.size, p.dtype)),
    ("transposed-shape", ValueError, lambda p: np.zeros(p.shape[::-1], p.dtype)),
    ("too-long", ValueError, lambda p: np.zeros((p.shape[0], p.shape[1] + 1), p.dtype)),
    ("broadcastable-row", ValueError, lambda p: np.zeros((1, p.shape[1]), p.dtype)),
    ("extra-leading-axis", ValueError, lambda p: np.zeros((1, *p.shape), p.dtype)),
    ("zero-d", ValueError, lambda p: np.array(0.0, p.dtype)),
    ("empty", ValueError, lambda p: np.zeros(0, p.dtype)),
]


def _torch_dtype(p):
    import torch

    return torch.float32 if p.dtype == np.float32 else torch.float64


@pytest.mark.parametrize(
    "error, make_grad", [c[1:] for c in BAD_GRADS], ids=[c[0] for c in BAD_GRADS]
)
@pytest.mark.parametrize("name", RULE_NAMES)
def test_bad_grad_raises_and_mutates_nothing(name, error, make_grad):
    opt, twin = stepped(name), stepped(name)
    before = Snapshot.of(opt)
    grad = make_grad(opt.params)
    grad_before = np.array(grad, copy=True) if isinstance(grad, np.ndarray) else None
    with pytest.raises(error):
        opt.step(grad)
    assert_unchanged(opt, before, twin)
    if grad_before is not None:
        assert np.array_equal(grad, grad_before)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_float32_grad_for_float64_params(name):
    opt, twin = stepped(name, np.float64), stepped(name, np.float64)
    before = Snapshot.of(opt)
    with pytest.raises(TypeError):
        opt.step(np.zeros(SHAPE, np.float32))
    assert_unchanged(opt, before, twin)


# -- load_state_dict ----------------------------------------------------------------------


def _other_rule_state(name: str, sd: dict) -> dict:
    """The state dict of the first registered rule whose rule name differs."""
    mine = fastgd.OPTIMIZERS[name].rule.name
    other = next(n for n, c in fastgd.OPTIMIZERS.items() if c.rule.name != mine)
    return stepped(other).state_dict()


def _with(path: tuple, value):
    def edit(name: str, sd: dict) -> dict:
        target = sd
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return sd

    return edit


def _first_state(edit_array):
    def edit(name: str, sd: dict) -> dict:
        if not sd["state"]:
            pytest.skip("this configuration keeps no state arrays")
        key = sorted(sd["state"])[0]
        sd["state"][key] = edit_array(sd["state"][key])
        return sd

    return edit


def _drop(key):
    def edit(name: str, sd: dict) -> dict:
        del sd[key]
        return sd

    return edit


def _host(key, value=None, drop=False):
    """Edit the rule's host scalar ``key`` (the first one if None); cases named
    ``host-scalar-*`` run only for rules that keep host scalars."""

    def edit(name: str, sd: dict) -> dict:
        key_ = sorted(sd["host"])[0] if key is None else key
        if drop:
            del sd["host"][key_]
        else:
            sd["host"][key_] = value
        return sd

    return edit


def _drop_first_state(name: str, sd: dict) -> dict:
    if not sd["state"]:
        pytest.skip("this configuration keeps no state arrays")
    del sd["state"][sorted(sd["state"])[0]]
    return sd


def _drop_hyperparameter(name: str, sd: dict) -> dict:
    del sd["hyperparameters"]["lr"]
    return sd


def _fresh_with_state(name: str, sd: dict) -> dict:
    if not sd["state"]:
        pytest.skip("this configuration keeps no state arrays")
    sd["step"] = 0
    return sd


BAD_STATE_DICTS: list[tuple[str, type[Exception], Callable[[str, dict], Any]]] = [
    ("other-rule", ValueError, _other_rule_state),
    ("other-shape", ValueError, lambda n, sd: make(n, params(shape=(3,))).state_dict()),
    ("other-dtype", TypeError, lambda n, sd: stepped(n, np.float64).state_dict()),
    ("format-unknown", ValueError, _with(("format",), "fastgd.state_dict/999")),
    ("format-missing", ValueError, _drop("format")),
    ("not-a-dict", ValueError, lambda n, sd: list(sd.items())),
    ("torch-style", ValueError, lambda n, sd: {"state": {}, "param_groups": []}),
    ("unknown-state", ValueError, _with(("state", "bogus"), np.zeros(SHAPE, np.float32))),
    ("state-wrong-shape", ValueError, _first_state(lambda a: a.reshape(-1))),
    ("state-wrong-dtype", TypeError, _first_state(lambda a: a.astype(np.float64))),
    ("state-complex", TypeError, _first_state(lambda a: a.astype(np.complex64))),
    ("hyperparameter-negative-lr", ValueError, _with(("hyperparameters", "lr"), -1.0)),
    ("hyperparameter-nan-lr", ValueError, _with(("hyperparameters", "lr"), math.nan)),
    ("hyperparameter-bad-l1_mode", ValueError, _with(("hyperparameters", "l1_mode"), "x")),
    ("hyperparameter-unknown", ValueError, _with(("hyperparameters", "bogus"), 1.0)),
    ("step-negative", ValueError, _with(("step",), -1)),
    ("step-float", ValueError, _with(("step",), 1.5)),
    ("step-bool", ValueError, _with(("step",), True)),
    ("step-string", ValueError, _with(("step",), "3")),
    ("step-zero-with-state", ValueError, _fresh_with_state),
    ("state-missing-array", ValueError, _drop_first_state),
    ("state-not-a-dict", ValueError, _with(("state",), [])),
    ("state-list", TypeError, _first_state(lambda a: a.tolist())),
    ("state-masked", TypeError, _first_state(lambda a: np.ma.masked_array(a))),
    ("state-object-dtype", TypeError, _first_state(lambda a: a.astype(object))),
    ("hyperparameters-missing-lr", ValueError, _drop_hyperparameter),
    ("hyperparameters-not-a-dict", ValueError, _with(("hyperparameters",), None)),
    ("hyperparameter-lr-huge-int", ValueError, _with(("hyperparameters", "lr"), 10**400)),
    ("host-missing-field", ValueError, _drop("host")),
    ("host-not-a-dict", ValueError, _with(("host",), [])),
    ("host-unknown-scalar", ValueError, _with(("host", "bogus"), 1.0)),
    ("host-scalar-missing", ValueError, _host(None, drop=True)),
    ("host-scalar-string", ValueError, _host(None, "0.5")),
    ("host-scalar-none", ValueError, _host(None, None)),
    ("host-scalar-nan", ValueError, _host(None, math.nan)),
    ("unknown-field", ValueError, _with(("extra",), 1)),
    ("shape-not-a-sequence", ValueError, _with(("shape",), 10)),
    ("shape-floats", ValueError, _with(("shape",), (2.0, 5.0))),
    ("dtype-not-a-dtype", TypeError, _with(("dtype",), "no-such-dtype")),
    ("dtype-none", TypeError, _with(("dtype",), None)),
    ("step-beyond-int64", ValueError, _with(("step",), 10**400)),
]


def _bad_state_dict_cases():
    for case_id, error, edit in BAD_STATE_DICTS:
        for name in RULE_NAMES:
            if case_id.startswith("host-scalar") and not fastgd.OPTIMIZERS[name].rule.host:
                continue
            yield pytest.param(name, error, edit, id=f"{name}-{case_id}")


@pytest.mark.parametrize("name, error, edit", list(_bad_state_dict_cases()))
def test_load_state_dict_refusal_changes_nothing(name, error, edit):
    opt, twin = stepped(name), stepped(name)
    source = stepped(name, lr=0.5)
    source.step(grads(n=1, seed=3)[0])
    sd = edit(name, source.state_dict())
    before = Snapshot.of(opt)
    with pytest.raises(error):
        opt.load_state_dict(sd)
    assert_unchanged(opt, before, twin)


INCONSISTENT_STATE_DICTS = [
    pytest.param("sgd", {"momentum": 0.0, "nesterov": True}, id="sgd-nesterov-momentum-0"),
    pytest.param("sgd", {"dampening": 0.5, "nesterov": True}, id="sgd-nesterov-dampening"),
    pytest.param("adamw", {"decoupled_weight_decay": False}, id="adamw-coupled"),
]


@pytest.mark.parametrize("name, hyperparameters", INCONSISTENT_STATE_DICTS)
def test_load_state_dict_inconsistent_hyperparameters_changes_nothing(name, hyperparameters):
    opt, twin = stepped(name), stepped(name)
    sd = stepped(name, lr=0.5).state_dict()
    sd["hyperparameters"].update(hyperparameters)
    before = Snapshot.of(opt)
    with pytest.raises(ValueError):
        opt.load_state_dict(sd)
    assert_unchanged(opt, before, twin)


# -- functional API ---------------------------------------------------------------------


def _functional_setup(name: str, dtype=np.float32):
    """params, grad, the state arrays this rule's CONFIGS setting needs, kwargs."""
    kwargs = dict(CONFIGS.get(name, {}))
    p = params(dtype)
    needed = fastgd.OPTIMIZERS[name].rule.active(make(name, np.zeros(1, dtype)))
    rng = np.random.default_rng(7)
    states = {s: np.abs(rng.standard_normal(SHAPE)).astype(dtype) for s in needed}
    return p, grads(dtype, 1)[0], states, kwargs


def _snapshot_arrays(*arrays) -> list[bytes]:
    return [a.tobytes() for a in arrays]


@pytest.mark.parametrize("name", RULE_NAMES)
def test_functional_valid_call_works(name):
    p, g, states, kwargs = _functional_setup(name)
    before = p.copy()
    host = getattr(F, name)(p, g, step=2, **states, **kwargs)
    assert isinstance(host, dict)
    assert not np.array_equal(p, before)


def _functional_cases():
    for name in RULE_NAMES:
        needed = fastgd.OPTIMIZERS[name].rule.active(make(name, np.zeros(1)))
        for missing in needed:
            yield pytest.param(name, "missing", missing, id=f"{name}-missing-{missing}")
            yield pytest.param(name, "shape", missing, id=f"{name}-shape-{missing}")
            yield pytest.param(name, "dtype", missing, id=f"{name}-dtype-{missing}")
            yield pytest.param(name, "alias-params", missing, id=f"{name}-alias-params-{missing}")
            yield pytest.param(name, "overlap-params", missing, id=f"{name}-overlap-{missing}")
        if len(needed) >= 2:
            yield pytest.param(name, "alias-state", needed[1], id=f"{name}-alias-state")


@pytest.mark.parametrize("name, problem, state", list(_functional_cases()))
def test_functional_bad_state_raises_value_error(name, problem, state):
    p, g, states, kwargs = _functional_setup(name)
    if problem == "missing":
        del states[state]
    elif problem == "shape":
        states[state] = states[state].reshape(-1).copy()
    elif problem == "dtype":
        states[state] = states[state].astype(np.float64)
    elif problem == "alias-params":
        states[state] = p
    elif problem == "overlap-params":
        buffer = np.zeros(p.size + p.size // 2, p.dtype)
        buffer[: p.size] = p.reshape(-1)
        p = buffer[: p.size].reshape(SHAPE)
        states[state] = buffer[p.size // 2 :].reshape(SHAPE)
    elif problem == "alias-state":
        first = next(iter(states))
        states[state] = states[first]
    arrays = [p, g, *[a for a in states.values() if isinstance(a, np.ndarray)]]
    before = _snapshot_arrays(*arrays)
    with pytest.raises(ValueError):
        getattr(F, name)(p, g, step=3, **states, **kwargs)
    assert _snapshot_arrays(*arrays) == before


def test_functional_explicit_none_state_means_missing():
    """``exp_avg_sq=None`` is the signature's default, so it is reported as missing."""
    p, g, states, kwargs = _functional_setup("adam")
    before = _snapshot_arrays(p, g, *states.values())
    with pytest.raises(ValueError, match="needs state arrays"):
        F.adam(p, g, step=1, **{**states, "exp_avg_sq": None}, **kwargs)
    assert _snapshot_arrays(p, g, *states.values()) == before


@pytest.mark.parametrize("step", [0, -1, 1.5, 2.0, True, "1", None, 2**63], ids=repr)
@pytest.mark.parametrize("name", RULE_NAMES)
def test_functional_bad_step_raises_value_error(name, step):
    p, g, states, kwargs = _functional_setup(name)
    before = _snapshot_arrays(p, g, *states.values())
    with pytest.raises(ValueError):
        getattr(F, name)(p, g, step=step, **states, **kwargs)
    assert _snapshot_arrays(p, g, *states.values()) == before


@pytest.mark.parametrize("name", RULE_NAMES)
def test_functional_bad_hyperparameter_and_grad(name):
    p, g, states, kwargs = _functional_setup(name)
    before = _snapshot_arrays(p, g, *states.values())
    with pytest.raises(ValueError):
        getattr(F, name)(p, g, step=1, **states, **{**kwargs, "lr": -1.0})
    with pytest.raises(TypeError):
        getattr(F, name)(p, g.astype(np.float64), step=1, **states, **kwargs)
    with pytest.raises(ValueError):
        getattr(F, name)(p, g.reshape(-1), step=1, **states, **kwargs)
    with pytest.raises(TypeError):
        getattr(F, name)(p, g, step=1, bogus=1.0, **states, **kwargs)
    assert _snapshot_arrays(p, g, *states.values()) == before


def test_backend_attribute_is_validated():
    x = np.ones(8, np.float32)
    opt = fastgd.Adam(x)
    opt.step(np.ones(8, np.float32))
    with pytest.raises(ValueError, match="backend"):
        opt.backend = "bogus"
    with pytest.raises(TypeError, match="cuda"):
        opt.backend = "cuda"
    assert opt.backend == "auto"
    opt.backend = "parallel"  # takes effect at the next step
    before = x.copy()
    opt.step(np.ones(8, np.float32))
    assert opt._plan.backend == "parallel"
    assert not np.array_equal(before, x)


@pytest.mark.parametrize(
    "key", ["rule", "dtype", "shape", "step", "hyperparameters", "state", "host"]
)
def test_state_dict_missing_key_is_a_value_error(key):
    x = np.ones(8)
    opt = fastgd.Adam(x)
    opt.step(np.ones(8))
    sd = opt.state_dict()
    del sd[key]
    before = opt.state_dict()
    with pytest.raises(ValueError, match=key):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["step"] == before["step"]
    for name in before["state"]:
        assert np.array_equal(after["state"][name], before["state"][name])


def test_functional_state_overlapping_grad_is_refused():
    p = np.ones(8)
    g = np.ones(8)
    with pytest.raises(ValueError, match="overlaps"):
        fastgd.functional.adam(p, g, step=1, exp_avg=g, exp_avg_sq=np.zeros(8))
