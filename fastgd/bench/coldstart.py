"""``fastgd bench --startup``: importing fastgd and a first step, in fresh processes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# _run_child is read from the package when a benchmark runs, so rebinding it on
# fastgd.bench still works (the tests do).
from fastgd import bench as _bench
from fastgd.bench._timing import _check_count

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
        _bench._run_child(source)
    phases: dict[str, dict[str, list[float]]] = {k: {} for k in STARTUP_CHILDREN}
    walls: dict[str, list[float]] = {k: [] for k in STARTUP_CHILDREN}
    for r in range(runs):
        if progress:
            progress(f"startup run {r + 1}/{runs}")
        for label, source in STARTUP_CHILDREN.items():
            timings, wall = _bench._run_child(source)
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


#: Columns of the start-up table.
STARTUP_COLUMNS = (
    ("process", "label", str),
    ("in-process ms", "in_process_ms", str),
    ("process wall ms", "wall_ms", str),
    ("all wall ms", "all_wall_ms", str),
)


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
