"""The CUDA simulator suite: collected only in a process with NUMBA_ENABLE_CUDASIM=1.

``tests/test_cuda_simulator.py`` starts that process (the variable must be set
before numba is imported, so it cannot share the main test session).
"""

from __future__ import annotations

import os
import sys

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["test_*.py"]
else:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
