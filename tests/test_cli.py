"""The ``fastgd`` command line refuses bad flags at parse time and never lies.

Every bad flag value is a usage error (exit status 2, one line naming the flag
and what it accepts, no traceback) raised before anything runs; output paths
are checked before the run; ``plot: PATH`` is printed only for a file written.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from fastgd import bench, cli

cmp = importlib.import_module("fastgd.comparison")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MATPLOTLIB_MISSING = (
    "plot: not written (matplotlib is not installed; pip install 'fastgd[compare]')"
)
TINY_COMPARE = ["compare", "--maxiter", "2", "--problems", "line_fit", "--methods", "sgd",
                "--scipy", "none"]  # fmt: skip
TINY_BENCH = ["bench", "--rules", "sgd", "--sizes", "1e3", "--repeat", "1", "--no-torch"]


def usage_error(argv, capsys) -> str:
    """Run ``fastgd argv``, expect a usage error (exit 2), return the error line."""
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("usage: fastgd")
    return err.strip().splitlines()[-1]


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if a benchmark or comparison starts."""

    def fail(*args, **kwargs):
        raise AssertionError("a run started")

    for name in ("machine_info", "run_bench", "crossover", "startup"):
        monkeypatch.setattr(bench, name, fail)
    monkeypatch.setattr(cmp, "compare", fail)


BENCH_BAD = [
    ("--sizes", "inf", "bad size 'inf'"),
    ("--sizes", "-inf", "bad size '-inf'"),
    ("--sizes", "nan", "bad size 'nan'"),
    ("--sizes", "0", "bad size '0'"),
    ("--sizes", "-5", "bad size '-5'"),
    ("--sizes", "1e3,0", "bad size '0'"),
    ("--sizes", "1.5", "bad size '1.5'"),
    ("--sizes", "abc", "bad size 'abc'"),
    ("--sizes", "1e300", "bad size '1e300'"),
    ("--sizes", "2e15", "bad size '2e15'"),
    ("--sizes", ",", "no sizes in ','"),
    ("--sizes", "1e2:1e3:0", "PER_DECADE must be a finite number > 0, got '0'"),
    ("--sizes", "1e2:1e3:-2", "PER_DECADE must be a finite number > 0, got '-2'"),
    ("--sizes", "1e2:1e3:nan", "PER_DECADE must be a finite number > 0, got 'nan'"),
    ("--sizes", "1e2:1e3:inf", "PER_DECADE must be a finite number > 0, got 'inf'"),
    ("--sizes", "1e2:1e3:x", "PER_DECADE must be a finite number > 0, got 'x'"),
    ("--sizes", "1e3:1e2:2", "STOP must be >= START"),
    ("--sizes", "1e2:inf:2", "bad size 'inf'"),
    ("--sizes", "0:1e3:2", "bad size '0'"),
    ("--sizes", "1e2:1e400:2", "bad size '1e400'"),
    ("--sizes", "1e2:1e3", "expected START:STOP:PER_DECADE"),
    ("--sizes", "1:1e15:100", "at most 1000"),
    ("--repeat", "0", "expected a whole number >= 1, got '0'"),
    ("--repeat", "-1", "expected a whole number >= 1, got '-1'"),
    ("--repeat", "nan", "expected a whole number >= 1, got 'nan'"),
    ("--repeat", "inf", "expected a whole number >= 1, got 'inf'"),
    ("--repeat", "2.5", "expected a whole number >= 1, got '2.5'"),
    ("--repeat", "many", "expected a whole number >= 1, got 'many'"),
    ("--rules", "adam,nope", "unknown rules nope; choose from sgd, momentum"),
    ("--rules", ",", "no rules given; choose from sgd"),
    ("--dtype", "int8", "invalid choice: 'int8'"),
    ("--state-dtype", "float64", "invalid choice: 'float64'"),
    ("--rounding", "fast", "unknown roundings fast; choose from nearest, kahan, stochastic"),
    ("--rounding", ",", "no roundings given; choose from nearest"),
    ("--backend", "gpu", "invalid choice: 'gpu'"),
]


@pytest.mark.parametrize("flag, value, message", BENCH_BAD)
def test_bench_rejects_bad_values(flag, value, message, capsys, nothing_runs):
    line = usage_error(["bench", f"{flag}={value}"], capsys)
    assert line.startswith(f"fastgd bench: error: argument {flag}: ")
    assert message in line


COMPARE_BAD = [
    ("--time-limit", "-1", "finite number of seconds >= 0 (0: no limit), got '-1'"),
    ("--time-limit", "-0.5", "finite number of seconds >= 0 (0: no limit), got '-0.5'"),
    ("--time-limit", "nan", "finite number of seconds >= 0 (0: no limit), got 'nan'"),
    ("--time-limit", "inf", "finite number of seconds >= 0 (0: no limit), got 'inf'"),
    ("--time-limit", "soon", "finite number of seconds >= 0 (0: no limit), got 'soon'"),
    ("--maxiter", "0", "expected a whole number >= 1, got '0'"),
    ("--maxiter", "-3", "expected a whole number >= 1, got '-3'"),
    ("--maxiter", "1e400", "expected a whole number >= 1, got '1e400'"),
    ("--maxiter", "10.5", "expected a whole number >= 1, got '10.5'"),
    ("--seed", "-1", "expected a whole number >= 0, got '-1'"),
    ("--seed", "nan", "expected a whole number >= 0, got 'nan'"),
    ("--seed", "0.5", "expected a whole number >= 0, got '0.5'"),
    ("--seed", "x", "expected a whole number >= 0, got 'x'"),
    ("--sizes", "inf", "bad size 'inf'"),
    ("--sizes", "1e2:1e3:0", "PER_DECADE must be a finite number > 0"),
    ("--methods", "newton", "unknown fastgd methods newton; choose from sgd,"),
    ("--methods", "adam,none", "unknown fastgd methods none; choose from sgd,"),
    ("--methods", ",", "no fastgd methods given; choose from sgd,"),
    ("--scipy", "nelder-mead", "unknown SciPy methods nelder-mead; choose from L-BFGS-B,"),
    ("--problems", "beale", "unknown problems beale; choose from rosenbrock,"),
    ("--problems", "none", "unknown problems none; choose from rosenbrock,"),
    ("--plot", "out.xyz", "matplotlib cannot write 'xyz' files; use one of"),
    ("--plot", "/nonexistent/dir/c.png", "directory '/nonexistent/dir' of"),
    ("--plot", "", "the path is empty"),
]


@pytest.mark.parametrize("flag, value, message", COMPARE_BAD)
def test_compare_rejects_bad_values(flag, value, message, capsys, nothing_runs):
    if flag == "--plot" and value.endswith(".xyz"):
        pytest.importorskip("matplotlib")
    line = usage_error(["compare", f"{flag}={value}"], capsys)
    assert line.startswith(f"fastgd compare: error: argument {flag}: ")
    assert message in line


def test_valid_choices_are_listed(capsys):
    line = usage_error(["compare", "--scipy", "lbfgs"], capsys)
    assert all(m in line for m in cmp.SCIPY_METHODS) and line.endswith("or none")
    line = usage_error(["compare", "--problems", "beale"], capsys)
    assert all(p in line for p in cmp.PROBLEM_NAMES)


def test_names_any_case_spelled_as_registered():
    assert cli._scipy_methods("l-bfgs-b, TRUST-NCG,L-BFGS-B") == ["L-BFGS-B", "trust-ncg"]
    assert cli._fastgd_methods("Adam,nesterov") == ["adam", "nesterov"]
    assert cli._fastgd_methods("none") == cli._scipy_methods("NONE") == []
    assert cli._problems("Line_Fit") == ["line_fit"]
    assert cli._rules("adam,ADAM,sgd") == ["adam", "sgd"]


def test_size_forms():
    assert cli._sizes("1e2:1e4:2") == [100, 316, 1_000, 3_162, 10_000]
    assert cli._sizes("1e3:1e3:2") == [1_000]
    # the grid stops at STOP; it never overshoots it
    assert cli._sizes("1e2:1e8:0.3") == [100, 215_443]
    assert max(cli._sizes("10:99:7")) <= 99
    assert cli._sizes(" 1e5 ,1000,1e3") == [1_000, 100_000]
    assert cli._sizes(f"{cli.MAX_SIZE}") == [cli.MAX_SIZE]
    assert cli._whole("1e4", 1) == 10_000 and cli._whole(" 7 ", 1) == 7


def test_time_limit_zero_means_no_limit(monkeypatch, capsys):
    seen = {}

    def compare(*args, **kwargs):
        seen.update(kwargs)
        return []

    monkeypatch.setattr(cmp, "compare", compare)
    assert cli.main([*TINY_COMPARE, "--time-limit", "0", "--no-plot"]) == 0
    assert seen["time_limit"] is None and seen["plot"] is None
    assert cli.main([*TINY_COMPARE, "--time-limit", "2.5", "--no-plot", "--seed", "7"]) == 0
    assert seen["time_limit"] == 2.5 and seen["seed"] == 7
    assert "plot" not in capsys.readouterr().out


def test_conflicting_flags(capsys, nothing_runs):
    line = usage_error(["compare", "--plot", "c.png", "--no-plot"], capsys)
    assert "--no-plot: not allowed with argument --plot" in line
    line = usage_error(["bench", "--crossover", "--startup"], capsys)
    assert "not allowed with argument" in line
    for argv, message in [
        (["--crossover", "--backend", "serial"], "--crossover times the serial, parallel"),
        (["--crossover", "--backend", "cuda"], "drop --backend cuda"),
        (["--startup", "--backend", "cuda"], "drop --backend cuda"),
        (["--startup", "--rules", "adam"], "drop --rules and --sizes"),
        (["--startup", "--sizes", "1e3"], "drop --rules and --sizes"),
        # 16-bit storage: the CPU rule table only, with storage that some optimizer has
        (["--dtype", "bfloat16", "--backend", "cuda"], "--dtype bfloat16 times the CPU rule"),
        (["--dtype", "float16", "--crossover"], "--dtype float16 times the CPU rule table"),
        (["--dtype", "bfloat16", "--torch"], "drop --backend cuda and --crossover"),
        (["--state-dtype", "float16", "--dask"], "--state-dtype float16 times the CPU rule"),
        (["--rounding", "kahan", "--lbfgs"], "--rounding times the CPU rule table"),
        (
            ["--dtype", "bfloat16", "--state-dtype", "float16"],
            "--state-dtype float16 with --dtype bfloat16: 16-bit params keep their state",
        ),
        (
            ["--dtype", "float64", "--state-dtype", "float32"],
            "--state-dtype float32 with --dtype float64",
        ),
        (["--rounding", "kahan"], "--rounding kahan rounds 16-bit params; add --dtype bfloat16"),
        (
            ["--dtype", "float64", "--rounding", "nearest,stochastic"],
            "--rounding stochastic rounds 16-bit params",
        ),
    ]:
        assert cli.main(["bench", *argv]) == 2
        assert message in capsys.readouterr().err


def test_subprocess_usage_error_has_no_traceback():
    for argv in (["bench", "--sizes", "inf"], ["compare", "--time-limit", "-1"]):
        done = subprocess.run([sys.executable, "-m", "fastgd", *argv],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert f"error: argument {argv[1]}:" in done.stderr.strip().splitlines()[-1]
        assert done.stdout == ""


# -- output paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing-dir", "directory", "empty"])
def test_json_path_checked_before_running(where, tmp_path, capsys, nothing_runs):
    path = {"missing-dir": str(tmp_path / "no" / "x.json"), "directory": str(tmp_path),
            "empty": ""}[where]  # fmt: skip
    line = usage_error(["bench", "--json", path], capsys)
    assert line.startswith("fastgd bench: error: argument --json: ")
    assert {"missing-dir": "does not exist", "directory": "is a directory",
            "empty": "the path is empty"}[where] in line  # fmt: skip


def test_unwritable_paths_refused(tmp_path, capsys, monkeypatch, nothing_runs):
    # os.access stands in for permissions, which root (CI containers) ignores
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    line = usage_error(["bench", "--json", str(tmp_path / "x.json")], capsys)
    assert "is not writable" in line and "argument --json" in line
    existing = tmp_path / "old.png"
    existing.write_bytes(b"")
    line = usage_error(["compare", "--plot", str(existing)], capsys)
    assert f"{str(existing)!r} is not writable" in line
    # the default plot path is checked before running too, unless --no-plot
    monkeypatch.chdir(tmp_path)
    assert cli.main(["compare"]) == 2
    assert "argument --plot: directory '.' of 'compare.png' is not writable" in (
        capsys.readouterr().err
    )


def test_json_write_failure_prints_the_results(tmp_path, capsys, monkeypatch):
    target = tmp_path / "gone"
    target.mkdir()
    finish_info = bench.finish_info

    def remove_directory(info):  # the directory disappears during the run
        target.rmdir()
        return finish_info(info)

    monkeypatch.setattr(bench, "finish_info", remove_directory)
    assert cli.main([*TINY_BENCH, "--json", str(target / "x.json")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"could not write --json {target / 'x.json'}" in captured.err
    assert "JSON follows on stdout" in captured.err
    table, data = captured.out.split("\n{", 1)
    assert "sgd " in table
    assert [r["rule"] for r in json.loads("{" + data)["rows"]] == ["sgd"]


# -- honest plot output ---------------------------------------------------------------------


def _plot_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("plot")]


def test_compare_without_matplotlib(tmp_path, capsys, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, None)
    plot = tmp_path / "c.png"
    assert cli.main([*TINY_COMPARE, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert _plot_lines(out) == [MATPLOTLIB_MISSING]
    assert str(plot) not in out and not plot.exists()
    monkeypatch.chdir(tmp_path)  # the default path
    assert cli.main(TINY_COMPARE) == 0
    out = capsys.readouterr().out
    assert _plot_lines(out) == [MATPLOTLIB_MISSING]
    assert "compare.png" not in out and not (tmp_path / "compare.png").exists()


def test_compare_plot_printed_only_when_written(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "c.png"
    assert cli.main([*TINY_COMPARE, "--plot", str(plot)]) == 0
    assert _plot_lines(capsys.readouterr().out) == [f"plot: {plot}"]
    assert plot.read_bytes()[:8] == PNG_MAGIC
    bare = tmp_path / "figure"  # no extension: PNG at exactly that path
    assert cli.main([*TINY_COMPARE, "--plot", str(bare)]) == 0
    assert _plot_lines(capsys.readouterr().out) == [f"plot: {bare}"]
    assert bare.read_bytes()[:8] == PNG_MAGIC and not (tmp_path / "figure.png").exists()
    monkeypatch.chdir(tmp_path)
    assert cli.main([*TINY_COMPARE, "--no-plot"]) == 0
    assert _plot_lines(capsys.readouterr().out) == []
    assert not (tmp_path / "compare.png").exists()


def test_compare_plot_write_failure(tmp_path, capsys, monkeypatch):
    def refuse(rows, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cmp, "plot_comparison", refuse)
    plot = tmp_path / "c.png"
    assert cli.main([*TINY_COMPARE, "--plot", str(plot)]) == 1
    captured = capsys.readouterr()
    assert "line_fit" in captured.out  # the table came first
    assert _plot_lines(captured.out) == ["plot: not written (Permission denied)"]
    assert "could not write --plot" in captured.err and "Traceback" not in captured.err


def test_compare_nothing_to_run(capsys):
    assert cli.main(["compare", "--methods", "none", "--scipy", "none", "--no-plot"]) == 2
    assert "nothing to run" in capsys.readouterr().err
