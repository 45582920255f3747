"""Plain NumPy float64 reference of every update rule, for the parity tests.

Written from torch.optim's ``_single_tensor_*`` loops (and optax for Lion and
the ``eps_inside_sqrt`` / Momentum variants), never from :mod:`fastgd.rules`.
Obviously correct first, never optimized: whole-array NumPy expressions, one
function per rule, textbook names.

>>> import numpy as np
>>> p = np.ones(3)
>>> ref = Reference("adam", p.shape, lr=0.1)
>>> ref.step(p, np.ones(3))
>>> p
array([0.9, 0.9, 0.9])
"""

from __future__ import annotations

import numpy as np

#: Options every rule takes.
COMMON = {"maximize": False, "l1": 0.0, "l1_mode": "subgradient"}

_ADAM = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "decoupled_weight_decay": False,
}

#: Hyperparameters and defaults of every rule: torch.optim's, optax's for Lion,
#: the textbook's for Momentum.
DEFAULTS: dict[str, dict] = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "momentum": {"lr": 1e-2, "momentum": 0.9, "form": "heavy_ball"},
    "adagrad": {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "eps_inside_sqrt": False,
    },
    "rmsprop": {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "eps_inside_sqrt": False,
    },
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "adam": dict(_ADAM),
    "adamw": dict(_ADAM, weight_decay=1e-2, decoupled_weight_decay=True),
    "adamax": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "nadam": {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
    },
    "radam": {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    },
    "lion": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 1e-3},
}

#: Rules whose weight decay is not coupled L2 (Lion applies its own inside the
#: update; Momentum has none). AdamW always decouples.
_NOT_COUPLED = ("lion", "momentum")


def _state_names(name: str, hp: dict) -> list[str]:
    """The state arrays a configuration uses, by torch's names."""
    if name == "sgd":
        return ["momentum_buffer"] if hp["momentum"] != 0 else []
    if name == "rmsprop":
        return (
            ["square_avg"]
            + (["grad_avg"] if hp["centered"] else [])
            + (["momentum_buffer"] if hp["momentum"] > 0 else [])
        )
    if name in ("adam", "adamw"):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if hp["amsgrad"] else [])
    return {
        "momentum": ["velocity"],
        "adagrad": ["sum"],
        "adadelta": ["square_avg", "acc_delta"],
        "adamax": ["exp_avg", "exp_inf"],
        "nadam": ["exp_avg", "exp_avg_sq"],
        "radam": ["exp_avg", "exp_avg_sq"],
        "lion": ["exp_avg"],
    }[name]


class Reference:
    """One rule on float64 arrays: ``Reference("adam", shape, lr=0.1).step(p, g)``.

    Attributes
    ----------
    state : dict of str to ndarray
        The rule's state arrays, by torch's names (only those this configuration uses).
    t : int
        Number of steps taken.
    mu_product : float
        NAdam's running product of the momentum coefficients.
    """

    def __init__(self, name: str, shape, **hyperparameters):
        defaults = {**DEFAULTS[name], **COMMON}
        unknown = set(hyperparameters) - set(defaults)
        if unknown:
            raise TypeError(f"reference {name!r} has no hyperparameters {sorted(unknown)}")
        self.name = name
        self.hp = {**defaults, **hyperparameters}
        initial = self.hp.get("initial_accumulator_value", 0.0)
        self.state = {s: np.full(shape, float(initial)) for s in _state_names(name, self.hp)}
        self.t = 0
        self.mu_product = 1.0

    def step(self, p: np.ndarray, g: np.ndarray) -> None:
        """Update the float64 array ``p`` in place with the gradient ``g``."""
        assert p.dtype == np.float64
        hp, s = self.hp, self.state
        self.t += 1
        t, lr = self.t, hp["lr"]
        g = np.asarray(g, dtype=np.float64)
        if hp["maximize"]:
            g = -g
        wd = hp.get("weight_decay", 0.0)
        decoupled = hp.get("decoupled_weight_decay", False)
        if wd != 0 and not decoupled and self.name not in _NOT_COUPLED:
            g = g + wd * p
        if hp["l1"] != 0 and hp["l1_mode"] == "subgradient":
            g = g + hp["l1"] * np.sign(p)
        if wd != 0 and decoupled:
            p *= 1 - lr * wd
        _RULES[self.name](self, p, g, s, t, **{k: v for k, v in hp.items() if k not in COMMON})
        if hp["l1"] != 0 and hp["l1_mode"] == "proximal":
            p[...] = np.sign(p) * np.maximum(np.abs(p) - lr * hp["l1"], 0.0)


def _sgd(ref, p, g, s, t, lr, momentum, dampening, weight_decay, nesterov):
    if momentum != 0:
        if t == 1:
            s["momentum_buffer"] = g.copy()
        else:
            s["momentum_buffer"] = momentum * s["momentum_buffer"] + (1 - dampening) * g
        buf = s["momentum_buffer"]
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def _momentum(ref, p, g, s, t, lr, momentum, form):
    if form == "heavy_ball":
        s["velocity"] = momentum * s["velocity"] - lr * g
        p += s["velocity"]
    else:
        s["velocity"] = momentum * s["velocity"] + (1 - momentum) * g
        p -= lr * s["velocity"]


def _adagrad(ref, p, g, s, t, lr, lr_decay, weight_decay, initial_accumulator_value, eps,
             eps_inside_sqrt):  # fmt: skip
    clr = lr / (1 + (t - 1) * lr_decay)
    s["sum"] = s["sum"] + g**2
    std = np.sqrt(s["sum"] + eps) if eps_inside_sqrt else np.sqrt(s["sum"]) + eps
    p -= clr * g / std


def _rmsprop(ref, p, g, s, t, lr, alpha, eps, weight_decay, momentum, centered, eps_inside_sqrt):
    s["square_avg"] = alpha * s["square_avg"] + (1 - alpha) * g**2
    var = s["square_avg"]
    if centered:
        s["grad_avg"] = alpha * s["grad_avg"] + (1 - alpha) * g
        var = var - s["grad_avg"] ** 2
    avg = np.sqrt(var + eps) if eps_inside_sqrt else np.sqrt(var) + eps
    if momentum > 0:
        s["momentum_buffer"] = momentum * s["momentum_buffer"] + g / avg
        p -= lr * s["momentum_buffer"]
    else:
        p -= lr * g / avg


def _adadelta(ref, p, g, s, t, lr, rho, eps, weight_decay):
    s["square_avg"] = rho * s["square_avg"] + (1 - rho) * g**2
    delta = np.sqrt(s["acc_delta"] + eps) / np.sqrt(s["square_avg"] + eps) * g
    s["acc_delta"] = rho * s["acc_delta"] + (1 - rho) * delta**2
    p -= lr * delta


def _adam(ref, p, g, s, t, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay):
    beta1, beta2 = betas
    s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
    s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g**2
    v = s["exp_avg_sq"]
    if amsgrad:
        s["max_exp_avg_sq"] = np.maximum(s["max_exp_avg_sq"], v)
        v = s["max_exp_avg_sq"]
    m_hat = s["exp_avg"] / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


def _adamax(ref, p, g, s, t, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
    s["exp_inf"] = np.maximum(beta2 * s["exp_inf"], np.abs(g) + eps)
    p -= lr / (1 - beta1**t) * s["exp_avg"] / s["exp_inf"]


def _nadam(ref, p, g, s, t, lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay):
    beta1, beta2 = betas
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    ref.mu_product *= mu
    s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
    s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g**2
    denom = np.sqrt(s["exp_avg_sq"] / (1 - beta2**t)) + eps
    p -= lr * (1 - mu) / (1 - ref.mu_product) * g / denom
    p -= lr * mu_next / (1 - ref.mu_product * mu_next) * s["exp_avg"] / denom


def _radam(ref, p, g, s, t, lr, betas, eps, weight_decay, decoupled_weight_decay):
    beta1, beta2 = betas
    s["exp_avg"] = beta1 * s["exp_avg"] + (1 - beta1) * g
    s["exp_avg_sq"] = beta2 * s["exp_avg_sq"] + (1 - beta2) * g**2
    m_hat = s["exp_avg"] / (1 - beta1**t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t > 5:
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        adaptive = np.sqrt(1 - beta2**t) / (np.sqrt(s["exp_avg_sq"]) + eps)
        p -= lr * m_hat * adaptive * r
    else:
        p -= lr * m_hat


def _lion(ref, p, g, s, t, lr, betas, weight_decay):
    beta1, beta2 = betas
    update = np.sign((1 - beta1) * g + beta1 * s["exp_avg"])
    s["exp_avg"] = (1 - beta2) * g + beta2 * s["exp_avg"]
    p -= lr * (update + weight_decay * p)


_RULES = {
    "sgd": _sgd,
    "momentum": _momentum,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adadelta": _adadelta,
    "adam": _adam,
    "adamw": _adam,
    "adamax": _adamax,
    "nadam": _nadam,
    "radam": _radam,
    "lion": _lion,
}
