"""Shared fixtures of the fastgd test suite."""

from __future__ import annotations

import numpy as np
import pytest


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
