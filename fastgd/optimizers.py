"""The update rules as optimizer classes, with torch.optim's names and defaults.

Each class is a docstring (the exact formula), its hyperparameters and their
validation; the math lives once in :mod:`fastgd.rules`.

In every formula ``g`` is the gradient after the shared prologue: negated when
``maximize=True``, plus ``weight_decay * p`` (coupled L2) where the rule
couples weight decay, plus ``l1 * sign(p)`` when ``l1 > 0`` and
``l1_mode="subgradient"``. Decoupled weight decay multiplies ``p`` by
``1 - lr * weight_decay`` before the update. ``t`` is the 1-based step count.
"""

from __future__ import annotations

from fastgd import _checks as c
from fastgd.optim import Hyperparameter as H
from fastgd.optim import Optimizer
from fastgd.rules import RULES

__all__ = [
    "SGD",
    "Momentum",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Lion",
]

_COMMON_DOC = """
    maximize : bool, default False
        Maximize the objective (the gradient is negated).
    l1 : float, default 0.0
        L1 regularization strength.
    l1_mode : {"subgradient", "proximal"}, default "subgradient"
        ``"subgradient"`` adds ``l1 * sign(p)`` to the gradient (the textbook
        form); ``"proximal"`` soft-thresholds ``p`` by ``lr * l1`` after the
        step, which yields exact zeros.
    backend : {"auto", "serial", "parallel", "cuda"}, default "auto"
        Where the fused loop runs; see :class:`fastgd.optim.Optimizer`.
    state_dtype : {None, "float32", "bfloat16", "float16"}, default None
        How the state arrays are stored: ``None`` in the parameters' dtype;
        a 16-bit dtype (``ml_dtypes.bfloat16`` or NumPy's float16) for
        float32 parameters, float32 for 16-bit ones; loaded exactly into
        float32 and stored rounded to nearest even; see
        :class:`fastgd.optim.Optimizer`.
    kahan : bool, default False
        16-bit parameters: a Kahan compensation buffer (``state["kahan_comp"]``)
        keeps the updates that rounding would lose.
    stochastic_rounding : bool, default False
        16-bit parameters: unbiased stochastic rounding of the stored values,
        reproducible from ``seed``.
    seed : int, optional
        The stochastic rounding's seed (random by default; in ``state_dict()``)."""


def _arguments(local_vars: dict) -> dict:
    """A constructor's arguments, for :class:`fastgd.optim.Optimizer`'s ``__init__``."""
    return {k: v for k, v in local_vars.items() if k not in ("self", "params", "__class__")}


def _doc(cls):
    cls.__doc__ = cls.__doc__.replace("    {common}", _COMMON_DOC.strip("\n"))
    return cls


@_doc
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum; torch.optim.SGD.

    .. code-block:: text

        buf = g                                  (first step)
        buf = momentum * buf + (1 - dampening) * g
        d   = g + momentum * buf  if nesterov else  buf    (d = g when momentum == 0)
        p   = p - lr * d

    Full-batch, stochastic and mini-batch gradient descent are all this rule;
    they differ in the gradient passed to :meth:`step` (see :func:`fastgd.minimize`).
    optax's ``sgd`` is the same with ``dampening=0``.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-3
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        Coupled L2: ``g = g + weight_decay * p``.
    nesterov : bool, default False
        Requires ``momentum > 0`` and ``dampening == 0``.
    {common}
    """

    rule = RULES["sgd"]
    lr = H(c.nonnegative)
    momentum = H(c.nonnegative)
    dampening = H(c.real)
    weight_decay = H(c.nonnegative)
    nesterov = H(c.flag)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, l1=0.0, l1_mode="subgradient",
                 backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))

    def _check_consistency(self):
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super()._check_consistency()


@_doc
class Momentum(Optimizer):
    """Gradient descent with momentum, in its two textbook forms.

    .. code-block:: text

        form="heavy_ball":  v = momentum * v - lr * g;            p = p + v
        form="ema":         v = momentum * v + (1 - momentum) * g; p = p - lr * v

    ``v`` starts at 0. Heavy-ball (Polyak) is ``SGD(momentum=mu)`` up to where
    ``lr`` enters; the EMA form is ``optax.sgd`` on an exponential moving
    average of the gradient (the "dampened" momentum of many textbooks).

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-2
    momentum : float, default 0.9
        ``mu`` (heavy ball) or ``beta`` (EMA); must be in [0, 1).
    form : {"heavy_ball", "ema"}, default "heavy_ball"
    {common}
    """

    rule = RULES["momentum"]
    lr = H(c.nonnegative)
    momentum = H(c.unit_interval)
    form = H(c.choice("heavy_ball", "ema"))

    def __init__(self, params, lr=1e-2, momentum=0.9, form="heavy_ball", *, maximize=False,
                 l1=0.0, l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class Adagrad(Optimizer):
    """Adagrad; torch.optim.Adagrad.

    .. code-block:: text

        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                      (sum starts at initial_accumulator_value)
        p   = p - clr * g / (sqrt(sum) + eps)          (eps_inside_sqrt=False, torch)
        p   = p - clr * g / sqrt(sum + eps)            (eps_inside_sqrt=True, optax/textbook)

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
        Coupled L2.
    initial_accumulator_value : float, default 0
    eps : float, default 1e-10
    eps_inside_sqrt : bool, default False
        Put ``eps`` under the square root (optax's ``adagrad``; its defaults are
        ``initial_accumulator_value=0.1, eps=1e-7``).
    {common}
    """

    rule = RULES["adagrad"]
    lr = H(c.nonnegative)
    lr_decay = H(c.nonnegative)
    weight_decay = H(c.nonnegative)
    initial_accumulator_value = H(c.nonnegative)
    eps = H(c.nonnegative)
    eps_inside_sqrt = H(c.flag)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, eps_inside_sqrt=False,
                 maximize=False, l1=0.0, l1_mode="subgradient", backend="auto",
                 state_dtype=None, kahan=False, stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum; torch.optim.RMSprop.

    .. code-block:: text

        sq  = alpha * sq + (1 - alpha) * g * g
        ga  = ga + (1 - alpha) * (g - ga)                    (centered)
        var = sq - ga * ga  if centered else  sq
        avg = sqrt(var) + eps      (sqrt(var + eps) with eps_inside_sqrt=True)
        buf = momentum * buf + g / avg;  p = p - lr * buf    (momentum > 0)
        p   = p - lr * g / avg                                (momentum == 0)

    optax's ``rmsprop`` puts eps inside the square root (``eps_inside_sqrt=True``)
    and defaults to ``decay=0.9``.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant, in ``[0, 1]`` (torch accepts any ``alpha >= 0``,
        but ``alpha > 1`` makes the running average of ``g*g`` negative and
        the step NaN, so fastgd refuses it).
    eps : float, default 1e-8
    weight_decay : float, default 0
        Coupled L2.
    momentum : float, default 0
    centered : bool, default False
    eps_inside_sqrt : bool, default False
    {common}
    """

    rule = RULES["rmsprop"]
    lr = H(c.nonnegative)
    alpha = H(c.closed_unit_interval)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)
    momentum = H(c.nonnegative)
    centered = H(c.flag)
    eps_inside_sqrt = H(c.flag)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, eps_inside_sqrt=False, maximize=False, l1=0.0,
                 l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class Adadelta(Optimizer):
    """Adadelta; torch.optim.Adadelta (and optax.adadelta).

    .. code-block:: text

        sq    = rho * sq + (1 - rho) * g * g
        delta = sqrt(acc + eps) / sqrt(sq + eps) * g
        acc   = rho * acc + (1 - rho) * delta * delta
        p     = p - lr * delta

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1.0
    rho : float, default 0.9
        Must be in [0, 1].
    eps : float, default 1e-6
    weight_decay : float, default 0
        Coupled L2.
    {common}
    """

    rule = RULES["adadelta"]
    lr = H(c.nonnegative)
    rho = H(c.closed_unit_interval)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False,
                 l1=0.0, l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class Adam(Optimizer):
    """Adam with bias correction, optionally AMSGrad; torch.optim.Adam.

    .. code-block:: text

        m    = m + (1 - beta1) * (g - m)           (= beta1 * m + (1 - beta1) * g)
        v    = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v);  v_hat = vmax  if amsgrad else  v
        p    = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    Same as ``optax.adam`` (``eps_root=0``). optax's ``amsgrad`` takes the
    maximum of the bias-corrected ``v``; this takes torch's maximum of the raw ``v``.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in [0, 1).
    eps : float, default 1e-8
    weight_decay : float, default 0
        Coupled L2, or decoupled with ``decoupled_weight_decay=True`` (AdamW).
    amsgrad : bool, default False
    decoupled_weight_decay : bool, default False
        ``p = p * (1 - lr * weight_decay)`` before the update instead of L2.
    {common}
    """

    rule = RULES["adam"]
    lr = H(c.nonnegative)
    betas = H(c.betas)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)
    amsgrad = H(c.flag)
    decoupled_weight_decay = H(c.flag)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False, l1=0.0,
                 l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class AdamW(Adam):
    """Adam with decoupled weight decay; torch.optim.AdamW (and optax.adamw).

    .. code-block:: text

        p = p * (1 - lr * weight_decay)
        (then the Adam update of :class:`Adam`, without L2 in g)

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
    amsgrad : bool, default False
    {common}
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, l1=0.0, l1_mode="subgradient",
                 backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, l1=l1, l1_mode=l1_mode,
                         backend=backend, state_dtype=state_dtype, kahan=kahan,
                         stochastic_rounding=stochastic_rounding, seed=seed)  # fmt: skip

    def _check_consistency(self):
        if not self.decoupled_weight_decay:
            raise ValueError("AdamW always decouples weight decay; use Adam for coupled L2")
        super()._check_consistency()


@_doc
class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm; torch.optim.Adamax.

    .. code-block:: text

        m = m + (1 - beta1) * (g - m)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    optax's ``adamax`` adds eps to the denominator instead (``m / (u + eps)``
    with ``u = max(beta2 * u, |g|)``).

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 2e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        Coupled L2.
    {common}
    """

    rule = RULES["adamax"]
    lr = H(c.nonnegative)
    betas = H(c.betas)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 maximize=False, l1=0.0, l1_mode="subgradient", backend="auto",
                 state_dtype=None, kahan=False, stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class NAdam(Optimizer):
    """NAdam with torch's momentum-decay schedule; torch.optim.NAdam.

    .. code-block:: text

        mu_t  = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay));   P_t = P_{t-1} * mu_t
        m     = m + (1 - beta1) * (g - m);   v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p     = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
        p     = p - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / denom

    ``P`` (``mu_product``) is host state, kept in :meth:`state_dict`. optax's
    ``nadam`` has no momentum-decay schedule and differs.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 2e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum_decay : float, default 4e-3
    decoupled_weight_decay : bool, default False
    {common}
    """

    rule = RULES["nadam"]
    lr = H(c.nonnegative)
    betas = H(c.betas)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)
    momentum_decay = H(c.nonnegative)
    decoupled_weight_decay = H(c.flag)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, *, decoupled_weight_decay=False, maximize=False,
                 l1=0.0, l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class RAdam(Optimizer):
    """Rectified Adam; torch.optim.RAdam.

    .. code-block:: text

        m      = m + (1 - beta1) * (g - m);   v = beta2 * v + (1 - beta2) * g * g
        rho_oo = 2 / (1 - beta2) - 1;   rho_t = rho_oo - 2 t beta2**t / (1 - beta2**t)
        step   = m / (1 - beta1**t) * lr
        if rho_t > 5:
            r    = sqrt((rho_t - 4)(rho_t - 2) rho_oo / ((rho_oo - 4)(rho_oo - 2) rho_t))
            step = step * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
        p = p - step

    Same threshold and formula as ``optax.radam``.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    decoupled_weight_decay : bool, default False
    {common}
    """

    rule = RULES["radam"]
    lr = H(c.nonnegative)
    betas = H(c.betas)
    eps = H(c.nonnegative)
    weight_decay = H(c.nonnegative)
    decoupled_weight_decay = H(c.flag)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 decoupled_weight_decay=False, maximize=False, l1=0.0,
                 l1_mode="subgradient", backend="auto", state_dtype=None, kahan=False,
                 stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


@_doc
class Lion(Optimizer):
    """Lion (evoLved sIgn mOmeNtum), optax's formula (``optax.lion``).

    .. code-block:: text

        u = sign((1 - beta1) * g + beta1 * m)        (sign(0) = 0, sign(NaN) = NaN)
        m = (1 - beta2) * g + beta2 * m
        p = p - lr * (u + weight_decay * p)

    torch has no Lion. optax requires ``learning_rate``; the default here is
    the paper's suggestion for AdamW-lr-1e-3 problems, 1e-4.

    Parameters
    ----------
    params : ndarray
        The parameters, updated in place.
    lr : float, default 1e-4
    betas : (float, float), default (0.9, 0.99)
    weight_decay : float, default 1e-3
        optax's default; applied as ``lr * weight_decay * p`` (decoupled from the sign).
    {common}
    """

    rule = RULES["lion"]
    lr = H(c.nonnegative)
    betas = H(c.betas)
    weight_decay = H(c.nonnegative)

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-3, *,
                 maximize=False, l1=0.0, l1_mode="subgradient", backend="auto",
                 state_dtype=None, kahan=False, stochastic_rounding=False, seed=None):  # fmt: skip
        super().__init__(params, **_arguments(locals()))


#: Optimizer class of every rule, by registry name.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamw": AdamW,
    "adamax": Adamax,
    "nadam": NAdam,
    "radam": RAdam,
    "lion": Lion,
}
