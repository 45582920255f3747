"""``fastgd bench --lbfgs``: fields, the traffic count, the full-ring window and
the command's flags."""

from __future__ import annotations

import json

import pytest

from fastgd import bench, cli, lbfgs
from fastgd.bench import lbfgs_step


def test_bytes_per_iteration_follow_the_kernels_passes():
    n, item = 1000, 8
    # a full ring of 10 pairs: the two-loop recursion, 8 * 10 + 2 vectors; per
    # evaluation x + stp d (3) and g.d (2); the pair (5); the gradient's copy
    # with its measures (read g, write the copy: 2)
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 1) == (82 + 5 + 5 + 2) * n * item
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 2) == (82 + 10 + 5 + 2) * n * item
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 2, pairs=10) == lbfgs_step.lbfgs_bytes(
        n, item, 10, 2
    )
    # no pairs: -g (2 vectors)
    assert lbfgs_step.lbfgs_bytes(n, item, 10, 1, pairs=0) == (2 + 5 + 5 + 2) * n * item
    assert lbfgs_step.lbfgs_bytes(n, 4, 5, 1.5) == int((42 + 7.5 + 7) * n * 4)


@pytest.fixture
def ring_sizes(monkeypatch):
    """The ring's size at every direction fastgd's L-BFGS computes."""
    sizes = []
    direction = lbfgs.History.direction

    def spy(self, g):
        sizes.append(self.count)
        return direction(self, g)

    monkeypatch.setattr(lbfgs.History, "direction", spy)
    return sizes


@pytest.mark.parametrize("problem", bench.LBFGS_PROBLEMS)
def test_measure_lbfgs_times_full_ring_iterations(problem, ring_sizes):
    m, iterations = 4, 3
    row = bench.measure_lbfgs(problem, 2000, iterations=iterations, m=m, repeat=2)
    warm = m + 2
    assert row["warmup"] == warm and row["timed_iterations"] == iterations
    # the timed runs: warm-up plus the window, no early stop
    assert row["nit"] == row["scipy_nit"] == warm + iterations
    assert len(row["samples"]["fastgd"]) == len(row["samples"]["scipy"]) == 2
    # runs: warm-up (warm directions), then 2 timed (warm + iterations each);
    # every direction from iteration m on has the full ring
    assert len(ring_sizes) == warm + 2 * (warm + iterations)
    timed = ring_sizes[warm : warm + warm + iterations]
    assert timed[:m] == list(range(m))
    assert timed[m:] == [m] * (warm + iterations - m)
    # bytes: m pairs and the window's evaluations per iteration
    assert row["evals_per_iter"] >= 1 and row["scipy_evals_per_iter"] >= 1
    evals = row["evals_per_iter"] * iterations  # calls of fun in the window
    assert evals == pytest.approx(round(evals))
    assert iterations <= round(evals) <= row["nfev"] - 1 - warm
    assert row["bytes"] == lbfgs_step.lbfgs_bytes(2000, 8, m, row["evals_per_iter"])
    assert row["bytes"] >= (8 * m + 14) * 2000 * 8
    assert row["x_scipy"] == pytest.approx(row["scipy_s"] / row["fastgd_s"])
    assert row["of_bound"] == pytest.approx(row["bound_s"] / row["fastgd_s"])
    assert row["fastgd_s"] > 0 and row["scipy_s"] > 0


def test_window_excludes_fun_and_warm_up():
    calls = iter([1.0, 2.0, 3.0, 4.0])
    timed = lbfgs_step._Timed(lambda x: (next(calls), x))
    for _ in range(4):
        timed(0)
    # returns at these times, with these cumulative seconds inside fun
    timed.ends = [10.0, 11.0, 13.0, 16.0]
    timed.inside = [0.5, 1.0, 2.0, 3.0]
    # after call 2: 5 s of wall time, 2 s of it inside calls 3 and 4
    assert timed.outside(2) == 3.0
    assert timed.values == [1.0, 2.0, 3.0, 4.0]


def test_a_run_that_stops_before_its_window_is_refused():
    # logistic regression of 8 samples is solved to rounding in 10-20
    # iterations: no window of full-ring iterations at m = 10
    with pytest.raises(ValueError, match="stopped after"):
        bench.measure_lbfgs("logistic", 2000, iterations=10, repeat=1)


def test_cli_lbfgs(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(lbfgs_step, "LBFGS_ITERATIONS", 3)
    out = tmp_path / "l.json"
    assert (
        cli.main(["bench", "--lbfgs", "--sizes", "1000", "--repeat", "1", "--json", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "x SciPy" in text and "of bound" in text and "BLAS threads" in text
    assert "window of 3 iterations at a full ring" in text
    rows = json.loads(out.read_text())["rows"]
    assert [r["problem"] for r in rows] == list(bench.LBFGS_PROBLEMS)
    assert all(r["timed_iterations"] == 3 and r["nit"] == 10 + 2 + 3 for r in rows)
    assert cli.main(["bench", "--lbfgs", "--rules", "adam"]) == 2
    assert "drop --rules" in capsys.readouterr().err


def test_rows_of_one_size_share_one_ceiling_measurement(monkeypatch):
    calls, seen = [], []
    monkeypatch.setattr(lbfgs_step, "ceiling_bandwidth", lambda n: calls.append(n) or 5e10 + n)
    monkeypatch.setattr(
        lbfgs_step,
        "measure_lbfgs",
        lambda p, n, repeat, progress, bandwidth: seen.append((p, n, bandwidth)) or {},
    )
    sizes = (2000, 3000, 2 * lbfgs_step.CEILING_N)
    rows = lbfgs_step.run_lbfgs_bench(("quadratic", "rosenbrock"), sizes, repeat=1)
    assert len(rows) == 6
    # 2000 and 3000 share the ceiling of CEILING_N elements; 2 CEILING_N has its own
    assert calls == [2000, 2 * lbfgs_step.CEILING_N]
    assert [b for _, n, b in seen if n < lbfgs_step.CEILING_N] == [5e10 + 2000] * 4
    assert [b for _, n, b in seen if n > lbfgs_step.CEILING_N] == [5e10 + sizes[2]] * 2
