"""Pack many arrays into one flat buffer so one kernel call updates them all."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastgd import _checks


def pack(arrays: Sequence, dtype=None):
    """Copy ``arrays`` into one flat, C-contiguous buffer and return views into it.

    A model with hundreds of parameter tensors becomes one parameter vector,
    so one optimizer (one kernel launch per step) updates all of them. Keep
    using the returned views: they alias the buffer, the originals do not.

    Parameters
    ----------
    arrays : sequence of array_like
        The tensors to pack (any shapes); NumPy arrays, or CUDA arrays (all on
        one device, packed on the device).
    dtype : {None, numpy.float32, numpy.float64}
        Buffer dtype; by default the common dtype of ``arrays``, which must
        then all be float32 or all float64.

    Returns
    -------
    flat : ndarray
        The 1-D buffer (a CUDA array when the inputs are).
    views : list of ndarray
        ``views[k]`` has ``arrays[k]``'s shape and is a view of ``flat``.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> w, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    >>> flat, (w, b) = fastgd.pack([w, b])
    >>> flat.shape, w.base is flat
    ((9,), True)
    """
    arrays = list(arrays)
    if arrays and any(_checks.is_cuda_array(a) for a in arrays):
        from fastgd import cuda

        return cuda.pack(arrays, dtype)
    hosts = [np.asarray(a) for a in arrays]
    if dtype is None:
        dtypes = {a.dtype for a in hosts}
        if len(dtypes) > 1:
            raise TypeError(f"arrays have different dtypes {sorted(map(str, dtypes))}; pass dtype=")
        dtype = dtypes.pop() if dtypes else np.float32
    dtype = _checks.check_dtype(dtype, "pack dtype")
    for a in hosts:
        if a.dtype.kind == "c":
            _checks.check_dtype(a.dtype, "array")
    sizes = [a.size for a in hosts]
    flat = np.empty(sum(sizes), dtype=dtype)
    views, offset = [], 0
    for a, n in zip(hosts, sizes, strict=True):
        view = flat[offset : offset + n].reshape(a.shape)
        view[...] = a
        views.append(view)
        offset += n
    return flat, views
