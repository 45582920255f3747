"""What runs on the Dask workers: one chunk's optimizer, made, stepped, read.

A chunk is a fastgd NumPy-API optimizer over its own C-contiguous copy of a
block of the parameters, with its state arrays beside it, all in one worker
process. Every function here is a task: a step runs the same generated kernel
as ``fastgd.Adam(x).step(g)`` in one process, so each chunk's result is
bit-identical to the same elements on one machine.

Chunks are not Dask keys: they live in this module's registry in the worker
process, found by ``(optimizer id, chunk index)``, and the tasks that use
them return only small tokens. So a step's task depends on its gradient
block alone and the scheduler keeps no lineage from step to step (its memory
stays flat however many steps run), and no chunk is ever copied, moved or
recomputed by Dask. Operations on one chunk (make, steps, reads, writes)
carry a sequence number from the client and run strictly in that order: a
task that arrives early raises ``distributed.Reschedule`` and is run again
later. A chunk missing from the registry was lost with its worker: the task
raises :class:`LostStateError`, never a result from other state.
"""

from __future__ import annotations

import threading

import numpy as np

from fastgd.optimizers import OPTIMIZERS


class LostStateError(RuntimeError):
    """Optimizer state that lived on a Dask worker is gone (the worker died or
    restarted): resume from the last checkpoint with ``fastgd.dask.from_zarr``."""


class Chunk:
    """One chunk of a ``fastgd.dask`` optimizer: ``opt`` is a fastgd
    optimizer over this chunk's own parameters; ``done`` counts the
    operations run on it (the next one to run has that sequence number)."""

    __slots__ = ("index", "opt", "done", "lock")

    def __init__(self, index: int, opt):
        self.index = index
        self.opt = opt
        self.done = 1  # operation 0 made it
        self.lock = threading.Lock()


#: The chunks of this worker process by (optimizer id, chunk index).
_REGISTRY: dict[tuple[str, int], Chunk] = {}
_LOCK = threading.Lock()


def _ready(opt_id: str, index: int, seq: int) -> Chunk:
    """Chunk ``index``, if operation ``seq`` is the next to run on it.

    Raises ``distributed.Reschedule`` if an earlier operation has not run yet
    (the task runs again later), :class:`LostStateError` if the chunk is not
    in this worker (lost with a dead or restarted worker) or ``seq`` already
    ran (Dask re-ran a task)."""
    from distributed import Reschedule

    with _LOCK:
        chunk = _REGISTRY.get((opt_id, index))
    if chunk is None:
        raise LostStateError(
            f"chunk {index} of fastgd.dask optimizer {opt_id} is not on this worker: "
            "the worker that held it died or restarted"
        )
    if chunk.done < seq:
        raise Reschedule()
    if chunk.done > seq:
        raise LostStateError(
            f"operation {seq} of chunk {index} arrived after operation {chunk.done - 1} "
            "ran: Dask re-ran a task, so the state cannot be trusted"
        )
    return chunk


def _run(chunk: Chunk, seq: int, fn, args):
    with chunk.lock:  # chunks of one worker run in parallel on its threads
        if chunk.done != seq:  # checked again under the lock: a task run twice at once
            raise LostStateError(
                f"operation {seq} of chunk {chunk.index} ran twice: Dask re-ran a task, so "
                "the state cannot be trusted"
            )
        try:
            return fn(chunk, *args)
        finally:
            chunk.done = seq + 1


def _run_in_order(opt_id: str, index: int, seq: int, fn, *args):
    """Run ``fn(chunk, *args)`` as operation ``seq`` of chunk ``index``."""
    return _run(_ready(opt_id, index, seq), seq, fn, args)


def _run_group(opt_id: str, seq: int, indices: list, fn, args: list) -> int:
    """Operation ``seq`` on several chunks of this worker in one task:
    ``fn(chunk, *args[k])`` for chunk ``indices[k]``. All of them or none:
    the order is checked on every chunk before any runs. Returns how many ran."""
    chunks = [_ready(opt_id, i, seq) for i in indices]
    for chunk, a in zip(chunks, args, strict=True):
        _run(chunk, seq, fn, a)
    return len(chunks)


async def forget_soon(opt_id: str) -> int:
    """:func:`forget` as a coroutine (``client.run(..., wait=False)`` takes only those)."""
    return forget(opt_id)


def forget(opt_id: str) -> int:
    """Drop every chunk of optimizer ``opt_id`` from this worker (run by
    ``client.run`` when the optimizer is closed or garbage-collected)."""
    with _LOCK:
        keys = [k for k in _REGISTRY if k[0] == opt_id]
        for k in keys:
            del _REGISTRY[k]
    return len(keys)


def _numpy_optimizer(rule: str, params: np.ndarray, hyperparameters: dict, backend: str):
    cls = OPTIMIZERS[rule]
    opt = cls(params, backend=backend, **_init_kwargs(cls, hyperparameters))
    for name, value in hyperparameters.items():
        if getattr(opt, name) != value:
            setattr(opt, name, value)
    return opt


def _init_kwargs(cls, hyperparameters: dict) -> dict:
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in hyperparameters.items() if k in accepted}


def make_chunk(opt_id, index, block, rule, hyperparameters, backend, state=None) -> int:
    """Make chunk ``index`` from a block of the initial parameters (copied: the
    optimizer owns its memory, so nothing else aliases what the steps update)
    and register it. ``state``: a fastgd ``state_dict`` to resume from.
    Returns the chunk's bytes."""
    params = np.array(block, dtype=block.dtype, order="C", copy=True)
    opt = _numpy_optimizer(rule, params, hyperparameters, backend)
    if state is not None:
        opt.load_state_dict(state)
    chunk = Chunk(index, opt)
    with _LOCK:
        _REGISTRY[(opt_id, index)] = chunk
    return params.nbytes


def resume_chunk(
    opt_id, index, block, rule, hyperparameters, backend, step, host, names, *states
) -> int:
    """Make chunk ``index`` from checkpointed blocks: parameters ``block`` and
    state arrays ``states`` (named ``names``) at step ``step`` with host
    scalars ``host``."""
    state = {
        "format": "fastgd.state_dict/1",
        "rule": rule,
        "dtype": np.dtype(block.dtype).name,
        "shape": tuple(block.shape),
        "step": step,
        "hyperparameters": dict(hyperparameters),
        "state": {n: np.ascontiguousarray(a) for n, a in zip(names, states, strict=True)},
        "host": dict(host),
    }
    return make_chunk(opt_id, index, block, rule, hyperparameters, backend, state)


def step_chunk(chunk: Chunk, grad, expected_steps: int, hyperparameters: dict) -> int:
    """Step ``chunk`` in place with its block of the gradient; return its step count."""
    opt = chunk.opt
    if opt.steps != expected_steps:
        raise LostStateError(
            f"chunk {chunk.index} is at step {opt.steps}, expected {expected_steps}"
        )
    for name, value in hyperparameters.items():
        old = getattr(opt, name)
        if value is not old and value != old:
            setattr(opt, name, value)
    opt.step(grad if grad.flags.c_contiguous else np.ascontiguousarray(grad))
    return opt.steps


def set_params(chunk: Chunk, block) -> int:
    """Copy ``block`` into the chunk's parameters (its state is kept)."""
    np.copyto(chunk.opt.params, block)
    return chunk.opt.steps


def read_params(chunk: Chunk) -> np.ndarray:
    """A copy of the chunk's parameters (a Dask value that later steps leave alone)."""
    return chunk.opt.params.copy()


def read_state(chunk: Chunk, name: str) -> np.ndarray:
    """A copy of one state array of the chunk (initial values before its first step)."""
    opt = chunk.opt
    if name in opt.state:
        return opt.state[name].copy()
    return np.full(opt.params.shape, opt.rule.initial(opt, name), dtype=opt.params.dtype)


def describe(chunk: Chunk) -> dict:
    """Small facts the client checks and checkpoints: step, host scalars, state names."""
    sd = chunk.opt.state_dict()
    return {"step": sd["step"], "host": sd["host"], "state": sorted(sd["state"])}
