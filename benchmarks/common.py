"""What the benchmark modules share: parameter lists, arrays, warmed-up optimizers.

asv imports these modules in an environment that holds one commit of fastgd,
older ones included (``asv continuous``, ``asv run`` over a range). Every use
of a part of fastgd that an older commit may lack is guarded: the benchmark
raises ``NotImplementedError`` in ``setup``, which asv reports as skipped
(``n/a``), never as failed.

asv (0.6.6 with asv_runner 0.3) runs ``setup`` again before every timed
sample, so the time benchmarks build their arrays and compile their kernels
once per process (:func:`once`) and hand out the same objects afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import fastgd

try:
    from fastgd import bench
except ImportError:  # a commit from before fastgd.bench: what needs it skips
    bench = None

#: Every rule of the registry, so a new rule shows up in every benchmark.
RULES: list[str] = list(fastgd.OPTIMIZERS)
#: The CPU loops.
BACKENDS = ["serial", "parallel"]
#: Sizes of ``time_step``, in elements.
SIZES = [10**3, 10**5, 10**7]
DTYPES = ["float32", "float64"]
#: Size of the bandwidth, ceiling, torch and memory benchmarks (as ``fastgd bench``'s largest).
LARGE_N = 10**7
#: Rules torch.optim has (all rules when this commit lacks fastgd.bench; they skip).
TORCH_RULES: list[str] = [r for r in RULES if bench is None or r in bench.TORCH_OPTIMIZERS]
#: Steps before timing: past every change of a rule's compile-time flags (SGD's
#: first step, RAdam's rectification from step 6), so nothing compiles later.
WARMUP_STEPS = 10
#: Elements of the random block that :func:`arrays` repeats.
_BLOCK = 1 << 16

_once: dict = {}


def once(key, make: Callable[[], object]):
    """``make()``, called once per process and ``key``; later calls return the same object.

    Only the latest key is kept: asv runs one parameter combination per process.
    """
    if key not in _once:
        _once.clear()
        _once[key] = make()
    return _once[key]


def require_bench():
    """:mod:`fastgd.bench`, or skip the benchmark on a commit that lacks it."""
    if bench is None:
        raise NotImplementedError("fastgd.bench is not in this commit")
    return bench


def require_rule(rule: str) -> None:
    """Skip the benchmark on a commit whose registry lacks ``rule``."""
    if rule not in fastgd.OPTIMIZERS:
        raise NotImplementedError(f"rule {rule!r} is not in this commit")


def hyperparameters(rule: str) -> dict:
    """The hyperparameters ``fastgd bench`` gives ``rule`` (SGD: momentum 0.9)."""
    if bench is not None:
        return bench.bench_hyperparameters(rule)
    return {"momentum": 0.9} if rule == "sgd" else {}


def np_dtype(dtype: str) -> np.dtype:
    """``dtype`` as a NumPy dtype: ``"bfloat16"`` is ``ml_dtypes.bfloat16``."""
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def _random_block(n: int, dtype: str, count: int, seed: int) -> list[np.ndarray]:
    if bench is not None:
        return bench.random_arrays(n, np_dtype(dtype), count, seed)
    rng = np.random.default_rng(seed)
    signs = (-1.0, 1.0)
    return [
        (rng.uniform(0.1, 1.0, n) * rng.choice(signs, n)).astype(np_dtype(dtype))
        for _ in range(count)
    ]


def arrays(n: int, dtype: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` arrays of ``n`` elements: a block of :func:`fastgd.bench.random_arrays`
    (magnitudes in [0.1, 1), no zeros) repeated.

    Filled in place block by block, so 1e7 elements take milliseconds and no
    N-sized temporary ever exists (it would show in the peak memory).
    """
    out = []
    for block in _random_block(min(n, _BLOCK), dtype, count, seed):
        a = np.empty(n, block.dtype)
        for start in range(0, n, block.size):
            chunk = a[start : start + block.size]
            chunk[...] = block[: chunk.size]
        out.append(a)
    return out


def optimizer(rule: str, params: np.ndarray, backend: str) -> fastgd.Optimizer:
    """``fastgd.OPTIMIZERS[rule]`` on ``params`` with :func:`hyperparameters`."""
    return fastgd.OPTIMIZERS[rule](params, backend=backend, **hyperparameters(rule))


def warm_kernels(rule: str, backend: str, dtype: str) -> int:
    """Compile (or load from fastgd's disk cache) every loop a run of ``rule`` uses.

    A 16-element optimizer is stepped :data:`WARMUP_STEPS` times on each loop
    ``backend`` may pick; the kernels are compiled per configuration, not per
    size, so a large optimizer's steps then compile nothing. Returns the
    number of state arrays the configuration keeps.
    """
    require_rule(rule)
    n_states = 0
    for loop in BACKENDS if backend == "auto" else [backend]:
        params, grad = arrays(16, dtype, 2)
        small = optimizer(rule, params, loop)
        for _ in range(WARMUP_STEPS):
            small.step(grad)
        n_states = len(small.state)
    return n_states


def stepper(rule: str, backend: str, n: int, dtype: str) -> tuple[fastgd.Optimizer, np.ndarray]:
    """``(opt, grad)``: an optimizer of ``n`` elements and its gradient, ready to time.

    After :func:`warm_kernels`, ``opt`` is stepped (its state allocated and
    touched), so its next step does nothing but the update.
    """
    warm_kernels(rule, backend, dtype)
    params, grad = arrays(n, dtype, 2)
    opt = optimizer(rule, params, backend)
    for _ in range(WARMUP_STEPS if n <= 10**5 else 2):
        opt.step(grad)
    return opt, grad
