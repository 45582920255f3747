"""Time a cold JIT compile of each rule, with fastgd's kernel cache off.

What one timing holds: the first ``step`` of a new optimizer on 1,000 float32
elements in a configuration this process has not compiled, and that is not
on disk: generating the loop module's source, writing and importing it, numba
typing and LLVM compilation of the one loop (serial or parallel) the step
needs, and the step. Not included: ``import numba``/``import fastgd`` and
numba's one-time start-up in a process, paid in ``setup`` by compiling the same
configuration once; ``fastgd bench --startup`` measures those.

How: ``fastgd.config.CACHE = False`` (so nothing is read from or written to
the disk cache), and the in-process caches of ``fastgd.backends`` and
``fastgd.kernel_cache`` emptied before each timing, so the loop module gets a
fresh directory and name and numba compiles it from scratch. ``teardown``
restores the caches and removes the directories.
"""

from __future__ import annotations

import os
import shutil

from benchmarks import common
from fastgd import backends, config

try:
    from fastgd import kernel_cache
except ImportError:  # older commits: the kernel directory lived in fastgd.backends
    kernel_cache = backends

DTYPE = "float32"
N = 1_000
#: fastgd's in-process caches (module, attribute), emptied before every timing.
_CACHES = ((kernel_cache, "_cache_dir"), (backends, "_modules"), (backends, "_entries"))


class Compile:
    """Seconds to compile a rule's loop on a first step, numba already started."""

    params = (common.RULES, common.BACKENDS)
    param_names = ["rule", "backend"]
    number = 1
    repeat = (2, 5, 4.0)
    min_run_count = 1
    warmup_time = 0.0
    rounds = 1
    timeout = 300

    def setup(self, rule, backend):
        common.require_rule(rule)
        if not all(hasattr(module, name) for module, name in _CACHES):
            raise NotImplementedError("fastgd of this commit has other caches")
        self.start, self.grad = common.arrays(N, DTYPE, 2)
        self.saved = (config.CACHE, *(getattr(module, name) for module, name in _CACHES))
        config.CACHE = False
        _empty_caches()
        # numba's one-time start-up, and a check that the configuration compiles
        common.once(("compile", rule, backend), lambda: self.time_compile(rule, backend))
        self._drop_compiled()

    def time_compile(self, rule, backend):
        common.optimizer(rule, self.start.copy(), backend).step(self.grad)

    def teardown(self, rule, backend):
        self._drop_compiled()
        config.CACHE = self.saved[0]
        for (module, name), value in zip(_CACHES, self.saved[1:], strict=True):
            setattr(module, name, value)

    def _drop_compiled(self):
        """Forget (and delete) what was compiled since the caches were last emptied."""
        directory = kernel_cache._cache_dir
        # with the cache off, fastgd compiles into a fresh temporary directory
        if directory is not None and os.path.basename(directory).startswith("fastgd-kernels-"):
            shutil.rmtree(directory, ignore_errors=True)
        _empty_caches()


def _empty_caches():
    kernel_cache._cache_dir = None
    backends._modules = {}
    backends._entries = {}
