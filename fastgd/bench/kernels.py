"""The ``fastgd bench`` table: each rule's step time against the memory ceiling and torch.optim.

A step of a rule with ``k`` state arrays reads params, grad and the ``k``
states and writes params and the states, ``itemsize * N * (3 + 2 k)`` bytes
(:func:`~fastgd.bench.bytes_per_step`); the ceiling is a loop moving the same
bytes with no arithmetic (:func:`~fastgd.bench.ceiling_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

# SMALL_N, SMALL_N_MIN_STEPS and random_arrays are read from the package when a
# benchmark runs, so rebinding them on fastgd.bench still works (the tests do).
from fastgd import bench as _bench
from fastgd.bench._timing import (
    BENCH_COLUMNS,
    BENCH_HYPERPARAMETERS,
    DEFAULT_REPEAT,
    MIN_SAMPLE_TIME,
    _check_backend,
    _check_count,
    _check_dtype,
    _check_rule,
    _check_rules,
    _check_sizes,
    _import_torch,
    _optimizer,
    bytes_per_step,
    ceiling_step,
    format_n,
    interleaved_medians,
    random_arrays,
    resolved_backend,
)

#: Sizes of the default table, in elements.
DEFAULT_SIZES = (1_000, 100_000, 1_000_000, 10_000_000)

#: torch.optim class of each rule torch has (``momentum`` and ``lion`` it has not).
TORCH_OPTIMIZERS = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
}

#: fastgd-only hyperparameters and the value at which they do nothing, so the
#: configuration equals torch's.
_FASTGD_ONLY_NEUTRAL = {"l1": 0.0, "eps_inside_sqrt": False}


# -- torch.optim --------------------------------------------------------------------


def torch_equivalent(name: str, hyperparameters: dict) -> tuple[str, dict] | None:
    """The torch.optim class name and arguments equal to a fastgd configuration.

    Parameters
    ----------
    name : str
        fastgd rule name.
    hyperparameters : dict
        All hyperparameters of the fastgd optimizer (``opt.hyperparameters``).

    Returns
    -------
    (str, dict) or None
        None if torch has no such rule, or the configuration uses a
        fastgd-only option (L1, ``eps_inside_sqrt``).
    """
    cls_name = TORCH_OPTIMIZERS.get(name)
    if cls_name is None:
        return None
    for key, neutral in _FASTGD_ONLY_NEUTRAL.items():
        if hyperparameters.get(key, neutral) != neutral:
            return None
    torch = _import_torch()
    if torch is None:
        return None
    import inspect

    accepted = inspect.signature(getattr(torch.optim, cls_name)).parameters
    return cls_name, {k: v for k, v in hyperparameters.items() if k in accepted}


def torch_step(
    name: str, params: np.ndarray, grad: np.ndarray, hyperparameters: dict
) -> tuple[Callable[[], object], str] | None:
    """One step of torch's fastest CPU implementation of a rule, warmed up.

    Tries ``fused=True``, then ``foreach=True``, then the default
    (for-loop) implementation, keeping the first that constructs and steps.

    Parameters
    ----------
    name : str
        fastgd rule name.
    params, grad : ndarray
        Arrays to wrap with ``torch.from_numpy`` (``params`` is modified;
        pass copies).
    hyperparameters : dict
        All hyperparameters of the fastgd optimizer.

    Returns
    -------
    (callable, str) or None
        ``optimizer.step`` and the implementation used (``"fused"``,
        ``"foreach"`` or ``"for-loop"``); None when torch is missing or lacks
        the rule.
    """
    equivalent = torch_equivalent(name, hyperparameters)
    if equivalent is None:
        return None
    torch = _import_torch()
    cls_name, kwargs = equivalent
    cls = getattr(torch.optim, cls_name)
    tensor = torch.from_numpy(params).requires_grad_()
    tensor.grad = torch.from_numpy(grad)
    for impl, extra in (
        ("fused", {"fused": True}),
        ("foreach", {"foreach": True}),
        ("for-loop", {}),
    ):
        try:
            opt = cls([tensor], **kwargs, **extra)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        for _ in range(2):
            opt.step()
        return opt.step, impl
    return None  # pragma: no cover - the for-loop implementation always runs


def torch_time(
    name: str,
    n: int,
    dtype="float32",
    repeat: int = DEFAULT_REPEAT,
    hyperparameters: dict | None = None,
    min_time: float = MIN_SAMPLE_TIME,
) -> tuple[float, str] | None:
    """Median seconds per step of torch's fastest CPU version of rule ``name``.

    ``hyperparameters`` are fastgd's (defaults plus :data:`BENCH_HYPERPARAMETERS`
    if None). Returns ``(seconds, implementation)``, or None where torch is
    missing or lacks the rule.
    """
    if hyperparameters is None:
        hyperparameters = _optimizer(name, np.ones(1, dtype)).hyperparameters
    params, grad = random_arrays(n, dtype, 2)
    found = torch_step(name, params, grad, hyperparameters)
    if found is None:
        return None
    step, impl = found
    return interleaved_medians({"torch": step}, repeat, min_time)["torch"].median, impl


# -- the table --------------------------------------------------------------------


def measure_rule(
    name: str,
    n: int,
    dtype="float32",
    backend: str = "auto",
    repeat: int = DEFAULT_REPEAT,
    *,
    with_torch: bool = True,
    hyperparameters: dict | None = None,
    min_time: float = MIN_SAMPLE_TIME,
    seed: int = 0,
    state_dtype: str | None = None,
) -> dict:
    """Time one rule at one size against the memory ceiling and torch.

    Parameters
    ----------
    name : str
        Key of :data:`fastgd.OPTIMIZERS`.
    n : int
        Elements of the parameter array.
    dtype : {"float32", "float64"}
    backend : {"auto", "serial", "parallel"}
    repeat : int
        Interleaved samples of each contender.
    with_torch : bool
        Time torch too (where it is installed and has the rule).
    hyperparameters : dict, optional
        Arguments of the optimizer; default :func:`bench_hyperparameters`.
    min_time : float
        Shortest sample, in seconds.
    seed : int
        Seed of the random params and grad.
    state_dtype : {None, "bfloat16", "float16"}
        Store the state in 16 bits (float32 ``dtype`` only): the ceiling loop
        then moves 16-bit state too, a float32-state optimizer joins the
        interleaved samples (``x_f32_state``: its time / fastgd's), and torch
        is not run.

    Returns
    -------
    dict
        ``rule, n, dtype, backend`` (the loop it resolved to),
        ``requested_backend, hyperparameters, n_states, bytes_per_step,
        time_s, us_per_step, gb_per_s, ceiling_time_s, ceiling_fraction``
        (ceiling time / fastgd time: 1.0 is as fast as the ceiling),
        ``torch_impl, torch_time_s, x_torch`` (torch time / fastgd time, >1
        means fastgd is faster; None without torch), ``repeat``, and
        ``steps_per_sample`` and ``samples_s`` (seconds per step of every
        sample) by contender.
    """
    name, n = _check_rule(name), _check_count("n", n)
    dtype, backend = _check_dtype(dtype), _check_backend(backend)
    repeat = _check_count("repeat", repeat)
    state_dtype = _check_state_dtype(state_dtype, dtype)
    params, grad = _bench.random_arrays(n, dtype, 2, seed)
    opt = _optimizer(name, params.copy(), backend, hyperparameters, state_dtype)
    for _ in range(3):  # compile (or load) the kernel outside the timing
        opt.step(grad)
    n_states = len(opt.state)
    loop = resolved_backend(opt)
    states = _bench.random_arrays(n, dtype, n_states, seed + 1)
    if state_dtype is not None:  # the ceiling moves 16-bit state as its bits
        states = [s.astype(opt.state_dtype).view(np.uint16) for s in states]
    ceiling_arrays = [params.copy(), grad, *states]
    contenders = {
        "fastgd": partial(opt.step, grad),
        "ceiling": ceiling_step(n_states, n, dtype, loop, arrays=ceiling_arrays),
    }
    if state_dtype is not None:
        full = _optimizer(name, params.copy(), backend, hyperparameters)
        for _ in range(3):
            full.step(grad)
        contenders["float32 state"] = partial(full.step, grad)
        with_torch = False
    torch_impl = None
    if with_torch:
        found = torch_step(name, params.copy(), grad.copy(), opt.hyperparameters)
        if found is not None:
            contenders["torch"], torch_impl = found
    min_steps = _bench.SMALL_N_MIN_STEPS if n <= _bench.SMALL_N else 1
    timings = interleaved_medians(contenders, repeat, min_time, min_steps)
    t = timings["fastgd"].median
    itemsize = None if state_dtype is None else opt.state_dtype.itemsize
    n_bytes = bytes_per_step(n, dtype, n_states, itemsize)
    t_torch = timings["torch"].median if "torch" in timings else None
    t_full = timings["float32 state"].median if "float32 state" in timings else None
    return {
        "rule": name,
        "n": n,
        "dtype": dtype,
        "state_dtype": state_dtype,
        "x_f32_state": None if t_full is None else t_full / t,
        "backend": loop,
        "requested_backend": backend,
        "hyperparameters": opt.hyperparameters,
        "n_states": n_states,
        "bytes_per_step": n_bytes,
        "time_s": t,
        "us_per_step": t * 1e6,
        "gb_per_s": n_bytes / t / 1e9,
        "ceiling_time_s": timings["ceiling"].median,
        "ceiling_fraction": timings["ceiling"].median / t,
        "torch_impl": torch_impl,
        "torch_time_s": t_torch,
        "x_torch": None if t_torch is None else t_torch / t,
        "repeat": repeat,
        "steps_per_sample": {k: v.steps for k, v in timings.items()},
        "samples_s": {k: v.samples for k, v in timings.items()},
    }


def run_bench(
    rules=None,
    sizes=DEFAULT_SIZES,
    dtype="float32",
    backend: str = "auto",
    repeat: int = DEFAULT_REPEAT,
    *,
    with_torch: bool = True,
    progress: Callable[[str], None] | None = None,
    state_dtype: str | None = None,
) -> list[dict]:
    """:func:`measure_rule` for every rule (default all of :data:`fastgd.OPTIMIZERS`) and size.

    The arguments are checked before anything runs: unknown rules, an empty
    ``rules`` or ``sizes``, sizes or ``repeat`` that are not integers >= 1, a
    dtype other than float32/float64 or a backend other than auto, serial,
    parallel raise ValueError or TypeError.
    """
    rules = _check_rules(rules)
    sizes = _check_sizes(sizes)
    dtype = _check_dtype(dtype)
    backend = _check_backend(backend)
    repeat = _check_count("repeat", repeat)
    state_dtype = _check_state_dtype(state_dtype, dtype)
    rows = []
    for name in rules:
        for n in sizes:
            if progress:
                progress(f"{name} N={format_n(n)}")
            rows.append(measure_rule(name, n, dtype, backend, repeat, with_torch=with_torch,
                                     state_dtype=state_dtype))  # fmt: skip
    return rows


#: ``--state-dtype`` choices of ``fastgd bench``.
STATE_DTYPES = ("bfloat16", "float16")


def _check_state_dtype(state_dtype, dtype) -> str | None:
    if state_dtype is None:
        return None
    if state_dtype not in STATE_DTYPES:
        raise ValueError(
            f"state_dtype must be None or one of {', '.join(STATE_DTYPES)}, got {state_dtype!r}"
        )
    if dtype != "float32":
        raise ValueError(f"state_dtype={state_dtype} needs float32 parameters, not {dtype}")
    return state_dtype


def bench_columns(with_torch: bool = True, state_dtype: bool = False) -> tuple:
    """:data:`BENCH_COLUMNS`, without ``x torch`` when torch was not run, with
    ``x f32 state`` when the state was 16-bit."""
    columns = BENCH_COLUMNS if with_torch and not state_dtype else BENCH_COLUMNS[:-1]
    if state_dtype:
        columns += (("x f32 state", "x_f32_state", lambda x: f"{x:.2f}"),)
    return columns


def bench_notes(rows: list[dict]) -> str:
    """What the table's columns mean and how each rule was configured."""
    notes = [
        "us/step: median over interleaved samples of one opt.step(g), Python overhead included.",
        "GB/s: bytes moved per step (params read+write, grad read, each state read+write) / time.",
        "fraction of ceiling: time of a copy-like loop with the same traffic on the same "
        "backend / fastgd's time (1.0 = as fast as the memory ceiling).",
    ]
    stored = {row.get("state_dtype") for row in rows} - {None}
    if stored:
        notes.append(
            f"state_dtype={', '.join(sorted(stored))}: float32 params and grad, 16-bit state "
            "(2 bytes an element, read and written; the ceiling moves the same); x f32 state: "
            "the same rule with float32 state, in the same interleaved samples / fastgd's time."
        )
    configs = {}
    for row in rows:
        extra = BENCH_HYPERPARAMETERS.get(row["rule"])
        if extra:
            configs[row["rule"]] = ", ".join(f"{k}={v}" for k, v in extra.items())
    for name, text in configs.items():
        notes.append(f"{name}: default hyperparameters except {text} (so it keeps a state array).")
    impls: dict[str, list[str]] = {}
    for row in rows:
        if row["torch_impl"] and row["rule"] not in impls.get(row["torch_impl"], []):
            impls.setdefault(row["torch_impl"], []).append(row["rule"])
    if impls:
        notes.append(
            "x torch: torch time / fastgd time (>1: fastgd faster); torch.optim "
            + "; ".join(f"{impl}: {', '.join(names)}" for impl, names in impls.items())
            + "; '-': no torch equivalent."
        )
    return "\n".join(notes)
