""":func:`minimize`, the public entry point of the driver loop, and its documentation."""

from __future__ import annotations

from collections.abc import Callable

from scipy.optimize import OptimizeResult

from fastgd.driver._lbfgs import _LbfgsRun
from fastgd.driver._loop import _Run
from fastgd.schedules import ReduceLROnPlateau


def minimize(
    fun: Callable,
    x0,
    jac: bool | Callable | None = None,
    method: str = "adam",
    options: dict | None = None,
    *,
    schedule: Callable[[int], float] | ReduceLROnPlateau | None = None,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    l1: float = 0.0,
    l1_mode: str = "subgradient",
    callback: Callable | None = None,
    early_stopping: dict | None = None,
    val_fun: Callable | None = None,
    batch_size: int | None = None,
    n_samples: int | None = None,
    shuffle: bool = True,
    seed=None,
    progress: bool = False,
    backend: str = "auto",
    dtype=None,
) -> OptimizeResult:
    """Minimize ``fun`` by gradient descent with one fastgd optimizer.

    Full-batch gradient descent by default; stochastic and mini-batch
    gradient descent with ``batch_size`` and ``n_samples``. Each step:

    .. code-block:: text

        f, g = fun(x) (and jac(x))           at the look-ahead point for "nesterov"
        stop?   non-finite f or g, gtol, ftol, vanishing gradient, maxiter
        lr    = schedule(t)                  (callable schedule)
        g     = clip(g)                      (clip_norm, clip_value)
        x     = optimizer step(x, g)         (in place, one fused kernel)
        callback, ReduceLROnPlateau, early stopping

    Parameters
    ----------
    fun : callable
        ``fun(x) -> f``, or ``-> (f, g)`` (a tuple or list) with ``jac=True``.
        In mini-batch mode ``fun(x, idx)``, ``idx`` the batch's sample
        indices. ``f`` is one real number: a float, an int, a NumPy scalar or
        a 0-d or one-element array (as in SciPy). Anything else (``None``, a
        string, a bool, a complex number, a vector of per-sample losses)
        raises ``TypeError`` naming what ``fun`` returned and the iteration;
        a NaN or infinite ``f`` ends the run as diverged (``status=4``).
    x0 : array_like, dask.array.Array or CUDA array
        The start: real numbers (ints or floats, any shape; a scalar becomes
        shape ``(1,)`` as in SciPy), copied to a C-contiguous array of
        ``dtype`` (float64 by default), which the optimizer updates in place.
        Refused before ``fun`` is called: NaN or inf anywhere (also a value
        that overflows ``dtype``), no elements (``ValueError``), and complex,
        bool, string or object arrays (``TypeError``). A dask array runs the
        loop on Dask workers: see *Dask arrays* below; a CUDA array runs it
        on the GPU: see *CUDA arrays*.
    jac : True or callable
        ``True``: ``fun`` returns ``(f, g)`` as in SciPy. A callable:
        ``jac(x) -> g`` (``jac(x, idx)`` in mini-batch mode). ``g`` is an
        array_like of real numbers (floats or ints, converted to ``x``'s
        dtype) of ``x``'s shape, or of its size where one of the two is flat;
        another size raises ``ValueError``, a non-array (``None``, a string)
        or a complex, bool or object array ``TypeError``, naming ``jac`` (or
        ``fun``'s ``g``) and the iteration. Required: fastgd has no finite
        differences (use ``fastgd.check_grad`` to check a hand-written
        gradient).
    method : str, default "adam"
        An optimizer of :data:`fastgd.OPTIMIZERS` (``"sgd"``, ``"momentum"``,
        ``"adagrad"``, ``"rmsprop"``, ``"adadelta"``, ``"adam"``, ``"adamw"``,
        ``"adamax"``, ``"nadam"``, ``"radam"``, ``"lion"``), or
        ``"nesterov"``: the textbook Nesterov accelerated gradient (Sutskever
        et al. 2013), the gradient evaluated at the look-ahead point:

        .. code-block:: text

            v = mu * v - lr * g(x + mu * v);   x = x + v       (v starts at 0)

        with options ``lr`` (default 1e-2) and ``momentum`` (``mu``, default
        0.9); it runs :class:`fastgd.Momentum` (heavy ball) on gradients taken
        at ``x + mu * v``, computed into one preallocated buffer.
        ``torch.optim.SGD(nesterov=True)`` is the reformulation in the
        look-ahead variable that needs the gradient at the iterate only; its
        iterates are this method's look-ahead points, and its ``lr`` is the
        same, so use ``"sgd"`` with ``nesterov=True`` for torch's form.
        ``history`` records the loss at the look-ahead points, where the
        stopping tests are made too: a run that stops on ``gtol``/``ftol``
        returns the look-ahead point that passed, any other ends at ``x``
        with one more evaluation of ``fun`` there.
    options : dict, optional
        The method's hyperparameters by torch's names (``lr``, ``betas``,
        ``momentum``, ``weight_decay``, ...; the class defaults where not
        given), plus:

        - ``maxiter`` (int, default 1000): the most optimizer steps (in
          mini-batch mode too: steps, not epochs).
        - ``gtol`` (float, default 1e-5): stop (success) when the gradient's
          inf-norm is ``<= gtol`` (with ``l1 > 0``: the inf-norm of the
          minimum-norm subgradient of ``f + l1 ||x||_1``).
        - ``ftol`` (float, default 0, off): stop (success) when
          ``|f_prev - f| <= ftol * max(|f|, |f_prev|, 1)`` between two checks.
          Off by default because a first-order method with a small step size
          changes the loss slowly long before it converges.
        - ``f_target`` (float, default None): the loss a solved problem
          reaches. When given, a run that stops on ``gtol`` or ``ftol``, or
          whose gradient measure falls below ``1e-12`` (:data:`VANISHING_RATIO`)
          of its first value, while the loss is still above ``f_target``,
          ends with ``status=5`` ("vanishing gradient", ``success=False``).
          Without it a small gradient counts as convergence, as in SciPy.
        - ``disp`` (bool, default False): print a summary at the end.

        Unknown options raise ``ValueError``, and so do flags (``disp`` here,
        ``shuffle``, ``progress``, ``restore_best``) that are not ``True`` or
        ``False`` (``np.bool_`` included): ``disp="no"`` would be true.
    schedule : callable or ReduceLROnPlateau, optional
        A callable ``t -> lr`` (any :mod:`fastgd.schedules` schedule): before
        step ``t`` (0-based) the optimizer's ``lr`` is set to ``schedule(t)``
        (``options["lr"]`` is then unused). ``schedule(t)`` must return a real
        number, finite and ``>= 0``: anything else raises ``TypeError`` (not
        a number) or ``ValueError`` (NaN, inf, negative) naming ``t`` and the
        value, before step ``t`` changes ``x``. Or a
        :class:`~fastgd.schedules.ReduceLROnPlateau`: the run starts at its
        ``lr`` and steps it with the monitored loss (``val_fun(x)`` if given,
        else the training loss) after every step, or after every epoch in
        mini-batch mode, applying the rate it returns.
    clip_norm, clip_value : float, optional
        Clip the gradient before each step with
        :func:`fastgd.clip.clip_grad_norm_` (L2 norm at most ``clip_norm``)
        and/or :func:`fastgd.clip.clip_grad_value_` (entries in
        ``[-clip_value, clip_value]``). The gradient ``fun`` returned is
        never modified: it is copied into one preallocated buffer first (one
        pass per step), since ``fun`` may keep and reuse it (SciPy's
        ``MemoizeJac`` does).
    l1 : float, default 0
        L1 regularization strength, passed to the optimizer.
    l1_mode : {"subgradient", "proximal"}, default "subgradient"
        Passed to the optimizer; ``"proximal"`` soft-thresholds ``x`` after
        each step and yields exact zeros. The reported loss is ``fun``'s,
        without the L1 term.
    callback : callable, optional
        Called after every step, with SciPy's conventions: a callable whose
        only parameter is named ``intermediate_result`` gets an
        ``OptimizeResult`` with ``x`` (a read-only view of the live
        parameters, which keep changing: copy it to keep it), ``fun`` and
        ``nit``; any other callable gets ``callback(xk)`` with a copy of ``x``.
        ``fun`` is the loss at the new ``x`` in full-batch mode, and the batch
        loss of the step just taken (at the point before it) in mini-batch
        mode. Raising ``StopIteration`` ends the run as SciPy does:
        ``status=99``, ``success=False``. What it returns is ignored, as in
        SciPy: returning ``True`` does not stop the run.
    early_stopping : dict, optional
        ``dict(patience, min_delta=0.0, restore_best=True)``: after every step
        (every epoch in mini-batch mode) the monitored loss, ``val_fun(x)`` if
        given, else the training loss (the epoch's mean batch loss in
        mini-batch mode), counts as an improvement if it is below the best so
        far by more than ``min_delta``; after ``patience`` checks in a row
        without one the run stops (``status=3``, success). ``restore_best``
        (a bool) copies the best ``x`` back (kept in one preallocated buffer)
        and re-evaluates ``fun`` there.
    val_fun : callable, optional
        ``val_fun(x) -> float``, a validation loss, evaluated at every check
        (see ``early_stopping``) and recorded as ``history["val_loss"]``. It
        must return one real number, as ``fun`` (else ``TypeError``); a NaN
        or infinite value ends the run as diverged (``status=4``,
        ``success=False``), with a message naming ``val_fun``, the value and
        the iteration.
    batch_size, n_samples : int, optional
        Both or neither. Mini-batch gradient descent (``batch_size=1``:
        stochastic): ``fun``/``jac`` get ``(x, idx)``, ``idx`` a read-only
        int64 array of the batch's sample indices, in batches of
        ``batch_size`` (at most ``n_samples``; the last batch of an epoch may
        be smaller). With ``shuffle=True`` an epoch the run completes visits
        the samples in the order of ``rng.permutation(n_samples)``, ``rng =
        np.random.default_rng(seed)``, one permutation per epoch; an epoch
        cut short by ``maxiter``, which has room for ``k = (maxiter - t) *
        batch_size < n_samples`` samples only, visits ``rng.choice(n_samples,
        size=k, replace=False)`` instead, which NumPy draws in O(k) memory
        for ``k <= n_samples / 50`` (a run of a few steps over ``10**12``
        samples allocates kilobytes). With ``shuffle=False`` every epoch
        visits ``0 .. n_samples - 1`` in order, each batch made as
        ``arange(start, stop)``. ``gtol``/``ftol`` are tested once per epoch
        on the largest batch-gradient measure and the mean batch loss of the
        epoch. At the end ``fun`` (and ``jac``) are evaluated on all samples
        (``idx = arange(n_samples)``) for ``fun``/``jac`` of the result when
        ``n_samples <=`` :data:`FULL_EVALUATION_LIMIT` (``2**27``); above it
        no such evaluation is made: ``fun`` is the mean batch loss of the
        last epoch (the one in progress if the run ended inside one; with
        ``restore_best``, of the best epoch), ``jac`` is ``None``, and the
        message says so.
    shuffle : bool, default True
    seed : None, int >= 0, or anything else np.random.default_rng accepts
        The mini-batch order's seed (a ``Generator`` is used, and advanced,
        as is); unused in full-batch mode, but checked.
    progress : bool, default False
        Show a tqdm progress bar with the loss and learning rate (needs tqdm).
    backend : {"auto", "serial", "parallel"}, default "auto"
        The optimizer's loop; see :class:`fastgd.optim.Optimizer`. With a
        dask ``x0`` it is the loop each chunk's task runs (``"cuda"`` raises
        ``ValueError``); see :mod:`fastgd.dask`.
    dtype : float32 or float64, optional
        Of the parameters (float64 by default; any other dtype raises
        ``TypeError``). A gradient of another dtype
        (a float64 gradient for float32 parameters) is converted into a
        preallocated buffer every step; return gradients in ``x``'s dtype to
        avoid that pass.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun`` and ``jac`` (at ``x``; ``fun``'s loss without the L1
        term), ``nit`` (steps taken), ``nfev``/``njev`` (calls of
        ``fun``/``jac``; with ``jac=True`` both count each call of ``fun``),
        ``status`` (a :class:`Status`), ``success``, ``message`` and
        ``history``: NumPy arrays with one entry per step, ``loss`` (at the
        point the step's gradient was taken; the batch loss in mini-batch
        mode), ``lr`` (used by the step) and ``grad_norm`` (the gradient's L2
        norm before clipping); ``val_loss`` (one per check) when ``val_fun``
        is given; ``epoch_loss`` (mean batch loss per epoch) in mini-batch mode.

    Raises
    ------
    ValueError
        ``jac`` missing, unknown method or options, bad hyperparameters,
        driver settings or ``x0`` values; raised before ``fun`` is called.
        During the run: a gradient of the wrong size, a learning rate from
        ``schedule`` that is NaN, infinite or negative.
    TypeError
        Arguments of the wrong type (``fun``, ``method``, ``options``,
        ``schedule``, ``callback``, ``seed``, ``dtype``, a complex or
        non-numeric ``x0``), before ``fun`` is called; during the run,
        ``fun``, ``jac``, ``val_fun`` or ``schedule`` returning something
        that is not a number (or an array of numbers).

    Notes
    -----
    Status codes: 0 gtol, 1 maxiter, 2 ftol, 3 early stopping, 4 diverged (a
    non-finite loss or gradient: the message names the iteration and suggests
    a smaller ``lr`` or ``clip_norm``; at ``x0``, before any step, it says
    that the step size is not the cause; a non-finite ``val_fun``: the
    message names it), 5 vanishing gradient, 99 callback ``StopIteration``.
    A diverged run returns the non-finite iterate.

    **Dask arrays.** With a ``dask.array.Array`` ``x0`` the parameters and
    the optimizer state stay on the workers of the current
    ``distributed`` client (a new ``LocalCluster`` if there is none), chunk
    by chunk with ``x0``'s chunks: the optimizer is the :mod:`fastgd.dask`
    class of ``method``, each step one task per chunk running the same
    kernel as on one machine. Then:

    - ``x0`` is not computed to check its type, shape and chunks; its
      values are checked for NaN/inf on the workers (one pass), and ``dtype``
      applies as above (float64 by default: pass ``dtype=np.float32`` to keep
      float32 parameters).
    - ``fun`` (and ``jac``) get ``x`` as a persisted dask array, a snapshot
      of the parameters after the last step (a new one after every step,
      never changed later), and must return the gradient as a dask array
      with ``x``'s shape and chunks, of any real dtype (converted lazily).
      ``f`` may be a dask array of one element: it is computed together with
      the gradient's bookkeeping (finiteness, norms; one scheduler round
      trip per evaluation), after ``f`` and ``g`` are persisted together, so
      ``fun``'s graph runs once per evaluation.
    - ``clip_norm`` scales by the norm measured for the bookkeeping (no
      second pass), ``clip_value`` clamps; both lazily, on copies of the
      blocks (:func:`fastgd.dask.clip_grad_norm_`).
    - ``callback`` gets the snapshot (the ``xk`` form too: it needs no copy);
      ``val_fun`` gets it and may return a one-element dask array;
      ``restore_best`` keeps the best snapshot and sets the optimizer's
      parameters to it (``opt.set_params``).
    - The result's ``x`` and ``jac`` are dask arrays (``x`` persisted on the
      workers; call ``.compute()`` for NumPy).
    - On the same problem the iterates are those of a NumPy ``x0``:
      bit-identical where ``fun``'s arithmetic is element-wise; where dask
      sums in another order (matrix products, losses, the norms in
      ``history``) they agree to rounding.

    Refused with a dask ``x0``: ``method="nesterov"`` (``ValueError``: use
    ``"sgd"`` with ``nesterov=True``, torch's form); a gradient that is not
    a dask array (``TypeError``); a gradient whose shape or chunks differ
    from ``x``'s (``ValueError`` naming both; rechunk it with
    ``g.rechunk(x.chunks)``); an ``f`` that is a dask array of more than one
    element (``TypeError``, without computing it). With a NumPy ``x0`` a
    dask gradient is a ``TypeError``: pass ``x0`` as a dask array.
    :func:`scipy_method` cannot take dask arrays (SciPy converts ``x0`` to
    NumPy first).

    **CUDA arrays.** With an ``x0`` exposing ``__cuda_array_interface__``
    (a CuPy array, a torch CUDA tensor, a numba device array) the run stays
    on the GPU (:mod:`fastgd.driver._cuda_arrays`): ``x`` is a device copy
    of ``x0`` in ``dtype`` (``x0``'s own float32 or float64 by default; an
    explicit ``dtype`` converts on the device), checked for NaN/inf by one
    CUDA reduction; ``fun`` gets the device array and must return the
    gradient as a CUDA array of ``x``'s shape and dtype (a host array or
    another dtype is a ``TypeError``: nothing is copied between host and
    device silently); each step is the optimizer's CUDA kernel, or for
    ``method="lbfgs"`` the same L-BFGS with every vector operation a CUDA
    kernel (:mod:`fastgd.lbfgs._cuda`; the line search's scalar logic on the
    host). The bookkeeping is one CUDA reduction per evaluation. ``callback``
    gets a device copy (``xk``) or the live device array
    (``intermediate_result``); ``result.x`` and ``result.jac`` are device
    arrays. Refused before ``fun`` runs: ``clip_norm``, ``clip_value``,
    ``l1``, mini-batches, ``method="nesterov"``, ``backend`` other than
    ``"auto"``/``"cuda"``, L-BFGS's ``form="vector_free"`` (``ValueError``).
    """
    cls = _LbfgsRun if isinstance(method, str) and method.lower() == "lbfgs" else _Run
    run = cls(
        fun, x0, jac, method, options, schedule, clip_norm, clip_value, l1, l1_mode, callback,
        early_stopping, val_fun, batch_size, n_samples, shuffle, seed, progress, backend, dtype,
    )  # fmt: skip
    return run.run()
