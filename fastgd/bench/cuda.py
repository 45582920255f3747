"""GPU benchmark: fastgd's CUDA kernels against copy bandwidth and torch's fused CUDA optimizers.

Backs ``fastgd bench --backend cuda``. A GPU step is memory-bound like a CPU
step, so each rule is put next to the bandwidth of a device-to-device copy
measured in the same process (bytes read plus bytes written), and next to
torch's ``fused=True`` CUDA optimizer when a CUDA build of torch is present.

Times come from CUDA events around a run of back-to-back steps (the steps are
launched asynchronously, so at small N the time per step is the launch cost,
at large N the kernel's), medians of several such runs.
"""

from __future__ import annotations

import statistics

import numpy as np

import fastgd
from fastgd import bench

#: Sizes of the GPU table, in elements.
DEFAULT_SIZES = (10_000, 1_000_000, 100_000_000)


def _cuda():
    from numba import cuda

    if not cuda.is_available():
        raise RuntimeError("no CUDA GPU is available (numba.cuda.is_available() is False)")
    return cuda


def _steps_for(n: int) -> int:
    """Back-to-back steps per timed run: many at small N (launch-bound), few at large."""
    return int(min(2000, max(10, 2e9 // max(n, 1) // 100)))


def time_events(step, steps: int, repeat: int = 7) -> float:
    """Median seconds per call of ``step`` over ``repeat`` runs of ``steps`` calls,
    timed with CUDA events on the default stream."""
    cuda = _cuda()
    step()
    cuda.synchronize()
    samples = []
    for _ in range(repeat):
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / steps)
    return statistics.median(samples)


def copy_bandwidth(n: int, dtype="float32", repeat: int = 7, steps: int | None = None) -> float:
    """GB/s of a device-to-device copy of ``n`` elements (read plus write)."""
    cuda = _cuda()
    src = cuda.to_device(np.random.default_rng(0).random(n).astype(dtype))
    dst = cuda.device_array_like(src)
    seconds = time_events(lambda: dst.copy_to_device(src), steps or _steps_for(n), repeat)
    return 2 * src.nbytes / seconds / 1e9


def _torch_cuda_step(name: str, params, grad, hyperparameters):
    """torch's ``fused=True`` CUDA optimizer of a rule (``foreach`` if no fused one)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    equivalent = bench.torch_equivalent(name, hyperparameters)
    if equivalent is None:
        return None
    cls_name, kwargs = equivalent
    cls = getattr(torch.optim, cls_name)
    p = torch.as_tensor(params, device="cuda").requires_grad_()
    p.grad = torch.as_tensor(grad, device="cuda")
    for impl, extra in (("fused", {"fused": True}), ("foreach", {"foreach": True})):
        try:
            opt = cls([p], **kwargs, **extra)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        return opt.step, impl
    return None


def measure_rule_cuda(
    name: str,
    n: int,
    dtype="float32",
    repeat: int = 7,
    with_torch: bool = True,
    steps: int | None = None,
) -> dict:
    """Time one rule on the GPU at one size.

    Returns
    -------
    dict
        ``rule, n, dtype, backend, us_per_step, gbps, copy_gbps,
        fraction_of_copy, torch_us, torch_impl, x_torch`` (torch fields None
        without a CUDA torch).
    """
    cuda = _cuda()
    hp = bench.bench_hyperparameters(name)
    params, grad = bench.random_arrays(n, dtype, 2)
    d_params, d_grad = cuda.to_device(params), cuda.to_device(grad)
    opt = fastgd.OPTIMIZERS[name](d_params, **hp)
    opt.step(d_grad)
    steps = steps or _steps_for(n)
    seconds = time_events(lambda: opt.step(d_grad), steps, repeat)
    moved = bench.bytes_per_step(n, dtype, len(opt.state))
    copy = copy_bandwidth(n, dtype, repeat, steps)
    row = {
        "rule": name,
        "n": n,
        "dtype": str(np.dtype(dtype)),
        "backend": "cuda",
        "us_per_step": seconds * 1e6,
        "gbps": moved / seconds / 1e9,
        "copy_gbps": copy,
        "fraction_of_copy": moved / seconds / 1e9 / copy,
        "torch_us": None,
        "torch_impl": None,
        "x_torch": None,
    }
    if with_torch:
        found = _torch_cuda_step(name, params, grad, opt.hyperparameters)
        if found is not None:
            torch_seconds = time_events(found[0], steps, repeat)
            row.update(
                torch_us=torch_seconds * 1e6,
                torch_impl=found[1],
                x_torch=torch_seconds / seconds,
            )
    return row


def run_bench_cuda(
    rules=None, sizes=DEFAULT_SIZES, dtype="float32", repeat=7, with_torch=True, steps=None
):
    """Rows of :func:`measure_rule_cuda` for every rule and size."""
    rules = list(rules or fastgd.OPTIMIZERS)
    return [measure_rule_cuda(r, n, dtype, repeat, with_torch, steps) for r in rules for n in sizes]


def device_name() -> str:
    cuda = _cuda()
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


#: Columns of the GPU table, for :func:`fastgd.bench.format_table`.
CUDA_COLUMNS = (
    ("rule", "rule", str),
    ("N", "n", bench.format_n),
    ("backend", "backend", str),
    ("us/step", "us_per_step", lambda x: f"{x:.1f}"),
    ("GB/s", "gbps", lambda x: f"{x:.0f}"),
    ("copy GB/s", "copy_gbps", lambda x: f"{x:.0f}"),
    ("of copy", "fraction_of_copy", lambda x: f"{x:.2f}"),
    ("x torch", "x_torch", lambda x: "-" if x is None else f"{x:.2f}"),
    ("torch impl", "torch_impl", lambda x: "-" if x is None else x),
)


def format_table_cuda(rows: list[dict], markdown: bool = False) -> str:
    """The GPU rows as aligned text or a Markdown table."""
    return bench.format_table(rows, markdown, CUDA_COLUMNS)
