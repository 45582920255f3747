"""fastgd.config: strict environment parsing at import, validated run-time assignments
that take effect (plans re-resolve, kernel directory follows CACHE/CACHE_DIR, CUDA
launches read the launch configuration each time)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import fastgd
from fastgd import backends, config, kernel_cache

SETTINGS = (
    "PARALLEL_MIN_BYTES",
    "CACHE",
    "CACHE_DIR",
    "CUDA_THREADS_PER_BLOCK",
    "CUDA_BLOCKS_PER_SM",
)
_FASTGD_VARS = (
    "FASTGD_DISABLE_CACHE",
    "FASTGD_PARALLEL_MIN_BYTES",
    "FASTGD_CUDA_THREADS_PER_BLOCK",
    "FASTGD_CUDA_BLOCKS_PER_SM",
    "FASTGD_CACHE_DIR",
    "NUMBA_ENABLE_CUDASIM",
)


def _import_fastgd(**env):
    """``python -c "import fastgd"`` with ``env`` (and no other FASTGD_ variable);
    prints the settings as a repr'd tuple."""
    full = {k: v for k, v in os.environ.items() if k not in _FASTGD_VARS}
    full.update(env)
    code = (
        "import fastgd; c = fastgd.config; "
        "print(repr((c.CACHE, c.PARALLEL_MIN_BYTES, c.CUDA_THREADS_PER_BLOCK, "
        "c.CUDA_BLOCKS_PER_SM, c.CACHE_DIR)))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120
    )


def _settings(run):
    assert run.returncode == 0, run.stderr
    return eval(run.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr


# -- the environment, at import ----------------------------------------------------


@pytest.mark.parametrize(
    "value, cache",
    [
        ("0", True),
        ("false", True),  # used to DISABLE the cache
        ("FALSE", True),
        ("no", True),
        ("Off", True),
        ("", True),  # empty = unset
        ("1", False),
        ("true", False),
        ("YES", False),
        (" on ", False),
    ],
)
def test_disable_cache_values(value, cache):
    assert _settings(_import_fastgd(FASTGD_DISABLE_CACHE=value))[0] is cache


@pytest.mark.parametrize(
    "value, expected",
    [("350000", 350_000), ("3.5e5", 350_000), ("0", 0), (" 12 ", 12), ("1_000", 1000)],
)
def test_parallel_min_bytes_values(value, expected):
    assert _settings(_import_fastgd(FASTGD_PARALLEL_MIN_BYTES=value))[1] == expected


def test_cuda_and_cache_dir_values(tmp_path):
    s = _settings(
        _import_fastgd(
            FASTGD_CUDA_THREADS_PER_BLOCK="1024",
            FASTGD_CUDA_BLOCKS_PER_SM="3",
            FASTGD_CACHE_DIR=str(tmp_path / "k"),
        )
    )
    assert s[2:] == (1024, 3, str(tmp_path / "k"))
    defaults = _settings(_import_fastgd())
    assert defaults[:4] == (True, 350_000, 256, 8)
    assert defaults[4].endswith(os.path.join("", "fastgd"))


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("FASTGD_DISABLE_CACHE", "maybe", "1/true/yes/on or 0/false/no/off"),
        ("FASTGD_DISABLE_CACHE", "2", "1/true/yes/on or 0/false/no/off"),
        ("FASTGD_PARALLEL_MIN_BYTES", "abc", "must be an integer"),
        ("FASTGD_PARALLEL_MIN_BYTES", "3.5", "whole number"),
        ("FASTGD_PARALLEL_MIN_BYTES", "-1", ">= 0"),
        ("FASTGD_PARALLEL_MIN_BYTES", "inf", "whole number"),
        ("FASTGD_CUDA_THREADS_PER_BLOCK", "100", "multiple of 32"),
        ("FASTGD_CUDA_THREADS_PER_BLOCK", "2048", "<= 1024"),
        ("FASTGD_CUDA_THREADS_PER_BLOCK", "0", ">= 32"),
        ("FASTGD_CUDA_BLOCKS_PER_SM", "0", ">= 1"),
        ("FASTGD_CUDA_BLOCKS_PER_SM", "two", "must be an integer"),
        ("FASTGD_CACHE_DIR", "   ", "non-empty path"),
    ],
)
def test_bad_environment_fails_import_clearly(variable, value, fragment):
    run = _import_fastgd(**{variable: value})
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: invalid environment variable"), run.stderr
    assert f"{variable}={value!r}" in last
    assert fragment in last


def test_simulator_allows_small_blocks():
    """The CUDA simulator suite runs tiny blocks; real GPUs get whole warps."""
    run = _import_fastgd(NUMBA_ENABLE_CUDASIM="1", FASTGD_CUDA_THREADS_PER_BLOCK="4")
    assert _settings(run)[2] == 4


# -- assignments at run time -----------------------------------------------------------


@pytest.fixture
def restore():
    """Put every setting back after the test (assignments are validated, so
    this goes through the same path)."""
    saved = {name: getattr(config, name) for name in SETTINGS}
    yield
    for name, value in saved.items():
        setattr(config, name, value)


@pytest.mark.parametrize(
    "name, value, normalized",
    [
        ("PARALLEL_MIN_BYTES", 0, 0),
        ("PARALLEL_MIN_BYTES", 3.5e5, 350_000),
        ("PARALLEL_MIN_BYTES", np.int64(7), 7),
        ("CACHE", False, False),
        ("CACHE", np.bool_(True), True),
        ("CUDA_THREADS_PER_BLOCK", 128, 128),
        ("CUDA_BLOCKS_PER_SM", 1, 1),
    ],
)
def test_valid_assignment_is_normalized_and_bumps_generation(restore, name, value, normalized):
    before = config._generation
    setattr(config, name, value)
    got = getattr(config, name)
    assert got == normalized and type(got) is type(normalized)
    assert config._generation == before + 1


def test_cache_dir_accepts_pathlike_and_makes_it_absolute(restore, tmp_path, monkeypatch):
    config.CACHE_DIR = tmp_path / "a"
    assert config.CACHE_DIR == str(tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    config.CACHE_DIR = "rel"
    assert config.CACHE_DIR == str(tmp_path / "rel")


@pytest.mark.parametrize(
    "name, value, error, fragment",
    [
        ("PARALLEL_MIN_BYTES", -1, ValueError, ">= 0"),
        ("PARALLEL_MIN_BYTES", 1.5, ValueError, "whole number"),
        ("PARALLEL_MIN_BYTES", float("nan"), ValueError, "whole number"),
        ("PARALLEL_MIN_BYTES", True, TypeError, "integer"),
        ("PARALLEL_MIN_BYTES", "350000", TypeError, "integer"),
        ("PARALLEL_MIN_BYTES", None, TypeError, "integer"),
        ("CACHE", 1, TypeError, "True or False"),
        ("CACHE", "false", TypeError, "True or False"),
        ("CACHE_DIR", "", ValueError, "non-empty"),
        ("CACHE_DIR", b"/tmp", TypeError, "path"),
        ("CACHE_DIR", None, TypeError, "path"),
        ("CUDA_THREADS_PER_BLOCK", 100, ValueError, "multiple of 32"),
        ("CUDA_THREADS_PER_BLOCK", 2048, ValueError, "<= 1024"),
        ("CUDA_BLOCKS_PER_SM", 0, ValueError, ">= 1"),
    ],
)
def test_invalid_assignment_names_the_setting_and_keeps_the_old_value(
    restore, name, value, error, fragment
):
    old, generation = getattr(config, name), config._generation
    with pytest.raises(error, match=name) as info:
        setattr(config, name, value)
    assert fragment in str(info.value)
    assert getattr(config, name) == old
    assert config._generation == generation


def test_typo_is_an_error_and_settings_cannot_be_deleted():
    generation = config._generation
    with pytest.raises(AttributeError, match="PARALELL_MIN_BYTES"):
        config.PARALELL_MIN_BYTES = 0
    assert not hasattr(config, "PARALELL_MIN_BYTES")
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del config.CACHE
    assert config.CACHE in (True, False)
    assert config._generation == generation
    # private and lower-case names are ordinary module attributes
    config._test_private = 1
    del config._test_private


def test_monkeypatch_round_trip(monkeypatch):
    old = config.PARALLEL_MIN_BYTES
    monkeypatch.setattr(config, "PARALLEL_MIN_BYTES", 123)
    assert config.PARALLEL_MIN_BYTES == 123
    monkeypatch.undo()
    assert config.PARALLEL_MIN_BYTES == old


# -- assignments take effect -------------------------------------------------------------


def test_parallel_min_bytes_applies_to_an_optimizer_that_already_stepped(restore):
    x = np.ones(1000, np.float32)
    g = np.full_like(x, 0.5)
    opt = fastgd.Adam(x, backend="auto")
    opt.step(g)
    assert opt.resolved_backend == "serial"
    config.PARALLEL_MIN_BYTES = 0
    opt.step(g)
    assert opt.resolved_backend == "parallel"
    config.PARALLEL_MIN_BYTES = 10**12
    opt.step(g)
    assert opt.resolved_backend == "serial"
    ref = np.ones(1000, np.float32)
    r = fastgd.Adam(ref, backend="serial")
    for _ in range(3):
        r.step(g)
    assert np.array_equal(x, ref)


def test_select_is_the_one_threshold(restore):
    config.PARALLEL_MIN_BYTES = 100
    assert backends.select(99, "auto") == "serial"
    assert backends.select(100, "auto") == "parallel"
    assert backends.select(10**9, "serial") == "serial"
    assert backends.select(0, "parallel") == "parallel"
    assert backends.select(0, "cuda") == "cuda"


@pytest.fixture
def fresh_kernels(monkeypatch):
    """Empty in-process kernel tables, restored afterwards."""
    monkeypatch.setattr(kernel_cache, "_cache_dir", None)
    monkeypatch.setattr(kernel_cache, "_cache_key", None)
    monkeypatch.setattr(backends, "_modules", {})
    monkeypatch.setattr(backends, "_entries", {})


def _sgd_module():
    rule = fastgd.RULES["sgd"]
    return backends.loops(
        rule, (False,) * 5, (False,) * len(rule.flags), (), "float32"
    )  # fmt: skip


def test_cache_dir_and_cache_followed_at_run_time(restore, fresh_kernels, tmp_path):
    config.CACHE = True
    config.CACHE_DIR = str(tmp_path / "one")
    first = _sgd_module()
    assert first.__file__.startswith(str(tmp_path / "one" / "kernels-"))
    assert "cache=True" in open(first.__file__).read()
    config.CACHE_DIR = str(tmp_path / "two")
    second = _sgd_module()
    assert second.__file__.startswith(str(tmp_path / "two" / "kernels-"))
    assert second is not first
    config.CACHE = False
    off = _sgd_module()
    directory = os.path.dirname(off.__file__)
    assert os.path.basename(directory).startswith("fastgd-kernels-")
    assert "cache=False" in open(off.__file__).read()
    assert kernel_cache._private[directory] == os.getpid()  # removed at exit
    config.CACHE = True
    assert _sgd_module() is second  # back to the same directory: same module


def test_steps_compiled_after_a_cache_dir_change_cache_there(restore, fresh_kernels, tmp_path):
    config.CACHE = True
    config.CACHE_DIR = str(tmp_path)
    x = np.ones(64, np.float32)
    fastgd.SGD(x, lr=0.1, backend="serial").step(np.ones_like(x))
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))
    assert x[0] == np.float32(0.9)


def test_cuda_launch_reads_the_launch_configuration_each_time(restore, monkeypatch):
    pytest.importorskip("numba.cuda")
    from fastgd import cuda as fastgd_cuda

    launches = []

    class Kernel:
        def __getitem__(self, launch):
            launches.append(launch)
            return lambda *args: None

    monkeypatch.setattr(backends, "loops", lambda *a, **k: SimpleNamespace(kernel=Kernel()))
    monkeypatch.setattr(fastgd_cuda, "_sm_count", 2)
    opt = fastgd.SGD(np.zeros(4, np.float32))  # what the launcher reads: rule, storage
    plan = SimpleNamespace(common=(False,) * 5, active=())
    launch = fastgd_cuda.kernel_launcher(opt, plan, ())
    p = SimpleNamespace(shape=(100_000,))
    config.CUDA_THREADS_PER_BLOCK, config.CUDA_BLOCKS_PER_SM = 256, 8
    launch(p, p, (), None)
    config.CUDA_THREADS_PER_BLOCK, config.CUDA_BLOCKS_PER_SM = 64, 3
    launch(p, p, (), None)
    config.CUDA_THREADS_PER_BLOCK = 1024
    launch(SimpleNamespace(shape=(100,)), p, (), None)
    assert [launch[:2] for launch in launches] == [(16, 256), (6, 64), (1, 1024)]
