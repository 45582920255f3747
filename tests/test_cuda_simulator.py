"""Runs the CUDA simulator suite (tests/cudasim) in its own pytest process.

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is imported, so the suite
cannot run inside this session; this test runs it and fails with its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")


def test_cuda_simulator_suite():
    suite = Path(__file__).parent / "cudasim"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FASTGD_CUDA_THREADS_PER_BLOCK="4")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        env=env,
        capture_output=True,
        text=True,
    )
    tail = (run.stdout[-6000:] + run.stderr[-3000:]).strip()
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
    print(tail.splitlines()[-1])
