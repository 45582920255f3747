"""Checkpoints of ``fastgd.dask`` optimizers in zarr stores.

Layout of a checkpoint directory ``path``::

    path/
        CURRENT                      the pointer: JSON {"format": ..., "version": NAME}
        v000000042-3f9c2a1b.zarr/    the version CURRENT names (a zarr v3 group)
            zarr.json                metadata in the attribute "fastgd.dask"
            params/                  the parameters, one zarr array
            state.exp_avg/ ...       one zarr array per state array

:func:`to_zarr` writes a new version directory next to the current one (each
worker writes its own chunks, where they live), then replaces ``CURRENT``
with :func:`os.replace`, which is atomic on POSIX filesystems, and only then
removes the older versions. A crash at any point before the replace leaves
``CURRENT`` naming the previous, complete version; the partial one is removed
by the next successful checkpoint. :func:`from_zarr` follows ``CURRENT``.

``path`` must be a directory on a filesystem that the client and every worker
see under the same name: a local path for a ``LocalCluster``, a shared POSIX
filesystem (NFS, Lustre, GPFS, ...) for a cluster of machines. Object stores
(``s3://``, ``gs://``, ...) are refused: they have no atomic rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import uuid

import numpy as np

from fastgd.dask import _chunk

#: The format of the metadata this module writes (``attrs["fastgd.dask"]["format"]``).
FORMAT = "fastgd.dask.checkpoint/1"
#: The name of the pointer file in a checkpoint directory.
POINTER = "CURRENT"
_ATTR = "fastgd.dask"
_VERSION = re.compile(r"v\d{9,}-[0-9a-f]{8}\.zarr")
_TEMP = re.compile(r"\.CURRENT\.[0-9a-f]{8}\.tmp")


# -- paths ------------------------------------------------------------------------


def _local_path(path, what: str) -> str:
    """``path`` as an absolute local path, or a clear error for URLs."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"{what}: path must be a str or os.PathLike, got {type(path).__name__}"
        ) from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if "://" in path or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+::", path):
        raise ValueError(
            f"{what}: {path!r} is a URL; fastgd.dask checkpoints need a POSIX filesystem "
            "that the client and every worker see (a local path for a LocalCluster, a "
            "shared filesystem for a cluster), because an atomic checkpoint needs an "
            "atomic rename, which object stores such as s3:// or gs:// do not have"
        )
    if not path:
        raise ValueError(f"{what}: path is empty")
    return os.path.abspath(os.path.expanduser(path))


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _zarr_chunks(chunks: tuple) -> tuple[int, ...]:
    """zarr's regular chunk shape for dask ``chunks``: the dask chunk size
    where every block but the last has it (the usual case, so a zarr chunk is a
    dask block), else the greatest common divisor of the sizes; either way
    every dask block is a whole number of zarr chunks, so the workers' writes
    never touch the same zarr chunk."""
    out = []
    for sizes in chunks:
        first = sizes[0] if sizes else 1
        if all(s == first for s in sizes[:-1]) and sizes[-1] <= first:
            out.append(max(first, 1))
        else:
            out.append(max(math.gcd(*sizes), 1))
    return tuple(out)


def _block_slices(chunks: tuple) -> list[tuple[slice, ...]]:
    """The region of every block of an array with ``chunks``, in C order."""
    from fastgd.dask._optimizer import block_indices

    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int).tolist() for c in chunks]
    return [
        tuple(slice(starts[d][j], starts[d][j + 1]) for d, j in enumerate(idx))
        for idx in block_indices(tuple(len(c) for c in chunks))
    ]


def _array_name(state: str) -> str:
    return f"state.{state}"


# -- what runs on the workers -----------------------------------------------------


def write_chunk(chunk: _chunk.Chunk, store: str, region, expected_step: int, names) -> int:
    """Write one chunk's parameters and state arrays ``names`` to the zarr
    group ``store`` at ``region``; return the chunk's index. Runs on the
    chunk's worker as an operation of :func:`fastgd.dask._chunk._run_in_order`
    (after the steps submitted before it); refuses a chunk that is not at
    ``expected_step``."""
    import zarr

    opt = chunk.opt
    if opt.steps != expected_step:
        raise _chunk.LostStateError(
            f"chunk {chunk.index} is at step {opt.steps}, expected {expected_step}: its "
            "state was lost with a worker and recomputed"
        )
    shape = tuple(r.stop - r.start for r in region)
    if shape != opt.params.shape:  # zarr would write a part of the block, silently
        raise ValueError(
            f"chunk {chunk.index} has shape {opt.params.shape}, its region {region} {shape}"
        )
    config = {"write_empty_chunks": True}
    arrays = [("params", opt.params)] + [(_array_name(n), opt.state[n]) for n in names]
    for name, value in arrays:
        target = zarr.open_array(os.path.join(store, name), mode="r+", config=config)
        target[tuple(region)] = value
    return chunk.index


# -- writing ----------------------------------------------------------------------


def _check_directory(path: str) -> None:
    """Refuse to write into a file or into a directory holding anything but
    a checkpoint's own files (nothing of the user's is ever removed)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"to_zarr: {path!r} exists and is not a directory")
    if not os.path.isdir(path):
        return
    foreign = sorted(
        e for e in os.listdir(path) if e != POINTER and not _VERSION.fullmatch(e)
        and not _TEMP.fullmatch(e)
    )  # fmt: skip
    if foreign:
        raise FileExistsError(
            f"to_zarr: {path!r} is not a fastgd.dask checkpoint directory (it holds "
            f"{foreign[:5]}); choose a new or empty directory, or one written by to_zarr"
        )


def _wait(opt, futures, what: str, path: str) -> None:
    """Wait for the checkpoint's tasks: a chunk that is gone is a
    :class:`LostStateError` (the optimizer cannot go on); a task that failed
    while the chunks are intact (a full disk, no permission) is a
    ``RuntimeError`` and the optimizer goes on."""

    def failed(i, exc):
        return RuntimeError(
            f"to_zarr: {what} failed on chunk {i} ({type(exc).__name__}: {exc}); the "
            f"optimizer is unchanged and the previous checkpoint at {path!r}, if any, is "
            "intact"
        )

    opt._wait(futures, what, recoverable=failed)


def _common_description(opt, descriptions: list[dict]) -> dict:
    """The step, host scalars and state names every chunk shares, or an error."""
    first = descriptions[0]
    for i, d in enumerate(descriptions):
        if d["step"] != opt.steps or d != first:
            raise opt._lose(
                "writing a checkpoint",
                f"chunk {i} is at step {d['step']} with host scalars {d['host']} and state "
                f"{d['state']}, chunk 0 at step {first['step']} with {first['host']} and "
                f"{first['state']}, the optimizer at step {opt.steps}",
            )
    return first


def _metadata(opt, description: dict) -> dict:
    from fastgd.optimizers import OPTIMIZERS

    numpy_class = type(opt)._numpy_class
    # the class's key (AdamW shares Adam's rule, so the rule name is not enough)
    (key,) = (k for k, c in OPTIMIZERS.items() if c is numpy_class)
    return {
        "format": FORMAT,
        "optimizer": key,
        "rule": numpy_class.rule.name,
        "dtype": np.dtype(opt.dtype).name,
        "shape": list(opt.shape),
        "chunks": [list(c) for c in opt.chunks],
        "step": int(description["step"]),
        "hyperparameters": _json_safe(opt.hyperparameters),
        "host": _json_safe(description["host"]),
        "state": list(description["state"]),
    }


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_zarr(opt, path) -> None:
    """Checkpoint a ``fastgd.dask`` optimizer to the directory ``path``, atomically.

    Each worker writes its own chunks of the parameters and state to a new
    zarr store inside ``path`` (nothing is gathered to the client); the
    step count, host scalars (such as NAdam's ``mu_product``) and
    hyperparameters go in the store's attributes. Only when every chunk is
    written does the pointer file ``path/CURRENT`` switch to the new store
    (:func:`os.replace`, atomic on POSIX); the previous stores are removed
    after that. A failure or crash before the switch leaves the previous
    checkpoint intact and loadable.

    Parameters
    ----------
    opt : fastgd.dask.DaskOptimizer
        The optimizer; every submitted step is waited for first.
    path : str or os.PathLike
        A checkpoint directory: new, empty, or written by ``to_zarr``. It must
        be on a filesystem that the client and every worker see under this
        name (a local path for a ``LocalCluster``, a shared POSIX filesystem
        for a cluster of machines). URLs of object stores are refused.

    Raises
    ------
    ValueError
        ``path`` is a URL (``s3://...``): object stores have no atomic rename.
    FileExistsError
        ``path`` is a file, or a directory holding files of its own.
    fastgd.dask.LostStateError
        A worker holding optimizer state left the cluster, or the chunks
        disagree on the step or host scalars.

    See Also
    --------
    from_zarr : resume from the checkpoint.
    """
    import zarr

    path = _local_path(path, "to_zarr")
    _check_directory(path)
    opt._check_alive()
    step = opt.steps
    # operations on the chunks run in submission order, after every step submitted
    described = opt._op(f"describe{step}", lambda i, _: (_chunk.describe,))
    _wait(opt, described, f"describing the chunks at step {step}", path)
    description = _common_description(opt, opt._client.gather(described))
    meta = _metadata(opt, description)

    os.makedirs(path, exist_ok=True)
    version = f"v{step:09d}-{uuid.uuid4().hex[:8]}.zarr"
    store = os.path.join(path, version)
    try:
        group = zarr.open_group(store, mode="w-", zarr_format=3)
        zchunks = _zarr_chunks(opt.chunks)
        for name in ["params", *(_array_name(n) for n in meta["state"])]:
            group.create_array(
                name, shape=opt.shape, dtype=opt.dtype, chunks=zchunks, fill_value=0,
                config={"write_empty_chunks": True},
            )  # fmt: skip
        regions = _block_slices(opt.chunks)
        names = tuple(meta["state"])
        written = opt._op(
            f"checkpoint{step}", lambda i, _: (write_chunk, store, regions[i], step, names)
        )
        _wait(opt, written, f"writing the checkpoint of step {step}", path)
        # the metadata last: a version without it is never complete
        group.attrs[_ATTR] = meta
        _switch(path, version)
    except BaseException:
        shutil.rmtree(store, ignore_errors=True)
        raise
    _remove_old(path, keep=version)


def _switch(path: str, version: str) -> None:
    """Point ``path/CURRENT`` at ``version``: write a temporary file, flush it
    to disk, rename it over the pointer (atomic), flush the directory."""
    temp = os.path.join(path, f".CURRENT.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "version": version}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, os.path.join(path, POINTER))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _fsync_dir(path)


def _remove_old(path: str, keep: str) -> None:
    """Remove every version but ``keep`` and stray pointer temporaries
    (left by crashed checkpoints); failures to remove are harmless."""
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if _VERSION.fullmatch(entry) and entry != keep:
            shutil.rmtree(full, ignore_errors=True)
        elif _TEMP.fullmatch(entry):
            with contextlib.suppress(OSError):
                os.remove(full)


# -- reading ----------------------------------------------------------------------


class _Corrupt(ValueError):
    pass


def _read_pointer(path: str) -> str:
    pointer = os.path.join(path, POINTER)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"from_zarr: no checkpoint at {path!r} (no such directory)")
    if not os.path.isfile(pointer):
        raise FileNotFoundError(
            f"from_zarr: no checkpoint at {path!r}: it has no {POINTER} file (not written "
            "by opt.to_zarr, or its first checkpoint did not finish)"
        )
    try:
        with open(pointer, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Corrupt(f"its {POINTER} file is unreadable ({e})") from e
    if not isinstance(content, dict) or "format" not in content:
        raise _Corrupt(f"its {POINTER} file is not a fastgd.dask checkpoint pointer")
    if content["format"] != FORMAT:
        raise ValueError(
            f"from_zarr: checkpoint {path!r} has format {content['format']!r}; this "
            f"version of fastgd reads {FORMAT!r}"
        )
    version = content.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _Corrupt(f"its {POINTER} file names no version store ({version!r})")
    if not os.path.isdir(os.path.join(path, version)):
        raise _Corrupt(f"the version store {version!r} that {POINTER} names is missing")
    return version


def _check_metadata(meta) -> dict:
    """The validated metadata of a version store, tuples restored."""
    from fastgd.dask import OPTIMIZERS

    if not isinstance(meta, dict):
        raise _Corrupt(f"the store has no {_ATTR!r} attributes")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"unknown checkpoint format {meta.get('format')!r}; this version of fastgd "
            f"reads {FORMAT!r}"
        )
    fields = (
        "optimizer",
        "rule",
        "dtype",
        "shape",
        "chunks",
        "step",
        "hyperparameters",
        "host",
        "state",
    )
    missing = [k for k in fields if k not in meta]
    if missing:
        raise _Corrupt(f"its metadata lacks {missing}")
    key = meta["optimizer"]
    if key not in OPTIMIZERS:
        raise _Corrupt(f"unknown optimizer {key!r} (expected one of {sorted(OPTIMIZERS)})")
    if meta["rule"] != OPTIMIZERS[key]._numpy_class.rule.name:
        raise _Corrupt(f"optimizer {key!r} does not have rule {meta['rule']!r}")
    if meta["dtype"] not in ("float32", "float64"):
        raise _Corrupt(f"dtype {meta['dtype']!r} is not float32 or float64")

    def ints(x):
        return isinstance(x, list) and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in x
        )

    shape, chunks = meta["shape"], meta["chunks"]
    if not (
        ints(shape) and isinstance(chunks, list) and len(chunks) == len(shape)
        and all(ints(c) and sum(c) == n for c, n in zip(chunks, shape, strict=True))
    ):  # fmt: skip
        raise _Corrupt(f"shape {shape!r} and chunks {chunks!r} do not agree")
    step = meta["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _Corrupt(f"step {step!r} is not a non-negative integer")
    if not isinstance(meta["hyperparameters"], dict) or not isinstance(meta["host"], dict):
        raise _Corrupt("hyperparameters and host scalars must be JSON objects")
    names = meta["state"]
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise _Corrupt(f"state names {names!r} are not a list of strings")
    out = dict(meta)
    out["shape"] = tuple(shape)
    out["chunks"] = tuple(tuple(c) for c in chunks)
    # JSON has no tuples: betas=(0.9, 0.999) came back as a list
    out["hyperparameters"] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in meta["hyperparameters"].items()
    }
    return out


def from_zarr(path, *, client=None, backend: str = "serial"):
    """Resume a ``fastgd.dask`` optimizer from a checkpoint written by
    :meth:`DaskOptimizer.to_zarr <fastgd.dask.DaskOptimizer.to_zarr>`.

    The parameters and state are read by the workers, chunk by chunk, into
    the chunks of a new optimizer of the checkpoint's rule, with its step
    count, host scalars and hyperparameters: stepping it continues
    bit-identically, on the same cluster or a new one.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint directory given to ``to_zarr``; it must be readable by
        the client and every worker under this name.
    client : distributed.Client, optional
        Where the chunks will live. Default: the current client, else a new
        ``distributed.LocalCluster``.
    backend : {"serial", "parallel", "auto"}, default "serial"
        The loop each chunk's task runs (not part of the checkpoint).

    Returns
    -------
    fastgd.dask.DaskOptimizer
        An optimizer of the checkpoint's class (``fastgd.dask.Adam``, ...),
        with the checkpoint's chunks.

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``.
    ValueError
        ``path`` is a URL, the checkpoint is corrupt, or it has a format this
        version of fastgd does not read.
    """
    import dask.array as da
    import zarr

    from fastgd.dask import OPTIMIZERS

    path = _local_path(path, "from_zarr")
    try:
        version = _read_pointer(path)
        store = os.path.join(path, version)
        try:
            group = zarr.open_group(store, mode="r")
            meta = group.attrs.get(_ATTR)
        except Exception as e:  # zarr raises several kinds for a damaged store
            raise _Corrupt(f"its store {version!r} is unreadable ({type(e).__name__}: {e})") from e
        meta = _check_metadata(meta)
        dtype = np.dtype(meta["dtype"])
        names = ["params", *(_array_name(n) for n in meta["state"])]
        for name in names:
            try:
                arr = group[name]
            except KeyError:
                raise _Corrupt(f"its store {version!r} lacks the array {name!r}") from None
            if (
                not isinstance(arr, zarr.Array)
                or tuple(arr.shape) != meta["shape"]
                or np.dtype(arr.dtype) != dtype
            ):
                raise _Corrupt(
                    f"array {name!r} is {getattr(arr, 'shape', '?')} "
                    f"{getattr(arr, 'dtype', '?')}, the metadata says {meta['shape']} {dtype}"
                )
    except _Corrupt as e:
        raise ValueError(f"from_zarr: the checkpoint at {path!r} is corrupt: {e}") from None
    except ValueError as e:
        if str(e).startswith("from_zarr"):
            raise
        raise ValueError(f"from_zarr: {path!r}: {e}") from None

    token = uuid.uuid4().hex[:8]

    def read(name):
        return da.from_zarr(
            store, component=name, chunks=meta["chunks"], name=f"fastgd-ckpt-{token}-{name}"
        )

    params = read("params")
    state = {n: read(_array_name(n)) for n in meta["state"]}
    cls = OPTIMIZERS[meta["optimizer"]]
    return cls._resumed(
        params,
        {"step": meta["step"], "host": meta["host"], "state": state},
        client=client,
        backend=backend,
        **meta["hyperparameters"],
    )
