"""``fastgd.dask``: every rule on a ``distributed.LocalCluster`` of two
single-thread worker processes, against the single-machine optimizer.

The reference is fastgd's NumPy-API optimizer on the whole array stepping the
same gradients: each chunk runs the same generated kernel on its elements, so
parameters and state must be bit-identical.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cases import EXTRA_STATE_CONFIGS

import fastgd

da = pytest.importorskip("dask.array")
import fastgd.dask as fdask  # noqa: E402

CHUNKS = (300, 300, 300, 100)  # uneven: the last chunk is smaller
N = sum(CHUNKS)
STEPS = 3
CONFIGS = [(rule, {}) for rule in fastgd.OPTIMIZERS] + [
    (rule, kw) for rule, kw in EXTRA_STATE_CONFIGS.items()
]


def gradients(dtype, n=N, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for _ in range(steps)]


def run_both(rule, kw, dtype, x0, chunks, grads):
    ref = x0.copy()
    ref_opt = fastgd.OPTIMIZERS[rule](ref, **kw)
    opt = fdask.OPTIMIZERS[rule](da.from_array(x0, chunks=chunks), **kw)
    for g in grads:
        ref_opt.step(g)
        opt.step(da.from_array(g, chunks=chunks))
    return ref, ref_opt, opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "rule, kw", CONFIGS, ids=[f"{r}-{'-'.join(kw) or 'defaults'}" for r, kw in CONFIGS]
)
def test_bit_identical_to_one_machine(rule, kw, dtype, dask_client):
    x0 = np.random.default_rng(0).standard_normal(N).astype(dtype)
    ref, ref_opt, opt = run_both(rule, kw, dtype, x0, (CHUNKS,), gradients(dtype))
    params = opt.params.compute()
    assert params.dtype == dtype and opt.steps == STEPS
    np.testing.assert_array_equal(params, ref, strict=True)
    state = {name: arr.compute() for name, arr in opt.state.items()}
    assert state.keys() == ref_opt.state.keys()
    for name, arr in ref_opt.state.items():
        np.testing.assert_array_equal(state[name], arr, strict=True, err_msg=name)


def test_two_dimensional_chunks_and_hyperparameter_changes(dask_client):
    x0 = np.random.default_rng(2).standard_normal((40, 30))
    grads = [np.random.default_rng(s).standard_normal((40, 30)) for s in range(4)]
    ref = x0.copy()
    ref_opt = fastgd.NAdam(ref, lr=0.01)
    opt = fdask.NAdam(da.from_array(x0, chunks=(15, 20)), lr=0.01)
    for s, g in enumerate(grads):
        if s == 2:  # takes effect at the next step, as on one machine
            ref_opt.lr = opt.lr = 0.05
            ref_opt.weight_decay = opt.weight_decay = 0.1
        ref_opt.step(g)
        opt.step(da.from_array(g, chunks=(15, 20)))
    np.testing.assert_array_equal(opt.params.compute(), ref)
    assert opt.hyperparameters == ref_opt.hyperparameters


def test_chunks_and_state_stay_on_their_workers(dask_client):
    opt = fdask.Adam(da.zeros(N, chunks=(CHUNKS,)))
    workers = opt.workers
    assert len(set(workers)) == 2  # spread over both workers, contiguous runs
    assert workers == sorted(workers)
    for _ in range(3):
        opt.step(da.ones(N, chunks=(CHUNKS,)))
    opt.wait()

    def held(opt_id):
        from fastgd.dask import _chunk

        return sorted(i for key, i in _chunk._REGISTRY if key == opt_id)

    where = dask_client.run(held, opt._id)
    for w in set(workers):
        assert where[w] == [i for i, wi in enumerate(workers) if wi == w]
    opt.close()  # the workers drop the chunks
    assert all(v == [] for v in dask_client.run(held, opt._id).values())


def test_params_is_a_snapshot(dask_client):
    opt = fdask.SGD(da.zeros(N, chunks=(CHUNKS,)), lr=0.5)
    before = opt.params
    assert opt.params is before  # read twice in one step: one copy
    opt.step(da.ones(N, chunks=(CHUNKS,)))
    after = opt.params
    np.testing.assert_array_equal(before.compute(), np.zeros(N))
    np.testing.assert_array_equal(after.compute(), np.full(N, -0.5))


def test_gradient_computed_from_params(dask_client):
    """The usual loop: the gradient is a graph over ``opt.params``; its blocks
    are computed where the chunks live."""
    target = np.linspace(-1, 1, N)
    x = np.zeros(N)
    ref = fastgd.Adam(x, lr=0.1)
    opt = fdask.Adam(da.zeros(N, chunks=(CHUNKS,)), lr=0.1)
    t = da.from_array(target, chunks=(CHUNKS,))
    for _ in range(5):
        ref.step(x - target)
        opt.step(opt.params - t)
    np.testing.assert_array_equal(opt.params.compute(), x)


def test_scheduler_state_stays_flat_over_many_steps(dask_client):
    """Each step's gradient is a new graph over the parameters (the usual
    loop); the scheduler forgets every step's tasks once the next is done."""
    opt = fdask.Adam(da.zeros(N, chunks=(CHUNKS,)), lr=1e-3)

    def n_tasks(dask_scheduler):
        return len(dask_scheduler.tasks)

    def run(steps):
        for _ in range(steps):
            opt.step(opt.params * 0.5 + 1.0)
        opt.wait()
        return dask_client.run_on_scheduler(n_tasks)

    early = run(20)
    late = run(300)
    assert late <= early, (early, late)
    assert opt.steps == 320


def test_bad_input_is_refused_before_anything_is_sent(dask_client):
    opt = fdask.Adam(da.zeros(N, chunks=(CHUNKS,)), lr=0.1)
    opt.step(da.ones(N, chunks=(CHUNKS,)))
    before = opt.params.compute()
    with pytest.raises(ValueError, match=r"grad has chunks .* use grad.rechunk\(opt.chunks\)"):
        opt.step(da.ones(N, chunks=250))
    with pytest.raises(ValueError, match="shape"):
        opt.step(da.ones(N + 1, chunks=N + 1))
    with pytest.raises(TypeError, match="dtype"):
        opt.step(da.ones(N, chunks=(CHUNKS,), dtype=np.float32))
    with pytest.raises(TypeError, match="must be a dask array.*fastgd.Adam"):
        opt.step(np.ones(N))
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    with pytest.raises(AttributeError, match="learning_rate"):
        opt.learning_rate = 0.1
    opt.betas = (0.9, 0.999)
    with pytest.raises(ValueError, match="betas"):
        opt.betas = (0.9, 1.5)
    assert opt.steps == 1
    np.testing.assert_array_equal(opt.params.compute(), before)
    with pytest.raises(TypeError, match="float32 or float64"):
        fdask.Adam(da.zeros(10, dtype=np.int64))
    with pytest.raises(TypeError, match="unexpected arguments"):
        fdask.Adam(da.zeros(10), learning_rate=0.1)
    with pytest.raises(ValueError, match="backend"):
        fdask.Adam(da.zeros(10), backend="cuda")
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        fdask.Adam(da.zeros(10), client="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="Nesterov"):  # a relation, checked before sending
        fdask.SGD(da.zeros(10), nesterov=True)


def test_import_fastgd_does_not_import_dask():
    code = (
        "import sys, fastgd; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
