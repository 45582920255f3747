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
    assert png(plot)


def test_cli_compare_no_plot_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--maxiter", "2", "--problems", "line_fit", "--scipy", "none", "--no-plot"]
    assert main(argv) == 0
    assert "line_fit" in capsys.readouterr().out
    assert not (tmp_path / "compare.png").exists()
    assert main(["compare", "--problems", "beale", "--no-plot"]) == 2
    assert "unknown problems" in capsys.readouterr().err
