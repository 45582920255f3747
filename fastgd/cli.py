"""The ``fastgd`` command line.

``fastgd bench`` times every rule against the memory ceiling and torch.optim
(see :mod:`fastgd.bench`). Each command is one subparser, added by a
``_add_<command>`` function, and run by the function it sets as ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys

from fastgd import bench

BACKEND_CHOICES = ("auto", "serial", "parallel", "cuda")


def _sizes(text: str) -> list[int]:
    """``"1e3,1e5"`` or ``"START:STOP:PER_DECADE"`` (``"1e2:1e8:2"``) -> element counts."""
    try:
        if ":" in text:
            start, stop, per_decade = (float(x) for x in text.split(":"))
            lo, hi = math.log10(start), math.log10(stop)
            count = round((hi - lo) * per_decade)
            sizes = [round(10 ** (lo + i / per_decade)) for i in range(count + 1)]
        else:
            sizes = [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid sizes {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return sorted(set(sizes))


def _rules(text: str) -> list[str]:
    import fastgd

    names = [x.strip().lower() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in fastgd.OPTIMIZERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown rules {unknown}; choose from {', '.join(fastgd.OPTIMIZERS)}"
        )
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time every rule against the memory ceiling and torch.optim",
        description=(
            "Time one optimizer step per rule and size: us/step, GB/s, fraction of the "
            "memory ceiling (a loop with the same traffic) and speed-up over torch.optim. "
            "--crossover times the serial, parallel and auto loops of one rule across sizes; "
            "--startup times import + first step in fresh processes."
        ),
    )
    p.add_argument("--rules", type=_rules, help="comma-separated rules (default: all)")
    p.add_argument(
        "--sizes",
        type=_sizes,
        help="comma-separated element counts, or START:STOP:PER_DECADE "
        "(default 1e3,1e5,1e6,1e7; with --crossover 1e2:1e8:2)",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument(
        "--repeat",
        type=_positive_int,
        help=f"interleaved samples per measurement (default {bench.DEFAULT_REPEAT}; "
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
    p.add_argument("--json", metavar="PATH", help="also write every number to PATH")
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
    )
    columns = bench.bench_columns(with_torch=info["torch"] is not None)
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


def _run_bench(args) -> int:
    if args.crossover and args.rules and len(args.rules) != 1:
        print("fastgd bench --crossover: give one rule with --rules", file=sys.stderr)
        return 2
    with_torch = not (args.no_torch or args.crossover or args.startup)
    info = bench.machine_info(args.dtype, with_torch=with_torch)
    if args.backend == "cuda":
        return _run_bench_cuda(args)
    measure = _crossover if args.crossover else _startup if args.startup else _table
    result, output = measure(args, info)
    bench.finish_info(info)
    print(bench.format_header(info, args.markdown))
    print()
    print(output)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, **result}, f, indent=1)
    return 0


def _run_bench_cuda(args) -> int:
    from fastgd import bench_cuda

    try:
        device = bench_cuda.device_name()
    except RuntimeError as e:
        print(f"fastgd bench --backend cuda: {e}", file=sys.stderr)
        return 2
    rows = bench_cuda.run_bench_cuda(
        args.rules,
        args.sizes or bench_cuda.DEFAULT_SIZES,
        args.dtype,
        args.repeat or 7,
        with_torch=not args.no_torch,
    )
    print(f"GPU: {device}; dtype {args.dtype}; CUDA events, medians of back-to-back steps")
    print()
    print(bench_cuda.format_table_cuda(rows, args.markdown))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": device, "rows": rows}, f, indent=1)
    return 0


def _names(text: str) -> list[str]:
    """A comma-separated list; ``none`` (or nothing) for an empty one."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    return [] if names == ["none"] else names


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
        type=_names,
        help="comma-separated fastgd methods, or none (default: sgd,nesterov,adam)",
    )
    p.add_argument(
        "--scipy",
        type=_names,
        help="comma-separated SciPy methods, or none (default: L-BFGS-B,BFGS,Newton-CG,trust-ncg)",
    )
    p.add_argument(
        "--problems",
        type=_names,
        help="comma-separated problems (default: rosenbrock,quadratic,logistic,large)",
    )
    p.add_argument("--sizes", type=_sizes, help="run every problem at these n (e.g. 100,1000)")
    p.add_argument("--maxiter", type=_positive_int, default=20_000, help="default 20000")
    p.add_argument(
        "--time-limit", type=float, default=4.0, help="seconds per run (default 4; 0: none)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="compare.png", metavar="PATH", help="default compare.png")
    p.add_argument("--no-plot", action="store_true", help="do not write the figure")
    p.set_defaults(run=_run_compare)


def _run_compare(args) -> int:
    comparison = importlib.import_module("fastgd.comparison")

    def given(value, default):
        return list(default) if value is None else value

    try:
        comparison.compare(
            given(args.methods, comparison.DEFAULT_METHODS),
            given(args.scipy, comparison.DEFAULT_SCIPY_METHODS),
            given(args.problems, comparison.DEFAULT_PROBLEMS),
            sizes=args.sizes,
            maxiter=args.maxiter,
            time_limit=args.time_limit or None,
            plot=None if args.no_plot else args.plot,
            seed=args.seed,
            progress=_progress,
        )
    except ValueError as e:
        print(f"fastgd compare: {e}", file=sys.stderr)
        return 2
    if not args.no_plot:
        print(f"\nplot: {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastgd`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status.
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
