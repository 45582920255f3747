"""Workers that die under a ``fastgd.dask`` optimizer.

The chunks' state lives only in the workers' memory: when a worker holding it
dies (even if its nanny restarts it), the next step, parameter read or
checkpoint raises :class:`fastgd.dask.LostStateError` with the way back (the
last checkpoint), never a result from other state, and nothing waits
forever for the dead worker. Each test kills a worker, so each has its own
cluster.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")
pytest.importorskip("zarr")

import fastgd  # noqa: E402
import fastgd.dask  # noqa: E402

CHUNKS = ((300, 300, 300, 100),)
N = 1000
HINT = r"state was lost.*Resume from your last checkpoint: opt = fastgd.dask.from_zarr"


@pytest.fixture
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def _kill(client, address: str) -> None:
    """SIGKILL the worker process at ``address`` (a crash: nothing is cleaned up)."""
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)


def _until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _workers(client) -> set:
    return set(client.scheduler_info(n_workers=-1)["workers"])


def _grads(dtype=np.float64, n=5):
    rng = np.random.default_rng(7)
    return rng.standard_normal(N).astype(dtype), [
        rng.standard_normal(N).astype(dtype) for _ in range(n)
    ]


def test_killed_worker_gives_lost_state_error_and_checkpoint_resumes(client, tmp_path):
    x, grads = _grads()
    ref = fastgd.NAdam(x.copy())
    opt = fastgd.dask.NAdam(da.from_array(x, chunks=CHUNKS), client=client)
    for g in grads[:2]:
        opt.step(da.from_array(g, chunks=CHUNKS))
        ref.step(g)
    path = tmp_path / "ckpt"
    opt.to_zarr(path)
    current = (path / "CURRENT").read_text()
    opt.step(da.from_array(grads[2], chunks=CHUNKS))
    opt.wait()

    dead = opt.workers[0]
    _kill(client, dead)
    _until(lambda: dead not in _workers(client), "the scheduler to remove the worker")
    # the nanny restarts it (at a new address): the chunks do not come back
    _until(lambda: len(_workers(client)) == 2, "the nanny to restart the worker")

    with pytest.raises(fastgd.dask.LostStateError, match=HINT):
        opt.step(da.from_array(grads[3], chunks=CHUNKS))
    with pytest.raises(fastgd.dask.LostStateError, match=HINT):
        opt.params  # noqa: B018
    with pytest.raises(fastgd.dask.LostStateError, match=HINT):
        opt.to_zarr(path)
    assert (path / "CURRENT").read_text() == current  # the checkpoint is untouched

    resumed = fastgd.dask.from_zarr(path, client=client)  # the same, restarted cluster
    assert resumed.steps == 2
    for g in grads[2:]:
        resumed.step(da.from_array(g, chunks=CHUNKS))
        ref.step(g)
    np.testing.assert_array_equal(client.compute(resumed.params).result(), ref.params)


def _slow_grad(seconds: float):
    """A gradient whose blocks take ``seconds`` to compute (a lambda, so that
    the workers receive it by value)."""
    return da.ones(N, chunks=CHUNKS).map_blocks(lambda b: (time.sleep(seconds), b)[1])


def test_worker_dying_during_a_checkpoint_raises_instead_of_hanging(client, tmp_path):
    """The checkpoint's tasks are pinned to the chunks' workers; one dies
    while they wait for a step: LostStateError within seconds, and no
    version store is left behind."""
    opt = fastgd.dask.Adam(da.ones(N, chunks=CHUNKS), client=client)
    opt.step(da.ones(N, chunks=CHUNKS))
    opt.step(_slow_grad(2.0))  # returns at once: the step computes in the background
    dead = opt.workers[-1]
    timer = threading.Timer(1.0, _kill, (client, dead))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(fastgd.dask.LostStateError, match=HINT):
            opt.to_zarr(tmp_path / "c")
    finally:
        timer.join()
    assert time.monotonic() - t0 < 15
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("*.zarr"))


def test_worker_dying_during_a_step_raises_instead_of_hanging(client):
    """A step's tasks are pinned to the chunks' workers with no other worker
    allowed: when one dies mid-step, waiting for the step must end in a
    LostStateError, not wait forever for a worker that is gone."""
    opt = fastgd.dask.Adam(da.ones(N, chunks=CHUNKS), client=client)
    opt.step(da.ones(N, chunks=CHUNKS))
    opt.step(_slow_grad(2.0))
    dead = opt.workers[0]
    outcome = []

    def wait():
        try:
            opt.wait()
            outcome.append(None)
        except BaseException as e:  # handed to the test's thread below
            outcome.append(e)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(1.0)
    _kill(client, dead)
    waiter.join(timeout=20)
    assert not waiter.is_alive(), "opt.wait() hangs when a worker dies during a step"
    assert isinstance(outcome[0], fastgd.dask.LostStateError), outcome
    assert "from_zarr" in str(outcome[0])
