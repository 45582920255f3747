"""Property-based tests (hypothesis) of the optimizer core.

* **Parity**: random rules, hyperparameters, dtypes, shapes (0-d to 3-d, sizes 0
  and 1 included), step counts and gradients against the float64 NumPy reference
  of ``tests/reference.py``, with ``tests/test_parity.py``'s tolerances; the
  serial and parallel loops agree bit for bit on every draw.
* **State dicts**: a valid round trip continues bit for bit; a randomly
  corrupted state dict is refused with ``TypeError`` or ``ValueError`` and
  leaves the optimizer exactly as it was.
* **Hyperparameters**: random bad values, derived from each class's
  :class:`fastgd.Hyperparameter` validators, are refused at construction and on
  assignment with a ``ValueError`` naming the hyperparameter.

Every new combination of compile-time switches is a kernel numba compiles (about
a second, then cached on disk). So the parity draws take their *switch set*
(which flags are on, which of ``weight_decay``, ``l1`` and SGD/RMSprop
``momentum`` are non-zero, the L1 mode, Momentum's form) from the parity cases
of ``tests/cases.py``, whose kernels ``tests/test_parity.py`` compiles for both
dtypes and both CPU backends anyway, and draw every value freely inside it.
The state-dict and hyperparameter properties run the configurations of
``tests/test_errors.py`` (``EXTRA_STATE_CONFIGS``), compiled there. The examples
are derandomized and no example database is kept, so CI runs the same examples
every time.

Values are drawn from a numerically tame part of each domain (gradients and
parameters of magnitude 1e-3..10 or exactly 0, bounded learning rates, eps > 0):
the parity tolerances allow for rounding, not for float32's range. Random draws
still find cancellations (``g + weight_decay * p`` near zero, a parameter
stepped to near zero and amplified by ``1 / eps``), which no implementation
computes to the parity tolerances in float32: the comparison adds each draw's
measured conditioning (:func:`tolerated_error`). Draws that sit on a jump of a
formula (``sign(p)`` of L1 at a parameter that float32 rounds to exactly 0,
Lion's ``sign``) are discarded (:func:`well_conditioned`). The domains' edges
are covered by the bad-value properties.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from cases import CASES, EXTRA_STATE_CONFIGS
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import COMMON, DEFAULTS, Reference
from test_errors import Snapshot, assert_unchanged
from test_parity import TOLERANCES, assert_identical

import fastgd
from fastgd import _checks
from fastgd.optim import STATE_FORMAT

RULES = list(fastgd.OPTIMIZERS)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
FIELDS = ("format", "rule", "dtype", "shape", "step", "hyperparameters", "state", "host")
MAX_STEPS = 8


def _settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None)


# -- shared strategies ------------------------------------------------------------------

#: Array elements: exactly 0 or of magnitude 1e-3..10 (float32 squares them safely).
ELEMENTS = st.floats(-10.0, 10.0).map(lambda x: 0.0 if abs(x) < 1e-3 else x)
#: Shapes of at most 4**3 = 64 elements, 0-d to 3-d, with sides 0 and 1.
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def float_arrays(shape) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=ELEMENTS)


def _check_of(cls, name: str):
    return getattr(cls, name).check


def _is_choice(check) -> bool:
    return check.__qualname__ == _checks.choice().__qualname__


def _choice_options(check) -> tuple[str, ...]:
    return inspect.getclosurevars(check).nonlocals["options"]


def construct(cls, params, hp: dict, backend: str = "auto") -> fastgd.Optimizer:
    """``cls(params, **hp)`` with the hyperparameters its constructor takes (AdamW
    fixes ``decoupled_weight_decay``); checks the others hold ``hp``'s values."""
    accepted = inspect.signature(cls).parameters
    opt = cls(params, backend=backend, **{k: v for k, v in hp.items() if k in accepted})
    assert opt.hyperparameters == hp
    return opt


# -- 1. random configurations against the NumPy reference -----------------------------


def tame(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats in [lo, hi], 0 instead of magnitudes below 1e-3: a decay rate of
    1e-200 is 0 in float32 but not in the float64 reference, and a state array
    decayed by it is then 0 in one and tiny in the other."""
    return st.floats(lo, hi).map(lambda x: 0.0 if abs(x) < 1e-3 else x)


#: Each numeric hyperparameter's tame values: name -> strategy. A rule adding a
#: hyperparameter needs an entry here (the draw fails with KeyError otherwise).
TAME: dict[str, st.SearchStrategy[float]] = {
    "lr": st.one_of(st.just(0.0), st.floats(1e-4, 1.0)),
    # eps = 0 makes 0/0 = NaN parameters from a zero gradient
    "eps": st.floats(1e-8, 0.1),
    "weight_decay": st.floats(1e-3, 1.0),  # when on; structural zero otherwise
    "l1": st.floats(1e-3, 0.5),  # likewise
    "dampening": tame(-0.5, 1.0),
    "lr_decay": tame(0.0, 1.0),
    "initial_accumulator_value": tame(0.0, 1.0),
    "momentum_decay": tame(0.0, 1.0),
    "rho": tame(0.0, 1.0),
    "alpha": tame(0.0, 1.0),
    "betas": st.tuples(tame(0.0, 0.999), tame(0.0, 0.999)),
}
#: Momentum where the domain is [0, 1) (Momentum) and where it is >= 0 (SGD,
#: RMSprop, where 0 switches the buffer off and is structural).
TAME_MOMENTUM = {_checks.unit_interval: tame(0.0, 0.99), _checks.nonnegative: st.floats(1e-2, 1.5)}
#: Hyperparameters whose zero switches a kernel branch or a state array off.
STRUCTURAL_ZERO = ("weight_decay", "l1", "momentum")


@st.composite
def hyperparameters(draw, rule: str) -> dict:
    """Every hyperparameter of ``rule``: the switch set of one parity case, values
    drawn freely where they compile no other kernel."""
    cls = fastgd.OPTIMIZERS[rule]
    case = draw(st.sampled_from(CASES[rule]), label="switch set (parity case)")
    base = {**DEFAULTS[rule], **COMMON, **case}
    hp = {}
    for name in cls.hyperparameter_names():
        check, value = _check_of(cls, name), base[name]
        if check is _checks.flag:
            free = name == "decoupled_weight_decay" and base["weight_decay"] == 0
            free = free and rule != "adamw"  # AdamW fixes it
            hp[name] = draw(st.booleans()) if free else value
        elif _is_choice(check):
            free = name == "l1_mode" and base["l1"] == 0
            hp[name] = draw(st.sampled_from(_choice_options(check))) if free else value
        elif name in STRUCTURAL_ZERO and value == 0:
            hp[name] = 0.0
        elif name == "momentum":
            hp[name] = draw(TAME_MOMENTUM[check])
        elif name == "alpha" and base.get("centered"):
            # sq - ga**2 cancels as alpha -> 0: keep the variance well above float32's rounding
            hp[name] = draw(st.floats(0.5, 1.0))
        elif name == "dampening" and base.get("nesterov"):
            hp[name] = 0.0  # nesterov needs zero dampening
        else:
            hp[name] = draw(TAME[name])
    return hp


#: Unit roundoff of each dtype: the relative size of the input perturbations
#: that estimate how much a draw amplifies rounding errors.
ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
#: The perturbed reference runs of a draw: every array element perturbed up
#: (+1) or down (-1), hyperparameters as they are; or each element by a random
#: sign and each hyperparameter by a random factor (None). The uniform directions
#: catch correlated rounding, such as a parameter that float32 rounds to exactly
#: 0 while float64 keeps it at +1e-9, where ``sign(p)`` (L1) jumps.
DIRECTIONS = (1.0, -1.0, None, None)
#: How many times the spread of the perturbed runs is allowed.
SPREAD_FACTOR = 64
#: A spread above this fraction of an array's scale is a jump, not rounding.
DISCONTINUITY = 1e-3


def _perturb(x, u: float, rng: np.random.Generator, direction: float | None):
    """Arrays times ``1 + u * s``, ``s = direction`` or a random sign per element.
    Numbers (hyperparameters, also inside tuples) with ``direction=None`` times
    ``1 - u`` or 1 at random, which keeps them in their domains (``alpha = 1`` may
    not grow); otherwise, and flags and strings, as they are."""
    if isinstance(x, np.ndarray):
        s = rng.choice([-1.0, 1.0], x.shape) if direction is None else direction
        return x * (1 + u * s)
    if isinstance(x, tuple):
        return tuple(_perturb(v, u, rng, direction) for v in x)
    if isinstance(x, float) and direction is None:
        return x * (1 - u * rng.integers(0, 2))
    return x


def reference_run(rule: str, hp: dict, p0: np.ndarray, grads, rounding=None) -> list[dict]:
    """``{"params": ..., **state}`` after each step of the float64 reference.
    ``rounding(array) -> array``, if given, is applied to the parameters and every
    state array after each step: the rounding a float32 run stores them with."""
    p = np.array(p0, np.float64)  # a copy, and an array even when 0-d
    ref = Reference(rule, p.shape, **hp)
    trajectory = []
    with np.errstate(all="raise"):  # the tame draws make no NaN, inf nor 0/0
        for g in grads:
            ref.step(p, np.asarray(g, np.float64))
            trajectory.append({"params": p.copy(), **{k: v.copy() for k, v in ref.state.items()}})
            if rounding is not None:
                p[...] = rounding(p)
                ref.state.update({k: rounding(v) for k, v in ref.state.items()})
    return trajectory


def tolerated_error(run: Run, expected: list[dict]) -> list[dict[str, np.ndarray]]:
    """Per step and array, the error allowed on top of the parity tolerances:
    ``SPREAD_FACTOR`` times the spread of the reference when its inputs
    (parameters, gradients, hyperparameters) and the parameters and state it
    stores after each step are perturbed at the dtype's unit roundoff.

    This is the draw's conditioning. Where terms cancel (``g + wd * p`` near
    zero, a parameter stepped to near zero and then amplified by ``1 / eps``)
    the rounding of the dtype is amplified alike in fastgd and in any other
    implementation; elsewhere the spread is far below the parity tolerances."""
    u = ROUNDOFF[run.dtype]
    rng = np.random.default_rng(0)
    spread = [{k: np.zeros(np.shape(v)) for k, v in step.items()} for step in expected]
    for d in DIRECTIONS:
        hp = {k: _perturb(v, u, rng, d) for k, v in run.hp.items()}
        grads = [_perturb(g.astype(np.float64), u, rng, d) for g in run.grads]
        p0 = _perturb(run.params().astype(np.float64), u, rng, d)
        perturbed = reference_run(
            run.rule, hp, p0, grads, rounding=lambda a, d=d: _perturb(a, u, rng, d)
        )
        for mine, theirs, exact in zip(spread, perturbed, expected, strict=True):
            for k in mine:
                np.maximum(mine[k], np.abs(theirs[k] - exact[k]), out=mine[k])
    return [{k: SPREAD_FACTOR * v for k, v in step.items()} for step in spread]


def running_scales(run: Run, expected: list[dict]) -> list[dict[str, float]]:
    """Per step and array, the largest magnitude the array has had so far in the
    reference (the initial parameters included)."""
    scale = dict.fromkeys(expected[0], 0.0)
    scale["params"] = float(np.max(np.abs(run.params()), initial=0.0))
    scales = []
    for step in expected:
        scale = {k: max(scale[k], float(np.max(np.abs(v), initial=0.0))) for k, v in step.items()}
        scales.append(scale)
    return scales


def well_conditioned(allowed: list[dict], scales: list[dict]) -> bool:
    """Whether no perturbation at the unit roundoff (``allowed``, from
    :func:`tolerated_error`) moves any array by more than ``DISCONTINUITY`` of its
    scale. Draws that do sit on a jump of the rule (``sign(p)`` of L1 at p = 0
    within rounding, Lion's ``sign``), where float32 may also round to exactly 0,
    a third outcome no perturbation shows."""
    return all(
        np.max(allowed[t][k], initial=0.0) <= DISCONTINUITY * SPREAD_FACTOR * scales[t][k]
        for t in range(len(allowed))
        for k in allowed[t]
    )


def assert_close(actual, expected, dtype, scale: float, conditioning, what: str) -> None:
    """``test_parity``'s tolerances, with the absolute part relative to ``scale``
    (the largest magnitude of this array so far: a value that cancels to near
    zero keeps the rounding error of the magnitudes it came from), plus
    ``conditioning`` (an array, see :func:`tolerated_error`). ``expected`` is finite."""
    rtol, atol_scale = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, np.float64)
    bound = atol_scale * scale + conditioning
    bound = bound + rtol * np.abs(expected)
    bad = ~(np.abs(actual - expected) <= bound)  # NaN in actual is bad
    assert not bad.any(), (
        f"{what}: {np.count_nonzero(bad)} of {bad.size} elements off; first at "
        f"{np.argwhere(bad)[0].tolist()}: fastgd {actual[bad][0]!r}, reference "
        f"{expected[bad][0]!r}, allowed error {bound[bad][0]!r}"
    )


@dataclass
class Run:
    """One drawn run: a rule's hyperparameters, params and a gradient per step."""

    rule: str
    hp: dict
    dtype: np.dtype
    p0: np.ndarray
    grads: list[np.ndarray]

    def params(self) -> np.ndarray:
        return self.p0.astype(self.dtype)

    def optimizer(self, backend: str = "auto", p=None) -> fastgd.Optimizer:
        p = self.params() if p is None else p
        return construct(fastgd.OPTIMIZERS[self.rule], p, self.hp, backend)


@st.composite
def runs(draw, rule: str, min_steps: int = 1) -> Run:
    hp = draw(hyperparameters(rule), label="hyperparameters")
    dtype = draw(st.sampled_from(DTYPES), label="dtype")
    shape = draw(SHAPES, label="shape")
    p0 = draw(float_arrays(shape), label="params")
    grads = draw(st.lists(float_arrays(shape), min_size=min_steps, max_size=MAX_STEPS))
    cast = []
    for g in grads:
        g = g.astype(dtype)
        g.flags.writeable = False  # fastgd only reads the gradient
        cast.append(g)
    return Run(rule, hp, dtype, p0, cast)


@pytest.mark.parametrize("rule", RULES)
@given(data=st.data())
@_settings(100)
def test_random_configuration_matches_reference(rule, data):
    """Every step of a random run agrees with the float64 reference (parity
    tolerances, plus the draw's conditioning), and the serial and parallel loops
    agree bit for bit. Draws on a jump of the rule's formula are discarded."""
    run = data.draw(runs(rule), label="run")
    expected = reference_run(rule, run.hp, run.params(), run.grads)
    allowed = tolerated_error(run, expected)
    scales = running_scales(run, expected)
    assume(well_conditioned(allowed, scales))
    serial, parallel = run.optimizer("serial"), run.optimizer("parallel")
    for t, g in enumerate(run.grads, start=1):
        serial.step(g)
        parallel.step(g)
        assert_identical(
            {"params": serial.params, **serial.state},
            {"params": parallel.params, **parallel.state},
            f"serial vs parallel, step {t}",
        )
        actual = {"params": serial.params, **serial.state}
        assert actual.keys() == expected[t - 1].keys()
        for name, value in expected[t - 1].items():
            scale, allow = scales[t - 1][name], allowed[t - 1][name]
            assert_close(actual[name], value, run.dtype, scale, allow, f"{name}, step {t}")
    assert serial.steps == parallel.steps == len(run.grads)
    assert serial.state_dict()["host"] == parallel.state_dict()["host"]


# -- 2. state dicts ------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
@given(data=st.data())
@_settings(25)
def test_state_dict_round_trip_continues_bit_identically(rule, data):
    """state_dict -> load_state_dict into another optimizer (other hyperparameters,
    its own history, any CPU backend) -> both continue bit for bit. The loaded
    optimizer owns copies: editing the state dict afterwards changes nothing."""
    run = data.draw(runs(rule, min_steps=2), label="run")
    split = data.draw(st.integers(0, len(run.grads) - 1), label="steps before saving")
    backends = st.sampled_from(["auto", "serial", "parallel"])
    source = run.optimizer(data.draw(backends, label="source backend"))
    for g in run.grads[:split]:
        source.step(g)
    sd = source.state_dict()
    # the target: defaults (the first parity case), with steps of its own
    p_target = source.params.copy()
    target = fastgd.OPTIMIZERS[rule](p_target, backend=data.draw(backends, label="backend"))
    for g in run.grads[: data.draw(st.integers(0, 2), label="target's own steps")]:
        target.step(g)
    p_target[...] = source.params
    target.load_state_dict(sd)
    for array in sd["state"].values():
        array[...] = 7.0
    sd["hyperparameters"]["lr"] = 123.0
    assert Snapshot.of(target) == Snapshot.of(source)
    assert target.state_dict()["dtype"] == sd["dtype"] and target.steps == split
    for g in run.grads[split:]:
        source.step(g)
        target.step(g)
    assert_identical(
        {"params": source.params, **source.state},
        {"params": target.params, **target.state},
        "after the round trip",
    )
    assert Snapshot.of(target) == Snapshot.of(source)


def make(rule: str, dtype, shape, **overrides) -> fastgd.Optimizer:
    """``rule`` with the configuration ``tests/test_errors.py`` uses (every state
    array of interest on)."""
    p = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    return fastgd.OPTIMIZERS[rule](p, **{**EXTRA_STATE_CONFIGS.get(rule, {}), **overrides})


def stepped(rule: str, dtype, shape, n: int = 3, seed: int = 0, **overrides):
    opt = make(rule, dtype, shape, **overrides)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        opt.step(rng.standard_normal(shape).astype(dtype))
    return opt


@dataclass
class Edit:
    """One corruption of a state dict: set ``value`` at ``path`` or delete it."""

    path: tuple
    value: Any = None
    delete: bool = False

    def apply(self, sd: dict) -> dict:
        target = sd
        for key in self.path[:-1]:
            target = target[key]
        if self.delete:
            del target[self.path[-1]]
        else:
            target[self.path[-1]] = self.value
        return sd


#: Values of no use to any field: none of them is a dict, a dtype or a shape.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.lists(st.integers(-1, 1), max_size=2),
    st.just(object()),
)
OTHER_DTYPES = ["float16", "int64", "int32", "complex64", "complex128", "bool", "object", "V8"]


def _not_a_dtype() -> st.SearchStrategy:
    # None is np.dtype(None) = float64, and a list or dict is a structured dtype
    return st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.just(object())).filter(
        _not_float_dtype
    )


def _not_float_dtype(value) -> bool:
    try:
        return np.dtype(value) not in DTYPES
    except Exception:
        return True


def _wrong_field_values(name: str, sd: dict, cls) -> st.SearchStrategy:
    """Values of field ``name`` that must be refused."""
    if name == "format":
        return st.one_of(JUNK, st.just("fastgd.state_dict/2"), st.just(STATE_FORMAT.upper()))
    if name == "rule":
        others = sorted({c.rule.name for c in fastgd.OPTIMIZERS.values()} - {sd["rule"]})
        return st.one_of(JUNK, st.sampled_from(others)).filter(lambda v: v != sd["rule"])
    if name == "dtype":
        other = next(d.name for d in DTYPES if d.name != sd["dtype"])
        return st.one_of(st.sampled_from([other, *OTHER_DTYPES]), _not_a_dtype())
    if name == "shape":
        shape = tuple(sd["shape"])
        return st.one_of(
            JUNK.filter(lambda v: not (isinstance(v, list) and tuple(v) == shape)),
            st.lists(st.integers(0, 4), max_size=3).map(tuple).filter(lambda s: s != shape),
            st.just(tuple(float(n) for n in shape)).filter(lambda s: s != ()),
            st.just(tuple(bool(n) for n in shape)).filter(lambda s: s != ()),
            st.just(np.array(shape)),
        )
    if name == "step":
        return st.one_of(
            st.integers(max_value=-1),
            st.just(0),  # with state: refused
            st.floats(),
            st.booleans(),
            st.text(max_size=3),
            st.none(),
            st.just(np.float64(sd["step"])),
        )
    # hyperparameters, state, host: dicts
    return JUNK.filter(lambda v: not isinstance(v, dict))


def _bad_state_array(arr: np.ndarray) -> st.SearchStrategy:
    other = next(d for d in DTYPES if d != arr.dtype)
    return st.one_of(
        st.sampled_from([other, np.float16, np.int64, np.complex64, object]).map(arr.astype),
        st.just(np.zeros(arr.shape + (2,), arr.dtype)),
        st.just(np.zeros((arr.size + 1,), arr.dtype)),
        st.just(arr.tolist()),
        st.just(np.ma.masked_array(arr)),
        JUNK,
    )


def _rejects(check, name: str, value) -> bool:
    try:
        check(name, value)
    except ValueError:
        return True
    return False


#: Per class, hyperparameter values each valid alone but refused together.
RELATIONS = {
    "SGD": st.one_of(
        st.just({"nesterov": True, "momentum": 0.0}),
        st.floats(1e-3, 1.0).map(lambda d: {"nesterov": True, "momentum": 0.9, "dampening": d}),
    ),
    "AdamW": st.just({"decoupled_weight_decay": False}),
}


@st.composite
def corruptions(draw, sd: dict, cls) -> Edit:
    """A hypothesis-chosen edit that makes ``sd`` (a state dict after a few steps,
    with state arrays and, for SGD and NAdam, host scalars) invalid."""
    rule = cls.rule
    names = cls.hyperparameter_names()
    unknown = st.text(min_size=1, max_size=6)
    kind = draw(
        st.sampled_from(
            [
                "drop field",
                "bad field",
                "unknown field",
                "drop hyperparameter",
                "bad hyperparameter",
                "unknown hyperparameter",
                "inconsistent hyperparameters",
                "drop state",
                "bad state",
                "unknown state",
                "drop host",
                "bad host",
                "unknown host",
            ]
        ),
        label="kind",
    )
    if kind == "drop field":
        return Edit((draw(st.sampled_from(FIELDS)),), delete=True)
    if kind == "bad field":
        field = draw(st.sampled_from(FIELDS))
        return Edit((field,), draw(_wrong_field_values(field, sd, cls)))
    if kind == "unknown field":
        return Edit((draw(unknown.filter(lambda k: k not in FIELDS)),), draw(JUNK))
    if kind == "drop hyperparameter":
        return Edit(("hyperparameters", draw(st.sampled_from(names))), delete=True)
    if kind == "bad hyperparameter":
        name = draw(st.sampled_from(names))
        return Edit(("hyperparameters", name), draw(bad_values(cls, name)))
    if kind == "unknown hyperparameter":
        key = draw(unknown.filter(lambda k: k not in names))
        return Edit(("hyperparameters", key), draw(JUNK))
    if kind == "inconsistent hyperparameters":
        relation = RELATIONS.get(cls.__name__)
        if relation is None:  # no relations: a missing one instead
            return Edit(("hyperparameters", draw(st.sampled_from(names))), delete=True)
        return Edit(("hyperparameters",), {**sd["hyperparameters"], **draw(relation)})
    if kind == "drop state":
        return Edit(("state", draw(st.sampled_from(sorted(sd["state"])))), delete=True)
    if kind == "bad state":
        name = draw(st.sampled_from(sorted(sd["state"])))
        return Edit(("state", name), draw(_bad_state_array(sd["state"][name])))
    if kind == "unknown state":
        key = draw(unknown.filter(lambda k: k not in rule.states))
        return Edit(("state", key), np.zeros(sd["shape"], sd["dtype"]))
    if kind == "unknown host":
        return Edit(("host", draw(unknown.filter(lambda k: k not in rule.host))), draw(JUNK))
    if not rule.host:  # drop or corrupt a host scalar: an unknown one instead
        return Edit(("host", draw(unknown)), 0.5)
    name = draw(st.sampled_from(sorted(rule.host)))
    if kind == "drop host":
        return Edit(("host", name), delete=True)
    candidates = st.one_of(JUNK, st.floats(), st.integers(), st.just(np.bool_(True)))
    return Edit(
        ("host", name), draw(candidates.filter(lambda v: _rejects(rule.host[name], name, v)))
    )


@pytest.mark.parametrize("rule", RULES)
@given(data=st.data())
@_settings(80)
def test_corrupt_state_dict_is_refused_and_changes_nothing(rule, data):
    """load_state_dict raises TypeError or ValueError for a corrupted state dict
    of another run; params, state, steps, host scalars and hyperparameters stay
    bit-identical, and the next step agrees with an untouched twin."""
    cls = fastgd.OPTIMIZERS[rule]
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = data.draw(SHAPES, label="shape")
    opt, twin = stepped(rule, dtype, shape), stepped(rule, dtype, shape)
    source = stepped(rule, dtype, shape, n=4, seed=3, lr=0.5)
    sd = source.state_dict()
    edit = data.draw(corruptions(sd, cls), label="edit")
    edit.apply(sd)
    before = Snapshot.of(opt)
    with pytest.raises((TypeError, ValueError)):
        opt.load_state_dict(sd)
    assert_unchanged(opt, before, twin)


# -- 3. bad hyperparameter values ------------------------------------------------------------

NAN = st.sampled_from([math.nan, -math.nan, np.float32("nan"), np.float64("nan")])
INF = st.sampled_from([math.inf, -math.inf, np.float32("inf"), np.float64("-inf")])
HUGE = st.one_of(
    st.sampled_from([10**400, -(10**400), np.longdouble(10) ** 400]),
    st.integers(min_value=2**1024),
)
NOT_REAL = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([np.bool_(True), np.bool_(False), 1e-3 + 0j, b"1", [0.1], (0.1,), {}]),
    st.text(max_size=5),
    st.complex_numbers(min_magnitude=1e-3, allow_nan=False, allow_infinity=False),
)
NEGATIVE = st.one_of(
    st.floats(max_value=-5e-324, allow_infinity=False),
    st.integers(max_value=-1),
    st.floats(-1.0, -1e-6).map(np.float32),
)
AT_LEAST_ONE = st.one_of(
    st.floats(min_value=1.0, allow_infinity=False), st.integers(min_value=1), st.just(np.float32(1))
)
ABOVE_ONE = st.one_of(
    st.floats(min_value=1.0, exclude_min=True, allow_infinity=False), st.integers(min_value=2)
)
_ANY_REAL_BAD = (NOT_REAL, NAN, INF, HUGE)
#: Bad values of each numeric validator of fastgd._checks.
BAD_REAL = {
    _checks.real: st.one_of(*_ANY_REAL_BAD),
    _checks.nonnegative: st.one_of(*_ANY_REAL_BAD, NEGATIVE),
    _checks.unit_interval: st.one_of(*_ANY_REAL_BAD, NEGATIVE, AT_LEAST_ONE),
    _checks.closed_unit_interval: st.one_of(*_ANY_REAL_BAD, NEGATIVE, ABOVE_ONE),
}
_GOOD_BETA = st.floats(0.0, 0.999)
BAD_BETAS = st.one_of(
    st.tuples(BAD_REAL[_checks.unit_interval], _GOOD_BETA),
    st.tuples(_GOOD_BETA, BAD_REAL[_checks.unit_interval]),
    st.lists(_GOOD_BETA, max_size=4).filter(lambda v: len(v) != 2),
    st.lists(_GOOD_BETA, min_size=3, max_size=3).map(tuple),
    st.floats(0.0, 0.999),
    st.none(),
    st.text(max_size=4),
)
BAD_FLAG = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.sampled_from([np.int64(1), np.float64(0.0), [True], (False,), "True"]),
)


def bad_values(cls, name: str) -> st.SearchStrategy:
    """Values outside hyperparameter ``name``'s domain, from its validator."""
    check = _check_of(cls, name)
    if check in BAD_REAL:
        return BAD_REAL[check]
    if check is _checks.betas:
        return BAD_BETAS
    if check is _checks.flag:
        return BAD_FLAG
    if _is_choice(check):
        options = _choice_options(check)
        near = [o.upper() for o in options] + [o + " " for o in options] + [o[:-1] for o in options]
        return st.one_of(
            st.sampled_from(near), st.text(max_size=8), st.none(), st.integers(), st.floats()
        ).filter(lambda v: v not in options)
    raise AssertionError(f"{cls.__name__}.{name}: no bad values for validator {check!r}")


def _names_it(name: str) -> str:
    return rf"(?<!\w){re.escape(name)}(?!\w)"


def test_every_validator_has_bad_values():
    """A new validator in fastgd._checks needs its bad values here."""
    for cls in fastgd.OPTIMIZERS.values():
        for name in cls.hyperparameter_names():
            bad_values(cls, name)


@pytest.mark.parametrize("rule", RULES)
@given(data=st.data())
@_settings(50)
def test_bad_hyperparameter_refused_at_construction(rule, data):
    """A bad value of any constructor hyperparameter raises ValueError naming it,
    and the params are not touched."""
    cls = fastgd.OPTIMIZERS[rule]
    accepted = inspect.signature(cls).parameters
    names = [n for n in cls.hyperparameter_names() if n in accepted]
    name = data.draw(st.sampled_from(names), label="name")
    value = data.draw(bad_values(cls, name), label="value")
    x = np.linspace(-1, 1, 6).astype(data.draw(st.sampled_from(DTYPES), label="dtype"))
    before = x.tobytes()
    with pytest.raises(ValueError, match=_names_it(name)):
        cls(x, **{name: value})
    assert x.tobytes() == before


@pytest.mark.parametrize("rule", RULES)
@given(data=st.data())
@_settings(50)
def test_bad_hyperparameter_assignment_keeps_old_value(rule, data):
    """Assigning a bad value to any hyperparameter (AdamW's fixed
    decoupled_weight_decay included) raises ValueError naming it; the old value,
    params, state, steps and host scalars stay, and the next step agrees with an
    untouched twin."""
    cls = fastgd.OPTIMIZERS[rule]
    name = data.draw(st.sampled_from(cls.hyperparameter_names()), label="name")
    value = data.draw(bad_values(cls, name), label="value")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    opt, twin = stepped(rule, dtype, (2, 3)), stepped(rule, dtype, (2, 3))
    before = Snapshot.of(opt)
    with pytest.raises(ValueError, match=_names_it(name)):
        setattr(opt, name, value)
    assert getattr(opt, name) == before.hyperparameters[name]
    assert_unchanged(opt, before, twin)
