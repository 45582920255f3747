"""fastgd.dask's step on a LocalCluster against the one-process parallel step.

The value comes from :func:`fastgd.bench.measure_dask`, as in ``fastgd bench
--dask``: Adam, float32, 10 chunks, a LocalCluster of 2 single-thread worker
processes, the same step on fastgd's NumPy optimizer with the parallel loop
timed in interleaved samples in this process. N is 2e7 here (1e8 in ``fastgd
bench --dask``) to keep the suite's run short.

Skipped (``n/a``) where dask or distributed is not installed, or on a commit
without :mod:`fastgd.dask` or ``fastgd bench --dask``.
"""

from __future__ import annotations

from benchmarks import common


class DaskStep:
    """The cluster step's efficiency: one-process step time / cluster step time."""

    timeout = 600
    params = ([2 * 10**7],)
    param_names = ["n"]

    def setup(self, n):
        bench = common.require_bench()
        if not hasattr(bench, "measure_dask"):
            raise NotImplementedError("fastgd bench --dask is not in this commit")
        try:
            import distributed  # noqa: F401

            import fastgd.dask  # noqa: F401
        except ImportError as e:
            raise NotImplementedError(str(e)) from None
        self.row = bench.measure_dask("adam", n, repeat=3, flatness_steps=0)

    def track_efficiency(self, n):
        """One-process step time / fastgd.dask step time (1.0: no cluster overhead).

        A higher value is better, unlike asv's time-like default: read a fall
        as the regression.
        """
        return self.row["efficiency"]

    track_efficiency.unit = "fraction of one process's speed"
