"""Helpers every benchmark family shares: checks, interleaved timing, the machine, tables.

Timings are medians of *interleaved* samples: each repetition times every
contender in turn (rotating who goes first), so a burst of load from another
process on a shared machine hits all of them alike instead of one.

A CPU optimizer step is memory-bound, so every number is put next to the
*memory ceiling*: a loop with the same traffic as the step and no arithmetic
(:func:`fastgd.backends.ceiling_loops`, :func:`ceiling_step`).
"""

from __future__ import annotations

import gc
import itertools
import math
import numbers
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numba
import numpy as np

import fastgd
from fastgd import _precision, backends, config

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


# -- accounting ---------------------------------------------------------------


def bytes_per_step(
    n: int, dtype, n_states: int, state_itemsize: int | None = None, kahan: bool = False
) -> int:
    """Bytes one in-place step moves: params read+write, grad read, states read+write.

    Parameters
    ----------
    n : int
        Number of elements.
    dtype : dtype-like
        The parameters' (and gradient's) dtype: ``float32``, ``float64``,
        ``bfloat16`` or ``float16``.
    n_states : int
        Number of state arrays of the rule (``len(opt.state)``, less the
        Kahan compensation buffer).
    state_itemsize : int, optional
        Bytes per state element when the state is stored in another dtype
        (``state_dtype``: 2 for bfloat16/float16, 4 for float32 state of
        16-bit parameters); default ``dtype``'s.
    kahan : bool
        The compensation buffer of ``kahan=True`` (the parameters' dtype) is
        read and written too.

    Returns
    -------
    int
        :func:`fastgd.backends.traffic_bytes`: ``itemsize * n * (3 + 2 *
        n_states)`` when everything has one dtype; 28 bytes per element for
        float32 Adam, 20 with 16-bit state, 14 for bfloat16 Adam, 18 with Kahan.
    """
    state_nbytes = None if state_itemsize is None else state_itemsize * n
    params_nbytes = _precision.as_dtype(dtype).itemsize * n
    return backends.traffic_bytes(params_nbytes, n_states, state_nbytes, kahan)


def bench_hyperparameters(name: str) -> dict:
    """The hyperparameters ``fastgd bench`` gives rule ``name`` beyond its defaults."""
    return dict(BENCH_HYPERPARAMETERS.get(name, {}))


def random_arrays(n: int, dtype, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` random arrays of ``n`` elements with magnitudes in [0.1, 1), no zeros.

    Zeros (or denormals) would take slow paths in some rules and flatter others.
    ``dtype`` may be ``"bfloat16"`` (``ml_dtypes.bfloat16``) or ``"float16"``.
    """
    dtype = _precision.as_dtype(dtype)
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
        extra = " (GPU: fastgd.bench.cuda.run_bench_cuda)" if backend == "cuda" else ""
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
        random ones by default. Unsigned-integer arrays stand for 16-bit
        storage passed as its bits (``p`` and ``g`` as ``uint16`` get an
        integer add; states, ``uint16`` or ``uint32``, get ``s ^= 1``).
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
    # 16-bit storage as its bits (uint16; float32 state of 16-bit params as uint32):
    # the states get ``s ^= 1``
    bits = any(a.dtype.kind == "u" for a in arrays)
    dispatcher = getattr(backends.ceiling_loops(n_states, bits), backend)
    # each array in its own dtype: 16-bit state (as uint16) moves 2 bytes an element
    signature = tuple(types.Array(numba.from_dtype(a.dtype), 1, "C") for a in arrays)
    entry = dispatcher.compile(signature)
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


def _optimizer(name, params, backend="auto", hyperparameters=None, state_dtype=None, **storage):
    """``fastgd.OPTIMIZERS[name]`` with the bench's hyperparameters (or these) and
    storage options (``kahan``, ``stochastic_rounding``, ``seed``)."""
    if hyperparameters is None:
        hyperparameters = bench_hyperparameters(name)
    cls = fastgd.OPTIMIZERS[name]
    return cls(params, backend=backend, state_dtype=state_dtype, **storage, **hyperparameters)


def blas_thread_settings() -> dict[str, str]:
    """The BLAS thread-count variables set in the environment (OpenBLAS, OpenMP, MKL)."""
    import os

    return {k: os.environ[k] for k in BLAS_THREAD_VARS if k in os.environ}


def blas_note(unlimited: str) -> str:
    """One line for a results table: the BLAS thread settings, or ``unlimited``
    (why they matter there) when none is set."""
    threads = blas_thread_settings()
    if threads:
        return "BLAS threads: " + ", ".join(f"{k}={v}" for k, v in threads.items())
    return "BLAS threads: not limited. " + unlimited


#: Environment variables that limit BLAS threads.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
        "dtype": str(_precision.as_dtype(dtype)),
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


#: Columns of the rule table: header, key, formatter (here as :func:`format_table`'s default).
BENCH_COLUMNS = (
    ("rule", "rule", str),
    ("N", "n", format_n),
    ("backend", "backend", str),
    ("us/step", "us_per_step", _sig),
    ("GB/s", "gb_per_s", lambda x: f"{x:.1f}"),
    ("fraction of ceiling", "ceiling_fraction", lambda x: f"{x:.2f}"),
    ("x torch", "x_torch", _or_dash(lambda x: f"{x:.2f}")),
)


_LEFT = {"rule", "backend", "rounding", "auto ran", "process", "model", "torch impl"}


def format_table(rows: list[dict], markdown: bool = False, columns=BENCH_COLUMNS) -> str:
    """Rows as an aligned text table, or a Markdown table.

    Parameters
    ----------
    rows : list of dict
        Results, e.g. from :func:`~fastgd.bench.run_bench`.
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
