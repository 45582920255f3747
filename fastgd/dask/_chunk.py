"""What runs on the Dask workers: one chunk's optimizer, made, stepped, read.

A chunk is a fastgd NumPy-API optimizer over its own C-contiguous parameter
array, with its state arrays beside it, all in one worker's memory. Every
function here is a plain task function: the step runs the same generated
kernel as ``fastgd.Adam(x).step(g)`` on one process, so the result of a
chunk is bit-identical to the same elements on one machine.

A step takes the chunk object and returns the same object, updated in place
(no copy of the parameters or state). The client keeps only the newest key,
so each chunk lives once; a task refuses to step a chunk whose step count is
not the one the client expects, so a chunk that a worker's death made Dask
recompute from an older key is never stepped silently.
"""

from __future__ import annotations

import numpy as np
from dask.sizeof import sizeof

from fastgd.optimizers import OPTIMIZERS


class Chunk:
    """One chunk of a ``fastgd.dask`` optimizer: ``opt`` is a fastgd
    optimizer over this chunk's own parameters."""

    __slots__ = ("index", "opt")

    def __init__(self, index: int, opt):
        self.index = index
        self.opt = opt

    def nbytes(self) -> int:
        return self.opt.params.nbytes + sum(a.nbytes for a in self.opt.state.values())


@sizeof.register(Chunk)
def _sizeof_chunk(chunk: Chunk) -> int:
    # the scheduler places tasks by the size of their inputs: a chunk's
    # parameters and state are what must not move
    return chunk.nbytes()


class LostStateError(RuntimeError):
    """A chunk's optimizer state is not the one the client expects (a worker
    holding it died and Dask recomputed it from an older key)."""


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


def make_chunk(index, block, rule, hyperparameters, backend, state=None) -> Chunk:
    """A chunk from a block of the initial parameters (copied: the optimizer
    owns its memory, so no other Dask key aliases what the steps update).
    ``state``: a fastgd ``state_dict`` to resume from (arrays of this block)."""
    params = np.array(block, dtype=block.dtype, order="C", copy=True)
    opt = _numpy_optimizer(rule, params, hyperparameters, backend)
    if state is not None:
        opt.load_state_dict(state)
    return Chunk(index, opt)


def resume_chunk(index, block, rule, hyperparameters, backend, step, host, names, *states) -> Chunk:
    """A chunk from checkpointed blocks: parameters ``block`` and state arrays
    ``states`` (named ``names``) at step ``step`` with host scalars ``host``."""
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
    return make_chunk(index, block, rule, hyperparameters, backend, state)


def step_chunk(chunk: Chunk, grad, expected_steps: int, hyperparameters: dict) -> Chunk:
    """Step ``chunk`` in place with its block of the gradient; return it."""
    opt = chunk.opt
    if opt.steps != expected_steps:
        raise LostStateError(
            f"chunk {chunk.index} is at step {opt.steps}, expected {expected_steps}: its "
            "state was lost with a worker and recomputed"
        )
    for name, value in hyperparameters.items():
        old = getattr(opt, name)
        if value is not old and value != old:
            setattr(opt, name, value)
    opt.step(grad if grad.flags.c_contiguous else np.ascontiguousarray(grad))
    return chunk


def set_params(chunk: Chunk, block) -> Chunk:
    """Copy ``block`` into the chunk's parameters (its state is kept); return it."""
    np.copyto(chunk.opt.params, block)
    return chunk


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
