"""The memory of a flat torch tensor as the array fastgd's kernels take, and back.

Host tensors become NumPy views (``Tensor.numpy()``; bfloat16 tensors an
``ml_dtypes.bfloat16`` view of their bits), CUDA tensors numba
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


def host_array(t: torch.Tensor) -> np.ndarray:
    """The host tensor ``t`` as a NumPy array over the same memory; bfloat16
    (which ``Tensor.numpy()`` refuses) as an ``ml_dtypes.bfloat16`` view of its bits."""
    if t.dtype == torch.bfloat16:
        from fastgd import _precision

        return t.view(torch.int16).numpy().view(_precision.bfloat16())
    return t.numpy()


def kernel_array(t: torch.Tensor, device: bool):
    """The 1-D contiguous tensor ``t`` as a kernel array over the same memory."""
    if not device:
        return host_array(t)
    if t.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(t)
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    return FakeCUDAArray(host_array(t))


def tensor_of(arr, like: torch.Tensor) -> torch.Tensor:
    """The kernel array ``arr`` (made by fastgd) as a tensor on ``like``'s device."""
    if isinstance(arr, np.ndarray):
        return from_numpy(arr)
    if like.is_cuda:
        return torch.as_tensor(arr, device=like.device)
    return from_numpy(arr._ary)  # a simulator device array


def from_numpy(arr: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy``, also for ``ml_dtypes.bfloat16`` arrays (through their bits)."""
    if arr.dtype.name == "bfloat16":  # torch.from_numpy knows no ml_dtypes type
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def stream(like: torch.Tensor):
    """torch's current stream on ``like``'s device (None on the host): fastgd's
    launch is then ordered with torch's work on the buffers."""
    return torch.cuda.current_stream(like.device) if like.is_cuda else None
