"""Checkpoints of ``fastgd.dask`` optimizers in zarr stores (to be written)."""

from __future__ import annotations


def to_zarr(opt, path) -> None:
    raise NotImplementedError


def from_zarr(path, *, client=None, backend: str = "serial"):
    raise NotImplementedError
