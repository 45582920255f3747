"""minimize(method="lbfgs")'s steady-state overhead per iteration against SciPy's L-BFGS-B.

The value comes from :func:`fastgd.bench.measure_lbfgs`, as in ``fastgd bench
--lbfgs``: the ill-conditioned quadratic, float64, m = 10; a window of 10
iterations at a full ring (m pairs stored) after m + 2 warm-up iterations,
the time inside ``fun`` subtracted from both. n = 1e6 here (1e6 and 1e7 in
``fastgd bench --lbfgs``).

Skipped (``n/a``) on a commit without ``method="lbfgs"`` or ``fastgd bench
--lbfgs``.
"""

from __future__ import annotations

from benchmarks import common


class LbfgsIteration:
    """fastgd's L-BFGS overhead per full-ring iteration as a fraction of SciPy L-BFGS-B's."""

    timeout = 600
    params = ([10**6],)
    param_names = ["n"]

    def setup(self, n):
        bench = common.require_bench()
        if not hasattr(bench, "measure_lbfgs"):
            raise NotImplementedError("fastgd bench --lbfgs is not in this commit")
        self.row = bench.measure_lbfgs("quadratic", n, repeat=3)

    def track_overhead_vs_scipy(self, n):
        """fastgd / SciPy overhead per iteration: below 1 fastgd is faster (a
        rise is the slowdown)."""
        return self.row["fastgd_s"] / self.row["scipy_s"]

    track_overhead_vs_scipy.unit = "fraction of SciPy's time"
