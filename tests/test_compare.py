"""fastgd.compare and the ``fastgd compare`` command."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from fastgd.cli import main

# the module behind fastgd.compare
cmp = importlib.import_module("fastgd.comparison")

FIELDS = {
    "problem", "n", "method", "source", "options", "f", "f_star", "gap", "tol", "grad_norm",
    "nit", "nfev", "njev", "time", "time_to_tol", "iter_to_tol", "stopped", "success",
    "message", "loss_iter", "eval_time", "eval_loss",
}  # fmt: skip


def png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_compare(tmp_path, capsys):
    plot = tmp_path / "c.png"
    rows = cmp.compare(
        methods=("sgd", "nesterov"),
        scipy_methods=("L-BFGS-B", "BFGS", "trust-ncg"),
        problems=("rosenbrock", "line_fit"),
        maxiter=200,
        plot=str(plot),
    )
    assert [(r["problem"], r["method"]) for r in rows] == [
        (p, m)
        for p in ("rosenbrock", "line_fit")
        for m in ("sgd", "nesterov", "L-BFGS-B", "BFGS", "trust-ncg")
    ]
    for r in rows:
        assert set(r) == FIELDS
        assert r["nit"] <= 200 and r["time"] > 0
        assert r["gap"] == pytest.approx(r["f"] - r["f_star"])
        assert r["loss_iter"].shape == (r["nit"] + 1,)
        assert r["eval_time"].shape == r["eval_loss"].shape
        assert np.all(np.diff(r["eval_time"]) >= 0)
        if r["time_to_tol"] is not None:
            assert r["time_to_tol"] <= r["time"]
    line_fit = {r["method"]: r for r in rows if r["problem"] == "line_fit"}
    assert line_fit["trust-ncg"]["stopped"] == "converged"
    assert line_fit["trust-ncg"]["iter_to_tol"] is not None
    assert line_fit["nesterov"]["stopped"] == "gtol"
    out = capsys.readouterr().out
    assert "f - f*" in out and "trust-ncg" in out and "line_fit" in out
    assert png(plot)


def test_sizes_time_limit_and_large_problem():
    rows = cmp.compare(methods=("adam",), scipy_methods=("Newton-CG",), problems=("large",),
                       sizes=(2000,), maxiter=50, time_limit=0.0, plot=None,
                       verbose=False)  # fmt: skip
    assert [r["n"] for r in rows] == [2000, 2000]
    assert all(r["tol"] == cmp.LARGE_TOL for r in rows)
    assert all(r["stopped"] == "time limit" and r["nit"] == 1 for r in rows)


def test_bfgs_skipped_above_limit(monkeypatch):
    monkeypatch.setattr(cmp, "BFGS_MAX_N", 1)
    rows = cmp.compare(methods=(), scipy_methods=("BFGS", "L-BFGS-B"), problems=("line_fit",),
                       maxiter=5, plot=None, verbose=False)  # fmt: skip
    assert [r["method"] for r in rows] == ["L-BFGS-B"]


def test_tuned_options():
    q = cmp.make_problem("quadratic", 100)
    assert cmp.tuned_options(q, "sgd") == {"lr": pytest.approx(1e-3)}
    nag = cmp.tuned_options(q, "nesterov")
    root = 1e3**0.5
    assert nag == {"lr": pytest.approx(1e-3), "momentum": pytest.approx((root - 1) / (root + 1))}
    assert cmp.tuned_options(q, "adam") == {"lr": cmp.ADAM_LR["quadratic"]}
    assert cmp.tuned_options(q, "lion") == {}


def test_bad_names():
    with pytest.raises(ValueError, match="unknown fastgd methods"):
        cmp.compare(methods=("newton",), plot=None)
    with pytest.raises(ValueError, match="unknown SciPy methods"):
        cmp.compare(scipy_methods=("nelder-mead",), plot=None)
    with pytest.raises(ValueError, match="unknown problems"):
        cmp.compare(problems=("beale",), plot=None)


def test_plot_skipped_without_matplotlib(tmp_path, monkeypatch):
    rows = cmp.compare(methods=("sgd",), scipy_methods=(), problems=("line_fit",), maxiter=3,
                       plot=None, verbose=False)  # fmt: skip
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        assert cmp.plot_comparison(rows, str(tmp_path / "x.png")) is None
    assert not (tmp_path / "x.png").exists()


def test_cli_compare(tmp_path, capsys):
    plot = tmp_path / "tmp.png"
    argv = ["compare", "--maxiter", "5", "--problems", "rosenbrock,line_fit", "--methods",
            "adam,nesterov", "--scipy", "L-BFGS-B", "--plot", str(plot)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rosenbrock" in out and "line_fit" in out and "L-BFGS-B" in out
    assert f"plot: {plot}" in out
    assert png(plot)


def test_cli_compare_no_plot_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--maxiter", "2", "--problems", "line_fit", "--scipy", "none", "--no-plot"]
    assert main(argv) == 0
    assert "line_fit" in capsys.readouterr().out
    assert not (tmp_path / "compare.png").exists()
    with pytest.raises(SystemExit) as excinfo:  # refused when parsing, before any run
        main(["compare", "--problems", "beale", "--no-plot"])
    assert excinfo.value.code == 2
    assert "unknown problems" in capsys.readouterr().err


TINY = dict(methods=("sgd",), scipy_methods=(), problems=("line_fit",), maxiter=2, plot=None,
            verbose=False)  # fmt: skip


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"methods": "adam"}, TypeError, "methods must be a sequence of names"),
        ({"scipy_methods": "BFGS"}, TypeError, "scipy_methods must be a sequence of names"),
        ({"problems": "line_fit"}, TypeError, "problems must be a sequence of names"),
        ({"methods": 3}, TypeError, "methods must be a sequence of names"),
        ({"methods": (None,)}, ValueError, "unknown fastgd methods"),
        ({"problems": ()}, ValueError, "nothing to run"),
        ({"methods": (), "scipy_methods": ()}, ValueError, "nothing to run"),
        ({"sizes": 100}, TypeError, "sizes must be a sequence of integers"),
        ({"sizes": "100"}, TypeError, "sizes must be a sequence of integers"),
        ({"sizes": []}, ValueError, "sizes is empty"),
        ({"sizes": [0]}, ValueError, "sizes must be finite and >= 1"),
        ({"sizes": [10.0]}, TypeError, "sizes must be an integer"),
        ({"sizes": [True]}, TypeError, "sizes must be an integer"),
        ({"sizes": [1], "problems": ("rosenbrock",)}, ValueError, "rosenbrock needs n >= 2"),
        ({"maxiter": 0}, ValueError, "maxiter must be finite and >= 1"),
        ({"maxiter": 5.0}, TypeError, "maxiter must be an integer"),
        ({"time_limit": -1.0}, ValueError, "time_limit must be finite and >= 0"),
        ({"time_limit": float("nan")}, ValueError, "time_limit must be finite and >= 0"),
        ({"time_limit": float("inf")}, ValueError, "time_limit must be finite and >= 0"),
        ({"time_limit": "4"}, TypeError, "time_limit must be a real number"),
        ({"seed": -1}, ValueError, "seed must be finite and >= 0"),
        ({"gtol": float("nan")}, ValueError, "gtol must be finite and >= 0"),
        ({"method_options": {"adam": {}}}, ValueError, "method_options has 'adam'"),
        ({"method_options": {"sgd": 0.1}}, TypeError, r"method_options\['sgd'\] must be a dict"),
        ({"method_options": [("sgd", {})]}, TypeError, "method_options must be a dict"),
        ({"progress": "yes"}, TypeError, "progress must be callable"),
        ({"plot": ""}, ValueError, "plot is empty"),
        ({"plot": 1}, TypeError, "plot must be a path or None"),
        ({"plot": "/nonexistent/dir/c.png"}, ValueError, "not a file path in an existing"),
    ],
)
def test_compare_refuses_bad_arguments(change, error, match, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ran before checking its arguments")

    monkeypatch.setattr(cmp, "_warm_up_scipy", fail)
    with pytest.raises(error, match=match):
        cmp.compare(**{**TINY, **change})


def test_compare_names_any_case(tmp_path):
    rows = cmp.compare(**{**TINY, "methods": ("SGD", "sgd"), "scipy_methods": ("l-bfgs-b",),
                          "method_options": {"SGD": {"lr": 0.1}}})  # fmt: skip
    assert [(r["method"], r["source"]) for r in rows] == [("sgd", "fastgd"), ("L-BFGS-B", "scipy")]
    assert rows[0]["options"]["lr"] == 0.1


def test_plot_format_and_path(tmp_path):
    assert cmp.plot_format("c.PNG") == "png" and cmp.plot_format(tmp_path / "c") == "png"
    assert cmp.plot_format("c.pdf") == "pdf"
    with pytest.raises(ValueError, match="nothing to plot"):
        cmp.plot_comparison([], str(tmp_path / "c.png"))
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="matplotlib cannot write 'xyz' files"):
        cmp.plot_format("c.xyz")
    with pytest.raises(ValueError, match="cannot write 'xyz'"):
        cmp.compare(**{**TINY, "plot": str(tmp_path / "c.xyz")})
    rows = cmp.compare(**TINY)
    path = tmp_path / "c"  # no extension: PNG at exactly this path
    assert cmp.plot_comparison(rows, path) == path
    assert png(path) and not (tmp_path / "c.png").exists()


def test_cli_help_states_the_real_defaults(capsys, monkeypatch):
    from fastgd import comparison

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a list of names
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for names in (comparison.DEFAULT_METHODS, comparison.DEFAULT_SCIPY_METHODS,
                  comparison.DEFAULT_PROBLEMS):  # fmt: skip
        assert f"(default: {','.join(names)})" in text
