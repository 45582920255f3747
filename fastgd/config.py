"""Tunable knobs, in one place.

Every value can be overridden at run time by assigning to the attribute
(``fastgd.config.PARALLEL_MIN_BYTES = ...``) or, for the ones read at import,
through the environment variable named beside it.
"""

from __future__ import annotations

import os

#: ``backend="auto"`` runs the multi-threaded (``prange``) loop when one step
#: moves at least this many bytes (reads plus writes of params, grad and
#: state), and the serial loop below it. Measured with ``fastgd bench
#: --crossover`` on the 2-core development machine (float32 Adam, 28 bytes per
#: element): parallel ties serial at about 0.28 MB per step (N = 1e4) and is
#: 1.4x faster at 0.9 MB (N = 31,623); at 0.35 MB it is about 10% faster, so
#: ``auto`` stays within 1.1x of the better loop on both sides. Override with
#: ``FASTGD_PARALLEL_MIN_BYTES``.
PARALLEL_MIN_BYTES: int = int(os.environ.get("FASTGD_PARALLEL_MIN_BYTES", 350_000))

#: Keep compiled kernels on disk between processes (numba ``cache=True``).
#: Set ``FASTGD_DISABLE_CACHE=1`` to compile afresh in every process.
CACHE: bool = os.environ.get("FASTGD_DISABLE_CACHE", "0") in ("", "0")

#: Directory for the generated kernel modules and numba's cache files.
#: Defaults to ``$XDG_CACHE_HOME/fastgd`` (``~/.cache/fastgd``).
CACHE_DIR: str = os.environ.get("FASTGD_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
    "fastgd",
)

#: CUDA launch configuration: threads per block, and blocks per streaming
#: multiprocessor for the grid-stride kernels.
CUDA_THREADS_PER_BLOCK: int = int(os.environ.get("FASTGD_CUDA_THREADS_PER_BLOCK", 256))
CUDA_BLOCKS_PER_SM: int = int(os.environ.get("FASTGD_CUDA_BLOCKS_PER_SM", 8))
