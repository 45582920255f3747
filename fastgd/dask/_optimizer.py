"""The client side of ``fastgd.dask``: a fastgd optimizer whose parameters and
state live on Dask workers, chunk by chunk."""

from __future__ import annotations

import itertools
import math
import uuid
import weakref

import numpy as np
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from fastgd import _checks
from fastgd.dask import _chunk


def _dask_array_module():
    import dask.array as da

    return da


def default_client(client=None):
    """``client``, else the current ``distributed`` client, else a new
    ``LocalCluster`` client (one worker process per core) that becomes the
    current one."""
    from distributed import Client, get_client

    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        return client
    try:
        return get_client()
    except ValueError:
        return Client()


def block_indices(numblocks) -> list[tuple[int, ...]]:
    """Every block index of an array with ``numblocks``, in C order."""
    return list(itertools.product(*(range(n) for n in numblocks)))


def check_dask_array(x, what: str, numpy_alternative: str = "fastgd's NumPy-API classes"):
    """``x`` as a float32/float64 dask array with known chunk sizes, or a clear
    error naming ``what`` (and what to use for NumPy arrays)."""
    da = _dask_array_module()
    if not isinstance(x, da.Array):
        raise TypeError(
            f"{what} must be a dask array (dask.array.Array), got {type(x).__name__}; "
            f"for NumPy arrays use {numpy_alternative} (fastgd.Adam)"
        )
    _checks.check_dtype(np.dtype(x.dtype), what)
    if any(np.isnan(s) for s in x.shape):
        raise ValueError(f"{what} has unknown chunk sizes; call {what}.compute_chunk_sizes() first")
    return x


def snapshot(futures, name: str, chunks, dtype):
    """A persisted dask array over ``futures`` (one per block, C order)."""
    da = _dask_array_module()
    numblocks = tuple(len(c) for c in chunks)
    graph = {(name, *idx): f for idx, f in zip(block_indices(numblocks), futures, strict=True)}
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


def live_workers(client) -> dict:
    """The scheduler's workers now, by address (one round trip; the client's
    cached ``scheduler_info`` may hold none while it refreshes)."""
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def gone_workers(client, workers) -> list[str]:
    """Those of ``workers`` that are no longer in the cluster."""
    alive = live_workers(client)
    return sorted({w for w in workers if w not in alive})


def place(client, n: int) -> list[str]:
    """A worker for each of ``n`` chunks: contiguous runs of chunks, as many
    per worker as its share of the cluster's threads (the chunks of a slice of
    the parameters stay together)."""
    workers = live_workers(client)
    if not workers:
        raise RuntimeError("the Dask cluster has no workers")
    addresses = sorted(workers)
    threads = np.array([workers[a]["nthreads"] for a in addresses], dtype=float)
    bounds = np.concatenate([[0.0], np.cumsum(threads) / threads.sum()])
    # chunk i goes to the worker whose share of [0, 1) holds its midpoint
    return [addresses[np.searchsorted(bounds, (i + 0.5) / n, side="right") - 1] for i in range(n)]


class DaskOptimizer:
    """Base class of the ``fastgd.dask`` optimizers (see :class:`fastgd.dask.Adam`).

    Subclasses are made by :func:`fastgd.dask._make_class` from a
    :data:`fastgd.OPTIMIZERS` class, whose validation and kernels they use.
    """

    _numpy_class: type

    def __init__(
        self, params, *, client=None, backend: str = "serial", _resume=None, **hyperparameters
    ):
        params = check_dask_array(params, "params")
        cls = self._numpy_class
        dtype = np.dtype(params.dtype)
        if backend == "cuda":
            raise ValueError(
                "fastgd.dask runs fastgd's CPU loops on the workers: backend must be "
                "'serial', 'parallel' or 'auto'"
            )
        # fastgd's own constructor validates the hyperparameters and backend
        # (on a one-element array of the same dtype) before anything is sent
        defaults = cls(np.zeros(1, dtype)).hyperparameters
        shadow = _chunk._numpy_optimizer(
            cls.rule.name, np.zeros(1, dtype), {**defaults, **hyperparameters}, backend
        )
        shadow._make_plan()
        d = self.__dict__
        d["_shadow"] = shadow
        d["_client"] = client = default_client(client)
        d["_dtype"] = dtype
        d["_shape"] = tuple(params.shape)
        d["_chunks"] = params.chunks
        d["_id"] = uuid.uuid4().hex[:12]
        d["_steps"] = 0
        d["_seq"] = 1  # the next operation's number on every chunk (0 made them)
        d["_lost"] = None
        d["_params_cache"] = None
        d["_backend"] = backend
        d["_workers"] = place(client, math.prod(params.numblocks))
        hp = shadow.hyperparameters
        rule = cls.rule.name
        opt_id = self._id
        if _resume is None:
            made = self._submit(
                "chunks",
                lambda i, b: (_chunk.make_chunk, opt_id, i, (params.name, *b), rule, hp, backend),
                params.__dask_graph__(),
                params.name,
                priority=0,
            )
        else:  # a checkpoint: state arrays with the parameters' chunks, step, host scalars
            step, host, states = _resume["step"], _resume["host"], _resume["state"]
            names = tuple(states)
            arrays = [params, *states.values()]
            made = self._submit(
                "chunks",
                lambda i, b: (
                    _chunk.resume_chunk, opt_id, i, (params.name, *b), rule, hp, backend,
                    step, host, names, *((a.name, *b) for a in states.values()),
                ),
                HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays)),
                [a.name for a in arrays],
                priority=0,
            )  # fmt: skip
            d["_steps"] = step
        # the chunks live in the workers' registries, not as Dask keys: drop
        # them there when this optimizer goes away
        d["_finalizer"] = weakref.finalize(self, _forget, client, opt_id, list(self._workers))
        self._wait(made, "making the chunks")
        d["_blocks"] = made

    @classmethod
    def _resumed(cls, params, resume: dict, *, client=None, backend="serial", **hyperparameters):
        """An optimizer of this class over ``params`` with the state of a
        checkpoint: ``resume`` = ``{"step": int, "host": dict, "state":
        {name: dask array with params' chunks}}``."""
        opt = cls.__new__(cls)
        DaskOptimizer.__init__(
            opt, params, client=client, backend=backend, _resume=resume, **hyperparameters
        )
        return opt

    # -- attributes -------------------------------------------------------------

    def __getattr__(self, name: str):
        if name in self._numpy_class.hyperparameter_names():
            return getattr(self.__dict__["_shadow"], name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name not in self._numpy_class.hyperparameter_names():
            raise AttributeError(
                f"{type(self).__name__} has no settable attribute {name!r}; settable: "
                f"{', '.join(self._numpy_class.hyperparameter_names())}"
            )
        setattr(self._shadow, name, value)  # validated by fastgd; applied at the next step

    @property
    def hyperparameters(self) -> dict:
        """The current hyperparameters, by torch's names."""
        return self._shadow.hyperparameters

    @property
    def client(self):
        """The ``distributed.Client`` the chunks live on."""
        return self._client

    @property
    def steps(self) -> int:
        """Steps taken (submitted; :meth:`wait` waits for them)."""
        return self._steps

    @property
    def chunks(self) -> tuple:
        """The chunks of the parameters; every gradient must have them."""
        return self._chunks

    @property
    def shape(self) -> tuple:
        """The parameters' shape."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype (float32 or float64)."""
        return self._dtype

    @property
    def workers(self) -> list[str]:
        """The worker address of each chunk (C order of the blocks)."""
        return list(self._workers)

    @property
    def params(self):
        """The current parameters: a persisted dask array, a snapshot (later
        steps leave it unchanged; reading it copies each chunk on its worker,
        once per step)."""
        cached = self._params_cache
        if cached is None or cached[0] != self._steps:
            self._check_alive()
            futures = self._op(f"params{self._steps}", lambda i, b: (_chunk.read_params,))
            # named by the operation: set_params at the same step count reads anew
            name = f"fastgd-{self._id}-params-{self._seq - 1}"
            cached = (self._steps, snapshot(futures, name, self._chunks, self._dtype))
            self.__dict__["_params_cache"] = cached
        return cached[1]

    @property
    def state(self) -> dict:
        """The state arrays by torch's names, as dask array snapshots (the
        initial values before the first step)."""
        self._check_alive()
        out = {}
        for name in self._shadow.rule.active(self._shadow):
            futures = self._op(
                f"{name}{self._steps}", lambda i, b, name=name: (_chunk.read_state, name)
            )
            out[name] = snapshot(
                futures, f"fastgd-{self._id}-{name}-{self._seq - 1}", self._chunks, self._dtype
            )
        return out

    # -- the step -----------------------------------------------------------------

    def step(self, grad) -> None:
        """One update of every chunk, each on the worker that holds it.

        Submits the step and returns once the previous one is done: one step
        computes while the next is already with the scheduler.

        Parameters
        ----------
        grad : dask array
            Same shape, dtype and chunks as the parameters (``opt.chunks``);
            its blocks are computed where Dask schedules them and sent to the
            chunk's worker (nothing moves if they were computed there).

        Raises
        ------
        TypeError, ValueError
            A gradient of another type, dtype, shape or chunking; bad
            hyperparameters. Nothing is sent.
        fastgd.dask.LostStateError
            A worker holding optimizer state left the cluster: resume from
            the last checkpoint (:func:`fastgd.dask.from_zarr`).
        """
        grad = check_dask_array(grad, "grad")
        if np.dtype(grad.dtype) != self._dtype:
            raise TypeError(f"grad dtype {grad.dtype} differs from params dtype {self._dtype}")
        if tuple(grad.shape) != self._shape:
            raise ValueError(f"grad shape {grad.shape} does not match params shape {self._shape}")
        if grad.chunks != self._chunks:
            raise ValueError(
                f"grad has chunks {grad.chunks} but params have {self._chunks}: each gradient "
                "block must match a parameter chunk; use grad.rechunk(opt.chunks)"
            )
        shadow = self._shadow
        shadow._make_plan()  # relations between hyperparameters, representability
        self._check_alive()
        t = self._steps
        hp = shadow.hyperparameters
        stepped = self._op(
            f"step{t + 1}",
            lambda i, b: (_chunk.step_chunk, (grad.name, *b), t, hp),
            grad.__dask_graph__(),
            grad.name,
            grouped=True,
        )
        previous = self._blocks
        d = self.__dict__
        d["_blocks"] = stepped
        d["_steps"] = t + 1
        d["_params_cache"] = None
        # at most one step in flight: the scheduler has the next step's tasks
        # while this one computes, and gradients do not pile up
        self._wait(previous, f"step {t}")

    def set_params(self, params) -> None:
        """Replace the parameters (same shape, dtype and chunks), keeping the
        state and the step count, as ``np.copyto(opt.params, x)`` does on
        one machine (``minimize`` restores its best point this way)."""
        params = check_dask_array(params, "params")
        if np.dtype(params.dtype) != self._dtype or tuple(params.shape) != self._shape:
            raise ValueError(
                f"params must have shape {self._shape} and dtype {self._dtype}, got "
                f"{params.shape} {params.dtype}"
            )
        if params.chunks != self._chunks:
            raise ValueError(
                f"params has chunks {params.chunks}, the optimizer {self._chunks}; "
                "use params.rechunk(opt.chunks)"
            )
        self._check_alive()
        replaced = self._op(
            f"set{self._steps}",
            lambda i, b: (_chunk.set_params, (params.name, *b)),
            params.__dask_graph__(),
            params.name,
        )
        self.__dict__["_params_cache"] = None
        self._wait(replaced, "setting the parameters")
        self.__dict__["_blocks"] = replaced

    def to_zarr(self, path) -> None:
        """Checkpoint parameters, state, step count, host scalars and
        hyperparameters to the zarr store ``path``, atomically; see
        :func:`fastgd.dask.from_zarr`."""
        from fastgd.dask._checkpoint import to_zarr

        to_zarr(self, path)

    def wait(self) -> None:
        """Wait until every submitted step is done.

        Raises
        ------
        fastgd.dask.LostStateError
            A worker holding optimizer state left the cluster.
        """
        self._wait(self._blocks, f"step {self._steps}")

    def close(self) -> None:
        """Drop the chunks from the workers now (also done when the optimizer
        is garbage-collected); the optimizer cannot be used afterwards."""
        if self._lost is None:
            self.__dict__["_lost"] = "fastgd.dask: the optimizer was closed"
        if self._finalizer.detach() is not None:
            _forget(self._client, self._id, self._workers, wait=True)

    # -- tasks ----------------------------------------------------------------------

    def _op(self, what: str, task, graph=None, dependency=None, *, grouped=False) -> list:
        """Operation ``self._seq`` on every chunk: ``task(i, block)`` gives
        ``(fn, *args)``, run as ``fn(chunk, *args)`` on chunk ``i``'s worker
        after every operation submitted before it. One task per chunk (its
        future holds ``fn``'s result), or with ``grouped`` one task per worker
        for all its chunks (the futures hold only counts: fewer tasks for the
        scheduler, the step's hot path)."""
        seq = self._seq
        self.__dict__["_seq"] = seq + 1
        opt_id = self._id
        if not grouped:
            return self._submit(
                f"{what}-{seq}",
                lambda i, b: (_chunk._run_in_order, opt_id, i, seq, *task(i, b)),
                graph,
                dependency,
                priority=-seq,
            )

        def combine(members):  # (chunk index, (fn, *args)) of one worker's chunks
            indices = [i for i, _ in members]
            return (_chunk._run_group, opt_id, seq, indices, members[0][1][0],
                    [list(spec[1:]) for _, spec in members])  # fmt: skip

        return self._submit(
            f"{what}-{seq}", task, graph, dependency, priority=-seq, combine=combine
        )

    def _submit(
        self, what: str, task, graph=None, dependency=None, *, priority=0, combine=None
    ) -> list:
        """One message to the scheduler: ``graph`` (the gradient's, if any) and
        ``task(i, block)`` for every chunk, each pinned to its chunk's worker
        (the futures in chunk order), or with ``combine`` one task per worker,
        ``combine([(i, task(i, block)), ...])`` over its chunks (a future per
        worker). Earlier operations get higher priority: a worker runs step t
        before t + 1, so the client learns early that t is done."""
        layers = dict(graph.layers) if graph is not None else {}
        deps = dict(graph.dependencies) if graph is not None else {}
        numblocks = tuple(len(c) for c in self._chunks)
        by_worker: dict[str, list] = {}
        for i, (block, w) in enumerate(zip(block_indices(numblocks), self._workers, strict=True)):
            by_worker.setdefault(w, []).append((i, task(i, block)))
        if dependency is None:
            needs = set()
        else:
            needs = {dependency} if isinstance(dependency, str) else set(dependency)
        keys = []
        for j, (w, members) in enumerate(by_worker.items()):
            name = f"fastgd-{self._id}-{what}-{j}"
            if combine is None:
                tasks = {(name, i): spec for i, spec in members}
                keys += [(i, (name, i)) for i, _ in members]
            else:
                tasks = {(name, 0): combine(members)}
                keys.append((j, (name, 0)))
            layers[name] = MaterializedLayer(
                tasks, annotations={"workers": [w], "allow_other_workers": False}
            )
            deps[name] = set(needs)
        keys = [key for _, key in sorted(keys)]
        return self._client.get(HighLevelGraph(layers, deps), keys, sync=False, priority=priority)

    # -- faults ---------------------------------------------------------------------

    def _lose(self, what: str, detail: str) -> _chunk.LostStateError:
        message = (
            f"fastgd.dask: optimizer state was lost while {what} ({detail}). The "
            "chunks live only in the workers' memory and cannot be recomputed; "
            "this optimizer cannot step again. Resume from your last checkpoint: "
            "opt = fastgd.dask.from_zarr(path) (written by opt.to_zarr(path))."
        )
        self.__dict__["_lost"] = message
        return _chunk.LostStateError(message)

    def _gone_workers(self) -> list[str]:
        return gone_workers(self._client, self._workers)

    def _check_alive(self) -> None:
        if self._lost is not None:
            raise _chunk.LostStateError(self._lost)
        gone = self._gone_workers()
        if gone:
            raise self._lose(f"preparing operation {self._seq}", f"workers {gone} left the cluster")

    def _wait(self, futures, what: str, recoverable=None) -> None:
        """Wait for ``futures``; a failure loses the optimizer's state
        (:class:`LostStateError`) unless ``recoverable`` is given and the
        chunks are intact: then ``raise recoverable(i, exc)`` (a checkpoint
        write that failed on a full disk leaves the optimizer usable)."""
        from distributed import CancelledError

        for f in futures:  # each on its own client (not distributed's default one)
            while True:  # a task pinned to a worker that died would wait forever
                try:
                    f.exception(timeout=_WATCH_SECONDS)
                    break
                except TimeoutError:
                    gone = self._gone_workers()
                    if gone:
                        self._client.cancel(futures)
                        raise self._lose(what, f"workers {gone} left the cluster") from None
                except CancelledError:
                    break
        errors = [(i, f) for i, f in enumerate(futures) if f.status != "finished"]
        if not errors:
            return
        i, f = errors[0]
        try:
            exc = f.exception()
        except Exception as e:  # a cancelled future has no exception to give
            exc = e
        if recoverable is not None and not isinstance(exc, _chunk.LostStateError):
            self._check_alive()  # a lost chunk or worker: LostStateError
            raise recoverable(i, exc) from exc
        raise self._lose(what, f"chunk {i}: {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return (
            f"fastgd.dask.{type(self).__name__}(params: {self._shape} {self._dtype.name} in "
            f"{len(self._workers)} chunks, {hp}, steps={self._steps})"
        )


#: Seconds between checks that the chunks' workers are alive while waiting.
_WATCH_SECONDS = 2.0


def _forget(client, opt_id: str, workers: list[str], wait: bool = False) -> None:
    """Drop optimizer ``opt_id``'s chunks from the workers' registries (in the
    background unless ``wait``)."""
    try:
        if client.status == "running":
            # a dead worker would hold the client for the connect timeout
            alive = live_workers(client)
            targets = sorted({w for w in workers if w in alive})
            if targets and wait:
                client.run(_chunk.forget, opt_id, workers=targets)
            elif targets:
                client.run(_chunk.forget_soon, opt_id, workers=targets, wait=False)
    except Exception:  # the client or cluster is shutting down: the workers go too
        pass
