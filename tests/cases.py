"""The registry of parity test cases: hyperparameters to test, per rule.

Adding a rule to ``fastgd.OPTIMIZERS`` means adding its cases here (and its
formula to ``tests/reference.py``); the parity tests pick it up with no new
test code, and ``test_every_rule_has_cases`` fails until that is done.

Every dict is passed as keyword arguments to ``fastgd.OPTIMIZERS[rule]``, to
``tests.reference.Reference`` and, translated by :func:`torch_kwargs`, to the
matching ``torch.optim`` class. Learning rates are chosen so that no case
diverges over a few dozen steps with standard-normal or 1e8-scaled gradients.

Each new combination of switches (``maximize``, ``amsgrad``, weight decay on or
off, an L1 mode, ...) is a kernel numba compiles (about a second, per dtype and
backend), so options are combined into few switch sets; cases that differ only
in values (``lr``, ``betas``, ``eps``, ...) cost no compilation.
"""

from __future__ import annotations

#: L1 cases every rule gets: the subgradient form combined with ``maximize``
#: (``maximize`` negates only the loss gradient, not the L1 term), and the
#: proximal form strong enough to zero some parameters within 30 steps.
_L1_SUBGRADIENT = {"l1": 0.05, "maximize": True}
_L1_PROXIMAL = {"l1": 1.0, "l1_mode": "proximal"}

CASES: dict[str, list[dict]] = {
    "sgd": [
        {},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.01, "momentum": 0.9, "dampening": 0.5},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
        {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"lr": 0.01, **_L1_PROXIMAL},
    ],
    "momentum": [
        {},
        {"form": "ema", "lr": 0.1},
        {"form": "ema", "momentum": 0.5, **_L1_SUBGRADIENT},
        {"lr": 0.05, **_L1_PROXIMAL},
    ],
    "adagrad": [
        {},
        {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.5},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        # optax's form
        {"eps_inside_sqrt": True, "initial_accumulator_value": 0.1, "eps": 1e-7, **_L1_PROXIMAL},
    ],
    "rmsprop": [
        {},
        {"centered": True, "alpha": 0.9},
        {"momentum": 0.9, "lr": 1e-3},
        {"centered": True, "momentum": 0.5},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"eps_inside_sqrt": True, "centered": True, "momentum": 0.5, "eps": 1e-4, **_L1_PROXIMAL},
    ],
    "adadelta": [
        {},
        {"lr": 0.5, "rho": 0.5, "eps": 1e-4},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"lr": 0.1, **_L1_PROXIMAL},
    ],
    "adam": [
        {},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6},
        {"amsgrad": True},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {
            "lr": 0.01,
            "weight_decay": 0.5,
            "decoupled_weight_decay": True,
            "amsgrad": True,
            **_L1_PROXIMAL,
        },
    ],
    "adamw": [
        {},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.5},
        {"amsgrad": True, "maximize": True},
        _L1_SUBGRADIENT,
        {"lr": 0.01, **_L1_PROXIMAL},
    ],
    "adamax": [
        {},
        {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-4},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"lr": 0.01, **_L1_PROXIMAL},
    ],
    "nadam": [
        {},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "momentum_decay": 0.1},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"lr": 0.01, **_L1_PROXIMAL},
    ],
    "radam": [
        {},
        # beta2 = 0.9: rho_inf = 19, the rectified branch from step 3 on
        {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6},
        {"weight_decay": 0.1, "maximize": True},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"weight_decay": 0.1, **_L1_SUBGRADIENT},
        {"lr": 0.01, **_L1_PROXIMAL},
    ],
    "lion": [
        {},
        {"lr": 1e-3, "betas": (0.8, 0.95), "weight_decay": 0.1},
        {"weight_decay": 0.0},
        _L1_SUBGRADIENT,
        {"lr": 1e-3, **_L1_PROXIMAL},
    ],
}

#: The torch.optim class of each rule, by name; None where torch has none.
TORCH_CLASSES: dict[str, str | None] = {
    "sgd": "SGD",
    "momentum": None,
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
    "lion": None,
}

#: fastgd options torch.optim does not have; a case using one is not run against torch.
_FASTGD_ONLY = ("eps_inside_sqrt", "l1", "l1_mode", "form")


def torch_class(rule: str):
    """The ``torch.optim`` class of ``rule``, or None (imports torch lazily)."""
    name = TORCH_CLASSES[rule]
    if name is None:
        return None
    import torch

    return getattr(torch.optim, name)


def torch_kwargs(rule: str, hp: dict) -> dict | None:
    """``hp`` as keyword arguments of the torch class (for-loop implementation),
    or None when torch has no such rule or option."""
    if TORCH_CLASSES[rule] is None:
        return None
    if any(hp.get(k) not in (None, False, 0.0, "subgradient") for k in _FASTGD_ONLY):
        return None
    kwargs = {k: v for k, v in hp.items() if k not in _FASTGD_ONLY}
    return {**kwargs, "foreach": False}


def case_id(hp: dict) -> str:
    """A short readable id: ``defaults``, ``amsgrad,lr=0.01``, ``betas=0.8/0.9``."""
    if not hp:
        return "defaults"
    parts = []
    for key, value in hp.items():
        if value is True:
            parts.append(key)
        elif isinstance(value, tuple):
            parts.append(f"{key}={'/'.join(map(str, value))}")
        else:
            parts.append(f"{key}={value}")
    return ",".join(parts)


#: Every (rule, hyperparameters) pair, in registry order.
ALL_CASES: list[tuple[str, dict]] = [(rule, hp) for rule, cases in CASES.items() for hp in cases]


def all_case_params():
    """``ALL_CASES`` as ``pytest.param(rule, hp, id="rule-case")`` entries."""
    import pytest

    return [pytest.param(rule, hp, id=f"{rule}-{case_id(hp)}") for rule, hp in ALL_CASES]


#: Non-default settings that switch on extra state or branches; a rule not
#: listed runs with its defaults.
EXTRA_STATE_CONFIGS: dict[str, dict] = {
    "sgd": dict(momentum=0.9, nesterov=True, weight_decay=0.01),
    "momentum": dict(form="ema"),
    "adagrad": dict(lr_decay=0.01, initial_accumulator_value=0.1),
    "rmsprop": dict(momentum=0.5, centered=True),
    "adam": dict(amsgrad=True),
    "adamw": dict(amsgrad=True),
    "nadam": dict(decoupled_weight_decay=True, weight_decay=0.01),
}
