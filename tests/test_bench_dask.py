"""``fastgd bench --dask``: the measurement's fields and the command's flags."""

from __future__ import annotations

import json

import pytest

from fastgd import bench, cli


def test_measure_dask_on_an_existing_cluster(dask_client):
    row = bench.measure_dask(
        "adam", 4_000, chunks=4, repeat=2, steps=3, flatness_steps=150,
        scheduler=dask_client.scheduler.address,
    )  # fmt: skip
    assert row["efficiency"] == pytest.approx(row["single_step_s"] / row["dask_step_s"])
    assert row["tasks_per_step"] == 2  # one task per worker: the gradient is persisted
    assert row["workers"] == 2 and row["chunks"] == 4 and row["dtype"] == "float32"
    assert 0 < row["worker_compute_s"] < row["dask_step_s"] * 2
    assert row["overhead_s"] == pytest.approx(
        row["overhead_s"]
    )  # a number, not NaN (compute was seen)
    assert row["tiny_step_s"] > 0
    # the scheduler forgets every step's tasks: its task count does not grow
    assert row["scheduler_tasks_end"] <= row["scheduler_tasks_100"]
    assert len(row["samples"]["dask"]) == len(row["samples"]["single"]) == 2


def test_cli_dask_prints_the_table(dask_client, capsys, tmp_path, monkeypatch):
    out = tmp_path / "dask.json"
    argv = ["bench", "--dask", "--sizes", "2000", "--chunks", "2", "--repeat", "1",
            "--scheduler", dask_client.scheduler.address, "--json", str(out)]  # fmt: skip
    monkeypatch.setattr(bench.dask_step, "DASK_STEPS_PER_SAMPLE", 2)
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "efficiency" in text and "tasks/step" in text and "scheduler tasks after 100" in text
    (row,) = json.loads(out.read_text())["rows"]
    assert row["n"] == 2000 and row["chunks"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--chunks", "4"], "--chunks, --workers and --scheduler go with --dask"),
        (["--dask", "--rules", "adam,sgd"], "--dask: give one rule"),
        (["--dask", "--sizes", "1e3,1e4"], "--dask: give one size"),
        (["--dask", "--backend", "serial"], "drop --backend"),
        (["--dask", "--workers", "2", "--scheduler", "tcp://x:1"], "drop it with --scheduler"),
    ],
)
def test_conflicting_flags(argv, message, capsys):
    assert cli.main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err
