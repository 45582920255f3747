"""``fastgd bench --dask``: a ``fastgd.dask`` step on a Dask cluster against
the single-process parallel step, measured in one run.

The cluster is a ``distributed.LocalCluster`` of single-thread worker
processes (2 by default), or an existing one (``scheduler=`` address). The
gradient is computed from ``opt.params`` once and persisted, so its blocks
sit where the chunks live, as they do when a gradient is a graph over the
parameters; the same gradient is then stepped repeatedly. The single-process
contender is :mod:`fastgd`'s NumPy optimizer with the parallel loop (all
cores) on an array of the same size. Both are timed in interleaved samples
in this process.

Reported per step: the two times and their ratio (the *efficiency*: 1.0 when
the cluster step costs what one process takes), the tasks the scheduler ran
per step, the busiest worker's compute time (from Dask's task stream), the
overhead (step time minus that compute), the step time on chunks of one
element (all overhead: the scheduler's round trip), and the scheduler's task
count after 100 and 1,000 such steps (flat: no lineage kept).

dask and distributed are imported when a benchmark runs, never by
``import fastgd.bench``.
"""

from __future__ import annotations

import time
from statistics import median

import numpy as np

from fastgd.bench._timing import format_n
from fastgd.bench.torch_models import _ms, _ratio

#: ``fastgd bench --dask`` defaults: issue 10's configuration.
DASK_N = 10**8
DASK_CHUNKS = 10
DASK_WORKERS = 2
DASK_STEPS_PER_SAMPLE = 10
DASK_REPEAT = 5


def _cluster(workers: int, scheduler: str | None):
    from distributed import Client, LocalCluster

    if scheduler is not None:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def _fill(block, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(block.shape, dtype=block.dtype)


def _n_tasks(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


def measure_dask(
    rule: str = "adam",
    n: int = DASK_N,
    chunks: int = DASK_CHUNKS,
    dtype: str = "float32",
    workers: int = DASK_WORKERS,
    repeat: int = DASK_REPEAT,
    steps: int = DASK_STEPS_PER_SAMPLE,
    scheduler: str | None = None,
    flatness_steps: int = 1000,
    progress=None,
) -> dict:
    """Time ``fastgd.dask``'s step against the single-process parallel step.

    Parameters
    ----------
    rule : str
        A key of :data:`fastgd.OPTIMIZERS`.
    n, chunks : int
        Elements, and chunks they are split into (as equal as possible).
    dtype : {"float32", "float64"}
    workers : int
        Single-thread worker processes of the LocalCluster (ignored with
        ``scheduler``).
    repeat, steps : int
        Interleaved samples, and steps per sample.
    scheduler : str, optional
        Address of an existing cluster's scheduler (``"tcp://host:8786"``).
    flatness_steps : int
        Steps on one-element chunks after which the scheduler's task count
        is read (0 skips that measurement).
    progress : callable, optional
        Called with a short text before each phase.

    Returns
    -------
    dict
        One row: the configuration, ``dask_step_s``, ``single_step_s``,
        ``efficiency``, ``tasks_per_step``, ``worker_compute_s``,
        ``overhead_s``, ``tiny_step_s``, ``scheduler_tasks_100`` and
        ``scheduler_tasks_end``.
    """
    import dask.array as da

    import fastgd
    import fastgd.dask as fdask

    say = progress or (lambda text: None)
    dt = np.dtype(dtype)
    cls, dcls = fastgd.OPTIMIZERS[rule], fdask.OPTIMIZERS[rule]
    client, cluster = _cluster(workers, scheduler)
    try:
        say(f"{rule} on {len(fdask._optimizer.live_workers(client))} workers: setup")
        samples, busy, wall, n_tasks = _time_steps(
            client, cls, dcls, n, chunks, dt, repeat, steps, say
        )
        compute = max(busy.values()) / steps if busy else float("nan")
        say("one-element chunks: the scheduler's round trip and its memory")
        tiny = dcls(da.zeros(chunks, chunks=1, dtype=dt), client=client)
        ones = da.ones(chunks, chunks=1, dtype=dt).persist()
        for _ in range(5):
            tiny.step(ones)
        tiny.wait()
        t0 = time.perf_counter()
        for _ in range(50):
            tiny.step(ones)
        tiny.wait()
        tiny_step = (time.perf_counter() - t0) / 50
        del ones
        at_100 = at_end = None
        if flatness_steps:
            for _ in range(100):
                tiny.step(tiny.params * 0 + 1)
            tiny.wait()
            at_100 = client.run_on_scheduler(_n_tasks)
            for _ in range(max(flatness_steps - 100, 0)):
                tiny.step(tiny.params * 0 + 1)
            tiny.wait()
            at_end = client.run_on_scheduler(_n_tasks)
        tiny.close()
        dask_s, single_s = median(samples["dask"]), median(samples["single"])
        return {
            "rule": rule,
            "n": n,
            "chunks": chunks,
            "dtype": dt.name,
            "workers": len(busy) or workers,
            "dask_step_s": dask_s,
            "single_step_s": single_s,
            "efficiency": single_s / dask_s,
            "tasks_per_step": n_tasks / steps,
            "worker_compute_s": compute,
            "overhead_s": wall - compute,
            "tiny_step_s": tiny_step,
            "scheduler_tasks_100": at_100,
            "scheduler_tasks_end": at_end,
            "flatness_steps": flatness_steps,
            "samples": samples,
        }
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _time_steps(client, cls, dcls, n, chunks, dt, repeat, steps, say):
    """Interleaved samples of the cluster's and one process's steps, then one
    run under Dask's task stream: (samples, busy seconds by worker, wall
    seconds per step, tasks run)."""
    import dask.array as da
    from distributed import get_task_stream, wait

    size = -(-n // chunks)
    opt = dcls(da.zeros(n, chunks=size, dtype=dt), client=client)
    g = opt.params.map_blocks(_fill, 1, dtype=dt).persist()
    wait(g)
    single = cls(np.zeros(n, dt), backend="parallel")
    g_np = np.random.default_rng(1).standard_normal(n, dtype=dt)

    def run_dask():
        for _ in range(steps):
            opt.step(g)
        opt.wait()

    def run_single():
        for _ in range(steps):
            single.step(g_np)

    run_dask()
    run_single()
    samples = {"dask": [], "single": []}
    for r in range(repeat):
        say(f"sample {r + 1}/{repeat}")
        for name, fn in (("dask", run_dask), ("single", run_single))[:: 1 if r % 2 else -1]:
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) / steps)
    say("task stream")
    with get_task_stream(client=client) as stream:
        t0 = time.perf_counter()
        run_dask()
        wall = (time.perf_counter() - t0) / steps
    ours = [r for r in stream.data if opt._id in str(r["key"])]
    busy: dict[str, float] = {}
    for r in ours:
        for s in r["startstops"]:
            if s["action"] == "compute":
                busy[r["worker"]] = busy.get(r["worker"], 0.0) + s["stop"] - s["start"]
    opt.close()
    return samples, busy, wall, len(ours)


DASK_COLUMNS = (
    ("rule", "rule", str),
    ("N", "n", format_n),
    ("chunks", "chunks", str),
    ("workers", "workers", str),
    ("dask ms", "dask_step_s", _ms),
    ("1 process ms", "single_step_s", _ms),
    ("efficiency", "efficiency", _ratio),
    ("tasks/step", "tasks_per_step", lambda x: f"{x:g}"),
    ("worker compute ms", "worker_compute_s", _ms),
    ("overhead ms", "overhead_s", _ms),
    ("1-element step ms", "tiny_step_s", _ms),
)


def dask_notes(row: dict) -> str:
    """What the ``--dask`` columns mean, and the scheduler's task count."""
    notes = [
        "dask ms: one fastgd.dask step (median of interleaved samples of "
        f"{DASK_STEPS_PER_SAMPLE} steps, then wait()); 1 process ms: fastgd's NumPy "
        "optimizer, parallel loop, same size; efficiency: 1 process / dask.",
        "tasks/step: tasks the scheduler ran per step (one per worker, stepping its "
        "chunks: the gradient is persisted); worker compute: the busiest worker's "
        "task time per step (Dask's task stream); overhead: step time - worker "
        "compute; 1-element step: a step on "
        "chunks of one element with a persisted gradient, all overhead (the scheduler's "
        "round trip).",
    ]
    if row.get("scheduler_tasks_end") is not None:
        notes.append(
            f"scheduler tasks after 100 steps: {row['scheduler_tasks_100']}, after "
            f"{row['flatness_steps']}: {row['scheduler_tasks_end']} (one-element chunks, "
            "a new gradient graph over opt.params each step, as a training loop makes)."
        )
    return "\n".join(notes)
