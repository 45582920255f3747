"""``minimize(method="lbfgs")``: limited-memory BFGS with a strong-Wolfe line search.

Each iteration, with ``f, g`` at ``x``:

.. code-block:: text

    stop?      non-finite f or g, gtol (inf-norm of g, as SciPy), ftol, maxiter
    d        = -H g              two-loop recursion over the last m pairs, H0 = gamma I
                                 (d = -g without pairs; restart on d.g >= 0)
    stp      = Moré-Thuente      f(x + stp d) <= f + ftol_ls stp d.g,
                                 |g(x + stp d).d| <= gtol_ls |d.g|
                                 (first step 1, or 1 / ||g|| on the first iteration)
    s, y     = stp d, g_new - g  stored if s.y > eps y.y; gamma = s.y / y.y

The vector algebra is fastgd's fused kernels (:mod:`fastgd.lbfgs._kernels`,
or :mod:`fastgd.lbfgs._cuda` for a CUDA ``x0``) on preallocated buffers; the
line search is scalar logic on the host (:mod:`fastgd.lbfgs._linesearch`).
Constants are SciPy L-BFGS-B's: line search ``ftol=1e-3, gtol=0.9,
xtol=0.1``, ``maxls=20``.
"""

from __future__ import annotations

import math

from fastgd.driver._common import Status
from fastgd.driver._loop import _Run

#: SciPy L-BFGS-B's line-search constants (lbfgsb.f: dcsrch(ftol=1e-3, gtol=0.9, xtol=0.1)).
LS_FTOL, LS_GTOL, LS_XTOL = 1e-3, 0.9, 0.1
#: The largest step the line search may take (L-BFGS-B's stpmx, unconstrained).
STPMAX = 1e10


class _LbfgsRun(_Run):
    """One call of ``minimize(method="lbfgs")``: the loop of :class:`_Run`
    (evaluations, measures, stopping tests, callbacks, result) with L-BFGS
    steps in place of an optimizer's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._refuse()
        x = self.x
        self.hist = self.opt  # fastgd.lbfgs.History (arrays.optimizer made it)
        self.xt = self.arrays.buffer(x)  # trial points; swapped with x on acceptance
        self.gcur = self.hist.g  # the gradient at x, our copy (fun may reuse its array)
        self.maxls = self.hist.maxls

    def _refuse(self) -> None:
        refused = {
            "schedule": self.schedule_fn is not None or self.plateau is not None,
            "clip_norm": self.clip_norm is not None,
            "clip_value": self.clip_value is not None,
            "l1": self.l1 != 0.0,
            "batch_size/n_samples": self.batched,
        }
        bad = [name for name, on in refused.items() if on]
        if bad:
            raise ValueError(
                f"method='lbfgs' does not take {', '.join(bad)}: its steps come from a "
                "line search on the full, smooth objective (no learning rate to schedule, "
                "no clipping, no L1 term, no mini-batches). Use a first-order method "
                "('adam', 'sgd', ...) for those."
            )

    # -- the loop -----------------------------------------------------------------

    def gradient_measures(self, point, work):
        """``(finite, optimality, l2)`` of the gradient at ``x``, taken while
        copying it into the history's buffer (``self.gcur``), in one pass."""
        sumsq, big = self.hist.keep(work)
        return big < math.inf, big, math.sqrt(sumsq)

    def _full_batch(self):
        hist = self.hist
        x = self.x
        f, g = self.evaluate(x)
        while True:
            g = self.work(g)
            finite, optimality, l2 = self.measure(x, g)
            if not (finite and math.isfinite(f)):
                return self.diverged(f, g, finite)
            if self.t > 0:
                status = self.monitor(f)
                if status is not None:
                    return self.finish(status, f, g, at_x=True)
            status = self.converged(f, optimality)
            if status is not None:
                return self.finish(status, f, g, at_x=True)
            if self.t >= self.maxiter:
                return self.finish(Status.MAXITER, f, g, at_x=True)
            accepted = self.line_search(f, l2)
            if accepted is None:
                return self.line_search_failed(f, g)
            f, g, stp = accepted
            h = self.history
            h["loss"].append(self.f_before)
            h["lr"].append(stp)
            h["grad_norm"].append(l2)
            hist.push(stp, hist.d, g, self.gcur)
            self.xt, self.x = self.x, self.xt  # the trial point becomes x
            x = self.x
            self.arrays.attach(self, x)
            self.opt.lr = stp
            self.t += 1
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{f:.4g}", step=f"{stp:.3g}", refresh=False)
                self.bar.update(1)
            if self.call_back(f):
                return self.finish(Status.CALLBACK, f, g, at_x=True)

    def line_search(self, f: float, l2: float):
        """A step along ``d = -H g`` meeting the strong Wolfe conditions:
        ``(f, g, stp)`` at ``x + stp d`` (in ``self.xt``), or None. A
        non-descent direction, or a search that fails with pairs in memory,
        restarts from ``d = -g`` once."""
        from fastgd.lbfgs._linesearch import MoreThuente

        hist, g = self.hist, self.gcur
        self.f_before = f
        for attempt in range(2):
            if attempt or hist.count == 0:
                hist.clear()
                hist.direction(g)  # d = -g
                stp = min(1.0 / l2, STPMAX) if l2 > 0 else 1.0
            else:
                hist.direction(g)  # d = -H g
                stp = 1.0
            dg0 = hist.dg  # g . d, from the direction's last pass
            if not dg0 < 0:  # rounding made -H g an ascent direction: restart
                if hist.count == 0:
                    return None  # -g is not a descent direction: g is 0 or not finite
                continue
            search = MoreThuente(LS_FTOL, LS_GTOL, LS_XTOL, stpmax=STPMAX, maxiter=self.maxls)
            stp = search.start(f, dg0, stp)
            x, xt = self.x.reshape(self.x.size), self.xt.reshape(self.xt.size)
            while stp is not None:
                hist.step_to(x, stp, xt)
                ft, gt = self.evaluate(self.xt)
                gt = self.work(gt)
                if math.isfinite(ft):
                    dg = hist.slope(gt)
                else:
                    dg = math.nan
                accepted_stp = stp
                stp = search.next(ft, dg)
            # L-BFGS-B also takes a step the search ended on with a warning
            # (rounding, xtol, stpmax) when it lowered f
            if search.status == "converged" or (search.status.startswith("warning") and ft < f):
                return ft, gt, accepted_stp
            self.ls_message = search.message
            if hist.count == 0:
                return None
        return None

    def line_search_failed(self, f, g):
        message = (
            f"Line search failed at iteration {self.t}: {getattr(self, 'ls_message', '')} "
            "(no step along -H g or -g met the strong Wolfe conditions; SciPy's "
            "ABNORMAL_TERMINATION_IN_LNSRCH). The gradient may be wrong (check it with "
            "fastgd.check_grad) or the problem badly scaled near x."
        )
        return self.result(Status.LINE_SEARCH, f, g, message)
