"""Correctness of ``fastgd bench`` and :mod:`fastgd.bench` (never its speed)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics

import numpy as np
import pytest

import fastgd
from fastgd import _precision, backends, bench, cli
from fastgd.bench import kernels

HAS_TORCH = importlib.util.find_spec("torch") is not None
N = 1_000
FAST = dict(min_time=1e-3)  # tiny samples: these tests check numbers, not speed

ROW_KEYS = {
    "rule", "n", "dtype", "backend", "requested_backend", "hyperparameters", "n_states",
    "bytes_per_step", "time_s", "us_per_step", "gb_per_s", "ceiling_time_s",
    "ceiling_fraction", "torch_impl", "torch_time_s", "x_torch", "repeat",
    "state_dtype", "x_f32_state", "rounding", "x_f32",
    "steps_per_sample", "samples_s",
}  # fmt: skip


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(autouse=True)
def _few_steps(monkeypatch):
    monkeypatch.setattr(bench, "SMALL_N_MIN_STEPS", 10)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_measure_rule_row(name):
    row = bench.measure_rule(name, N, "float32", "auto", repeat=2, with_torch=False, **FAST)
    assert set(row) == ROW_KEYS
    assert row["rule"] == name and row["n"] == N and row["dtype"] == "float32"
    assert row["backend"] in ("serial", "parallel")
    for key in ("time_s", "us_per_step", "gb_per_s", "ceiling_time_s", "ceiling_fraction"):
        assert _positive(row[key]), key
    assert row["torch_impl"] is row["torch_time_s"] is row["x_torch"] is None
    assert set(row["samples_s"]) == {"fastgd", "ceiling"}
    assert all(len(s) == 2 and all(map(_positive, s)) for s in row["samples_s"].values())
    assert row["gb_per_s"] == pytest.approx(row["bytes_per_step"] / row["time_s"] / 1e9)


def test_sgd_is_benchmarked_with_momentum():
    row = bench.measure_rule("sgd", N, repeat=1, with_torch=False, **FAST)
    assert row["hyperparameters"]["momentum"] == 0.9
    assert row["n_states"] == 1


@pytest.mark.parametrize(
    "name, hyperparameters, k",
    [("adam", {}, 2), ("adam", {"amsgrad": True}, 3), ("sgd", {"momentum": 0.0}, 0)],
)
def test_bytes_moved(name, hyperparameters, k):
    opt = fastgd.OPTIMIZERS[name](np.ones(N, np.float32), **hyperparameters)
    opt.step(np.ones(N, np.float32))
    assert len(opt.state) == k
    # params read+write, grad read, each state read+write
    assert bench.bytes_per_step(N, "float32", k) == 4 * N * (3 + 2 * k)
    assert bench.bytes_per_step(N, "float64", k) == 8 * N * (3 + 2 * k)
    row = bench.measure_rule(
        name, N, repeat=1, with_torch=False, hyperparameters=hyperparameters, **FAST
    )
    assert row["n_states"] == k
    assert row["bytes_per_step"] == 4 * N * (3 + 2 * k)


def test_random_arrays_have_no_zeros():
    arrays = bench.random_arrays(10_000, "float64", 3)
    assert all(a.dtype == np.float64 and np.all(np.abs(a) >= 0.1) for a in arrays)


@pytest.mark.parametrize("backend", ["serial", "parallel"])
def test_ceiling_time(backend):
    assert _positive(bench.ceiling_time(2, N, "float32", backend, repeat=1, min_time=1e-3))


def test_ceiling_step_moves_the_arrays():
    p, g, s = bench.random_arrays(N, "float32", 3)
    before = p.copy(), s.copy()
    step = bench.ceiling_step(1, N, "float32", "serial", arrays=[p, g, s])  # runs once
    step()
    np.testing.assert_allclose(p, before[0] + 2 * g, atol=1e-6)
    np.testing.assert_allclose(s, before[1] + 2 * g, atol=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_column():
    row = bench.measure_rule("adam", N, repeat=1, **FAST)
    assert row["torch_impl"] in ("fused", "foreach", "for-loop")
    assert _positive(row["torch_time_s"]) and _positive(row["x_torch"])
    assert "torch" in row["samples_s"]
    no_equivalent = bench.measure_rule("lion", N, repeat=1, **FAST)
    assert no_equivalent["x_torch"] is None


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_equivalent_arguments():
    hp = fastgd.OPTIMIZERS["adamw"](np.ones(3, np.float32)).hyperparameters
    cls_name, kwargs = bench.torch_equivalent("adamw", hp)
    assert cls_name == "AdamW" and kwargs["weight_decay"] == hp["weight_decay"]
    assert "l1" not in kwargs and "decoupled_weight_decay" not in kwargs
    assert bench.torch_equivalent("momentum", {}) is None
    assert bench.torch_equivalent("adam", {**hp, "l1": 0.1}) is None
    result = bench.torch_time("sgd", N, repeat=1, min_time=1e-3)
    assert _positive(result[0]) and result[1] in ("fused", "foreach", "for-loop")


def test_crossover_rows():
    result = bench.crossover("sgd", [100, N], repeat=1, min_time=1e-3)
    assert [r["n"] for r in result["rows"]] == [100, N]
    for row in result["rows"]:
        for key in ("serial_s", "parallel_s", "auto_s", "auto_ratio", "parallel_ratio"):
            assert _positive(row[key]), key
        assert row["auto_backend"] in ("serial", "parallel")
    assert result["crossover"]["parallel_wins"] in ("never", "always", "above")
    assert "PARALLEL_MIN_BYTES" in bench.crossover_summary(result)


def test_crossover_point_interpolates():
    rows = [
        {"n": 100, "parallel_ratio": 4.0},
        {"n": 10_000, "parallel_ratio": 0.25},
        {"n": 1_000_000, "parallel_ratio": 0.5},
    ]
    point = bench._crossover_point(rows, "float32", 2)
    assert point["between"] == [100, 10_000] and point["n"] == 1_000
    assert point["bytes_per_step"] == 28_000
    rows[1]["parallel_ratio"] = 1.5  # a late serial win moves the crossover up
    assert bench._crossover_point(rows, "float32", 2)["between"] == [10_000, 1_000_000]


def test_format_n():
    assert [bench.format_n(n) for n in (1_000, 30_000, 316, 12_345)] == [
        "1e3", "3e4", "316", "12,345",
    ]  # fmt: skip


def _markdown_table(text: str) -> list[list[str]]:
    """The rows of the one Markdown table in ``text``, checked for well-formedness."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 3
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert all(line.endswith("|") for line in lines)
    assert len({len(r) for r in rows}) == 1
    assert all(c and set(c) <= set("-:") for c in rows[1])
    return rows


def test_cli_bench_prints_a_table(capsys):
    argv = ["bench", "--rules", "sgd", "--sizes", "1e3", "--repeat", "1", "--no-torch"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "float32" in out
    header = next(line for line in out.splitlines() if line.startswith("rule"))
    assert header.split()[:3] == ["rule", "N", "backend"]
    row = next(line for line in out.splitlines() if line.startswith("sgd "))
    assert row.split()[1] == "1e3" and "x torch" not in header
    assert "momentum=0.9" in out


def test_cli_markdown_and_json(capsys, tmp_path):
    path = tmp_path / "bench.json"
    argv = ["bench", "--rules", "adam,lion", "--sizes", "1e3", "--repeat", "1", "--markdown"]
    assert cli.main([*argv, "--json", str(path)]) == 0
    rows = _markdown_table(capsys.readouterr().out)
    assert rows[0] == ["rule", "N", "backend", "us/step", "GB/s", "fraction of ceiling", "x torch"]
    assert [r[0] for r in rows[2:]] == ["adam", "lion"]
    data = json.loads(path.read_text())
    assert data["machine"]["numba_threads"] >= 1
    others = data["machine"]["others_cpu_fraction"]
    assert others is None or 0.0 <= others <= 1.0
    assert [r["rule"] for r in data["rows"]] == ["adam", "lion"]
    assert all(_positive(r["time_s"]) for r in data["rows"])
    if HAS_TORCH:
        assert data["machine"]["torch_threads"] == data["machine"]["numba_threads"]
        assert rows[2][-1] != "-" and rows[3][-1] == "-"


def test_cli_crossover(capsys):
    argv = ["bench", "--crossover", "--rules", "sgd", "--sizes", "1e2,1e3", "--repeat", "1"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "parallel/serial" in out and "PARALLEL_MIN_BYTES" in out


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--rules", "nope"])
    with pytest.raises(SystemExit):
        cli.main(["bench", "--sizes", "0"])
    with pytest.raises(SystemExit):
        cli.main([])
    assert cli.main(["bench", "--crossover", "--rules", "adam,sgd", "--sizes", "1e2"]) == 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: bench.run_bench("adam", [N]), TypeError, "rules must be a sequence of names"),
        (lambda: bench.run_bench([], [N]), ValueError, "rules is empty"),
        (lambda: bench.run_bench(["adam", "nope"], [N]), ValueError, "unknown rule 'nope'"),
        (lambda: bench.run_bench(None, N), TypeError, "sizes must be a sequence of integers"),
        (lambda: bench.run_bench(None, []), ValueError, "sizes is empty"),
        (lambda: bench.run_bench(None, [0]), ValueError, "sizes must be >= 1"),
        (lambda: bench.run_bench(None, [1e3]), TypeError, "sizes must be an integer"),
        (lambda: bench.run_bench(None, [N], "int8"), TypeError, "dtype must be float32"),
        (
            lambda: bench.run_bench(None, [N], "bfloat16", state_dtype="float16"),
            ValueError,
            "state_dtype=float16 with bfloat16 parameters",
        ),
        (
            lambda: bench.run_bench(None, [N], state_dtype="float64"),
            ValueError,
            "state_dtype must be None or one of float32, bfloat16, float16",
        ),
        (
            lambda: bench.run_bench(None, [N], "float64", state_dtype="float32"),
            ValueError,
            "state_dtype=float32 needs float32 parameters",
        ),
        (
            lambda: bench.run_bench(None, [N], rounding="kahan"),
            ValueError,
            "rounding='kahan' rounds 16-bit parameters; float32",
        ),
        (
            lambda: bench.run_bench(None, [N], "float16", rounding=["kahan", "up"]),
            ValueError,
            "rounding must be one of nearest, kahan, stochastic, got 'up'",
        ),
        (
            lambda: bench.run_bench(None, [N], "float16", rounding=[]),
            ValueError,
            "rounding is empty",
        ),
        (lambda: bench.run_bench(None, [N], "nonsense"), TypeError, "dtype must be float32"),
        (lambda: bench.run_bench(None, [N], backend="cuda"), ValueError, "bench_cuda"),
        (lambda: bench.run_bench(None, [N], repeat=0), ValueError, "repeat must be >= 1"),
        (lambda: bench.measure_rule("adam", 0), ValueError, "n must be >= 1"),
        (lambda: bench.crossover("nope", [N]), ValueError, "unknown rule 'nope'"),
        (lambda: bench.crossover("adam", [N], repeat=True), TypeError, "repeat must be an"),
        (lambda: bench.startup(0), ValueError, "runs must be >= 1"),
    ],
)
def test_functions_refuse_bad_arguments(call, error, match, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ran before checking its arguments")

    monkeypatch.setattr(bench, "random_arrays", fail)
    monkeypatch.setattr(bench, "_run_child", fail)
    with pytest.raises(error, match=match):
        call()


def test_size_ranges():
    assert cli._sizes("1e2:1e4:2") == [100, 316, 1_000, 3_162, 10_000]
    assert cli._sizes("1e3, 1e5") == [1_000, 100_000]
    assert bench.CROSSOVER_SIZES[0] == 100 and bench.CROSSOVER_SIZES[-1] == 10**8


def test_startup_child_scripts_run():
    for source in bench.STARTUP_CHILDREN.values():
        timings, wall = bench._run_child(source)
        assert all(_positive(v) for v in timings.values()) and _positive(wall)


def test_state_dtype_rows_count_16_bit_traffic_and_time_float32_state():
    from fastgd.bench.kernels import measure_rule

    row = measure_rule("adam", 5000, repeat=1, state_dtype="bfloat16", min_time=0.001)
    assert row["state_dtype"] == "bfloat16" and row["n_states"] == 2
    assert row["bytes_per_step"] == 5000 * (3 * 4 + 2 * 2 * 2)  # 20 bytes an element
    assert row["x_f32_state"] > 0 and row["ceiling_fraction"] > 0
    assert row["torch_impl"] is None and set(row["samples_s"]) == {
        "fastgd",
        "ceiling",
        "float32 state",
    }
    columns = [c[0] for c in bench.bench_columns(with_torch=True, state_dtype=True)]
    assert columns[-1] == "x f32 state" and "x torch" not in columns
    with pytest.raises(ValueError, match="float32 parameters"):
        measure_rule("adam", 100, dtype="float64", state_dtype="float16")
    with pytest.raises(ValueError, match="state_dtype must be"):
        measure_rule("adam", 100, state_dtype="int8")


def test_cli_state_dtype(capsys):
    from fastgd.cli import main

    rc = main(["bench", "--state-dtype", "float16", "--rules", "sgd", "--sizes", "3000",
               "--repeat", "1", "--markdown"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "x f32 state" in out and "state_dtype=float16" in out
    assert main(["bench", "--state-dtype", "bfloat16", "--dtype", "float64"]) == 2
    assert "--state-dtype bfloat16 with --dtype float64" in capsys.readouterr().err
    assert main(["bench", "--state-dtype", "bfloat16", "--lbfgs"]) == 2


# -- 16-bit storage: --dtype bfloat16/float16, --rounding, --state-dtype float32 ---------------

LOW_CONFIGS = [  # dtype, state_dtype, rounding, bytes an element of Adam(W)
    ("bfloat16", None, "nearest", 2 * 3 + 2 * 2 * 2),
    ("bfloat16", None, "kahan", 2 * 5 + 2 * 2 * 2),
    ("bfloat16", None, "stochastic", 2 * 3 + 2 * 2 * 2),
    ("float16", None, "nearest", 2 * 3 + 2 * 2 * 2),
    ("float16", None, "kahan", 2 * 5 + 2 * 2 * 2),
    ("bfloat16", "float32", "nearest", 2 * 3 + 2 * 2 * 4),
    ("float32", "bfloat16", "nearest", 4 * 3 + 2 * 2 * 2),
]


@pytest.mark.parametrize("dtype, state_dtype, rounding, per_element", LOW_CONFIGS)
def test_low_precision_row_counts_the_real_storage(dtype, state_dtype, rounding, per_element):
    n = 3_000
    row = bench.measure_rule("adamw", n, dtype, repeat=2, with_torch=False, seed=3,
                             state_dtype=state_dtype, rounding=rounding, **FAST)  # fmt: skip
    assert set(row) == ROW_KEYS
    assert (row["dtype"], row["state_dtype"], row["rounding"]) == (dtype, state_dtype, rounding)
    assert row["n_states"] == 2  # Kahan's buffer is storage, not rule state
    opt = fastgd.AdamW(bench.random_arrays(n, dtype, 1)[0], state_dtype=state_dtype,
                       kahan=rounding == "kahan")  # fmt: skip
    opt.step(opt.params.copy())
    state_nbytes = opt.state["exp_avg"].nbytes
    expected = backends.traffic_bytes(opt.params.nbytes, 2, state_nbytes, rounding == "kahan")
    assert row["bytes_per_step"] == expected == per_element * n
    assert row["gb_per_s"] == pytest.approx(expected / row["time_s"] / 1e9)
    baseline = "float32 state" if dtype == "float32" else "float32"
    assert set(row["samples_s"]) == {"fastgd", "ceiling", baseline}
    assert row["x_f32"] == pytest.approx(
        statistics.median(row["samples_s"][baseline]) / row["time_s"]
    )
    assert row["x_f32_state"] == (row["x_f32"] if dtype == "float32" else None)
    assert _positive(row["ceiling_fraction"]) and row["torch_impl"] is None


def test_storage_ceiling_moves_16_bit_arrays_as_bits():
    """The 16-bit ceiling: integer add on the params' bits, xor on the states (uint16
    for 16-bit state, uint32 for float32 state), one more array for Kahan."""
    p, g = (a.view(np.uint16) for a in bench.random_arrays(N, "bfloat16", 2))
    s16, s32 = np.arange(N, dtype=np.uint16), np.arange(N, dtype=np.uint32)
    before = p.copy(), s16.copy(), s32.copy()
    step = bench.ceiling_step(2, N, "float32", "parallel", arrays=[p, g, s16, s32])
    step()  # two passes in all
    np.testing.assert_array_equal(p, (before[0] + 2 * g.astype(np.int64)).astype(np.uint16))
    np.testing.assert_array_equal(s16, before[1])  # xor 1, twice
    np.testing.assert_array_equal(s32, before[2])
    opt = fastgd.AdamW(np.ones(N, _precision.bfloat16()), kahan=True)
    opt.step(np.ones(N, opt.params.dtype))
    ceiling = kernels._storage_ceiling(opt, opt.params, opt.params.copy(), 2, "serial", 0)
    arrays = ceiling.args
    assert [a.dtype for a in arrays] == [np.uint16] * 5  # p, g, two states, Kahan's buffer
    read, written = arrays, [a for a in arrays if a is not arrays[1]]  # g is only read
    moved = sum(a.nbytes for a in read) + sum(a.nbytes for a in written)
    assert moved == backends.traffic_bytes(2 * N, 2, 2 * N, kahan=True) == 18 * N


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_torch_runs_on_16_bit_tensors(dtype):
    row = bench.measure_rule("adamw", N, dtype, repeat=1, rounding="kahan", **FAST)
    assert row["torch_impl"] == "fused"  # torch 2.x: fused CPU AdamW takes bf16/f16
    assert row["x_torch"] == pytest.approx(row["torch_time_s"] / row["time_s"])
    assert _positive(row["x_torch"]) and "torch" in row["samples_s"]
    import torch

    from fastgd.torch._device import from_numpy

    params, grad = bench.random_arrays(8, dtype, 2)
    tensor = from_numpy(params)
    assert tensor.dtype == getattr(torch, dtype)
    np.testing.assert_array_equal(tensor.float().numpy(), params.astype(np.float32))
    tensor += 1  # the same memory
    np.testing.assert_array_equal(params.astype(np.float32), tensor.float().numpy())
    assert bench.measure_rule("lion", N, dtype, repeat=1, **FAST)["x_torch"] is None


def test_low_precision_without_torch_skips_cleanly(monkeypatch):
    monkeypatch.setattr(kernels, "_import_torch", lambda: None)
    row = bench.measure_rule("adamw", N, "bfloat16", repeat=1, **FAST)
    assert row["torch_impl"] is row["torch_time_s"] is row["x_torch"] is None
    assert "torch" not in row["samples_s"] and _positive(row["x_f32"])


def test_low_precision_columns():
    def headers(**kw):
        return [c[0] for c in bench.bench_columns(**kw)]

    assert headers(with_torch=True, dtype="bfloat16") == [
        "rule", "N", "backend", "rounding", "us/step", "GB/s", "fraction of ceiling", "x f32",
        "torch bf16 us", "x torch bf16",
    ]  # fmt: skip
    assert headers(with_torch=False, dtype="float16")[-2:] == ["fraction of ceiling", "x f32"]
    assert headers(with_torch=True, dtype="float16")[-1] == "x torch f16"
    assert headers(with_torch=True) == [c[0] for c in bench.BENCH_COLUMNS]


def test_cli_low_precision(capsys, tmp_path):
    path = tmp_path / "bench.json"
    argv = ["bench", "--dtype", "bfloat16", "--rounding", "nearest,kahan,stochastic",
            "--rules", "adamw,lion", "--sizes", "3000", "--repeat", "1", "--markdown",
            "--json", str(path)]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = _markdown_table(out)
    assert rows[0][:8] == [
        "rule", "N", "backend", "rounding", "us/step", "GB/s", "fraction of ceiling", "x f32",
    ]  # fmt: skip
    assert [r[:4:3] for r in rows[2:]] == [
        [rule, rounding] for rule in ("adamw", "lion")
        for rounding in ("nearest", "kahan", "stochastic")
    ]  # fmt: skip
    assert "dtype bfloat16" in out and "rounding: how the params are stored" in out
    data = json.loads(path.read_text())
    for row, cells in zip(data["rows"], rows[2:], strict=True):
        kahan = row["rounding"] == "kahan"
        n_states = 2 if row["rule"] == "adamw" else 1
        expected = backends.traffic_bytes(2 * 3000, n_states, 2 * 3000, kahan)
        assert row["bytes_per_step"] == expected
        assert cells[5] == f"{expected / row['time_s'] / 1e9:.1f}"  # the GB/s printed
        assert cells[7] == f"{row['x_f32']:.2f}"
    if HAS_TORCH:
        assert rows[0][8:] == ["torch bf16 us", "x torch bf16"]
        assert rows[2][-1] != "-" and rows[-1][-1] == "-"  # lion: no torch equivalent


def test_cli_low_precision_with_float32_state(capsys):
    argv = ["bench", "--dtype", "float16", "--state-dtype", "float32", "--rules", "sgd",
            "--sizes", "3000", "--repeat", "1", "--no-torch", "--json", "/dev/null"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "float32 state (4 bytes an element)" in out and "x torch" not in out
    # --state-dtype equal to --dtype is the default, not a mode
    argv = ["bench", "--dtype", "float16", "--state-dtype", "float16", "--rules", "sgd",
            "--sizes", "3000", "--repeat", "1", "--no-torch"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "state in the same dtype" in capsys.readouterr().out
