"""Measure fastgd against the memory ceiling and against torch.optim.

The functions here back the ``fastgd bench`` command and are importable, so
the asv suite can reuse the ceiling measurement.

A CPU optimizer step is memory-bound, so every number is put next to the
*memory ceiling*: a loop with the same traffic as the step and no arithmetic
(:func:`fastgd.backends.ceiling_loops`). A step of a rule with ``k`` state
arrays reads params, grad and the ``k`` states and writes params and the
states, ``itemsize * N * (3 + 2 k)`` bytes (:func:`bytes_per_step`).

Timings are medians of *interleaved* samples: each repetition times every
contender in turn (rotating who goes first), so a burst of load from another
process on a shared machine hits all of them alike instead of one.

One module per benchmark family, over shared helpers; every public name is
re-exported here (``fastgd.bench.run_bench``, ``fastgd.bench.crossover``, ...):

- :mod:`fastgd.bench._timing`: argument checks, interleaved timing, the memory
  ceiling, the machine description and table formatting;
- :mod:`fastgd.bench.kernels`: the rule table (``fastgd bench``), torch.optim as
  a contender;
- :mod:`fastgd.bench.parallel`: serial / parallel / auto across sizes
  (``--crossover``);
- :mod:`fastgd.bench.coldstart`: import and first step in fresh processes
  (``--startup``);
- :mod:`fastgd.bench.torch_models`: :mod:`fastgd.torch` against torch.optim on
  real models (``--torch``), torch imported on use;
- :mod:`fastgd.bench.dask_step`: :mod:`fastgd.dask` on a LocalCluster against
  one process (``--dask``), dask imported on use;
- :mod:`fastgd.bench.lbfgs_step`: ``method="lbfgs"``'s overhead per iteration
  against SciPy's L-BFGS-B and its traffic bound (``--lbfgs``);
- :mod:`fastgd.bench.cuda`: the GPU table (``--backend cuda``), imported on use.

``SMALL_N``, ``SMALL_N_MIN_STEPS``, ``random_arrays``, ``_run_child``,
``TORCH_MODELS``, ``TORCH_MIN_TIME`` and ``TORCH_WARMUP_STEPS`` are read from
this package when a benchmark runs, so rebinding them here takes effect.
"""

from fastgd.bench._timing import (
    BENCH_COLUMNS,
    BENCH_HYPERPARAMETERS,
    DEFAULT_REPEAT,
    MIN_SAMPLE_TIME,
    NOISY_OTHERS_FRACTION,
    SMALL_N,
    SMALL_N_MIN_STEPS,
    Timing,
    bench_hyperparameters,
    bytes_per_step,
    ceiling_step,
    ceiling_time,
    cpu_model,
    finish_info,
    format_header,
    format_n,
    format_table,
    interleaved_medians,
    machine_info,
    random_arrays,
    resolved_backend,
    steps_per_sample,
)
from fastgd.bench.coldstart import (
    STARTUP_CHILDREN,
    STARTUP_COLUMNS,
    startup,
    startup_rows,
    startup_summary,
)
from fastgd.bench.coldstart import (
    _run_child as _run_child,  # rebound and called by the tests
)
from fastgd.bench.dask_step import (
    DASK_CHUNKS,
    DASK_COLUMNS,
    DASK_N,
    DASK_REPEAT,
    DASK_WORKERS,
    dask_notes,
    measure_dask,
)
from fastgd.bench.kernels import (
    DEFAULT_SIZES,
    STATE_DTYPES,
    TORCH_OPTIMIZERS,
    bench_columns,
    bench_notes,
    measure_rule,
    run_bench,
    torch_equivalent,
    torch_step,
    torch_time,
)
from fastgd.bench.lbfgs_step import (
    LBFGS_COLUMNS,
    LBFGS_PROBLEMS,
    LBFGS_SIZES,
    lbfgs_notes,
    measure_lbfgs,
    run_lbfgs_bench,
)
from fastgd.bench.parallel import (
    CROSSOVER_COLUMNS,
    CROSSOVER_SIZES,
    crossover,
    crossover_summary,
)
from fastgd.bench.parallel import (
    _crossover_point as _crossover_point,  # called by the tests
)
from fastgd.bench.torch_models import (
    ADAPTER_CLASSES,
    TORCH_BENCH_REPEAT,
    TORCH_BENCH_RULES,
    TORCH_COLUMNS,
    TORCH_MIN_TIME,
    TORCH_MODELS,
    TORCH_WARMUP_STEPS,
    TorchModel,
    measure_torch_model,
    run_torch_bench,
    torch_notes,
)
from fastgd.bench.torch_models import import_adapter as import_torch_adapter

__all__ = [
    "ADAPTER_CLASSES",
    "DASK_CHUNKS",
    "DASK_COLUMNS",
    "DASK_N",
    "DASK_REPEAT",
    "DASK_WORKERS",
    "dask_notes",
    "measure_dask",
    "LBFGS_COLUMNS",
    "LBFGS_PROBLEMS",
    "LBFGS_SIZES",
    "lbfgs_notes",
    "measure_lbfgs",
    "run_lbfgs_bench",
    "BENCH_COLUMNS",
    "BENCH_HYPERPARAMETERS",
    "CROSSOVER_COLUMNS",
    "CROSSOVER_SIZES",
    "DEFAULT_REPEAT",
    "DEFAULT_SIZES",
    "MIN_SAMPLE_TIME",
    "NOISY_OTHERS_FRACTION",
    "SMALL_N",
    "SMALL_N_MIN_STEPS",
    "STARTUP_CHILDREN",
    "STARTUP_COLUMNS",
    "TORCH_BENCH_REPEAT",
    "TORCH_BENCH_RULES",
    "TORCH_COLUMNS",
    "TORCH_MIN_TIME",
    "TORCH_MODELS",
    "TORCH_WARMUP_STEPS",
    "TORCH_OPTIMIZERS",
    "Timing",
    "TorchModel",
    "bench_columns",
    "bench_hyperparameters",
    "bench_notes",
    "bytes_per_step",
    "ceiling_step",
    "ceiling_time",
    "cpu_model",
    "crossover",
    "crossover_summary",
    "finish_info",
    "format_header",
    "format_n",
    "format_table",
    "interleaved_medians",
    "machine_info",
    "import_torch_adapter",
    "measure_rule",
    "measure_torch_model",
    "random_arrays",
    "resolved_backend",
    "run_bench",
    "STATE_DTYPES",
    "run_torch_bench",
    "startup",
    "startup_rows",
    "startup_summary",
    "steps_per_sample",
    "torch_equivalent",
    "torch_notes",
    "torch_step",
    "torch_time",
]
