"""Shared fixtures of the fastgd test suite."""

from __future__ import annotations

import os

import numpy as np
import pytest

#: Skip reasons allowed in CI: only tests that need a real GPU may skip there.
GPU_ONLY = ("CUDA device", "GPU")
_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report)
        _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    """In CI (``CI=true``), a skip that does not need a GPU fails the run: the
    README's test command must run every test a CPU machine can run."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    bad = [(node, why) for node, why in _skipped if not any(k in why for k in GPU_ONLY)]
    if bad and session.exitstatus == 0:
        lines = "\n".join(f"  {node}: {why}" for node, why in bad)
        print(f"\nCI: {len(bad)} test(s) skipped without needing a GPU:\n{lines}")
        session.exitstatus = 1


@pytest.fixture
def uncached(monkeypatch, tmp_path):
    """Compile into a fresh folder without numba's disk cache (cached code can't
    be inspected: its assembly is not the in-process compilation's)."""
    from fastgd import backends, config, kernel_cache

    monkeypatch.setattr(config, "CACHE", False)
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "_cache_dir", None)
    monkeypatch.setattr(backends, "_modules", {})
    monkeypatch.setattr(backends, "_entries", {})


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    """Each supported parameter dtype."""
    return np.dtype(request.param)


@pytest.fixture
def torch_default_dtype(dtype):
    """Set torch's default dtype to ``dtype`` for the test, then restore it.

    torch.optim creates scalar state (``step``, NAdam's ``mu_product``) in the
    default dtype, so float64 parity needs a float64 default.
    """
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def dask_client():
    """A ``distributed.LocalCluster`` of 2 single-thread worker processes, as
    issue 10 specifies, shared by the tests of ``fastgd.dask`` that do not
    kill workers or need a fresh cluster."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
