"""Bandwidth against this machine's own memory ceiling, and speed against torch.optim.

Each value comes from :func:`fastgd.bench.measure_rule`, as in ``fastgd
bench``: float32, N = 1e7, ``backend="auto"`` (the parallel loop at this size),
medians of interleaved samples of fastgd, the ceiling loop and torch. The
ceiling is measured in the same process, so a slower machine lowers GB/s but
not the fraction of the ceiling.

These values are better when larger. asv flags every increase as a
regression, so for these three read the sign the other way round: a fall is
the slowdown.
"""

from __future__ import annotations

from benchmarks import common


class Ceiling:
    """One step of each rule next to a loop that moves the same bytes and does no math."""

    params = (common.RULES,)
    param_names = ["rule"]
    timeout = 300

    def setup(self, rule):
        bench = common.require_bench()
        common.require_rule(rule)
        self.row = bench.measure_rule(rule, common.LARGE_N, "float32", "auto", with_torch=False)

    def track_fraction_of_ceiling(self, rule):
        """Ceiling loop time / step time: 1.0 is as fast as moving the bytes once."""
        return self.row["ceiling_fraction"]

    track_fraction_of_ceiling.unit = "fraction"

    def track_gbps(self, rule):
        """Bytes a step moves (:func:`fastgd.bench.bytes_per_step`) / step time, in GB/s."""
        return self.row["gb_per_s"]

    track_gbps.unit = "GB/s"


class TorchSpeedup:
    """torch.optim's fastest CPU implementation (fused, foreach or for-loop) next to fastgd.

    Skipped (``n/a``) where torch is not installed.
    """

    params = (common.TORCH_RULES,)
    param_names = ["rule"]
    timeout = 300

    def setup(self, rule):
        bench = common.require_bench()
        common.require_rule(rule)
        try:
            import torch  # noqa: F401
        except ImportError:
            raise NotImplementedError("torch is not installed") from None
        self.row = bench.measure_rule(rule, common.LARGE_N, "float32", "auto", with_torch=True)
        if self.row["x_torch"] is None:
            raise NotImplementedError(f"torch.optim has no equivalent of {rule!r}")

    def track_speedup_vs_torch(self, rule):
        """torch step time / fastgd step time: above 1 fastgd is faster."""
        return self.row["x_torch"]

    track_speedup_vs_torch.unit = "x torch"
