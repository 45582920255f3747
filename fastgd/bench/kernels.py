"""The ``fastgd bench`` table: each rule's step time against the memory ceiling and torch.optim.

A step of a rule with ``k`` state arrays reads params, grad and the ``k``
states and writes params and the states, ``itemsize * N * (3 + 2 k)`` bytes
(:func:`~fastgd.bench.bytes_per_step`); the ceiling is a loop moving the same
bytes with no arithmetic (:func:`~fastgd.bench.ceiling_step`).

With 16-bit storage (``dtype="bfloat16"``/``"float16"``: params, grad and by
default state; or ``state_dtype``) the bytes are counted in the real storage
and the ceiling moves the same 16-bit arrays; the same rule in float32 joins
the interleaved samples, so the speed-up of the storage is measured, not
inferred.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

# SMALL_N, SMALL_N_MIN_STEPS and random_arrays are read from the package when a
# benchmark runs, so rebinding them on fastgd.bench still works (the tests do).
from fastgd import _precision
from fastgd import bench as _bench
from fastgd.bench._timing import (
    BENCH_COLUMNS,
    BENCH_HYPERPARAMETERS,
    DEFAULT_REPEAT,
    MIN_SAMPLE_TIME,
    _check_backend,
    _check_count,
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

#: ``--dtype`` choices of ``fastgd bench``: the parameters', gradient's and
#: (unless ``state_dtype`` says otherwise) state's dtype.
DTYPES = ("float32", "float64", "bfloat16", "float16")
#: The 16-bit parameter dtypes (float32 arithmetic inside the loop).
LOW_DTYPES = ("bfloat16", "float16")
#: ``--state-dtype`` choices: 16-bit state for float32 params, float32 state
#: for 16-bit params.
STATE_DTYPES = ("float32", "bfloat16", "float16")
#: ``--rounding`` choices: how 16-bit parameters are stored after the float32
#: update (to nearest even, with a Kahan compensation buffer, stochastically).
ROUNDINGS = ("nearest", "kahan", "stochastic")
#: Short names of the dtypes in column headers.
_SHORT = {"float32": "f32", "float64": "f64", "bfloat16": "bf16", "float16": "f16"}

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
        pass copies); ``ml_dtypes.bfloat16`` arrays become ``torch.bfloat16``
        tensors on the same memory.
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
    from fastgd.torch._device import from_numpy

    tensor = from_numpy(params).requires_grad_()
    tensor.grad = from_numpy(grad)
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
        hyperparameters = _optimizer(name, np.ones(1, _precision.as_dtype(dtype))).hyperparameters
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
    rounding: str = "nearest",
) -> dict:
    """Time one rule at one size against the memory ceiling and torch.

    Parameters
    ----------
    name : str
        Key of :data:`fastgd.OPTIMIZERS`.
    n : int
        Elements of the parameter array.
    dtype : {"float32", "float64", "bfloat16", "float16"}
        The parameters' and gradient's dtype (and the state's, unless
        ``state_dtype``). 16-bit parameters: the ceiling loop moves 16-bit
        params, grad and state; the same rule in float32 (params, grad and
        state; same N, same loop) joins the interleaved samples
        (``x_f32``: its time / fastgd's); torch runs on tensors of ``dtype``.
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
        Seed of the random params and grad (and of stochastic rounding).
    state_dtype : {None, "bfloat16", "float16", "float32"}
        The state's dtype when it is not ``dtype``: 16 bits for float32
        params, or float32 for 16-bit params. With float32 params the ceiling
        then moves 16-bit state too, a float32-state optimizer joins the
        interleaved samples (``x_f32_state`` and ``x_f32``: its time /
        fastgd's), and torch is not run (it has no 16-bit state for float32
        params).
    rounding : {"nearest", "kahan", "stochastic"}
        How 16-bit parameters are stored (``kahan=True``,
        ``stochastic_rounding=True``); other than ``"nearest"`` needs a
        16-bit ``dtype``. Kahan's compensation buffer counts in the bytes and
        moves in the ceiling loop.

    Returns
    -------
    dict
        ``rule, n, dtype, state_dtype`` (None: the state has ``dtype``),
        ``rounding, backend`` (the loop it resolved to),
        ``requested_backend, hyperparameters, n_states`` (the rule's state
        arrays, Kahan's buffer not counted), ``bytes_per_step``
        (:func:`fastgd.backends.traffic_bytes` of the real storage),
        ``time_s, us_per_step, gb_per_s, ceiling_time_s, ceiling_fraction``
        (ceiling time / fastgd time: 1.0 is as fast as the ceiling),
        ``x_f32`` (float32 time / fastgd time with 16-bit storage, else
        None), ``x_f32_state`` (the same, for float32 params with 16-bit
        state only), ``torch_impl, torch_time_s, x_torch`` (torch time /
        fastgd time, >1 means fastgd is faster; None without torch),
        ``repeat``, and ``steps_per_sample`` and ``samples_s`` (seconds per
        step of every sample) by contender.
    """
    name, n = _check_rule(name), _check_count("n", n)
    dtype, state_dtype, rounding = _check_storage(dtype, state_dtype, rounding)
    backend = _check_backend(backend)
    repeat = _check_count("repeat", repeat)
    low = dtype in LOW_DTYPES
    storage = {"kahan": True} if rounding == "kahan" else {}
    if rounding == "stochastic":
        storage = {"stochastic_rounding": True, "seed": seed}
    params, grad = _bench.random_arrays(n, dtype, 2, seed)
    opt = _optimizer(name, params.copy(), backend, hyperparameters, state_dtype, **storage)
    for _ in range(3):  # compile (or load) the kernel outside the timing
        opt.step(grad)
    n_states = len(opt.state) - (rounding == "kahan")  # the rule's, not Kahan's buffer
    loop = resolved_backend(opt)
    contenders = {
        "fastgd": partial(opt.step, grad),
        "ceiling": _storage_ceiling(opt, params, grad, n_states, loop, seed),
    }
    baseline = None
    if low or state_dtype is not None:  # the same rule in float32, same N, same loop
        baseline = "float32" if low else "float32 state"
        grad32 = grad.astype(np.float32)
        full = _optimizer(name, params.astype(np.float32), loop, hyperparameters)
        for _ in range(3):
            full.step(grad32)
        contenders[baseline] = partial(full.step, grad32)
    with_torch = with_torch and (low or state_dtype is None)
    torch_impl = None
    if with_torch:
        found = torch_step(name, params.copy(), grad.copy(), opt.hyperparameters)
        if found is not None:
            contenders["torch"], torch_impl = found
    min_steps = _bench.SMALL_N_MIN_STEPS if n <= _bench.SMALL_N else 1
    timings = interleaved_medians(contenders, repeat, min_time, min_steps)
    t = timings["fastgd"].median
    n_bytes = bytes_per_step(n, dtype, n_states, opt.state_dtype.itemsize, rounding == "kahan")
    t_torch = timings["torch"].median if "torch" in timings else None
    x_f32 = None if baseline is None else timings[baseline].median / t
    return {
        "rule": name,
        "n": n,
        "dtype": dtype,
        "state_dtype": state_dtype,
        "rounding": rounding,
        "x_f32": x_f32,
        "x_f32_state": x_f32 if baseline == "float32 state" else None,
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


def _storage_ceiling(opt, params, grad, n_states: int, loop: str, seed: int):
    """The ceiling loop over arrays stored like ``opt``'s: 16-bit params and grad
    as ``uint16`` (an integer add), 16-bit state as ``uint16`` and float32 state
    of 16-bit params as ``uint32`` (``s ^= 1``), Kahan's buffer as one more
    ``uint16`` state; float32/float64 arrays as they are."""
    states = _bench.random_arrays(params.size, opt.state_dtype, n_states, seed + 1)
    p, g = params.copy(), grad
    if params.dtype.itemsize == 2:
        p, g = p.view(np.uint16), g.view(np.uint16)
        states = [s.view(np.uint16 if s.itemsize == 2 else np.uint32) for s in states]
        if opt.kahan:
            states.append(np.zeros(params.size, np.uint16))
    elif opt.state_dtype.itemsize == 2:
        states = [s.view(np.uint16) for s in states]
    return ceiling_step(len(states), params.size, "float32", loop, arrays=[p, g, *states])


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
    rounding="nearest",
) -> list[dict]:
    """:func:`measure_rule` for every rule (default all of :data:`fastgd.OPTIMIZERS`),
    rounding and size.

    ``rounding`` is one of :data:`ROUNDINGS` or a sequence of them (a row
    each). The arguments are checked before anything runs: unknown rules, an
    empty ``rules``, ``sizes`` or ``rounding``, sizes or ``repeat`` that are
    not integers >= 1, a dtype not in :data:`DTYPES`, a backend other than
    auto, serial, parallel, or a storage that does not go with the dtype
    (see :func:`measure_rule`) raise ValueError or TypeError.
    """
    rules = _check_rules(rules)
    sizes = _check_sizes(sizes)
    roundings = [rounding] if isinstance(rounding, str) else list(rounding)
    if not roundings:
        raise ValueError("rounding is empty; pass 'nearest' for the default")
    for r in roundings:
        dtype, state_dtype, _ = _check_storage(dtype, state_dtype, r)
    backend = _check_backend(backend)
    repeat = _check_count("repeat", repeat)
    rows = []
    for name in rules:
        for r in dict.fromkeys(roundings):
            for n in sizes:
                if progress:
                    progress(f"{name}{'' if r == 'nearest' else ' ' + r} N={format_n(n)}")
                rows.append(measure_rule(name, n, dtype, backend, repeat, with_torch=with_torch,
                                         state_dtype=state_dtype, rounding=r))  # fmt: skip
    return rows


def _check_table_dtype(dtype) -> str:
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    try:
        name = str(_precision.as_dtype(dtype))
    except TypeError:
        name = None
    if name not in DTYPES:
        raise TypeError(f"dtype must be float32, float64, bfloat16 or float16, got {dtype!r}")
    return name


def _check_storage(dtype, state_dtype, rounding) -> tuple[str, str | None, str]:
    """``dtype``, ``state_dtype`` (None where it equals ``dtype``) and ``rounding``,
    checked together: ValueError naming the argument for what no optimizer stores."""
    dtype = _check_table_dtype(dtype)
    if state_dtype is not None and state_dtype not in STATE_DTYPES:
        raise ValueError(
            f"state_dtype must be None or one of {', '.join(STATE_DTYPES)}, got {state_dtype!r}"
        )
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if state_dtype == dtype:
        state_dtype = None
    if state_dtype is not None and dtype == "float64":
        raise ValueError(
            f"state_dtype={state_dtype} needs float32 parameters (16-bit state) or 16-bit "
            "ones (float32 state), not float64"
        )
    if state_dtype is not None and dtype in LOW_DTYPES and state_dtype != "float32":
        raise ValueError(
            f"state_dtype={state_dtype} with {dtype} parameters: 16-bit parameters keep their "
            "state in their own dtype (state_dtype=None) or in float32"
        )
    if rounding != "nearest" and dtype not in LOW_DTYPES:
        raise ValueError(
            f"rounding={rounding!r} rounds 16-bit parameters; {dtype} parameters are stored "
            "as computed (use dtype bfloat16 or float16)"
        )
    return dtype, state_dtype, rounding


def _f2(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _us(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1e6:.0f}" if x >= 1e-4 else f"{x * 1e6:.3g}")


def bench_columns(with_torch: bool = True, state_dtype: bool = False, dtype="float32") -> tuple:
    """The columns of the rule table.

    Parameters
    ----------
    with_torch : bool
        torch was run: ``x torch`` (and, with 16-bit ``dtype``, torch's time).
    state_dtype : bool
        float32 params with 16-bit state: ``x f32 state`` instead of ``x torch``.
    dtype : str
        With ``"bfloat16"``/``"float16"``: ``rounding`` after ``backend``,
        ``x f32`` (speed-up over the same rule in float32), and torch's time
        and speed-up on tensors of that dtype (``torch bf16 us``, ``x torch bf16``).

    Returns
    -------
    tuple of (header, key, formatter)
        For :func:`~fastgd.bench.format_table`.
    """
    if dtype in LOW_DTYPES:
        short = _SHORT[dtype]
        columns = (
            *BENCH_COLUMNS[:3],
            ("rounding", "rounding", str),
            *BENCH_COLUMNS[3:6],
            ("x f32", "x_f32", _f2),
        )
        if with_torch:
            columns += ((f"torch {short} us", "torch_time_s", _us),
                        (f"x torch {short}", "x_torch", _f2))  # fmt: skip
        return columns
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
    stored = {row.get("state_dtype") for row in rows if row["dtype"] == "float32"} - {None}
    if stored:
        notes.append(
            f"state_dtype={', '.join(sorted(stored))}: float32 params and grad, 16-bit state "
            "(2 bytes an element, read and written; the ceiling moves the same); x f32 state: "
            "the same rule with float32 state, in the same interleaved samples / fastgd's time."
        )
    low = sorted({row["dtype"] for row in rows if row["dtype"] in LOW_DTYPES})
    if low:
        f32_state = any(row.get("state_dtype") == "float32" for row in rows)
        state = "float32 state (4 bytes an element)" if f32_state else "state in the same dtype"
        notes += [
            f"dtype={', '.join(low)}: 16-bit params and grad (2 bytes an element), {state}, "
            "float32 arithmetic inside the loop; the ceiling loop moves the same arrays as "
            "their bits (integer add on params, xor on states).",
            "rounding: how the params are stored after each step: nearest (to nearest even), "
            "kahan (a compensation buffer of the params' dtype, read and written: 2 more bytes "
            "an element, counted in GB/s and moved by the ceiling), stochastic (random "
            "rounding from a counter hash, no extra traffic).",
            "x f32: the same rule with float32 params, grad and state (same N, same loop), in "
            "the same interleaved samples: its time / fastgd's time (>1: 16-bit storage faster).",
        ]
        if any(row["torch_impl"] for row in rows):
            notes.append(
                f"torch {', '.join(_SHORT[d] for d in low)}: torch.optim on tensors of that "
                "dtype (its state in that dtype too, round to nearest whatever fastgd's "
                "rounding), in the same interleaved samples; x torch: its time / fastgd's time."
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
