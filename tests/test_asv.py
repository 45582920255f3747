"""The asv benchmark suite (``benchmarks/``, ``asv.conf.json``) runs and covers the registry.

Each benchmark's setup and body is called directly, once, at the smallest
size; nothing here times anything.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastgd
from fastgd import backends, bench, config, kernel_cache

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks` is a package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    ceiling,
    common,
    compilation,
    dask_step,
    lbfgs,
    low_precision,
    memory,
    minimize,
    step,
    torch_adapter,
)

MODULES = (
    ceiling, compilation, dask_step, lbfgs, low_precision, memory, minimize, step, torch_adapter
)  # fmt: skip
HAS_TORCH = importlib.util.find_spec("torch") is not None
TWO_RULES = ["sgd", "adam"]

#: Every benchmark the suite must have, by method name.
EXPECTED = {
    "time_step", "track_fraction_of_ceiling", "track_gbps", "track_speedup_vs_torch",
    "time_compile", "peakmem_step", "peakmem_arrays", "track_step_allocated_bytes",
    "time_minimize", "time_step_cuda", "track_step_time_vs_torch", "track_efficiency",
    "track_overhead_vs_scipy", "time_step_low_precision",
    "track_low_precision_fraction_of_ceiling", "track_low_precision_gbps",
    "track_speedup_vs_float32",
}  # fmt: skip


def _benchmark_classes():
    for module in MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "params"):
                yield cls


@pytest.fixture
def small(monkeypatch):
    """The N = 1e7 benchmarks at N = 1,000, with few steps per sample."""
    monkeypatch.setattr(common, "LARGE_N", 1_000)
    monkeypatch.setattr(bench, "SMALL_N_MIN_STEPS", 10)


def test_every_benchmark_is_there():
    names = {
        name for cls in _benchmark_classes() for name in vars(cls) if name.split("_")[0] in
        ("time", "track", "peakmem")
    }  # fmt: skip
    assert names == EXPECTED


def test_parameters_cover_the_registry():
    rules = list(fastgd.OPTIMIZERS)
    for cls in _benchmark_classes():
        assert len(cls.params) == len(cls.param_names), cls
        if "rule" not in cls.param_names:
            # over the problems and methods of fastgd compare / over the torch models /
            # issue 10's Adam configuration over N
            assert cls in (
                minimize.Minimize, torch_adapter.TorchAdapter, dask_step.DaskStep,
                lbfgs.LbfgsIteration,
            )  # fmt: skip
            continue
        values = cls.params[cls.param_names.index("rule")]
        if cls is ceiling.TorchSpeedup:
            assert values == [r for r in rules if r in bench.TORCH_OPTIMIZERS]
        else:
            assert values == rules, cls
    assert step.TimeStep.params[1:] == (
        ["serial", "parallel"], [10**3, 10**5, 10**7], ["float32", "float64"]
    )  # fmt: skip


def test_asv_discovers_the_suite():
    discovery = pytest.importorskip("asv_runner.discovery")
    found = {
        b.name.rsplit(".", 1)[-1]: b for b in discovery.disc_benchmarks(str(ROOT / "benchmarks"))
    }
    assert set(found) == EXPECTED
    assert found["track_fraction_of_ceiling"].unit == "fraction"
    assert found["track_gbps"].unit == "GB/s"
    assert found["track_step_allocated_bytes"].unit == "bytes"
    assert found["track_step_time_vs_torch"].unit == "fraction of torch's time"
    assert found["track_low_precision_fraction_of_ceiling"].unit == "fraction"
    assert found["track_low_precision_gbps"].unit == "GB/s"
    assert found["track_speedup_vs_float32"].unit == "x float32"


@pytest.mark.parametrize("rule", TWO_RULES)
@pytest.mark.parametrize("backend", ["serial", "parallel"])
def test_time_step(rule, backend):
    b = step.TimeStep()
    b.setup(rule, backend, 1_000, "float32")
    before = b.opt.params.copy()
    b.time_step(rule, backend, 1_000, "float32")
    assert not np.array_equal(before, b.opt.params)
    assert b.opt.backend == backend and b.number == 1_000
    b.setup(rule, backend, 1_000, "float32")  # asv re-runs setup: same objects
    assert common._once[(rule, backend, 1_000, "float32")][0] is b.opt


def test_time_step_cuda_skips_without_gpu():
    b = step.TimeStepCuda()
    try:
        b.setup("adam", 10**5, "float32")
    except NotImplementedError:
        return
    b.time_step_cuda("adam", 10**5, "float32")  # pragma: no cover - with a GPU


@pytest.mark.parametrize("rule", TWO_RULES)
def test_ceiling(rule, small):
    b = ceiling.Ceiling()
    b.setup(rule)
    assert 0 < b.track_fraction_of_ceiling(rule) < 10
    assert b.track_gbps(rule) > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_speedup_vs_torch(small):
    b = ceiling.TorchSpeedup()
    b.setup("adam")
    assert b.track_speedup_vs_torch("adam") > 0
    assert "lion" not in ceiling.TorchSpeedup.params[0]


def test_compile_restores_the_caches():
    saved = (config.CACHE, kernel_cache._cache_dir, backends._modules, backends._entries)
    b = compilation.Compile()
    b.setup("adam", "serial")
    try:
        assert config.CACHE is False and backends._entries == {}
        b.time_compile("adam", "serial")
        assert len(backends._entries) == 1
        directory = kernel_cache._cache_dir
        assert Path(directory).name.startswith("fastgd-kernels-")
    finally:
        b.teardown("adam", "serial")
    assert not Path(directory).exists()
    assert (config.CACHE, kernel_cache._cache_dir, backends._modules, backends._entries) == saved
    assert backends._entries is saved[3]


@pytest.mark.parametrize("rule", TWO_RULES)
def test_memory(rule, small):
    b = memory.PeakMemory()
    b.setup(rule)
    assert b.opt.state == {}
    b.peakmem_step(rule)
    b.peakmem_arrays(rule)
    assert [a.nbytes for a in b.state] == [a.nbytes for a in b.opt.state.values()]
    assert b.n_states == 1 + (rule == "adam")


@pytest.mark.parametrize("rule", TWO_RULES)
def test_step_allocates_nothing(rule):
    b = memory.Allocations()
    b.setup(rule)
    assert b.track_step_allocated_bytes(rule) == 0


def test_allocation_track_sees_a_temporary():
    class Wasteful:
        def step(self, grad):
            grad * 2.0

    small, large = np.ones(1_000, np.float32), np.ones(10**6, np.float32)
    extra = memory.traced_peak(Wasteful(), large) - memory.traced_peak(Wasteful(), small)
    assert extra >= large.nbytes - small.nbytes


def test_minimize():
    b = minimize.Minimize()
    b.setup("rosenbrock", "adam")
    b.time_minimize("rosenbrock", "adam")
    assert b.options["maxiter"] == minimize.DEFAULT_ITERATIONS and b.options["gtol"] == 0
    assert minimize.PROBLEMS == ["rosenbrock", "quadratic", "logistic", "large"]


def test_missing_rule_is_skipped():
    with pytest.raises(NotImplementedError):
        step.TimeStep().setup("no-such-rule", "serial", 1_000, "float32")


def test_asv_conf_uses_ignored_directories():
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    assert conf["benchmark_dir"] == "benchmarks" and conf["branches"] == ["main"]
    assert conf["environment_type"] == "virtualenv"
    assert set(conf["matrix"]["req"]) >= {"numpy", "numba", "scipy"}
    outputs = [conf[key] for key in ("results_dir", "html_dir", "env_dir")]
    assert all(path.startswith(".asv/") for path in outputs)
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probes = [f"{path}/probe" for path in outputs]
    done = subprocess.run(
        ["git", "check-ignore", *probes], cwd=ROOT, capture_output=True, text=True
    )
    assert done.stdout.split() == probes


def test_dask_efficiency(monkeypatch, dask_client):
    """The asv benchmark's value is measure_dask's efficiency (tiny N, the
    session's cluster)."""
    real = bench.measure_dask

    def tiny(rule, n, repeat, flatness_steps):
        return real(rule, 4_000, chunks=4, repeat=1, steps=2, flatness_steps=0,
                    scheduler=dask_client.scheduler.address)  # fmt: skip

    monkeypatch.setattr(bench, "measure_dask", tiny)
    b = dask_step.DaskStep()
    b.setup(2 * 10**7)
    row = b.row
    assert b.track_efficiency(2 * 10**7) == row["single_step_s"] / row["dask_step_s"] > 0


def test_lbfgs_overhead(monkeypatch):
    real = bench.measure_lbfgs

    def tiny(problem, n, repeat):
        return real(problem, 2_000, iterations=3, repeat=1)

    monkeypatch.setattr(bench, "measure_lbfgs", tiny)
    b = lbfgs.LbfgsIteration()
    b.setup(10**6)
    assert b.track_overhead_vs_scipy(10**6) == b.row["fastgd_s"] / b.row["scipy_s"] > 0
    # 3 timed iterations at a full ring of m = 10 pairs, after 12 warm-up iterations
    assert b.row["timed_iterations"] == 3 and b.row["nit"] == b.row["scipy_nit"] == 15


def test_low_precision_storages():
    """Issue 12's configurations: bf16 everything (three roundings), float16, and
    float32 params with bf16 state, over every rule, both loops, overhead and bandwidth."""
    assert low_precision.STORAGES == {
        "bf16": ("bfloat16", None, "nearest"),
        "bf16-kahan": ("bfloat16", None, "kahan"),
        "bf16-stochastic": ("bfloat16", None, "stochastic"),
        "f16": ("float16", None, "nearest"),
        "f32-bf16-state": ("float32", "bfloat16", "nearest"),
    }
    assert low_precision.TimeStepLowPrecision.params == (
        list(fastgd.OPTIMIZERS), list(low_precision.STORAGES), ["serial", "parallel"],
        [10**3, 10**7],
    )  # fmt: skip
    assert low_precision.CeilingLowPrecision.params == (
        list(fastgd.OPTIMIZERS),
        list(low_precision.STORAGES),
    )


@pytest.mark.parametrize("storage", list(low_precision.STORAGES))
def test_time_step_low_precision(storage):
    dtype, state_dtype, rounding = low_precision.STORAGES[storage]
    b = low_precision.TimeStepLowPrecision()
    b.setup("adamw", storage, "serial", 1_000)
    opt = b.opt
    assert opt.params.dtype.name == dtype and b.grad.dtype == opt.params.dtype
    assert opt.state_dtype.name == (state_dtype or dtype)
    assert opt.kahan == (rounding == "kahan")
    assert opt.stochastic_rounding == (rounding == "stochastic")
    assert ("kahan_comp" in opt.state) == (rounding == "kahan")
    before, steps = opt.params.copy(), opt.steps
    b.time_step_low_precision("adamw", storage, "serial", 1_000)
    assert opt.steps == steps + 1 == common.WARMUP_STEPS + 1
    assert np.isfinite(opt.params.astype(np.float32)).all()
    assert b.number == 1_000 and not np.array_equal(before, opt.params)
    b.setup("adamw", storage, "serial", 1_000)  # asv re-runs setup: same objects
    assert b.opt is opt


@pytest.mark.parametrize("storage", ["bf16", "bf16-kahan", "f32-bf16-state"])
def test_ceiling_low_precision(storage, small):
    dtype, state_dtype, rounding = low_precision.STORAGES[storage]
    b = low_precision.CeilingLowPrecision()
    b.setup("adamw", storage)
    row = b.row
    assert (row["dtype"], row["state_dtype"], row["rounding"]) == (dtype, state_dtype, rounding)
    assert b.track_low_precision_fraction_of_ceiling("adamw", storage) == row["ceiling_fraction"]
    assert 0 < row["ceiling_fraction"] < 10 and b.track_low_precision_gbps("adamw", storage) > 0
    assert b.track_speedup_vs_float32("adamw", storage) == row["x_f32"] > 0
    # the bytes of the real storage: 2-byte params and grad (+ Kahan's buffer), 2-byte state
    params, state = (2, 2) if dtype == "bfloat16" else (4, 2)
    expected = backends.traffic_bytes(params * 1_000, 2, state * 1_000, rounding == "kahan")
    assert row["bytes_per_step"] == expected
