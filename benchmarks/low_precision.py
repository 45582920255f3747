"""16-bit storage (issue 12): step time, fraction of its own ceiling, speed-up over float32.

Each storage is a name of :data:`STORAGES`: bfloat16 params, grad and state
rounded to nearest, with a Kahan compensation buffer or stochastically;
float16 the same way; float32 params with bfloat16 state. The arithmetic is
float32 in every case; only the bytes moved change.

The ``track_`` values come from :func:`fastgd.bench.measure_rule`, as in
``fastgd bench --dtype bfloat16 --rounding kahan`` (N = 1e7, ``backend="auto"``):
the ceiling loop moves the same 16-bit arrays (Kahan's buffer included), and
the same rule in float32 is timed in the same interleaved samples. They are
better when larger; asv flags every increase as a regression, so read the
sign the other way round. A commit without 16-bit storage skips (``n/a``).
"""

from __future__ import annotations

import numpy as np

import fastgd
from benchmarks import common

#: Storage name -> (params dtype, state_dtype, rounding), as ``fastgd bench``'s
#: ``--dtype``, ``--state-dtype`` and ``--rounding``.
STORAGES: dict[str, tuple[str, str | None, str]] = {
    "bf16": ("bfloat16", None, "nearest"),
    "bf16-kahan": ("bfloat16", None, "kahan"),
    "bf16-stochastic": ("bfloat16", None, "stochastic"),
    "f16": ("float16", None, "nearest"),
    "f32-bf16-state": ("float32", "bfloat16", "nearest"),
}
#: Sizes of ``time_step_low_precision``: the per-call overhead and the bandwidth.
SIZES = [10**3, 10**7]


def storage_options(storage: str) -> dict:
    """The optimizer's storage arguments for a name of :data:`STORAGES`.

    Parameters
    ----------
    storage : str
        Key of :data:`STORAGES`.

    Returns
    -------
    dict
        Some of ``state_dtype``, ``kahan``, ``stochastic_rounding`` and
        ``seed`` (0: the same random draws in every run).
    """
    _, state_dtype, rounding = STORAGES[storage]
    options: dict = {"state_dtype": state_dtype} if state_dtype else {}
    if rounding == "kahan":
        options["kahan"] = True
    elif rounding == "stochastic":
        options.update(stochastic_rounding=True, seed=0)
    return options


def storage_optimizer(rule: str, params: np.ndarray, backend: str, storage: str):
    """:func:`benchmarks.common.optimizer` with a storage of :data:`STORAGES`.

    Parameters
    ----------
    rule : str
        Key of :data:`fastgd.OPTIMIZERS`.
    params : ndarray
        Parameters of the storage's dtype.
    backend : {"auto", "serial", "parallel"}
    storage : str
        Key of :data:`STORAGES`.

    Returns
    -------
    fastgd.Optimizer

    Raises
    ------
    NotImplementedError
        This commit's optimizers do not take the storage (asv: skipped).
    """
    common.require_rule(rule)
    try:
        return fastgd.OPTIMIZERS[rule](
            params, backend=backend, **storage_options(storage), **common.hyperparameters(rule)
        )
    except TypeError as e:  # no 16-bit storage (dtype or keyword refused) in this commit
        raise NotImplementedError(f"{storage} storage: {e}") from None


def storage_stepper(rule: str, storage: str, backend: str, n: int):
    """An optimizer in ``storage`` ready to time, as :func:`benchmarks.common.stepper`.

    Parameters
    ----------
    rule : str
        Key of :data:`fastgd.OPTIMIZERS`.
    storage : str
        Key of :data:`STORAGES`.
    backend : {"auto", "serial", "parallel"}
    n : int
        Elements of the parameters.

    Returns
    -------
    (fastgd.Optimizer, ndarray)
        The optimizer, every loop ``backend`` may pick compiled on a small
        copy and its own state allocated and touched, and its gradient.
    """
    dtype = STORAGES[storage][0]
    if dtype == "bfloat16":
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            raise NotImplementedError("ml_dtypes is not installed") from None
    for loop in common.BACKENDS if backend == "auto" else [backend]:
        params, grad = common.arrays(16, dtype, 2)
        small = storage_optimizer(rule, params, loop, storage)
        for _ in range(common.WARMUP_STEPS):
            small.step(grad)
    params, grad = common.arrays(n, dtype, 2)
    opt = storage_optimizer(rule, params, backend, storage)
    for _ in range(common.WARMUP_STEPS if n <= 10**5 else 2):
        opt.step(grad)
    return opt, grad


class TimeStepLowPrecision:
    """Seconds per ``opt.step(grad)`` in 16-bit storage, Python overhead included.

    As :class:`benchmarks.step.TimeStep`: ``setup`` compiles every loop the
    steps use and steps the optimizer once per process; a sample is the mean
    of ``number`` = 1e6 / N calls.
    """

    params = (common.RULES, list(STORAGES), common.BACKENDS, SIZES)
    param_names = ["rule", "storage", "backend", "n"]
    repeat = (3, 10, 1.0)
    warmup_time = 0.05
    timeout = 300

    def setup(self, rule, storage, backend, n):
        self.opt, self.grad = common.once(
            ("low", rule, storage, backend, n),
            lambda: storage_stepper(rule, storage, backend, n),
        )
        self.number = max(1, 10**6 // n)

    def time_step_low_precision(self, rule, storage, backend, n):
        self.opt.step(self.grad)


class CeilingLowPrecision:
    """One step in 16-bit storage next to a loop moving the same bytes, and
    next to the same rule in float32 (N = 1e7, auto: the parallel loop)."""

    params = (common.RULES, list(STORAGES))
    param_names = ["rule", "storage"]
    timeout = 300

    def setup(self, rule, storage):
        bench = common.require_bench()
        common.require_rule(rule)
        dtype, state_dtype, rounding = STORAGES[storage]
        try:
            self.row = bench.measure_rule(
                rule, common.LARGE_N, dtype, "auto", with_torch=False,
                state_dtype=state_dtype, rounding=rounding,
            )  # fmt: skip
        except TypeError as e:  # a commit whose bench has no 16-bit storage
            raise NotImplementedError(f"{storage} storage: {e}") from None

    def track_low_precision_fraction_of_ceiling(self, rule, storage):
        """Ceiling loop time (same 16-bit traffic) / step time: 1.0 is the memory ceiling."""
        return self.row["ceiling_fraction"]

    track_low_precision_fraction_of_ceiling.unit = "fraction"

    def track_low_precision_gbps(self, rule, storage):
        """Bytes the step moves in its storage (``backends.traffic_bytes``) / step time."""
        return self.row["gb_per_s"]

    track_low_precision_gbps.unit = "GB/s"

    def track_speedup_vs_float32(self, rule, storage):
        """The same rule's float32 step time / this step's time: above 1, 16 bits pay."""
        return self.row["x_f32"]

    track_speedup_vs_float32.unit = "x float32"
