"""``fastgd bench --crossover``: a rule's serial, parallel and auto loops across sizes."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

# SMALL_N, SMALL_N_MIN_STEPS and random_arrays are read from the package when a
# benchmark runs, so rebinding them on fastgd.bench still works (the tests do).
from fastgd import bench as _bench
from fastgd import config
from fastgd.bench._timing import (
    DEFAULT_REPEAT,
    MIN_SAMPLE_TIME,
    _check_count,
    _check_dtype,
    _check_rule,
    _check_sizes,
    _optimizer,
    _sig,
    bytes_per_step,
    format_n,
    interleaved_medians,
    resolved_backend,
)

#: Sizes of ``--crossover``: 1e2 to 1e8, two per decade.
CROSSOVER_SIZES = tuple(int(round(10 ** (e / 2))) for e in range(4, 17))


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
        params, grad = _bench.random_arrays(n, dtype, 2)
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
        min_steps = _bench.SMALL_N_MIN_STEPS if n <= _bench.SMALL_N else 1
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
