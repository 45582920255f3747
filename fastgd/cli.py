"""The ``fastgd`` command line.

``fastgd bench`` times every rule against the memory ceiling and torch.optim
(see :mod:`fastgd.bench`); ``fastgd compare`` runs fastgd and SciPy methods on
test problems (see :mod:`fastgd.comparison`). Each command is one subparser,
added by a ``_add_<command>`` function, and run by the function it sets as
``run``.

Every flag is checked when the command line is parsed, by the ``type=``
function of its argument: a bad value is a usage error (exit status 2, one
line naming the flag and what it accepts) before anything runs. Output files
(``--json``, ``--plot``) are checked then too, so a long run never ends in an
unwritable path; if writing still fails at the end, the results are on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import warnings

from fastgd import bench
from fastgd.bench import kernels as bench_kernels

BACKEND_CHOICES = ("auto", "serial", "parallel", "cuda")
#: The largest element count ``--sizes`` accepts: beyond any machine's memory,
#: and below 2**53, so that every size up to it is exact as a float ("1e15").
MAX_SIZE = 10**15
#: The most sizes a ``START:STOP:PER_DECADE`` range may expand to.
MAX_SIZE_COUNT = 1000
#: Where ``fastgd compare`` writes its figure unless told otherwise.
DEFAULT_PLOT = "compare.png"
#: What to install when matplotlib is missing (the extra that brings it).
MATPLOTLIB_HINT = "matplotlib is not installed; pip install 'fastgd[compare]'"

_SIZES_FORMS = (
    f"give comma-separated whole numbers from 1 to {bench.format_n(MAX_SIZE)} "
    "(e.g. 1e3,1e5) or START:STOP:PER_DECADE (e.g. 1e2:1e8:2)"
)


# -- argument types: each turns one flag's text into a value, or refuses it ------------


def _float(text: str) -> float:
    """``text`` as a float; NaN when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _whole(text: str, minimum: int, maximum: int | None = None) -> int:
    """``text`` as a whole number in ``[minimum, maximum]`` (``"1e4"`` is accepted)."""
    try:
        value = int(text)
    except ValueError:
        number = _float(text)
        value = int(number) if math.isfinite(number) and number == int(number) else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {bench.format_n(maximum)}"
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= {minimum}{upper}, got {text!r}"
        )
    return value


def _size(text: str) -> int:
    """One element count of ``--sizes``."""
    try:
        return _whole(text, 1, MAX_SIZE)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"bad size {text.strip()!r}; {_SIZES_FORMS}") from None


def _size_range(text: str) -> list[int]:
    """``"START:STOP:PER_DECADE"`` -> sizes spaced evenly in log, from START up to
    STOP (STOP included where it falls on the grid)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected START:STOP:PER_DECADE, got {text!r}")
    start, stop = _size(parts[0]), _size(parts[1])
    per_decade = _float(parts[2])
    if not 0 < per_decade < math.inf:
        raise argparse.ArgumentTypeError(
            f"PER_DECADE must be a finite number > 0, got {parts[2].strip()!r}"
        )
    if stop < start:
        raise argparse.ArgumentTypeError(f"STOP must be >= START, got {text!r}")
    lo, hi = math.log10(start), math.log10(stop)
    count = math.floor((hi - lo) * per_decade + 1e-9) + 1
    if count > MAX_SIZE_COUNT:
        raise argparse.ArgumentTypeError(
            f"{text!r} gives {count:,} sizes; at most {MAX_SIZE_COUNT} (lower PER_DECADE)"
        )
    return [min(stop, round(10 ** (lo + i / per_decade))) for i in range(count)]


def _sizes(text: str) -> list[int]:
    """``"1e3,1e5"`` or ``"START:STOP:PER_DECADE"`` (``"1e2:1e8:2"``) -> sorted element counts."""
    if ":" in text:
        sizes = _size_range(text)
    else:
        sizes = [_size(x) for x in text.split(",") if x.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError(f"no sizes in {text!r}; {_SIZES_FORMS}")
    return sorted(set(sizes))


def _pick(text: str, what: str, valid, allow_none: bool = False) -> list[str]:
    """Comma-separated names from ``valid`` (any case; spelled as in ``valid``,
    duplicates dropped); with ``allow_none``, ``none`` for an empty list."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if allow_none and [x.lower() for x in names] == ["none"]:
        return []
    known = {v.lower(): v for v in valid}
    unknown = [x for x in names if x.lower() not in known]
    if unknown or not names:
        problem = f"unknown {what} {', '.join(unknown)}" if unknown else f"no {what} given"
        choices = ", ".join(valid) + (", or none" if allow_none else "")
        raise argparse.ArgumentTypeError(f"{problem}; choose from {choices}")
    return list(dict.fromkeys(known[x.lower()] for x in names))


def _rules(text: str) -> list[str]:
    import fastgd

    return _pick(text, "rules", list(fastgd.OPTIMIZERS))


def _fastgd_methods(text: str) -> list[str]:
    from fastgd.driver import METHODS

    return _pick(text, "fastgd methods", METHODS, allow_none=True)


def _scipy_methods(text: str) -> list[str]:
    from fastgd.comparison import SCIPY_METHODS

    return _pick(text, "SciPy methods", SCIPY_METHODS, allow_none=True)


def _problems(text: str) -> list[str]:
    from fastgd.comparison import PROBLEM_NAMES

    return _pick(text, "problems", PROBLEM_NAMES)


def _roundings(text: str) -> list[str]:
    return _pick(text, "roundings", bench_kernels.ROUNDINGS)


def _positive_int(text: str) -> int:
    return _whole(text, 1)


def _nonnegative_int(text: str) -> int:
    return _whole(text, 0)


def _time_limit(text: str) -> float:
    """Seconds, finite and >= 0; 0 is returned as is and means no limit."""
    seconds = _float(text)
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(
            f"expected a finite number of seconds >= 0 (0: no limit), got {text!r}"
        )
    return seconds


def _output_file(text: str) -> str:
    """A path a file can be written to now: not a directory, in an existing,
    writable directory, and writable itself if it exists."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    directory = os.path.dirname(text) or "."
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"directory {directory!r} of {text!r} does not exist")
    if os.path.exists(text):
        if not os.access(text, os.W_OK):
            raise argparse.ArgumentTypeError(f"{text!r} is not writable")
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {directory!r} of {text!r} is not writable")
    return text


def _plot_file(text: str) -> str:
    """:func:`_output_file` in a format the plot can be written in."""
    from fastgd.comparison import plot_format

    path = _output_file(text)
    try:
        plot_format(path)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return path


# -- fastgd bench ------------------------------------------------------------------------


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time every rule against the memory ceiling and torch.optim",
        description=(
            "Time one optimizer step per rule and size: us/step, GB/s, fraction of the "
            "memory ceiling (a loop with the same traffic) and speed-up over torch.optim. "
            "--crossover times the serial, parallel and auto loops of one rule across sizes; "
            "--startup times import + first step in fresh processes; "
            "--torch times fastgd.torch against torch.optim on real models (step and "
            "training iteration); --dask times fastgd.dask on a LocalCluster against one "
            "process. --dtype bfloat16/float16 (with --rounding, --state-dtype) times 16-bit "
            "storage against a ceiling with the same traffic and the same rule in float32."
        ),
    )
    p.add_argument("--rules", type=_rules, help="comma-separated rules (default: all)")
    p.add_argument(
        "--sizes",
        type=_sizes,
        help=f"comma-separated element counts (1 to {bench.format_n(MAX_SIZE)}), or "
        "START:STOP:PER_DECADE (default 1e3,1e5,1e6,1e7; with --crossover 1e2:1e8:2)",
    )
    p.add_argument(
        "--dtype",
        choices=bench_kernels.DTYPES,
        default="float32",
        help="params and grad (and state, unless --state-dtype); bfloat16/float16: the rule "
        "table in 16-bit storage against a ceiling with the same traffic, the same rule in "
        "float32 and torch.optim on 16-bit tensors (default float32)",
    )
    p.add_argument(
        "--state-dtype",
        choices=bench_kernels.STATE_DTYPES,
        default=None,
        help="store the optimizer state in another dtype: bfloat16/float16 with float32 params "
        "(against the same rule with float32 state), float32 with --dtype bfloat16/float16",
    )
    p.add_argument(
        "--rounding",
        type=_roundings,
        help="with --dtype bfloat16/float16: how params are stored, comma-separated, a row each: "
        "nearest (default), kahan (compensation buffer), stochastic",
    )
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument(
        "--repeat",
        type=_positive_int,
        help=f"interleaved samples per measurement, >= 1 (default {bench.DEFAULT_REPEAT}; "
        "with --startup: fresh processes, default 5)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--crossover",
        action="store_true",
        help="serial vs parallel vs auto for one rule (--rules, default adam) across sizes",
    )
    mode.add_argument(
        "--startup", action="store_true", help="import + first-step time in fresh processes"
    )
    mode.add_argument(
        "--torch",
        action="store_true",
        help="fastgd.torch vs torch.optim vs the bare kernel on an MLP, a transformer and a "
        "1e7-parameter model: step and training iteration (--rules, default "
        f"{','.join(bench.TORCH_BENCH_RULES)}; --repeat default {bench.TORCH_BENCH_REPEAT})",
    )
    mode.add_argument(
        "--dask",
        action="store_true",
        help="fastgd.dask on a LocalCluster of single-thread workers vs the one-process "
        "parallel step (--rules: one rule, default adam; --sizes: one size, default "
        f"{bench.format_n(bench.DASK_N)}; --repeat default {bench.DASK_REPEAT})",
    )
    mode.add_argument(
        "--lbfgs",
        action="store_true",
        help="minimize(method='lbfgs')'s overhead per iteration against SciPy's L-BFGS-B and "
        "its memory-traffic bound at a full history ring, on the quadratic and Rosenbrock "
        "problems (--sizes, default 1e6,1e7; float64)",
    )
    p.add_argument(
        "--chunks",
        type=_positive_int,
        help=f"--dask: chunks of the parameters (default {bench.DASK_CHUNKS})",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        help=f"--dask: single-thread worker processes (default {bench.DASK_WORKERS})",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="--dask: an existing cluster's scheduler (tcp://host:8786) instead of a LocalCluster",
    )
    p.add_argument(
        "--json",
        type=_output_file,
        metavar="PATH",
        help="also write every number to PATH (its directory must exist)",
    )
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.set_defaults(run=_run_bench)


def _progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


def _table(args, info) -> tuple[dict, str]:
    rows = bench.run_bench(
        args.rules,
        args.sizes or bench.DEFAULT_SIZES,
        args.dtype,
        args.backend,
        args.repeat or bench.DEFAULT_REPEAT,
        with_torch=not args.no_torch,
        progress=_progress,
        state_dtype=None if args.state_dtype == args.dtype else args.state_dtype,
        rounding=args.rounding or "nearest",
    )
    columns = bench.bench_columns(
        with_torch=info["torch"] is not None,
        state_dtype=args.state_dtype not in (None, args.dtype),
        dtype=args.dtype,
    )
    return {"rows": rows}, "\n\n".join(
        [bench.format_table(rows, args.markdown, columns), bench.bench_notes(rows)]
    )


def _crossover(args, info) -> tuple[dict, str]:
    result = bench.crossover(
        args.rules[0] if args.rules else "adam",
        args.sizes or bench.CROSSOVER_SIZES,
        args.dtype,
        args.repeat or bench.DEFAULT_REPEAT,
        progress=_progress,
    )
    table = bench.format_table(result["rows"], args.markdown, bench.CROSSOVER_COLUMNS)
    return result, "\n\n".join([table, bench.crossover_summary(result)])


def _startup(args, info) -> tuple[dict, str]:
    result = bench.startup(args.repeat or 5, progress=_progress)
    rows = bench.startup_rows(result)
    table = bench.format_table(rows, args.markdown, bench.STARTUP_COLUMNS)
    return result, "\n\n".join([table, bench.startup_summary(result)])


def _torch(args, info) -> tuple[dict, str]:
    rows = bench.run_torch_bench(
        args.rules, None, args.repeat or bench.TORCH_BENCH_REPEAT, progress=_progress
    )
    table = bench.format_table(rows, args.markdown, bench.TORCH_COLUMNS)
    return {"rows": rows}, "\n\n".join([table, bench.torch_notes(rows)])


def _dask(args, info) -> tuple[dict, str]:
    row = bench.measure_dask(
        args.rules[0] if args.rules else "adam",
        args.sizes[0] if args.sizes else bench.DASK_N,
        args.chunks or bench.DASK_CHUNKS,
        args.dtype,
        args.workers or bench.DASK_WORKERS,
        args.repeat or bench.DASK_REPEAT,
        scheduler=args.scheduler,
        progress=_progress,
    )
    table = bench.format_table([row], args.markdown, bench.DASK_COLUMNS)
    return {"rows": [row]}, "\n\n".join([table, bench.dask_notes(row)])


def _lbfgs(args, info) -> tuple[dict, str]:
    rows = bench.run_lbfgs_bench(
        bench.LBFGS_PROBLEMS, args.sizes or bench.LBFGS_SIZES, args.repeat or 3, _progress
    )
    table = bench.format_table(rows, args.markdown, bench.LBFGS_COLUMNS)
    return {"rows": rows}, "\n\n".join([table, bench.lbfgs_notes(rows)])


def _bench_conflict(args) -> str | None:
    """Why the flags of ``fastgd bench`` do not go together, or None."""
    modes = args.lbfgs or args.torch or args.dask or args.crossover or args.startup
    low = args.dtype in bench_kernels.LOW_DTYPES
    storage = low or args.state_dtype or args.rounding
    if storage and (modes or args.backend == "cuda"):
        flag = (
            f"--dtype {args.dtype}" if low
            else f"--state-dtype {args.state_dtype}" if args.state_dtype
            else "--rounding"
        )  # fmt: skip
        return (
            f"{flag} times the CPU rule table; drop --backend cuda and --crossover, --startup, "
            "--torch, --dask, --lbfgs"
        )
    if args.state_dtype and args.state_dtype != args.dtype:
        if args.dtype == "float64":
            return (
                f"--state-dtype {args.state_dtype} with --dtype float64: 16-bit state goes with "
                "float32 params, float32 state with bfloat16/float16 params"
            )
        if low and args.state_dtype != "float32":
            return (
                f"--state-dtype {args.state_dtype} with --dtype {args.dtype}: 16-bit params keep "
                "their state in their own dtype (the default) or in float32"
            )
    if args.rounding and args.rounding != ["nearest"] and not low:
        which = ",".join(r for r in args.rounding if r != "nearest")
        return (
            f"--rounding {which} rounds 16-bit params; add --dtype bfloat16 or float16 "
            f"({args.dtype} params are stored as computed)"
        )
    if args.lbfgs and (args.rules or args.backend != "auto" or args.dtype != "float32"):
        return (
            "--lbfgs times float64 problems with method='lbfgs'; drop --rules, --backend, --dtype"
        )
    dask_only = args.chunks or args.workers or args.scheduler
    if dask_only and not args.dask:
        return "--chunks, --workers and --scheduler go with --dask"
    if args.dask and args.rules and len(args.rules) != 1:
        return "--dask: give one rule with --rules"
    if args.dask and args.sizes and len(args.sizes) != 1:
        return "--dask: give one size with --sizes"
    if args.dask and (args.backend != "auto" or args.no_torch):
        return "--dask compares with fastgd's own parallel step; drop --backend and --no-torch"
    if args.dask and args.scheduler and args.workers:
        return "--workers sizes a LocalCluster; drop it with --scheduler"
    if args.torch and (args.sizes or args.backend != "auto" or args.dtype != "float32"):
        return "--torch times fixed float32 models on the CPU; drop --sizes, --backend and --dtype"
    if args.torch and args.no_torch:
        return "--torch compares with torch; drop --no-torch"
    if args.crossover and args.rules and len(args.rules) != 1:
        return "--crossover: give one rule with --rules"
    if args.backend == "cuda" and (args.crossover or args.startup):
        return "--crossover and --startup run on the CPU; drop --backend cuda"
    if args.crossover and args.backend != "auto":
        return "--crossover times the serial, parallel and auto loops itself; drop --backend"
    if args.startup and (args.rules or args.sizes):
        return "--startup times importing fastgd and one Adam step; drop --rules and --sizes"
    return None


def _write_json(command: str, path: str, data: dict) -> int:
    """Write ``data`` to ``path``; if that fails, print it to stdout and return 1."""
    text = json.dumps(data, indent=1)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        print(f"fastgd {command}: could not write --json {path}: {e.strerror or e}; "
              "the JSON follows on stdout", file=sys.stderr)  # fmt: skip
        print(text)
        return 1
    return 0


def _run_bench(args) -> int:
    conflict = _bench_conflict(args)
    if conflict:
        print(f"fastgd bench: {conflict}", file=sys.stderr)
        return 2
    if args.backend == "cuda":
        return _run_bench_cuda(args)
    if args.torch:
        try:
            bench.import_torch_adapter()
        except ImportError as e:
            print(f"fastgd bench --torch: {e}", file=sys.stderr)
            return 2
    if args.dask:
        try:
            import distributed  # noqa: F401
        except ImportError as e:
            print(f"fastgd bench --dask needs dask and distributed ({e}): "
                  'pip install "fastgd[dask]"', file=sys.stderr)  # fmt: skip
            return 2
    with_torch = not (args.no_torch or args.crossover or args.startup or args.dask or args.lbfgs)
    info = bench.machine_info(args.dtype, with_torch=with_torch)
    if args.torch:
        measure = _torch
    elif args.dask:
        measure = _dask
    elif args.lbfgs:
        measure = _lbfgs
    else:
        measure = _crossover if args.crossover else _startup if args.startup else _table
    try:
        result, output = measure(args, info)
    except MemoryError as e:
        print(f"fastgd bench: out of memory ({e}); try smaller --sizes", file=sys.stderr)
        return 1
    bench.finish_info(info)
    print(bench.format_header(info, args.markdown))
    print()
    print(output)
    if args.json:
        return _write_json("bench", args.json, {"machine": info, **result})
    return 0


def _run_bench_cuda(args) -> int:
    from fastgd.bench import cuda as bench_cuda

    try:
        device = bench_cuda.device_name()
    except (ImportError, RuntimeError) as e:
        print(f"fastgd bench --backend cuda: {e}", file=sys.stderr)
        return 2
    try:
        rows = bench_cuda.run_bench_cuda(
            args.rules,
            args.sizes or bench_cuda.DEFAULT_SIZES,
            args.dtype,
            args.repeat or 7,
            with_torch=not args.no_torch,
        )
    except MemoryError as e:
        print(f"fastgd bench: out of memory ({e}); try smaller --sizes", file=sys.stderr)
        return 1
    print(f"GPU: {device}; dtype {args.dtype}; CUDA events, medians of back-to-back steps")
    print()
    print(bench_cuda.format_table_cuda(rows, args.markdown))
    if args.json:
        return _write_json("bench", args.json, {"device": device, "rows": rows})
    return 0


# -- fastgd compare ----------------------------------------------------------------------


def _add_compare(subparsers) -> None:
    # defaults are filled in by _run_compare, so that building the parser (for
    # every command) does not import fastgd.comparison and scipy.optimize
    p = subparsers.add_parser(
        "compare",
        help="fastgd methods vs SciPy's L-BFGS-B, BFGS, Newton-CG, trust-ncg on test problems",
        description=(
            "Run fastgd methods (tuned step sizes) and SciPy methods on test problems, "
            "print final loss gap, gradient norm, iterations, evaluations, wall time and "
            "time to the problem's tolerance, and plot the loss gap against iterations and "
            "wall time. See fastgd.comparison.compare."
        ),
    )
    p.add_argument(
        "--methods",
        type=_fastgd_methods,
        help="comma-separated fastgd methods, or none (default: sgd,nesterov,adam,lbfgs)",
    )
    p.add_argument(
        "--scipy",
        type=_scipy_methods,
        help="comma-separated SciPy methods, or none (default: L-BFGS-B,BFGS,Newton-CG,trust-ncg)",
    )
    p.add_argument(
        "--problems",
        type=_problems,
        help="comma-separated problems (default: rosenbrock,quadratic,logistic,large)",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        help="run every problem at these n (e.g. 100,1000, or START:STOP:PER_DECADE)",
    )
    p.add_argument("--maxiter", type=_positive_int, default=20_000, help=">= 1 (default 20000)")
    p.add_argument(
        "--time-limit",
        type=_time_limit,
        default=4.0,
        help="seconds per run, finite and >= 0 (default 4; 0: no limit)",
    )
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="integer >= 0 (default 0)")
    plot = p.add_mutually_exclusive_group()
    plot.add_argument(
        "--plot",
        type=_plot_file,
        metavar="PATH",
        help=f"where to write the figure (default {DEFAULT_PLOT}; png without an extension)",
    )
    plot.add_argument("--no-plot", action="store_true", help="do not write the figure")
    p.set_defaults(run=_run_compare)


def _write_plot(comparison, rows: list[dict], path: str) -> int:
    """Plot ``rows`` to ``path`` and say on stdout whether it was written."""
    if not rows:
        print("\nplot: not written (no runs)")
        return 0
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "matplotlib is not installed")
            written = comparison.plot_comparison(rows, path)
    except OSError as e:
        print(f"\nplot: not written ({e.strerror or e})")
        print(f"fastgd compare: could not write --plot {path}: {e}", file=sys.stderr)
        return 1
    if written is None:
        print(f"\nplot: not written ({MATPLOTLIB_HINT})")
    else:
        print(f"\nplot: {written}")
    return 0


def _run_compare(args) -> int:
    plot = None if args.no_plot else args.plot or DEFAULT_PLOT
    if plot is not None and args.plot is None:
        try:  # the default is checked here, not by argparse, so that --no-plot skips it
            _plot_file(plot)
        except argparse.ArgumentTypeError as e:
            print(f"fastgd compare: argument --plot: {e}", file=sys.stderr)
            return 2
    comparison = importlib.import_module("fastgd.comparison")

    def given(value, default):
        return list(default) if value is None else value

    try:
        rows = comparison.compare(
            given(args.methods, comparison.DEFAULT_METHODS),
            given(args.scipy, comparison.DEFAULT_SCIPY_METHODS),
            given(args.problems, comparison.DEFAULT_PROBLEMS),
            sizes=args.sizes,
            maxiter=args.maxiter,
            time_limit=args.time_limit or None,
            plot=None,
            seed=args.seed,
            progress=_progress,
        )
    except ValueError as e:
        print(f"fastgd compare: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        print(f"fastgd compare: out of memory ({e}); try smaller --sizes", file=sys.stderr)
        return 1
    return 0 if plot is None else _write_plot(comparison, rows, plot)


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastgd`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: 0, 1 if writing an output file failed (the results are on
        stdout) or memory ran out, 2 for flags that do not go together. Bad
        flag values raise ``SystemExit(2)`` with a usage message, as argparse does.
    """
    parser = argparse.ArgumentParser(
        prog="fastgd", description="fastgd: fused gradient-descent update rules"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bench(subparsers)
    _add_compare(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
