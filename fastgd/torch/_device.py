"""The memory of a flat torch tensor as the array fastgd's kernels take, and back.

Host tensors become NumPy views (``Tensor.numpy()``), CUDA tensors numba
device arrays (``__cuda_array_interface__``): zero-copy both ways. Under the
numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) "device" memory is host
memory, so a host tensor with ``backend="cuda"`` becomes a simulator device
array over the same memory: the adapter's CUDA path is tested on machines
without a GPU.
"""

from __future__ import annotations

import numpy as np
import torch


def simulated() -> bool:
    """Whether numba's CUDA simulator is on (it must be set before numba loads)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def kernel_array(t: torch.Tensor, device: bool):
    """The 1-D contiguous tensor ``t`` as a kernel array over the same memory."""
    if not device:
        return t.numpy()
    if t.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(t)
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    return FakeCUDAArray(t.numpy())


def tensor_of(arr, like: torch.Tensor) -> torch.Tensor:
    """The kernel array ``arr`` (made by fastgd) as a tensor on ``like``'s device."""
    if isinstance(arr, np.ndarray):
        return torch.from_numpy(arr)
    if like.is_cuda:
        return torch.as_tensor(arr, device=like.device)
    return torch.from_numpy(arr._ary)  # a simulator device array


def stream(like: torch.Tensor):
    """torch's current stream on ``like``'s device (None on the host): fastgd's
    launch is then ordered with torch's work on the buffers."""
    return torch.cuda.current_stream(like.device) if like.is_cuda else None
