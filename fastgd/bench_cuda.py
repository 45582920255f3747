"""Old name of :mod:`fastgd.bench.cuda` (the GPU benchmark): the same module object."""

import sys

from fastgd.bench import cuda

sys.modules[__name__] = cuda
