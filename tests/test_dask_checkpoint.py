"""Checkpoints of ``fastgd.dask`` optimizers: ``opt.to_zarr`` / ``fastgd.dask.from_zarr``.

A checkpoint resumed on a new cluster continues bit-identically to an
uninterrupted run (the single-machine NumPy optimizer on the same gradients),
for every rule and dtype; a checkpoint that fails midway leaves the previous
one intact; missing and corrupt checkpoints give clear errors.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import fastgd  # noqa: E402
import fastgd.dask  # noqa: E402
from fastgd.dask import _checkpoint  # noqa: E402

CHUNKS = ((300, 300, 300, 100),)
N = 1000

#: Hyperparameters that make each rule keep all the state and host scalars it can.
KWARGS = {
    "sgd": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "momentum": {"momentum": 0.8},
    "adagrad": {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "rmsprop": {"centered": True, "momentum": 0.5},
    "adadelta": {"rho": 0.8},
    "adam": {"amsgrad": True, "betas": (0.8, 0.99)},
    "adamw": {"betas": (0.85, 0.995)},
    "adamax": {},
    "nadam": {"momentum_decay": 0.01},
    "radam": {"weight_decay": 0.01},
    "lion": {"betas": (0.95, 0.98)},
}


@pytest.fixture(scope="module")
def other_client():
    """A second, new cluster: the checkpoints are resumed there."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def _data(dtype, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N).astype(dtype)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(steps)]
    return x, grads


def _step(opt, ref, g):
    opt.step(da.from_array(g, chunks=CHUNKS))
    if ref is not None:
        ref.step(g)


def _compute(opt, x):
    """``x`` (a snapshot of ``opt``) computed on ``opt``'s client, which need
    not be the default one."""
    return opt.client.compute(x).result()


def _assert_matches(opt, ref):
    np.testing.assert_array_equal(_compute(opt, opt.params), ref.params)
    state = opt.state
    assert sorted(state) == sorted(ref.state)
    for name, arr in state.items():
        np.testing.assert_array_equal(_compute(opt, arr), ref.state[name], err_msg=name)


@pytest.mark.parametrize("rule", sorted(KWARGS))
def test_resume_on_new_cluster_is_bit_identical(rule, dtype, tmp_path, dask_client, other_client):
    x, grads = _data(dtype, 4)
    kwargs = KWARGS[rule]
    ref = fastgd.OPTIMIZERS[rule](x.copy(), **kwargs)
    opt = fastgd.dask.OPTIMIZERS[rule](
        da.from_array(x, chunks=CHUNKS), client=dask_client, **kwargs
    )
    for g in grads[:2]:
        _step(opt, ref, g)
    path = tmp_path / "ckpt.zarr"
    opt.to_zarr(path)
    meta = zarr.open_group(str(path / json.loads((path / "CURRENT").read_text())["version"]))
    meta = meta.attrs["fastgd.dask"]
    assert meta["optimizer"] == rule and meta["step"] == 2 and meta["dtype"] == dtype.name
    assert meta["host"] == ref.state_dict()["host"]  # NAdam's mu_product, SGD's flag

    resumed = fastgd.dask.from_zarr(path, client=other_client)
    assert type(resumed) is type(opt) and resumed.client is other_client
    assert resumed.steps == 2 and resumed.chunks == CHUNKS and resumed.dtype == dtype
    assert resumed.hyperparameters == opt.hyperparameters  # betas back as a tuple
    for g in grads[2:]:
        _step(resumed, ref, g)
    _assert_matches(resumed, ref)


def test_checkpoint_at_step_zero_and_uneven_chunks(tmp_path, dask_client):
    """Before any step (no state yet) and with chunks no regular zarr grid has."""
    chunks = ((250, 450, 200, 100),)
    x, grads = _data(np.float64, 2, seed=1)
    ref = fastgd.NAdam(x.copy())
    opt = fastgd.dask.NAdam(da.from_array(x, chunks=chunks), client=dask_client)
    opt.to_zarr(tmp_path / "c")
    resumed = fastgd.dask.from_zarr(str(tmp_path / "c"))
    assert resumed.steps == 0 and resumed.chunks == chunks
    for g in grads:
        resumed.step(da.from_array(g, chunks=chunks))
        ref.step(g)
    np.testing.assert_array_equal(_compute(resumed, resumed.params), ref.params)


def test_repeated_checkpoints_keep_one_version(tmp_path, dask_client):
    x, grads = _data(np.float32, 3, seed=2)
    ref = fastgd.Adam(x.copy())
    opt = fastgd.dask.Adam(da.from_array(x, chunks=CHUNKS), client=dask_client)
    path = tmp_path / "c"
    for g in grads[:2]:
        _step(opt, ref, g)
        opt.to_zarr(path)
        assert len([e for e in os.listdir(path) if e.endswith(".zarr")]) == 1
    # resume, then checkpoint over the version just read
    resumed = fastgd.dask.from_zarr(path)
    resumed.to_zarr(path)
    _step(resumed, ref, grads[2])
    np.testing.assert_array_equal(_compute(resumed, resumed.params), ref.params)
    assert fastgd.dask.from_zarr(path).steps == 2
    assert sorted(os.listdir(path))[0] == "CURRENT" and len(os.listdir(path)) == 2


def _ckpt_then_more(tmp_path, dask_client):
    """An optimizer checkpointed at step 2 then stepped to 3, the path, the
    NumPy optimizer at step 2, and the gradients of steps 3 to 5."""
    x, grads = _data(np.float64, 5, seed=3)
    ref = fastgd.NAdam(x.copy())
    opt = fastgd.dask.NAdam(da.from_array(x, chunks=CHUNKS), client=dask_client)
    for g in grads[:2]:
        _step(opt, ref, g)
    path = tmp_path / "c"
    opt.to_zarr(path)
    _step(opt, None, grads[2])
    return opt, path, ref, grads[2:]


def _assert_resumes_at_step_2(path, ref, grads):
    resumed = fastgd.dask.from_zarr(path)
    assert resumed.steps == 2
    for g in grads:
        _step(resumed, ref, g)
    _assert_matches(resumed, ref)


def test_failed_write_leaves_previous_checkpoint(tmp_path, dask_client, monkeypatch):
    """A chunk's write fails on its worker midway through the checkpoint (the
    other chunks are written): the previous checkpoint still loads and
    resumes exactly, and the optimizer itself goes on."""
    opt, path, ref, grads = _ckpt_then_more(tmp_path, dask_client)
    before = sorted(os.listdir(path))
    real = _checkpoint._block_slices

    def broken(chunks):  # chunk 2's region of the wrong size: its worker's write raises
        regions = real(chunks)
        regions[2] = (slice(600, 700),)
        return regions

    monkeypatch.setattr(_checkpoint, "_block_slices", broken)
    with pytest.raises(RuntimeError, match="failed on chunk 2.*previous checkpoint"):
        opt.to_zarr(path)
    monkeypatch.undo()
    assert sorted(os.listdir(path)) == before  # the partial version is gone
    opt.step(da.from_array(grads[0], chunks=CHUNKS))  # not lost
    assert opt.steps == 4
    _assert_resumes_at_step_2(path, ref, grads)


def test_crash_before_pointer_switch_leaves_previous_checkpoint(tmp_path, dask_client, monkeypatch):
    """The process dies after every chunk is written but before the pointer
    switch (no cleanup runs): the previous checkpoint loads; the next
    checkpoint removes the leftovers."""
    opt, path, ref, grads = _ckpt_then_more(tmp_path, dask_client)
    current = (path / "CURRENT").read_text()

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(_checkpoint, "_switch", crash)
    monkeypatch.setattr(_checkpoint.shutil, "rmtree", lambda *a, **k: None)  # died: no cleanup
    with pytest.raises(Crash):
        opt.to_zarr(path)
    monkeypatch.undo()
    leftovers = [e for e in os.listdir(path) if e.endswith(".zarr") and e not in current]
    assert len(leftovers) == 1  # the complete but unreferenced new version
    # and a version a crash left half written, and a pointer's temporary file
    partial = path / "v000000099-0123abcd.zarr"
    shutil.copytree(path / leftovers[0], partial)
    shutil.rmtree(partial / "params")
    (path / ".CURRENT.89abcdef.tmp").write_text("{")
    assert (path / "CURRENT").read_text() == current
    resumed = fastgd.dask.from_zarr(path)
    assert resumed.steps == 2
    resumed.to_zarr(path)  # cleans up
    assert len(os.listdir(path)) == 2
    _assert_resumes_at_step_2(path, ref, grads)


def test_chunks_must_agree(dask_client):
    opt = fastgd.dask.NAdam(da.ones(N, chunks=CHUNKS), client=dask_client)
    opt.step(da.ones(N, chunks=CHUNKS))
    d = {"step": 1, "host": {"mu_product": 0.5}, "state": ["exp_avg", "exp_avg_sq"]}
    assert _checkpoint._common_description(opt, [d, dict(d)]) == d
    with pytest.raises(fastgd.dask.LostStateError, match="chunk 1 is at step 1 with host"):
        _checkpoint._common_description(opt, [d, {**d, "host": {"mu_product": 0.25}}])
    with pytest.raises(fastgd.dask.LostStateError, match="from_zarr"):
        opt.step(da.ones(N, chunks=CHUNKS))


# -- errors ---------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path, dask_client):
    opt = fastgd.dask.Adam(da.ones(N, chunks=CHUNKS), client=dask_client, betas=(0.8, 0.9))
    opt.step(da.ones(N, chunks=CHUNKS))
    path = tmp_path / "c"
    opt.to_zarr(path)
    version = json.loads((path / "CURRENT").read_text())["version"]
    return path, path / version


def test_missing_checkpoint(tmp_path, dask_client):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fastgd.dask.from_zarr(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no CURRENT file"):
        fastgd.dask.from_zarr(tmp_path / "empty")


@pytest.mark.parametrize("url", ["s3://bucket/ckpt.zarr", "gs://b/c", "simplecache::s3://b/c"])
def test_urls_are_refused(url, dask_client):
    opt = fastgd.dask.SGD(da.ones(N, chunks=CHUNKS), client=dask_client)
    with pytest.raises(ValueError, match="atomic rename"):
        opt.to_zarr(url)
    with pytest.raises(ValueError, match="atomic rename"):
        fastgd.dask.from_zarr(url)


def test_to_zarr_refuses_foreign_paths(tmp_path, dask_client):
    opt = fastgd.dask.SGD(da.ones(N, chunks=CHUNKS), client=dask_client)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        opt.to_zarr(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a fastgd.dask checkpoint directory"):
        opt.to_zarr(tmp_path / "mine")
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "CURRENT file is unreadable"),
        ('["x"]', "not a fastgd.dask checkpoint pointer"),
        ('{"format": "fastgd.dask.checkpoint/1", "version": "../x"}', "names no version"),
        ('{"format": "fastgd.dask.checkpoint/1", "version": "v000000001-00000000.zarr"}',
         "is missing"),
        ('{"format": "fastgd.dask.checkpoint/99", "version": "v000000001-00000000.zarr"}',
         "has format 'fastgd.dask.checkpoint/99'; this version of fastgd reads"),
    ],
)  # fmt: skip
def test_corrupt_pointer(checkpoint, content, match):
    path, _ = checkpoint
    (path / "CURRENT").write_text(content)
    with pytest.raises(ValueError, match=match):
        fastgd.dask.from_zarr(path)


def _edit_meta(store, **changes):
    group = zarr.open_group(str(store), mode="r+")
    meta = dict(group.attrs["fastgd.dask"])
    for k, v in changes.items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    group.attrs["fastgd.dask"] = meta


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format": "fastgd.dask.checkpoint/2"}, "unknown checkpoint format"),
        ({"step": None}, r"corrupt: its metadata lacks \['step'\]"),
        ({"optimizer": "sgdx"}, "unknown optimizer 'sgdx'"),
        ({"rule": "lion"}, "optimizer 'adam' does not have rule 'lion'"),
        ({"dtype": "int8"}, "dtype 'int8'"),
        ({"chunks": [[300, 300]]}, "do not agree"),
        ({"step": -1}, "step -1"),
        ({"state": ["exp_avg", "nope"]}, "lacks the array 'state.nope'"),
    ],
)
def test_corrupt_metadata(checkpoint, changes, match):
    path, store = checkpoint
    _edit_meta(store, **changes)
    with pytest.raises(ValueError, match=match):
        fastgd.dask.from_zarr(path)


def test_corrupt_store(checkpoint):
    path, store = checkpoint
    (store / "zarr.json").write_text("{")
    with pytest.raises(ValueError, match="corrupt: its store .* is unreadable"):
        fastgd.dask.from_zarr(path)
    shutil.rmtree(store)
    store.mkdir()
    with pytest.raises(ValueError, match="corrupt"):
        fastgd.dask.from_zarr(path)


def test_missing_array_and_wrong_shape(checkpoint):
    path, store = checkpoint
    shutil.rmtree(store / "state.exp_avg")
    with pytest.raises(ValueError, match="lacks the array 'state.exp_avg'"):
        fastgd.dask.from_zarr(path)
    group = zarr.open_group(str(store), mode="r+")
    group.create_array("state.exp_avg", shape=(7,), dtype="f8", chunks=(7,))
    with pytest.raises(ValueError, match=r"array 'state.exp_avg' is \(7,\) float64"):
        fastgd.dask.from_zarr(path)
