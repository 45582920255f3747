"""``fastgd bench --lbfgs``: fields, the traffic count and the command's flags."""

from __future__ import annotations

import json

import pytest

from fastgd import bench, cli
from fastgd.bench import lbfgs_step


def test_bytes_per_iteration_follow_the_kernels_passes():
    n, item = 1000, 8
    # no pairs yet: -g (2 vectors); one evaluation: x + stp d (3) and g.d (2);
    # the pair (5); measures (2); the gradient copy (2)
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 0, 1) == (2 + 5 + 5 + 2 + 2) * n * item
    # 10 pairs: the two-loop recursion moves 8 * 10 + 2 vectors
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 10, 2) == (82 + 10 + 5 + 2 + 2) * n * item


@pytest.mark.parametrize("problem", bench.LBFGS_PROBLEMS)
def test_measure_lbfgs(problem):
    row = bench.measure_lbfgs(problem, 2000, iterations=4, repeat=1)
    assert row["nit"] == row["scipy_nit"] == 4
    assert row["x_scipy"] == pytest.approx(row["scipy_s"] / row["fastgd_s"])
    assert row["of_bound"] == pytest.approx(row["bound_s"] / row["fastgd_s"])
    assert row["bytes"] == lbfgs_step.lbfgs_bytes(2000, 8, 10, 4, row["nfev"] / 4)
    assert row["fastgd_s"] > 0 and row["scipy_s"] > 0


def test_cli_lbfgs(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(lbfgs_step, "LBFGS_ITERATIONS", 3)
    out = tmp_path / "l.json"
    assert (
        cli.main(["bench", "--lbfgs", "--sizes", "1000", "--repeat", "1", "--json", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "x SciPy" in text and "of bound" in text and "BLAS threads" in text
    rows = json.loads(out.read_text())["rows"]
    assert [r["problem"] for r in rows] == list(bench.LBFGS_PROBLEMS)
    assert cli.main(["bench", "--lbfgs", "--rules", "adam"]) == 2
    assert "drop --rules" in capsys.readouterr().err
