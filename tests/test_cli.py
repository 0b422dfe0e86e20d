import re
import subprocess
import sys

import numpy as np

import jgd
import jgd.cli


def test_demo_runs_end_to_end_and_prints_weights_close_to_exact(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "jgd", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "epoch" in out and "train MSE" in out and "val MSE" in out
    assert "log-log scale" in out  # the ASCII chart
    rows = {
        name: (float(gd), float(exact))
        for name, gd, exact in re.findall(
            r"^\s*(temp_max|temp_min|precipitation|bias)\s+(\S+)\s+(\S+)", out, re.M
        )
    }
    assert set(rows) == {"temp_max", "temp_min", "precipitation", "bias"}
    for gd, exact in rows.values():
        assert abs(gd - exact) < 1e-2 * max(1.0, abs(exact))
    rmse = dict(re.findall(r"^\s*(gradient descent|least squares)\s+([0-9.]+)\s*$", out, re.M))
    assert 1.0 < float(rmse["least squares"]) < 5.0  # °C
    assert abs(float(rmse["gradient descent"]) - float(rmse["least squares"])) < 0.01


def test_demo_weights_printed_are_the_least_squares_ones(capsys):
    assert jgd.cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    train, _, _ = jgd.data.split(jgd.datasets.seattle_weather())
    train, _ = jgd.data.standardize(train)
    exact = jgd.least_squares(train.X, train.y)
    printed = float(re.search(r"^\s*temp_max\s+\S+\s+(\S+)", out, re.M).group(1))
    np.testing.assert_allclose(printed, exact["w"][0], rtol=1e-4)


def test_cli_without_command_prints_help(capsys):
    assert jgd.cli.main([]) == 2
    assert "demo" in capsys.readouterr().out
