"""Correctness of ``fastgd bench --torch`` and :mod:`fastgd.bench.torch_models` (never its speed).

The benchmark runs on tiny models with one short sample per contender, so
these tests take seconds; the default models are only built on the meta
device, to check their sizes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import pytest

from fastgd import bench, cli

HAS_TORCH = importlib.util.find_spec("torch") is not None

#: Header of every column of the table, in order.
HEADERS = [header for header, _, _ in bench.TORCH_COLUMNS]
#: Keys of every row.
ROW_KEYS = {
    "model", "description", "tensors", "params", "rule", "hyperparameters", "torch_impl",
    "torch_step_s", "fastgd_step_s", "bare_step_s", "bare_backend", "x_torch",
    "bare_fraction", "x_torch_bare", "torch_iter_s", "fastgd_iter_s", "x_iter", "repeat",
    "steps_per_sample", "samples_s",
}  # fmt: skip
TIMES = ("torch_step_s", "fastgd_step_s", "bare_step_s", "torch_iter_s", "fastgd_iter_s")
RATIOS = ("x_torch", "bare_fraction", "x_torch_bare", "x_iter")


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture
def tiny(monkeypatch):
    """Two tiny models, short samples, few warm-up steps; skips without fastgd.torch."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    try:
        bench.import_torch_adapter()
    except ImportError as e:
        pytest.skip(str(e))
    tiny_mlp = bench.torch_models.mlp_model("tiny-mlp", 2, 8, batch=4)
    tiny_transformer = bench.torch_models.transformer_model(
        "tiny-transformer", 1, 16, 2, 32, batch=2, seq=3
    )
    monkeypatch.setattr(
        bench, "TORCH_MODELS", {"tiny-mlp": tiny_mlp, "tiny-transformer": tiny_transformer}
    )
    monkeypatch.setattr(bench, "TORCH_MIN_TIME", 1e-4)
    monkeypatch.setattr(bench, "TORCH_WARMUP_STEPS", 2)


def _markdown_table(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_cli_torch_markdown_and_json(tiny, capsys, tmp_path):
    path = tmp_path / "torch.json"
    argv = ["bench", "--torch", "--rules", "adamw,sgd", "--repeat", "1", "--markdown"]
    assert cli.main([*argv, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    rows = _markdown_table(out)
    assert rows[0] == HEADERS
    assert len(rows) == 2 + 4
    assert [(r[0], r[3]) for r in rows[2:]] == [
        ("tiny-mlp", "adamw"), ("tiny-mlp", "sgd"),
        ("tiny-transformer", "adamw"), ("tiny-transformer", "sgd"),
    ]  # fmt: skip
    for row in rows[2:]:
        assert row[4] in ("fused", "foreach", "for-loop")
        for cell in row[5:]:
            assert math.isfinite(float(cell)) and float(cell) > 0, row
    assert "torch impl" in out and "of bare" in out and "x iter" in out
    data = json.loads(path.read_text())
    assert data["machine"]["torch_threads"] == data["machine"]["numba_threads"]
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert set(row) == ROW_KEYS
        for key in (*TIMES, *RATIOS):
            assert _positive(row[key]), key
        assert row["x_torch"] == pytest.approx(row["torch_step_s"] / row["fastgd_step_s"])
        assert row["bare_fraction"] == pytest.approx(row["bare_step_s"] / row["fastgd_step_s"])
        assert row["x_iter"] == pytest.approx(row["torch_iter_s"] / row["fastgd_iter_s"])
        assert row["repeat"] == 1
        assert all(len(s) == 1 and _positive(s[0]) for s in row["samples_s"].values())
    assert [r["tensors"] for r in data["rows"]] == [4, 4, 12, 12]
    assert data["rows"][0]["params"] == 2 * (8 * 8 + 8)
    assert data["rows"][1]["hyperparameters"]["momentum"] == 0.9


def test_cli_torch_text_table(tiny, capsys):
    assert cli.main(["bench", "--torch", "--rules", "nadam", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["model"])
    assert "fastgd.torch us" in header and "bare us" in header and "x torch" in header
    assert sum(" nadam " in line for line in out.splitlines()) == 2
    assert "tiny-transformer: TransformerEncoder" in out


def test_rule_without_torch_equivalent(tiny):
    row = bench.measure_torch_model("tiny-mlp", "lion", repeat=1)
    assert row["torch_impl"] is None
    assert all(row[k] is None for k in ("torch_step_s", "torch_iter_s", "x_torch", "x_iter"))
    assert _positive(row["fastgd_step_s"]) and _positive(row["bare_fraction"])
    cells = bench.format_table([row], columns=bench.TORCH_COLUMNS).splitlines()[-1].split()
    assert cells[4] == cells[5] == "-" and cells[-1] == "-"


def test_steps_only(tiny):
    row = bench.measure_torch_model("tiny-transformer", "adamw", repeat=1, iterations=False)
    assert row["torch_iter_s"] is row["fastgd_iter_s"] is row["x_iter"] is None
    assert _positive(row["x_torch"]) and _positive(row["bare_fraction"])
    assert set(row["samples_s"]) == {"step torch", "step fastgd.torch", "step bare"}


@pytest.mark.parametrize(
    "extra",
    [
        ["--crossover"],
        ["--startup"],
        ["--rules", "nope"],
        ["--repeat", "0"],
    ],
)
def test_cli_rejects_bad_flags_at_parse_time(extra, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--torch", *extra])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--sizes", "1e3"],
        ["--backend", "serial"],
        ["--backend", "cuda"],
        ["--dtype", "float64"],
        ["--no-torch"],
    ],
)
def test_cli_rejects_flag_combinations(extra, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ran before checking its flags")

    monkeypatch.setattr(bench, "run_torch_bench", fail)
    monkeypatch.setattr(bench, "machine_info", fail)
    assert cli.main(["bench", "--torch", *extra]) == 2
    assert "--torch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: bench.run_torch_bench("adam"), TypeError, "rules must be a sequence"),
        (lambda: bench.run_torch_bench([]), ValueError, "rules is empty"),
        (lambda: bench.run_torch_bench(["nope"]), ValueError, "unknown rule 'nope'"),
        (lambda: bench.run_torch_bench(None, "mlp"), TypeError, "models must be a sequence"),
        (lambda: bench.run_torch_bench(None, ["nope"]), ValueError, "unknown model 'nope'"),
        (lambda: bench.run_torch_bench(None, []), ValueError, "models is empty"),
        (lambda: bench.run_torch_bench(repeat=0), ValueError, "repeat must be >= 1"),
        (lambda: bench.measure_torch_model("mlp", "adam", True), TypeError, "repeat must be an"),
    ],
)
def test_functions_refuse_bad_arguments(call, error, match, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ran before checking its arguments")

    monkeypatch.setattr(bench, "random_arrays", fail)
    with pytest.raises(error, match=match):
        call()


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_default_models_match_the_issue():
    import torch

    sizes = {}
    with torch.device("meta"):
        for name, spec in bench.TORCH_MODELS.items():
            params = list(spec.build(torch).parameters())
            sizes[name] = (len(params), sum(p.numel() for p in params))
    assert sizes == {
        "mlp": (40, 83_200),
        "transformer": (72, 4_738_560),
        "wide": (200, 10_017_200),
    }
    assert bench.TORCH_BENCH_RULES == ("adamw", "rmsprop", "nadam", "adam", "sgd")
    assert set(bench.ADAPTER_CLASSES) == set(__import__("fastgd").OPTIMIZERS)


def test_import_does_not_import_torch():
    code = "import sys, fastgd.bench, fastgd.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
