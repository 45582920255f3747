"""The math of every update rule, written once.

Each rule is two small functions:

* an *element* function: the per-element update, a plain Python function of
  scalars, ``(p, g, *state, *flags, *scalars) -> (p, *state)``. No decorators,
  no arrays, no dtype literals. The backends compile this one function into a
  serial loop, a ``prange`` loop and a CUDA kernel.
* a *prepare* function, run on the host once per step: it turns the
  hyperparameters and the step number into the compile-time ``flags`` of the
  element function and the step-dependent ``scalars`` (bias corrections,
  ``1 - beta``, ...). Scalars are cast to the array's dtype by the caller, so a
  float32 kernel never sees a float64 constant.

Everything every rule shares (``maximize``, coupled L2 weight decay,
decoupled weight decay, L1 regularization) is applied by :func:`prologue` and
:func:`epilogue`, which the loop calls around the element function.

``prepare`` receives ``hp`` (an object whose attributes are the validated
hyperparameters), the 1-based step number ``t`` and the rule's host state (a
dict of Python scalars, e.g. NAdam's running ``mu_product``), which it may
update in place.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------
# Shared pre- and post-processing of every rule
# --------------------------------------------------------------------------


def prologue(p, g, maximize, l2, decoupled, l1_sub, wd, decay, l1):
    """Apply the transforms every rule shares, in torch's order.

    ``g = -g`` (maximize); ``g = g + wd * p`` (coupled L2);
    ``g = g + l1 * sign(p)`` (L1 subgradient, ``sign(NaN) = NaN``); ``p = p * decay`` with
    ``decay = 1 - lr * wd`` (decoupled weight decay, AdamW).
    """
    if maximize:
        g = -g
    if l2:
        g = g + wd * p
    if l1_sub:
        if p > 0:
            g = g + l1
        elif p < 0:
            g = g - l1
        elif p != p:  # sign(NaN) is NaN: a NaN parameter makes its state NaN too
            g = g + p
    if decoupled:
        p = p * decay
    return p, g


def epilogue(p, l1_prox, l1_thresh):
    """Proximal L1 step (soft thresholding by ``l1_thresh = lr * l1``)."""
    if l1_prox:
        if p > l1_thresh:
            p = p - l1_thresh
        elif p < -l1_thresh:
            p = p + l1_thresh
        elif p == p:  # exact zero for |p| <= threshold; NaN stays NaN
            p = p - p
    return p


# --------------------------------------------------------------------------
# Element functions: one per rule
# --------------------------------------------------------------------------


def sgd(p, g, buf, momentum_on, nesterov, lr, buf_decay, buf_gain, momentum):
    # buf_decay = 0, buf_gain = 1 on the first step, so buf starts as g (torch)
    if momentum_on:
        buf = buf_decay * buf + buf_gain * g
        if nesterov:
            g = g + momentum * buf
        else:
            g = buf
    return p - lr * g, buf


def momentum(p, g, v, ema, lr, mu, one_minus_mu):
    if ema:
        v = mu * v + one_minus_mu * g
        p = p - lr * v
    else:
        v = mu * v - lr * g
        p = p + v
    return p, v


def adagrad(p, g, state_sum, eps_inside_sqrt, clr, eps):
    state_sum = state_sum + g * g
    if eps_inside_sqrt:
        std = math.sqrt(state_sum + eps)
    else:
        std = math.sqrt(state_sum) + eps
    return p - clr * (g / std), state_sum


def rmsprop(
    p, g, square_avg, grad_avg, buf, centered, momentum_on, eps_inside_sqrt,
    lr, alpha, one_minus_alpha, eps, momentum,
):  # fmt: skip
    square_avg = alpha * square_avg + one_minus_alpha * (g * g)
    if centered:
        grad_avg = grad_avg + one_minus_alpha * (g - grad_avg)
        var = square_avg - grad_avg * grad_avg
    else:
        var = square_avg
    if eps_inside_sqrt:
        avg = math.sqrt(var + eps)
    else:
        avg = math.sqrt(var) + eps
    if momentum_on:
        buf = momentum * buf + g / avg
        p = p - lr * buf
    else:
        p = p - lr * (g / avg)
    return p, square_avg, grad_avg, buf


def adadelta(p, g, square_avg, acc_delta, lr, rho, one_minus_rho, eps):
    square_avg = rho * square_avg + one_minus_rho * (g * g)
    delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * g
    acc_delta = rho * acc_delta + one_minus_rho * (delta * delta)
    return p - lr * delta, square_avg, acc_delta


def adam(
    p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, amsgrad,
    one_minus_beta1, beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
):  # fmt: skip
    exp_avg = exp_avg + one_minus_beta1 * (g - exp_avg)
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * (g * g)
    second = exp_avg_sq
    if amsgrad:
        # NaN-propagating max, like torch.maximum: NaN if either side is NaN
        if max_exp_avg_sq == max_exp_avg_sq and not (max_exp_avg_sq >= exp_avg_sq):
            max_exp_avg_sq = exp_avg_sq
        second = max_exp_avg_sq
    # a multiply by the host's 1/sqrt(1 - beta2**t) instead of torch's division:
    # the divider is the bottleneck when the arrays sit in cache (13% at N = 1e6)
    denom = math.sqrt(second) * inv_bias_correction2_sqrt + eps
    return p - step_size * (exp_avg / denom), exp_avg, exp_avg_sq, max_exp_avg_sq


def adamax(p, g, exp_avg, exp_inf, one_minus_beta1, beta2, clr, eps):
    exp_avg = exp_avg + one_minus_beta1 * (g - exp_avg)
    candidate = abs(g) + eps
    exp_inf = beta2 * exp_inf
    if exp_inf == exp_inf and not (exp_inf >= candidate):  # NaN-propagating max
        exp_inf = candidate
    return p - clr * (exp_avg / exp_inf), exp_avg, exp_inf


def nadam(
    p, g, exp_avg, exp_avg_sq,
    one_minus_beta1, beta2, one_minus_beta2, inv_bias_correction2_sqrt, grad_coef, avg_coef, eps,
):  # fmt: skip
    exp_avg = exp_avg + one_minus_beta1 * (g - exp_avg)
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * (g * g)
    denom = math.sqrt(exp_avg_sq) * inv_bias_correction2_sqrt + eps  # one division fewer
    p = p - grad_coef * (g / denom)
    p = p - avg_coef * (exp_avg / denom)
    return p, exp_avg, exp_avg_sq


def radam(
    p, g, exp_avg, exp_avg_sq, rectify,
    one_minus_beta1, beta2, one_minus_beta2, bias_correction1, lr, bias_correction2_sqrt,
    rect, eps,
):  # fmt: skip
    exp_avg = exp_avg + one_minus_beta1 * (g - exp_avg)
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * (g * g)
    update = exp_avg / bias_correction1 * lr
    if rectify:
        update = update * (bias_correction2_sqrt / (math.sqrt(exp_avg_sq) + eps)) * rect
    return p - update, exp_avg, exp_avg_sq


def lion(p, g, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, wd, one):
    # `one` comes from the host in the array's dtype: a literal 1 would make
    # the float32 kernel compute in float64
    c = one_minus_beta1 * g + beta1 * exp_avg
    if c > 0:
        u = one
    elif c < 0:
        u = -one
    else:
        u = c  # sign(0) = 0, sign(NaN) = NaN, as jnp.sign
    exp_avg = one_minus_beta2 * g + beta2 * exp_avg
    return p - lr * (u + wd * p), exp_avg


# --------------------------------------------------------------------------
# Host side: hyperparameters + step -> flags and scalars
# --------------------------------------------------------------------------


def _prepare_sgd(hp, t, host):
    on = hp.momentum != 0
    # torch starts the buffer as a copy of g the first step momentum is on;
    # without host state (functional API) that is step 1
    first = not host.get("momentum_started", t > 1)
    host["momentum_started"] = on or not first
    decay, gain = (0.0, 1.0) if first else (hp.momentum, 1.0 - hp.dampening)
    return (on, hp.nesterov), (hp.lr, decay, gain, hp.momentum)


def _prepare_momentum(hp, t, host):
    return (hp.form == "ema",), (hp.lr, hp.momentum, 1.0 - hp.momentum)


def _prepare_adagrad(hp, t, host):
    clr = hp.lr / (1 + (t - 1) * hp.lr_decay)
    return (hp.eps_inside_sqrt,), (clr, hp.eps)


def _prepare_rmsprop(hp, t, host):
    flags = (hp.centered, hp.momentum > 0, hp.eps_inside_sqrt)
    return flags, (hp.lr, hp.alpha, 1.0 - hp.alpha, hp.eps, hp.momentum)


def _prepare_adadelta(hp, t, host):
    return (), (hp.lr, hp.rho, 1.0 - hp.rho, hp.eps)


def _prepare_adam(hp, t, host):
    beta1, beta2 = hp.betas
    step_size = hp.lr / (1 - beta1**t)
    inv_bc2_sqrt = 1.0 / math.sqrt(1 - beta2**t)
    return (hp.amsgrad,), (1 - beta1, beta2, 1 - beta2, step_size, inv_bc2_sqrt, hp.eps)


def _prepare_adamax(hp, t, host):
    beta1, beta2 = hp.betas
    clr = hp.lr / (1 - beta1**t)
    return (), (1 - beta1, beta2, clr, hp.eps)


def _prepare_nadam(hp, t, host):
    beta1, beta2 = hp.betas
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * hp.momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * hp.momentum_decay))
    mu_product = host.get("mu_product", 1.0) * mu
    host["mu_product"] = mu_product
    grad_coef = hp.lr * (1.0 - mu) / (1.0 - mu_product)
    avg_coef = hp.lr * mu_next / (1.0 - mu_product * mu_next)
    inv_bc2_sqrt = 1.0 / math.sqrt(1 - beta2**t)
    scalars = (1 - beta1, beta2, 1 - beta2, inv_bc2_sqrt, grad_coef, avg_coef, hp.eps)
    return (), scalars


def _prepare_radam(hp, t, host):
    beta1, beta2 = hp.betas
    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * (beta2**t) / bc2
    rectify = rho_t > 5.0
    rect = 1.0
    if rectify:
        num = (rho_t - 4) * (rho_t - 2) * rho_inf
        rect = math.sqrt(num / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    scalars = (1 - beta1, beta2, 1 - beta2, bc1, hp.lr, math.sqrt(bc2), rect, hp.eps)
    return (rectify,), scalars


def _prepare_lion(hp, t, host):
    beta1, beta2 = hp.betas
    return (), (hp.lr, beta1, 1 - beta1, beta2, 1 - beta2, hp.weight_decay, 1.0)


# --------------------------------------------------------------------------
# The registry entry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One update rule: its element function and how the host drives it.

    Attributes
    ----------
    name : str
        Registry key (lower case, e.g. ``"adam"``).
    element : callable
        The per-element update ``(p, g, *states, *flags, *scalars) -> (p, *states)``.
    states : tuple of str
        Names of the state slots of ``element``, in order (torch's names).
    flags : tuple of str
        Names of the compile-time switches of ``element``, in order.
    scalars : tuple of str
        Names of the host-computed scalars of ``element``, in order.
    prepare : callable
        ``prepare(hp, t, host) -> (flags, scalars)``.
    active : callable
        ``active(hp) -> tuple of state names`` this configuration uses.
    initial : callable
        ``initial(hp, name) -> float``, the value a state array starts at.
    decay : str
        How ``weight_decay`` enters: ``"coupled"`` (L2 added to the gradient),
        ``"decoupled"`` (``p *= 1 - lr * wd``), ``"option"`` (coupled unless
        ``hp.decoupled_weight_decay``), or ``"none"``.
    host : dict
        The host state ``prepare`` keeps between steps: name -> validator
        ``check(name, value) -> value`` (used to refuse a corrupt state dict).
    """

    name: str
    element: Callable[..., Any]
    states: tuple[str, ...]
    flags: tuple[str, ...]
    scalars: tuple[str, ...]
    prepare: Callable[..., tuple[tuple[bool, ...], tuple[float, ...]]]
    active: Callable[[Any], tuple[str, ...]] = field(default=lambda hp: ())
    initial: Callable[[Any, str], float] = field(default=lambda hp, name: 0.0)
    decay: str = "coupled"
    host: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict)


def _flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"host scalar {name!r} must be True or False, got {value!r}")
    return value


def _product_of_momenta(name, value):
    # a product of NAdam's mu_t, each in [0, beta1) with beta1 < 1
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"host scalar {name!r} must be a float in [0, 1], got {value!r}")
    return float(value)


def _all(*names):
    return lambda hp: names


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "sgd",
            sgd,
            ("momentum_buffer",),
            ("momentum_on", "nesterov"),
            ("lr", "buf_decay", "buf_gain", "momentum"),
            _prepare_sgd,
            active=lambda hp: ("momentum_buffer",) if hp.momentum != 0 else (),
            host={"momentum_started": _flag},
        ),
        Rule(
            "momentum",
            momentum,
            ("velocity",),
            ("ema",),
            ("lr", "mu", "one_minus_mu"),
            _prepare_momentum,
            active=_all("velocity"),
            decay="none",
        ),
        Rule(
            "adagrad",
            adagrad,
            ("sum",),
            ("eps_inside_sqrt",),
            ("clr", "eps"),
            _prepare_adagrad,
            active=_all("sum"),
            initial=lambda hp, name: hp.initial_accumulator_value,
        ),
        Rule(
            "rmsprop",
            rmsprop,
            ("square_avg", "grad_avg", "momentum_buffer"),
            ("centered", "momentum_on", "eps_inside_sqrt"),
            ("lr", "alpha", "one_minus_alpha", "eps", "momentum"),
            _prepare_rmsprop,
            active=lambda hp: (
                ("square_avg",)
                + (("grad_avg",) if hp.centered else ())
                + (("momentum_buffer",) if hp.momentum > 0 else ())
            ),
        ),
        Rule(
            "adadelta",
            adadelta,
            ("square_avg", "acc_delta"),
            (),
            ("lr", "rho", "one_minus_rho", "eps"),
            _prepare_adadelta,
            active=_all("square_avg", "acc_delta"),
        ),
        Rule(
            "adam",
            adam,
            ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
            ("amsgrad",),
            (
                "one_minus_beta1",
                "beta2",
                "one_minus_beta2",
                "step_size",
                "inv_bias_correction2_sqrt",
                "eps",
            ),
            _prepare_adam,
            active=lambda hp: (
                ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if hp.amsgrad else ())
            ),
            decay="option",
        ),  # fmt: skip
        Rule(
            "adamax",
            adamax,
            ("exp_avg", "exp_inf"),
            (),
            ("one_minus_beta1", "beta2", "clr", "eps"),
            _prepare_adamax,
            active=_all("exp_avg", "exp_inf"),
        ),
        Rule(
            "nadam",
            nadam,
            ("exp_avg", "exp_avg_sq"),
            (),
            (
                "one_minus_beta1",
                "beta2",
                "one_minus_beta2",
                "inv_bias_correction2_sqrt",
                "grad_coef",
                "avg_coef",
                "eps",
            ),
            _prepare_nadam,
            active=_all("exp_avg", "exp_avg_sq"),
            decay="option",
            host={"mu_product": _product_of_momenta},
        ),  # fmt: skip
        Rule(
            "radam",
            radam,
            ("exp_avg", "exp_avg_sq"),
            ("rectify",),
            (
                "one_minus_beta1",
                "beta2",
                "one_minus_beta2",
                "bias_correction1",
                "lr",
                "bias_correction2_sqrt",
                "rect",
                "eps",
            ),
            _prepare_radam,
            active=_all("exp_avg", "exp_avg_sq"),
            decay="option",
        ),  # fmt: skip
        Rule(
            "lion",
            lion,
            ("exp_avg",),
            (),
            ("lr", "beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "wd", "one"),
            _prepare_lion,
            active=_all("exp_avg"),
            decay="none",
        ),
    )
}
