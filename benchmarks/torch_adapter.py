"""fastgd.torch's optimizer step against torch.optim's on a real model.

The value comes from :func:`fastgd.bench.measure_torch_model`, as in
``fastgd bench --torch``: the 6-layer ``nn.TransformerEncoder`` (d_model 256,
72 tensors, 4.7 M float32 parameters), AdamW with torch's defaults, torch's
fastest CPU implementation (``fused=True``) and ``fastgd.torch.AdamW`` timed
in interleaved samples in one process, after warm-up steps in ``setup`` (so
no compilation is timed); the training iterations are not timed here.

Skipped (``n/a``) where torch is not installed, or on a commit without
:mod:`fastgd.torch` or ``fastgd bench --torch``.
"""

from __future__ import annotations

from benchmarks import common

#: The model and rule whose step ratio is tracked.
MODEL = "transformer"
RULE = "adamw"


class TorchAdapter:
    """fastgd.torch.AdamW's step time as a fraction of torch.optim.AdamW(fused=True)'s."""

    timeout = 300
    params = ([MODEL],)
    param_names = ["model"]

    def setup(self, model):
        bench = common.require_bench()
        if not hasattr(bench, "measure_torch_model"):
            raise NotImplementedError("fastgd bench --torch is not in this commit")
        try:
            bench.import_torch_adapter()
        except ImportError as e:
            raise NotImplementedError(str(e)) from None
        self.row = bench.measure_torch_model(model, RULE, iterations=False)
        if self.row["torch_step_s"] is None:  # pragma: no cover - torch has AdamW
            raise NotImplementedError(f"torch.optim has no equivalent of {RULE!r}")

    def track_step_time_vs_torch(self, model):
        """fastgd.torch step time / torch step time: below 1 fastgd.torch is faster.

        A step time, so asv's sense holds: a rise is the slowdown.
        """
        return self.row["fastgd_step_s"] / self.row["torch_step_s"]

    track_step_time_vs_torch.unit = "fraction of torch's time"
