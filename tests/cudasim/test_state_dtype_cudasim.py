"""``state_dtype`` on CUDA parameters (simulator): refused until the CUDA
launcher passes 16-bit storage; the parameters' own dtype is accepted."""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import fastgd


def test_16_bit_state_on_cuda_params_is_refused_clearly():
    p = cuda.to_device(np.ones(8, np.float32))
    with pytest.raises(ValueError, match="runs on the CPU for now"):
        fastgd.Adam(p, state_dtype="bfloat16")
    opt = fastgd.Adam(p, state_dtype="float32")
    opt.step(cuda.to_device(np.ones(8, np.float32)))
    assert opt.state_dtype == np.float32 and opt.resolved_backend == "cuda"
