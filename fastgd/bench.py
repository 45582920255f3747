"""Measure fastgd against the memory ceiling and against torch.optim.

The functions here back the ``fastgd bench`` command and are importable, so
the asv suite can reuse the ceiling measurement.

A CPU optimizer step is memory-bound, so every number is put next to the
*memory ceiling*: a loop with the same traffic as the step and no arithmetic
(:func:`fastgd.backends.ceiling_loops`). A step of a rule with ``k`` state
arrays reads params, grad and the ``k`` states and writes params and the
states, ``itemsize * N * (3 + 2 k)`` bytes (:func:`bytes_per_step`).

Timings are medians of *interleaved* samples: each repetition times every
contender in turn (rotating who goes first), so a burst of load from another
process on a shared machine hits all of them alike instead of one.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import numbers
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

import fastgd
from fastgd import backends, config

#: Sizes of the default table, in elements.
DEFAULT_SIZES = (1_000, 100_000, 1_000_000, 10_000_000)
#: Sizes of ``--crossover``: 1e2 to 1e8, two per decade.
CROSSOVER_SIZES = tuple(int(round(10 ** (e / 2))) for e in range(4, 17))
#: Repetitions (interleaved samples per contender) unless told otherwise.
DEFAULT_REPEAT = 7
#: Shortest wall time of one timed sample, in seconds.
MIN_SAMPLE_TIME = 0.02
#: At or below this many elements a step costs about a microsecond, mostly
#: Python overhead, and a sample needs many steps for a stable median.
SMALL_N = 10_000
SMALL_N_MIN_STEPS = 2_000
#: Above this share of the CPUs used by other processes, the header calls the
#: numbers noisy.
NOISY_OTHERS_FRACTION = 0.1

#: Hyperparameters that differ from the class defaults in the benchmark:
#: SGD with momentum, so that it keeps a state array like the other rules.
BENCH_HYPERPARAMETERS: dict[str, dict] = {"sgd": {"momentum": 0.9}}

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


# -- accounting ---------------------------------------------------------------


def bytes_per_step(n: int, dtype, n_states: int) -> int:
    """Bytes one in-place step moves: params read+write, grad read, states read+write.

    Parameters
    ----------
    n : int
        Number of elements.
    dtype : dtype-like
        ``float32`` or ``float64``.
    n_states : int
        Number of state arrays the configuration uses (``len(opt.state)``).

    Returns
    -------
    int
        ``itemsize * n * (3 + 2 * n_states)``; 28 bytes per element for
        float32 Adam.
    """
    return backends.traffic_bytes(np.dtype(dtype).itemsize * n, n_states)


def bench_hyperparameters(name: str) -> dict:
    """The hyperparameters ``fastgd bench`` gives rule ``name`` beyond its defaults."""
    return dict(BENCH_HYPERPARAMETERS.get(name, {}))


def random_arrays(n: int, dtype, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` random arrays of ``n`` elements with magnitudes in [0.1, 1), no zeros.

    Zeros (or denormals) would take slow paths in some rules and flatter others.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(count):
        magnitude = rng.uniform(0.1, 1.0, n)
        arrays.append(np.where(rng.random(n) < 0.5, -magnitude, magnitude).astype(dtype))
    return arrays


def resolved_backend(opt: fastgd.Optimizer) -> str:
    """The loop (``"serial"`` or ``"parallel"``) a host optimizer runs."""
    return opt.resolved_backend


# -- argument checks: refuse bad arguments before anything is timed ----------------------


def _check_rule(name) -> str:
    if not isinstance(name, str) or name not in fastgd.OPTIMIZERS:
        raise ValueError(f"unknown rule {name!r}; choose from {', '.join(fastgd.OPTIMIZERS)}")
    return name


def _check_rules(rules) -> list[str]:
    """``rules`` (None: all of :data:`fastgd.OPTIMIZERS`) as a list of known names."""
    if rules is None:
        return list(fastgd.OPTIMIZERS)
    if isinstance(rules, (str, bytes)):
        raise TypeError(f"rules must be a sequence of names such as [{rules!r}], not a string")
    rules = [_check_rule(name) for name in rules]
    if not rules:
        raise ValueError("rules is empty; pass None for every rule")
    return rules


def _check_count(arg: str, value) -> int:
    """``value`` as an int >= 1; ``arg`` names it in errors."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{arg} must be >= 1, got {value!r}")
    return int(value)


def _check_sizes(sizes) -> list[int]:
    if isinstance(sizes, (str, bytes, numbers.Number)):
        raise TypeError(f"sizes must be a sequence of integers such as [1000], got {sizes!r}")
    sizes = [_check_count("sizes", n) for n in sizes]
    if not sizes:
        raise ValueError("sizes is empty")
    return sizes


def _check_dtype(dtype) -> str:
    try:
        name = str(np.dtype(dtype))
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


def _check_backend(backend) -> str:
    if backend not in ("auto", "serial", "parallel"):
        extra = " (GPU: fastgd.bench_cuda.run_bench_cuda)" if backend == "cuda" else ""
        raise ValueError(f"backend must be 'auto', 'serial' or 'parallel', got {backend!r}{extra}")
    return backend


# -- timing -------------------------------------------------------------------


@dataclass
class Timing:
    """Interleaved timing of one contender.

    Attributes
    ----------
    median : float
        Median seconds per step over the samples.
    samples : list of float
        Seconds per step of each sample.
    steps : int
        Steps per sample.
    """

    median: float
    samples: list[float] = field(default_factory=list)
    steps: int = 1


def _run(step: Callable[[], object], steps: int) -> float:
    """Wall seconds of ``steps`` calls of ``step``."""
    start = time.perf_counter()
    for _ in itertools.repeat(None, steps):
        step()
    return time.perf_counter() - start


def steps_per_sample(step: Callable[[], object], min_time: float = MIN_SAMPLE_TIME) -> int:
    """How many calls of ``step`` last at least ``min_time`` seconds (like ``timeit.autorange``)."""
    steps = 1
    while True:
        elapsed = _run(step, steps)
        if elapsed >= min_time / 5:
            return max(1, math.ceil(steps * min_time / elapsed))
        steps *= 10


def interleaved_medians(
    contenders: dict[str, Callable[[], object]],
    repeat: int = DEFAULT_REPEAT,
    min_time: float = MIN_SAMPLE_TIME,
    min_steps: int = 1,
) -> dict[str, Timing]:
    """Time several step functions in interleaved repetitions.

    Parameters
    ----------
    contenders : dict of str to callable
        Zero-argument functions doing one step each, already warmed up.
    repeat : int
        Samples per contender. Each repetition times every contender once,
        starting with a different one each time.
    min_time : float
        Each sample runs enough steps to last at least this long.
    min_steps : int
        Lower bound on the steps per sample.

    Returns
    -------
    dict of str to Timing
        Median seconds per step, the samples and the steps per sample.
    """
    names = list(contenders)
    steps = {k: max(min_steps, steps_per_sample(contenders[k], min_time)) for k in names}
    samples: dict[str, list[float]] = {k: [] for k in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                samples[k].append(_run(contenders[k], steps[k]) / steps[k])
    finally:
        if gc_was_enabled:
            gc.enable()
    return {k: Timing(statistics.median(samples[k]), samples[k], steps[k]) for k in names}


# -- contenders -----------------------------------------------------------------


def ceiling_step(
    n_states: int,
    n: int,
    dtype="float32",
    backend: str = "serial",
    *,
    arrays: list[np.ndarray] | None = None,
    seed: int = 0,
) -> Callable[[], None]:
    """One call of the memory-ceiling loop with ``n_states`` states, warmed up.

    Parameters
    ----------
    n_states : int
        State arrays of the rule it stands for: the loop moves the same bytes.
    n : int
        Elements per array.
    dtype : {"float32", "float64"}
    backend : {"serial", "parallel"}
    arrays : list of ndarray, optional
        ``[p, g, *states]`` to run on (``p`` and the states are modified);
        random ones by default.
    seed : int
        Seed of the random arrays.

    Returns
    -------
    callable
        A zero-argument function running one pass. It calls the loop compiled
        for the exact argument types, skipping numba's type dispatch, as
        fastgd's optimizers do.
    """
    from numba import types

    dtype = str(np.dtype(dtype))
    if arrays is None:
        arrays = random_arrays(n, dtype, 2 + n_states, seed)
    dispatcher = getattr(backends.ceiling_loops(n_states), backend)
    array_type = types.Array(getattr(types, dtype), 1, "C")
    entry = dispatcher.compile((array_type,) * (2 + n_states))
    step = partial(entry, *arrays)
    step()
    return step


def ceiling_time(
    n_states: int,
    n: int,
    dtype="float32",
    backend: str = "serial",
    repeat: int = DEFAULT_REPEAT,
    min_time: float = MIN_SAMPLE_TIME,
) -> float:
    """Median seconds per pass of the memory-ceiling loop (see :func:`ceiling_step`)."""
    step = ceiling_step(n_states, n, dtype, backend)
    return interleaved_medians({"ceiling": step}, repeat, min_time)["ceiling"].median


def _import_torch():
    """torch with as many threads as numba uses, or None if it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    import numba

    torch.set_num_threads(numba.get_num_threads())
    return torch


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


def _optimizer(name, params, backend="auto", hyperparameters=None) -> fastgd.Optimizer:
    if hyperparameters is None:
        hyperparameters = bench_hyperparameters(name)
    return fastgd.OPTIMIZERS[name](params, backend=backend, **hyperparameters)


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
    params, grad = random_arrays(n, dtype, 2, seed)
    opt = _optimizer(name, params.copy(), backend, hyperparameters)
    for _ in range(3):  # compile (or load) the kernel outside the timing
        opt.step(grad)
    n_states = len(opt.state)
    loop = resolved_backend(opt)
    ceiling_arrays = [params.copy(), grad, *random_arrays(n, dtype, n_states, seed + 1)]
    contenders = {
        "fastgd": partial(opt.step, grad),
        "ceiling": ceiling_step(n_states, n, dtype, loop, arrays=ceiling_arrays),
    }
    torch_impl = None
    if with_torch:
        found = torch_step(name, params.copy(), grad.copy(), opt.hyperparameters)
        if found is not None:
            contenders["torch"], torch_impl = found
    min_steps = SMALL_N_MIN_STEPS if n <= SMALL_N else 1
    timings = interleaved_medians(contenders, repeat, min_time, min_steps)
    t = timings["fastgd"].median
    n_bytes = bytes_per_step(n, dtype, n_states)
    t_torch = timings["torch"].median if "torch" in timings else None
    return {
        "rule": name,
        "n": n,
        "dtype": dtype,
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
    rows = []
    for name in rules:
        for n in sizes:
            if progress:
                progress(f"{name} N={format_n(n)}")
            rows.append(measure_rule(name, n, dtype, backend, repeat, with_torch=with_torch))
    return rows


# -- serial / parallel crossover ---------------------------------------------------------


def crossover(
    rule: str = "adam",
    sizes=CROSSOVER_SIZES,
    dtype="float32",
    repeat: int = DEFAULT_REPEAT,
    *,
    min_time: float = MIN_SAMPLE_TIME,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Time the serial, parallel and auto loops of one rule across sizes.

    Parameters
    ----------
    rule : str
        Key of :data:`fastgd.OPTIMIZERS` (configured as in the table).
    sizes : sequence of int
        Sizes in elements, increasing.
    dtype : {"float32", "float64"}
    repeat : int
        Interleaved samples of each backend.
    min_time : float
        Shortest sample, in seconds.
    progress : callable, optional
        Called with a line of text before each size.

    Returns
    -------
    dict
        ``rows``: per size (duplicates dropped) ``n, bytes_per_step``, ``serial_s, parallel_s,
        auto_s``, ``auto_backend``, ``auto_ratio`` (auto / min(serial,
        parallel)) and ``parallel_ratio`` (parallel / serial). ``crossover``:
        where parallel starts to win for good (the smallest size from which
        it wins at every larger one): ``between`` (the two sizes around it,
        or None), ``n`` and ``bytes_per_step`` (log-interpolated estimate).
        Also ``rule, dtype, n_states, parallel_min_bytes`` (the current
        :data:`fastgd.config.PARALLEL_MIN_BYTES`).
    """
    rule = _check_rule(rule)
    sizes = sorted(set(_check_sizes(sizes)))
    dtype = _check_dtype(dtype)
    repeat = _check_count("repeat", repeat)
    rows = []
    n_states = 0
    for n in sizes:
        if progress:
            progress(f"{rule} N={format_n(n)}")
        params, grad = random_arrays(n, dtype, 2)
        contenders = {}
        auto_backend = None
        for backend in ("serial", "parallel", "auto"):
            opt = _optimizer(rule, params.copy(), backend)
            for _ in range(3):
                opt.step(grad)
            contenders[backend] = partial(opt.step, grad)
            if backend == "auto":
                auto_backend = resolved_backend(opt)
            n_states = len(opt.state)
        min_steps = SMALL_N_MIN_STEPS if n <= SMALL_N else 1
        timings = interleaved_medians(contenders, repeat, min_time, min_steps)
        t = {k: v.median for k, v in timings.items()}
        rows.append(
            {
                "n": n,
                "bytes_per_step": bytes_per_step(n, dtype, n_states),
                "serial_s": t["serial"],
                "parallel_s": t["parallel"],
                "auto_s": t["auto"],
                "auto_backend": auto_backend,
                "auto_ratio": t["auto"] / min(t["serial"], t["parallel"]),
                "parallel_ratio": t["parallel"] / t["serial"],
            }
        )
        del contenders
    return {
        "rule": rule,
        "dtype": dtype,
        "n_states": n_states,
        "parallel_min_bytes": config.PARALLEL_MIN_BYTES,
        "rows": rows,
        "crossover": _crossover_point(rows, dtype, n_states),
    }


def _crossover_point(rows: list[dict], dtype, n_states: int) -> dict:
    """Where ``parallel_ratio`` drops below 1 for good, interpolated in log-log."""
    first = len(rows)
    while first > 0 and rows[first - 1]["parallel_ratio"] < 1.0:
        first -= 1
    if first == len(rows):
        return {"between": None, "n": None, "bytes_per_step": None, "parallel_wins": "never"}
    if first == 0:
        return {"between": None, "n": None, "bytes_per_step": None, "parallel_wins": "always"}
    lo, hi = rows[first - 1], rows[first]
    r_lo, r_hi = math.log(lo["parallel_ratio"]), math.log(hi["parallel_ratio"])
    x_lo, x_hi = math.log(lo["n"]), math.log(hi["n"])
    n = math.exp(x_lo + (x_hi - x_lo) * r_lo / (r_lo - r_hi))
    return {
        "between": [lo["n"], hi["n"]],
        "n": round(n),
        "bytes_per_step": bytes_per_step(round(n), dtype, n_states),
        "parallel_wins": "above",
    }


# -- start-up time ------------------------------------------------------------------------

_CHILD_FASTGD = """\
import time
t0 = time.perf_counter()
import fastgd
t1 = time.perf_counter()
import numpy as np
x = np.full(1000, 0.5, np.float32)
g = np.full(1000, 0.25, np.float32)
opt = fastgd.Adam(x)
opt.step(g)
t2 = time.perf_counter()
import json
print(json.dumps({"import": t1 - t0, "step": t2 - t1, "total": t2 - t0}))
"""

_CHILD_NUMBA = """\
import time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import json
print(json.dumps({"total": t1 - t0}))
"""

_CHILD_PYTHON = """\
import json
print(json.dumps({}))
"""

#: What ``startup`` runs in fresh interpreters, by label.
STARTUP_CHILDREN = {
    "python (empty)": _CHILD_PYTHON,
    "import numba": _CHILD_NUMBA,
    "import fastgd + Adam(1e3 float32) + first step": _CHILD_FASTGD,
}


def _run_child(source: str) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def startup(runs: int = 5, progress: Callable[[str], None] | None = None) -> dict:
    """Time importing fastgd and taking a first step in fresh processes.

    Every child runs once untimed first (warm disk and kernel caches), then
    ``runs`` times, the children interleaved.

    Parameters
    ----------
    runs : int
        Timed runs of each child.
    progress : callable, optional
        Called with a line of text before each round.

    Returns
    -------
    dict
        ``runs`` and ``rows``: per child ``label``, ``in_process_s`` (dict
        of perf_counter phases inside the child: ``total``, and for fastgd
        ``import`` and ``step``, each a list over runs), ``wall_s`` (list of
        whole-process wall times) and their medians ``in_process_median_s``
        and ``wall_median_s``. ``fastgd_own_s``: median fastgd in-process
        total minus median ``import numba``.
    """
    runs = _check_count("runs", runs)
    for source in STARTUP_CHILDREN.values():
        _run_child(source)
    phases: dict[str, dict[str, list[float]]] = {k: {} for k in STARTUP_CHILDREN}
    walls: dict[str, list[float]] = {k: [] for k in STARTUP_CHILDREN}
    for r in range(runs):
        if progress:
            progress(f"startup run {r + 1}/{runs}")
        for label, source in STARTUP_CHILDREN.items():
            timings, wall = _run_child(source)
            walls[label].append(wall)
            for phase, seconds in timings.items():
                phases[label].setdefault(phase, []).append(seconds)
    rows = []
    for label in STARTUP_CHILDREN:
        rows.append(
            {
                "label": label,
                "in_process_s": phases[label],
                "in_process_median_s": {k: statistics.median(v) for k, v in phases[label].items()},
                "wall_s": walls[label],
                "wall_median_s": statistics.median(walls[label]),
            }
        )
    by_label = {row["label"]: row for row in rows}
    fastgd_total = by_label[_fastgd_label()]["in_process_median_s"]["total"]
    numba_total = by_label["import numba"]["in_process_median_s"]["total"]
    return {"runs": runs, "rows": rows, "fastgd_own_s": fastgd_total - numba_total}


def _fastgd_label() -> str:
    return next(k for k, v in STARTUP_CHILDREN.items() if v is _CHILD_FASTGD)


# -- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(dtype="float32", with_torch: bool = True) -> dict:
    """What the numbers depend on: CPU, threads, threading layer, versions, dtype."""
    import numba

    # the threading layer is only known once a parallel loop has run
    step = ceiling_step(0, 16, "float64", "parallel")
    step()
    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numba_threads": numba.get_num_threads(),
        "threading_layer": numba.threading_layer(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "fastgd": fastgd.__version__,
        "torch": None,
        "torch_threads": None,
        "dtype": str(np.dtype(dtype)),
        "parallel_min_bytes": config.PARALLEL_MIN_BYTES,
        "load_average": _load_average(),
        "cpu_at_start": _cpu_snapshot(),
    }
    torch = _import_torch() if with_torch else None
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the OS reports them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_snapshot() -> list[float] | None:
    """``[wall, CPU seconds busy on the machine, CPU seconds of this process and its
    children]`` from /proc/stat (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait
    # is busy, steal (other virtual machines) included
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return [time.monotonic(), busy, sum(os.times()[:4])]


def finish_info(info: dict) -> dict:
    """Record how busy the machine was during the run in ``info``.

    Adds ``load_average_end`` and ``others_cpu_fraction``: the share of all
    CPUs that other processes (or other virtual machines) used between
    :func:`machine_info` and now.
    """
    info["load_average_end"] = _load_average()
    start, end = info.get("cpu_at_start"), _cpu_snapshot()
    info["others_cpu_fraction"] = None
    if start and end and end[0] > start[0]:
        others = (end[1] - start[1]) - (end[2] - start[2])
        share = others / ((end[0] - start[0]) * (info["usable_cpus"] or 1))
        info["others_cpu_fraction"] = round(min(max(share, 0.0), 1.0), 3)
    return info


def format_header(info: dict, markdown: bool = False) -> str:
    """The machine description printed above a table.

    Shows the load average (1, 5, 15 min) at the start and, after
    :func:`finish_info`, the share of the CPUs other processes used during
    the run, with a warning when it is high: on a shared machine the
    parallel loops wait for their threads to be scheduled, and the numbers
    say little.
    """
    if info["torch"]:
        torch = f"torch {info['torch']} ({info['torch_threads']} threads, set to numba's)"
    else:
        torch = "torch not used"
    lines = [
        f"CPU: {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable)",
        f"numba {info['numba']}: {info['numba_threads']} threads, "
        f"{info['threading_layer']} threading layer",
        f"python {info['python']}, numpy {info['numpy']}, fastgd {info['fastgd']}, {torch}",
        f"dtype {info['dtype']}; auto runs parallel from "
        f"{info['parallel_min_bytes']:,} bytes of traffic per step",
    ]
    load = info.get("load_average")
    if load is not None:
        text = f"load average {' '.join(map(str, load))} at start"
        others = info.get("others_cpu_fraction")
        if others is not None:
            text += f"; other processes used {others:.0%} of the CPUs during the run"
            if others > NOISY_OTHERS_FRACTION:
                text += " (shared machine: numbers are noisy)"
        lines.append(text)
    return "\n".join(f"- {line}" if markdown else line for line in lines)


# -- formatting -------------------------------------------------------------------------------


def format_n(n: int) -> str:
    """``1000 -> "1e3"``, ``30000 -> "3e4"``, other sizes with digit grouping."""
    n = int(n)
    if n > 0:
        exponent = int(math.floor(math.log10(n)))
        mantissa, rest = divmod(n, 10**exponent)
        if rest == 0 and exponent >= 2:
            return f"{mantissa}e{exponent}"
    return f"{n:,}"


def _sig(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _or_dash(fmt: Callable[[float], str]) -> Callable[[float | None], str]:
    return lambda x: "-" if x is None else fmt(x)


#: Columns of the rule table: header, key, formatter.
BENCH_COLUMNS = (
    ("rule", "rule", str),
    ("N", "n", format_n),
    ("backend", "backend", str),
    ("us/step", "us_per_step", _sig),
    ("GB/s", "gb_per_s", lambda x: f"{x:.1f}"),
    ("fraction of ceiling", "ceiling_fraction", lambda x: f"{x:.2f}"),
    ("x torch", "x_torch", _or_dash(lambda x: f"{x:.2f}")),
)


def bench_columns(with_torch: bool = True) -> tuple:
    """:data:`BENCH_COLUMNS`, without ``x torch`` when torch was not run."""
    return BENCH_COLUMNS if with_torch else BENCH_COLUMNS[:-1]


#: Columns of the crossover table.
CROSSOVER_COLUMNS = (
    ("N", "n", format_n),
    ("MB/step", "bytes_per_step", lambda x: f"{x / 1e6:.3g}"),
    ("serial us", "serial_s", lambda x: _sig(x * 1e6)),
    ("parallel us", "parallel_s", lambda x: _sig(x * 1e6)),
    ("auto us", "auto_s", lambda x: _sig(x * 1e6)),
    ("auto ran", "auto_backend", str),
    ("parallel/serial", "parallel_ratio", lambda x: f"{x:.2f}"),
    ("auto/best", "auto_ratio", lambda x: f"{x:.2f}"),
)

#: Columns of the start-up table.
STARTUP_COLUMNS = (
    ("process", "label", str),
    ("in-process ms", "in_process_ms", str),
    ("process wall ms", "wall_ms", str),
    ("all wall ms", "all_wall_ms", str),
)

_LEFT = {"rule", "backend", "auto ran", "process"}


def format_table(rows: list[dict], markdown: bool = False, columns=BENCH_COLUMNS) -> str:
    """Rows as an aligned text table, or a Markdown table.

    Parameters
    ----------
    rows : list of dict
        Results, e.g. from :func:`run_bench`.
    markdown : bool
        Emit a GitHub-flavoured Markdown table (numbers right-aligned).
    columns : sequence of (header, key, formatter)
        Which fields to show and how; :data:`BENCH_COLUMNS` by default.
    """
    headers = [h for h, _, _ in columns]
    cells = [[fmt(row[key]) for _, key, fmt in columns] for row in rows]
    left = [h in _LEFT for h in headers]
    if markdown:
        rule = ["---" if lf else "---:" for lf in left]
        lines = [headers, rule, *cells]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(c) for c in col) for col in zip(headers, *cells, strict=True)]

    def line(values):
        return "  ".join(
            v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(values, widths, left, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def bench_notes(rows: list[dict]) -> str:
    """What the table's columns mean and how each rule was configured."""
    notes = [
        "us/step: median over interleaved samples of one opt.step(g), Python overhead included.",
        "GB/s: bytes moved per step (params read+write, grad read, each state read+write) / time.",
        "fraction of ceiling: time of a copy-like loop with the same traffic on the same "
        "backend / fastgd's time (1.0 = as fast as the memory ceiling).",
    ]
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


def crossover_summary(result: dict) -> str:
    """The crossover in words: where parallel starts to win, and the current threshold."""
    point = result["crossover"]
    rule, dtype, k = result["rule"], result["dtype"], result["n_states"]
    per_element = bytes_per_step(1, dtype, k)
    threshold = result["parallel_min_bytes"]
    lines = [
        f"{rule} {dtype}: {k} state arrays, {per_element} bytes of traffic per element and step.",
    ]
    if point["parallel_wins"] == "never":
        lines.append("parallel never wins for good at these sizes.")
    elif point["parallel_wins"] == "always":
        lines.append("parallel wins at every size measured.")
    else:
        lo, hi = point["between"]
        lines.append(
            f"parallel wins from N ~ {point['n']:,} elements (between {format_n(lo)} and "
            f"{format_n(hi)}), i.e. ~ {point['bytes_per_step'] / 1e6:.2g} MB of traffic per step."
        )
    lines.append(
        f"fastgd.config.PARALLEL_MIN_BYTES = {threshold:,} (N ~ {threshold // per_element:,} "
        f"for {rule} {dtype})."
    )
    return "\n".join(lines)


def startup_rows(result: dict) -> list[dict]:
    """The rows of :func:`startup` with the text cells of :data:`STARTUP_COLUMNS`."""
    rows = []
    for row in result["rows"]:
        phases = row["in_process_median_s"]
        inside = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in phases.items()) or "-"
        rows.append(
            {
                "label": row["label"],
                "in_process_ms": inside,
                "wall_ms": f"{row['wall_median_s'] * 1e3:.0f}",
                "all_wall_ms": " ".join(f"{w * 1e3:.0f}" for w in row["wall_s"]),
            }
        )
    return rows


def startup_summary(result: dict) -> str:
    """Per-run in-process values and fastgd's own share of the start-up time."""
    lines = [f"medians of {result['runs']} fresh processes after one warm-up run each."]
    for row in result["rows"]:
        for phase, values in row["in_process_s"].items():
            shown = " ".join(f"{v * 1e3:.0f}" for v in values)
            lines.append(f"{row['label']}: in-process {phase} ms: {shown}")
    lines.append(
        f"fastgd's own share (in-process total minus import numba): "
        f"{result['fastgd_own_s'] * 1e3:.0f} ms"
    )
    return "\n".join(lines)
