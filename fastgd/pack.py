"""Pack many arrays into one flat buffer so one kernel call updates them all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fastgd import _checks


def _arrays(arrays) -> list:
    """``arrays`` as a list, refusing what is not a sequence of arrays."""
    if (
        isinstance(arrays, np.ndarray)
        or hasattr(arrays, "__array__")  # a tensor or another array-like object
        or _checks.is_cuda_array(arrays)
    ):
        raise TypeError(
            "arrays must be a sequence of arrays, got a single array (whose rows would "
            "be packed one by one); pass [a] to pack one array"
        )
    if isinstance(arrays, (str, bytes, Mapping)) or not isinstance(arrays, Iterable):
        hint = "; pass list(d.values())" if isinstance(arrays, Mapping) else ""
        raise TypeError(f"arrays must be a sequence of arrays, got {type(arrays).__name__}{hint}")
    return list(arrays)


def _dtype(dtype) -> np.dtype | None:
    """The ``dtype`` argument: None, float32 or float64."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be None, float32 or float64, got {dtype!r}") from None
    return _checks.check_dtype(dt, "dtype")


def pack(arrays: Sequence, dtype=None):
    """Copy ``arrays`` into one flat, C-contiguous buffer and return views into it.

    A model with hundreds of parameter tensors becomes one parameter vector,
    so one optimizer (one kernel launch per step) updates all of them. Keep
    using the returned views: they alias the buffer, the originals do not.

    Parameters
    ----------
    arrays : sequence of array_like
        The tensors to pack (any shapes, 0-d and empty included): NumPy
        arrays or nested lists of numbers, or CUDA arrays (all on one
        device, packed on the device); not a mix of host and CUDA arrays.
        ndarray subclasses are copied from a plain view (``np.matrix`` gives
        a 2-D view); masked arrays, and bool, complex, object or string
        dtypes are refused.
    dtype : {None, numpy.float32, numpy.float64}
        Buffer dtype; by default the common dtype of ``arrays``, which must
        then all be float32 or all float64. With a dtype, integer and float
        arrays are converted; a float64 value beyond float32's range is an
        error, not ``inf``.

    Returns
    -------
    flat : ndarray
        The 1-D buffer (a CUDA array when the inputs are).
    views : list of ndarray
        ``views[k]`` has ``arrays[k]``'s shape and is a view of ``flat``.

    Raises
    ------
    TypeError
        ``arrays`` is not a sequence of arrays (a single array, a string, a
        mapping, None); an element is masked, of a non-real dtype, or not
        float32/float64 without ``dtype``; mixed float32/float64 without
        ``dtype``; host and CUDA arrays mixed; a ``dtype`` other than
        None, float32 or float64.
    ValueError
        An element that is not an array of numbers (ragged lists); a
        float64 value beyond float32's range with ``dtype=np.float32``.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> w, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    >>> flat, (w, b) = fastgd.pack([w, b])
    >>> flat.shape, w.base is flat
    ((9,), True)
    """
    arrays = _arrays(arrays)
    dtype = _dtype(dtype)
    on_device = [_checks.is_cuda_array(a) for a in arrays]
    if any(on_device):
        if not all(on_device):
            host, dev = on_device.index(False), on_device.index(True)
            raise TypeError(
                f"arrays[{host}] is a host array but arrays[{dev}] is a CUDA array; "
                "pack host and CUDA arrays separately (fastgd never copies between "
                "host and device silently)"
            )
        from fastgd import cuda

        return cuda.pack(arrays, dtype)
    hosts = [_checks.real_array(a, f"arrays[{k}]") for k, a in enumerate(arrays)]
    if dtype is None:
        for k, a in enumerate(hosts):
            if a.dtype not in _checks.FLOAT_DTYPES:
                raise TypeError(
                    f"arrays[{k}] has dtype {a.dtype}; pass dtype=np.float32 or "
                    "np.float64 to convert it"
                )
        dtypes = {a.dtype for a in hosts}
        if len(dtypes) > 1:
            raise TypeError(f"arrays have different dtypes {sorted(map(str, dtypes))}; pass dtype=")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
    sizes = [a.size for a in hosts]
    flat = np.empty(sum(sizes), dtype=dtype)
    views, offset = [], 0
    for k, (a, n) in enumerate(zip(hosts, sizes, strict=True)):
        view = flat[offset : offset + n].reshape(a.shape)
        try:
            with np.errstate(over="raise"):
                view[...] = a
        except FloatingPointError:
            raise ValueError(
                f"arrays[{k}] holds values beyond {dtype}'s range; converting them "
                f"would give inf (pack with dtype=np.float64, or rescale them)"
            ) from None
        views.append(view)
        offset += n
    return flat, views
