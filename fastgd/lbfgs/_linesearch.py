"""The strong-Wolfe line search of Moré and Thuente: a port of MINPACK-2's dcsrch
and dcstep (Moré and Thuente 1983; Averick, Carter and Moré 1993) as in L-BFGS-B
3.0 and SciPy's ``scipy/optimize/_dcsrch.py``, on plain Python floats, driven by
reverse communication (the caller evaluates ``f`` and ``g.d`` at each trial step).
"""

from __future__ import annotations

import math

__all__ = ["MoreThuente", "dcstep"]

P5, P66 = 0.5, 0.66  # bisection factor; required shrink of the bracket per two steps
XTRAPL, XTRAPU = 1.1, 4.0  # extrapolation bounds while no minimizer is bracketed

SEARCHING, CONVERGED = "searching", "converged"
W_ROUNDING, W_XTOL = "warning: rounding errors prevent progress", "warning: xtol test satisfied"
W_STPMAX, W_STPMIN = "warning: stp = stpmax", "warning: stp = stpmin"
E_MAXITER, E_NONFINITE = "error: maxiter", "error: non-finite function value"
E_STEP = "error: non-finite trial step"

_MESSAGES = {
    CONVERGED: "the step satisfies the strong Wolfe conditions",
    W_ROUNDING: "rounding errors prevent progress; stp is the best step found",
    W_XTOL: "the bracket is narrower than xtol (relative); stp is the best step found",
    W_STPMAX: "the step reached stpmax with f and g.d still decreasing",
    W_STPMIN: "the step reached stpmin without sufficient decrease",
    E_MAXITER: "no step met the strong Wolfe conditions within maxiter={} evaluations",
    E_NONFINITE: "f or g.d was not finite at {} trial steps (max_nonfinite={})",
    E_STEP: "the interpolation overflowed to a non-finite trial step",
}


def _sqrt(x):
    return math.sqrt(x) if x >= 0.0 else math.nan  # IEEE sqrt: nan below 0 and for nan


def _clip(x, lo, hi):  # max then min, as np.clip and the Fortran; nan passes through
    x = lo if x < lo else x
    return hi if x > hi else x


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    # dx/abs(dx) in Fortran: sgnd < 0 exactly when dp and dx have strictly opposite signs
    opposite = (dp < 0.0 < dx) or (dx < 0.0 < dp)
    if fp > fx:
        # First case: a higher function value. The minimum is bracketed. The cubic step
        # if closer to stx than the quadratic step, else the average of the two.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        r = p / q
        stpc = stx + r * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(stpc - stx) <= abs(stpq - stx):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        brackt = True
    elif opposite:
        # Second case: a lower function value and derivatives of opposite sign. The
        # minimum is bracketed. The cubic step if farther from stp than the secant step.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        r = p / q
        stpc = stp + r * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):
        # Third case: a lower function value, derivatives of the same sign, and the
        # magnitude of the derivative decreases. The cubic step is computed only if the
        # cubic tends to infinity in the direction of the step or if the minimum of the
        # cubic is beyond stp. Otherwise the cubic step is defined to be the secant step.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        # gamma = 0 only if the cubic does not tend to infinity in the step's direction.
        gamma = s * _sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            # Bracketed: the cubic step if closer to stp than the secant step.
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + P66 * (sty - stp), stpf)
            else:
                stpf = max(stp + P66 * (sty - stp), stpf)
        else:
            # Not bracketed: the cubic step if farther from stp than the secant step.
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = _clip(stpf, stpmin, stpmax)
    elif brackt:
        # Fourth case: a lower function value, derivatives of the same sign, and the
        # magnitude of the derivative does not decrease. If the minimum is not
        # bracketed, the step is either stpmin or stpmax, else the cubic step is taken.
        theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
        s = max(abs(theta), abs(dy), abs(dp))
        gamma = s * _sqrt((theta / s) ** 2 - (dy / s) * (dp / s))
        if stp > sty:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dy
        r = p / q
        stpf = stp + r * (sty - stp)
    elif stp > stx:
        stpf = stpmax
    else:
        stpf = stpmin
    # Update the interval which contains a minimizer.
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if opposite:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2's dcstep: a safeguarded step, and the updated interval.

    ``stx`` is the step with the least (modified) function value, ``sty`` the
    other end of the interval, ``stp`` the current trial step; ``f*``, ``d*`` are
    the function values and derivatives there. Returns ``(stx, fx, dx, sty, fy,
    dy, stp, brackt)`` with ``stp`` the new trial step. IEEE semantics as the
    Fortran: a division by zero gives inf or nan (recomputed in NumPy float64)
    rather than raising.
    """
    args = (stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax)
    try:
        return _dcstep(*args)
    except ZeroDivisionError:
        import numpy as np

        with np.errstate(all="ignore"):
            out = _dcstep(*(np.float64(a) if i != 9 else a for i, a in enumerate(args)))
        return tuple(float(v) if i != 7 else v for i, v in enumerate(out))


class MoreThuente:
    """Strong-Wolfe line search of Moré and Thuente (1994), MINPACK-2 dcsrch.

    Finds a step ``stp`` along a descent direction ``d`` satisfying the
    sufficient decrease and the curvature conditions (strong Wolfe)::

        f(stp) <= f0 + ftol * stp * dg0
        |dg(stp)| <= gtol * |dg0|

    where ``f(stp) = F(x + stp d)`` and ``dg(stp) = grad F(x + stp d) . d``.
    Reverse communication: ``stp = ls.start(f0, dg0, stp0)``, then while ``stp``
    is not None evaluate ``f, dg`` at ``stp`` and call ``stp = ls.next(f, dg)``.
    A port of dcsrch/dcstep (as in L-BFGS-B 3.0 and SciPy's ``DCSRCH``): the same
    trial steps, bit for bit, while every value is finite.

    Parameters
    ----------
    ftol : float
        Nonnegative tolerance of the sufficient decrease condition.
    gtol : float
        Nonnegative tolerance of the curvature condition. If ``ftol < gtol`` and
        ``f`` is bounded below, a step meeting both conditions exists.
    xtol : float
        Nonnegative relative tolerance: the search stops with a warning when the
        bracket ``[stx, sty]`` is narrower than ``xtol * max(stx, sty)``.
    stpmin, stpmax : float
        Bounds of the step, ``0 <= stpmin <= stpmax`` (``stpmax`` may be inf).
    maxiter : int
        Most trial steps evaluated (calls of :meth:`next`) in one search.
    max_nonfinite : int
        Most trial steps with a non-finite ``f`` or ``dg`` tolerated in one search.

    Attributes
    ----------
    status : str
        ``"searching"`` while a trial step is pending, then one of
        ``"converged"``: ``stp`` meets both conditions;
        ``"warning: rounding errors prevent progress"``,
        ``"warning: xtol test satisfied"``: ``stp`` is the best step found, the
        conditions may not hold;
        ``"warning: stp = stpmax"``: sufficient decrease at ``stpmax`` but ``dg``
        still below ``ftol * dg0``;
        ``"warning: stp = stpmin"``: no sufficient decrease at ``stpmin``;
        ``"error: maxiter"``, ``"error: non-finite function value"``,
        ``"error: non-finite trial step"``: the search failed.
    message : str
        The status in words.
    stp, f, dg : float
        After ``"converged"`` or a warning: the last trial step and ``f``, ``dg``
        there (already evaluated by the caller). After an error: the best step
        found, ``stx`` (0.0 when no step decreased ``f``), and ``f``, ``dg`` there,
        which may differ from the last trial step.
    nfev : int
        Trial steps evaluated.

    Notes
    -----
    Non-finite values (a safeguard that dcsrch lacks): when ``f`` or ``dg`` at a
    trial step is inf or nan, the state of the search is left alone and the next
    trial is ``stx + 0.5 * (stp - stx)``, halfway back to the best step; later
    trials are kept short of the nearest non-finite step the same way. After
    ``max_nonfinite`` such steps (or ``maxiter`` evaluations in all) the search
    fails with ``"error: non-finite function value"`` (or ``"error: maxiter"``).
    L-BFGS-B accepts a warning's step as well as a converged one; a caller doing
    so should check ``f < f0``.

    References
    ----------
    J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed
    sufficient decrease", ACM Transactions on Mathematical Software 20(3),
    286-307, 1994.
    """

    def __init__(
        self, ftol=1e-3, gtol=0.9, xtol=0.1, stpmin=0.0, stpmax=1e20, maxiter=20, max_nonfinite=10
    ):
        for name, value in (("ftol", ftol), ("gtol", gtol), ("xtol", xtol), ("stpmin", stpmin)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if math.isnan(stpmax) or stpmax < stpmin:
            raise ValueError(f"stpmax must be >= stpmin={stpmin!r}, got {stpmax!r}")
        for name, value in (("maxiter", maxiter), ("max_nonfinite", max_nonfinite)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.ftol, self.gtol, self.xtol = float(ftol), float(gtol), float(xtol)
        self.stpmin, self.stpmax = float(stpmin), float(stpmax)
        self.maxiter, self.max_nonfinite = int(maxiter), int(max_nonfinite)
        self.status, self.message = "not started", "start() has not been called"
        self.stp = self.f = self.dg = math.nan
        self.nfev = 0

    def start(self, f0: float, dg0: float, stp: float) -> float:
        """Begin a search from ``f0 = f(0)``, ``dg0 = dg(0) < 0`` with the first
        trial step ``stp`` (``stpmin <= stp <= stpmax``, ``stp > 0``); returns it."""
        f0, dg0, stp = float(f0), float(dg0), float(stp)
        if not math.isfinite(f0):
            raise ValueError(f"f0 must be finite, got {f0!r}")
        if not (math.isfinite(dg0) and dg0 < 0.0):
            raise ValueError(
                f"dg0 = g0.d must be finite and < 0, got {dg0!r}: "
                "the search direction is not a descent direction"
            )
        if not (math.isfinite(stp) and stp > 0.0 and self.stpmin <= stp <= self.stpmax):
            raise ValueError(
                f"stp must be finite, > 0 and in [stpmin, stpmax] = "
                f"[{self.stpmin!r}, {self.stpmax!r}], got {stp!r}"
            )
        self._brackt, self._stage = False, 1
        self._finit, self._ginit = f0, dg0
        self._gtest = self.ftol * dg0
        self._width = self.stpmax - self.stpmin
        self._width1 = self._width / P5
        # stx, fx, gx: the best step so far; sty, fy, gy: the other end of the interval
        self._stx, self._fx, self._gx = 0.0, f0, dg0
        self._sty, self._fy, self._gy = 0.0, f0, dg0
        self._stmin, self._stmax = 0.0, stp + XTRAPU * stp
        self._badlo, self._badhi = -math.inf, math.inf  # nearest non-finite steps
        self._nbad = self.nfev = 0
        self.stp, self.f, self.dg = stp, f0, dg0
        self.status, self.message = SEARCHING, "evaluate f and g.d at stp"
        return stp

    def _finish(self, status, stp, f, dg):
        self.status = status
        self.message = _MESSAGES[status].format(
            *((self.maxiter,) if status == E_MAXITER else (self._nbad, self.max_nonfinite))
        )
        self.stp, self.f, self.dg = stp, f, dg
        return None

    def _best(self, status):  # an error: the best step so far
        return self._finish(status, self._stx, self._fx, self._gx)

    def next(self, f: float, dg: float) -> float | None:
        """``f`` and ``dg = g.d`` at the last trial step: the next trial step, or
        None when the search has ended (see :attr:`status`)."""
        if self.status != SEARCHING:
            raise RuntimeError(f"next() needs a search in progress (status: {self.status!r})")
        f, dg, stp = float(f), float(dg), self.stp
        self.nfev += 1
        self.f, self.dg = f, dg
        if not (math.isfinite(f) and math.isfinite(dg)):
            return self._nonfinite(stp)
        stx, gtest = self._stx, self._gtest
        brackt, stmin, stmax = self._brackt, self._stmin, self._stmax
        # If psi(stp) <= 0 and f'(stp) >= 0 for some step, enter the second stage.
        ftest = self._finit + stp * gtest
        if self._stage == 1 and f <= ftest and dg >= 0.0:
            self._stage = 2
        task = None  # the tests in dcsrch's order: the last that holds wins
        if brackt and (stp <= stmin or stp >= stmax):
            task = W_ROUNDING
        if brackt and stmax - stmin <= self.xtol * stmax:
            task = W_XTOL
        if stp == self.stpmax and f <= ftest and dg <= gtest:
            task = W_STPMAX
        if stp == self.stpmin and (f > ftest or dg >= gtest):
            task = W_STPMIN
        if f <= ftest and abs(dg) <= self.gtol * -self._ginit:
            task = CONVERGED
        if task is not None:
            return self._finish(task, stp, f, dg)
        if self.nfev >= self.maxiter:
            return self._best(E_MAXITER)
        if self._stage == 1 and f <= self._fx and f > ftest:
            # In the first stage, with a lower function value but no sufficient
            # decrease, dcstep works on the modified function psi.
            stx, fxm, gxm, sty, fym, gym, stp, brackt = dcstep(
                stx, self._fx - stx * gtest, self._gx - gtest,
                self._sty, self._fy - self._sty * gtest, self._gy - gtest,
                stp, f - stp * gtest, dg - gtest, brackt, stmin, stmax,
            )  # fmt: skip
            self._fx, self._fy = fxm + stx * gtest, fym + sty * gtest
            self._gx, self._gy = gxm + gtest, gym + gtest
        else:
            stx, self._fx, self._gx, sty, self._fy, self._gy, stp, brackt = dcstep(
                stx, self._fx, self._gx, self._sty, self._fy, self._gy,
                stp, f, dg, brackt, stmin, stmax,
            )  # fmt: skip
        self._stx, self._sty, self._brackt = stx, sty, brackt
        if brackt:
            # Bisect if the bracket did not shrink enough over the last two steps.
            if abs(sty - stx) >= P66 * self._width1:
                stp = stx + P5 * (sty - stx)
            self._width1 = self._width
            self._width = abs(sty - stx)
            # the minimum and maximum steps allowed for stp
            stmin, stmax = min(stx, sty), max(stx, sty)
        else:
            stmin, stmax = stp + XTRAPL * (stp - stx), stp + XTRAPU * (stp - stx)
        self._stmin, self._stmax = stmin, stmax
        stp = _clip(stp, self.stpmin, self.stpmax)
        # (safeguard, not in dcsrch) stay short of any step where f was not finite
        if stp >= self._badhi:
            stp = stx + P5 * (self._badhi - stx)
        elif stp <= self._badlo:
            stp = stx + P5 * (self._badlo - stx)
        # If further progress is not possible, let stp be the best point obtained.
        if brackt and (stp <= stmin or stp >= stmax or stmax - stmin <= self.xtol * stmax):
            stp = stx
        if not math.isfinite(stp):
            return self._best(E_STEP)
        self.stp = stp
        return stp

    def _nonfinite(self, stp):
        self._nbad += 1
        stx = self._stx
        if self._nbad > self.max_nonfinite:
            return self._best(E_NONFINITE)
        if self.nfev >= self.maxiter:
            return self._best(E_MAXITER)
        if stp > stx:
            self._badhi = min(self._badhi, stp)
        else:
            self._badlo = max(self._badlo, stp)
        new = _clip(stx + P5 * (stp - stx), self.stpmin, self.stpmax)
        if new == stp or new == stx:  # nothing left between the best and the bad step
            return self._best(E_NONFINITE)
        self.stp = new
        return new
