import json
import re
import subprocess
import sys

import numpy as np
import pytest

import jgd
import jgd.cli

WEATHER = jgd.datasets.seattle_weather_path()


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "jgd", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def cli(capsys):
    """`jgd ARGS` in this process (jgd.cli.main), for tests of what a command computes.

    No interpreter start-up, and programs compiled by one call serve the next. The
    tests that run `python -m jgd` in a child process (run_cli) cover the entry point,
    exit codes, stderr and pipes.
    """

    def call(*args):
        capsys.readouterr()
        code = jgd.cli.main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["jgd", *args], code, out.out, out.err)

    return call


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `jgd demo` run (the slowest command), checked by the two tests below."""
    return run_cli("demo", "--out", str(tmp_path_factory.mktemp("demo")))


def test_demo_runs_end_to_end_and_prints_weights_close_to_exact(demo):
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
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
    for method in ("batch (all rows)", "mini-batch (32 rows)", "stochastic (1 row)"):
        assert method in out
    assert "converges" in out and "crawls" in out and "diverges" in out and "2/L =" in out
    assert "== 5. Classification" in out and "true \\ predicted" in out
    assert len(re.findall(r"^epoch\s+loss\s+accuracy$", out, re.M)) == 2
    for name in ("drizzle", "fog", "rain", "snow", "sun", "scikit-learn LogisticRegression"):
        assert name in out
    ours = [float(v) for v in re.findall(r"^\s*jgd gradient descent\s+([0-9.]+)$", out, re.M)]
    theirs = re.findall(r"^\s*scikit-learn LogisticRegression\s+([0-9.]+)$", out, re.M)
    majority = re.findall(r"^\s*always the most common class\s+([0-9.]+)$", out, re.M)
    assert len(ours) == len(theirs) == len(majority) == 2  # rain tomorrow, weather type
    assert ours[0] > float(majority[0]) + 0.05  # rain tomorrow beats "never rains"
    for jgd_accuracy, sklearn_accuracy in zip(ours, theirs):
        assert abs(jgd_accuracy - float(sklearn_accuracy)) < 0.06
    plots = re.findall(r"^wrote (\S+\.png)$", out, re.M)
    assert len(plots) == 5
    for path in plots:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_weights_printed_are_the_least_squares_ones(demo):
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    train, _, _ = jgd.data.split(jgd.datasets.seattle_weather())
    train, _ = jgd.data.standardize(train)
    exact = jgd.least_squares(train.X, train.y)
    printed = float(re.search(r"^\s*temp_max\s+\S+\s+(\S+)", out, re.M).group(1))
    np.testing.assert_allclose(printed, exact["w"][0], rtol=1e-4)
    bound = float(re.search(r"2/L = ([0-9]+\.[0-9]+)", out).group(1))
    np.testing.assert_allclose(
        bound,
        jgd.lr_bound(jgd.objective(jgd.models.linear(3)), jgd.models.linear(3).init(None), train),
        rtol=1e-3,
    )


def test_fit_json_save_and_predict(tmp_path):
    model = tmp_path / "model.npz"
    run = run_cli(
        "fit",
        "--csv",
        WEATHER,
        "--target",
        "temp_max",
        "--features",
        "temp_min,precipitation",
        "--epochs",
        "300",
        "--save",
        str(model),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "MAX_EPOCHS" and report["epochs_run"] == 300
    assert 0 < report["learning_rate"] < report["lr_bound"]
    data = jgd.data.load_csv(WEATHER, "temp_max", ["temp_min", "precipitation"])
    train, _, _ = jgd.data.split(data, (0.6, 0.2, 0.2))  # --val-frac, --test-frac 0.2
    train_s, stats = jgd.data.standardize(train)
    exact = jgd.least_squares(train_s.X, train_s.y)
    np.testing.assert_allclose(report["params"]["['w']"], exact["w"], rtol=1e-3, atol=1e-3)
    # predict reads the same CSV (the target column is ignored) with the stored statistics.
    predicted = run_cli("predict", "--params", str(model), "--csv", WEATHER)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert lines[0] == "prediction_temp_max" and len(lines) == 1 + data.n_rows
    values = np.array([float(v) for v in lines[1:]])
    expected = np.asarray(stats.transform(data.X) @ exact["w"] + exact["b"])
    np.testing.assert_allclose(values, expected, atol=1e-2)


def test_fit_prints_trace_metrics_and_plots(tmp_path, cli):
    run = cli(
        "fit",
        "--csv",
        WEATHER,
        "--target",
        "temp_max",
        "--features",
        "temp_min,precipitation",
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--epochs",
        "50",
        "--batch-size",
        "64",
        "--plot-dir",
        str(tmp_path / "plots"),
    )
    assert run.returncode == 0, run.stderr
    for text in (
        "train loss",
        "val loss",
        "train_rmse",
        "val_rmse",
        "status: MAX_EPOCHS",
        "batch 64",
    ):
        assert text in run.stdout
    assert (tmp_path / "plots" / "loss_curve.png").exists()
    assert (tmp_path / "plots" / "loss_vs_params.png").exists()


def test_fit_logistic_and_mlp(tmp_path, cli):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    label = (x[:, 0] + x[:, 1] > 0).astype(int)
    path = tmp_path / "two_class.csv"
    path.write_text("a,b,label\n" + "\n".join(f"{p},{q},{c}" for (p, q), c in zip(x, label)))
    run = cli(
        "fit",
        "--csv",
        str(path),
        "--target",
        "label",
        "--model",
        "logistic",
        "--epochs",
        "300",
        "--shuffle",
        "--json",
        "--save",
        str(tmp_path / "m.npz"),
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["val_accuracy"] > 0.9
    predicted = cli(
        "predict",
        "--params",
        str(tmp_path / "m.npz"),
        "--csv",
        str(path),
        "--out",
        str(tmp_path / "p.csv"),
    )
    assert predicted.returncode == 0, predicted.stderr
    rows = (tmp_path / "p.csv").read_text().strip().splitlines()
    assert rows[0] == "probability,class"
    accuracy = np.mean([int(r.split(",")[1]) == c for r, c in zip(rows[1:], label)])
    assert accuracy > 0.9
    mlp = cli(
        "fit",
        "--csv",
        str(path),
        "--target",
        "a",
        "--features",
        "b",
        "--model",
        "mlp",
        "--hidden",
        "8",
        "--optimizer",
        "adam",
        "--epochs",
        "20",
        "--json",
    )
    assert mlp.returncode == 0, mlp.stderr


def test_sweep_prints_table_counts_best_and_bound(cli):
    run = cli(
        "sweep",
        "--csv",
        WEATHER,
        "--target",
        "temp_max",
        "--features",
        "temp_min,precipitation",
        "--lr-min",
        "0.01",
        "--lr-max",
        "3",
        "--num",
        "6",
        "--momentum",
        "0,0.9",
        "--epochs",
        "200",
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "12 members" in out and "DIVERGED" in out and "2/L =" in out
    assert re.search(r"best \(lowest validation loss\): member \d+: learning_rate=", out)


def test_sweep_json(cli):
    run = cli(
        "sweep",
        "--csv",
        WEATHER,
        "--target",
        "temp_max",
        "--features",
        "temp_min",
        "--lr-min",
        "0.01",
        "--lr-max",
        "0.5",
        "--num",
        "4",
        "--epochs",
        "50",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["members"] == 4 and len(report["final_loss"]) == 4
    assert report["best"]["index"] in range(4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--csv", "missing.csv", "--target", "y"], "CSV file not found"),
        (["fit", "--csv", WEATHER, "--target", "nope"], "target column 'nope' not found"),
        (["fit", "--csv", WEATHER, "--target", "temp_max"], "cannot read '2012/01/01' as a number"),
        (
            ["fit", "--csv", WEATHER, "--target", "temp_max", "--features", "wind", "--lr", "-1"],
            "--lr",
        ),
        (
            [
                "fit",
                "--csv",
                WEATHER,
                "--target",
                "temp_max",
                "--features",
                "wind",
                "--epochs",
                "x",
            ],
            "--epochs",
        ),
        (
            [
                "fit",
                "--csv",
                WEATHER,
                "--target",
                "temp_max",
                "--features",
                "wind",
                "--model",
                "logistic",
            ],
            "0/1 targets",
        ),
        (
            [
                "sweep",
                "--csv",
                WEATHER,
                "--target",
                "temp_max",
                "--features",
                "wind",
                "--lr-min",
                "1",
                "--lr-max",
                "0.1",
            ],
            "lr-min",
        ),
        (["predict", "--params", "missing.npz", "--csv", WEATHER], "no such file"),
    ],
)
def test_user_mistakes_get_one_line_and_a_nonzero_exit(args, message):
    run = run_cli(*args)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert message in lines[0] and "Traceback" not in run.stderr


def test_every_command_has_help(capsys):
    for command in ("demo", "fit", "sweep", "predict", "compare", "bench"):
        with pytest.raises(SystemExit) as exit_:
            jgd.cli.main([command, "--help"])
        assert exit_.value.code == 0 and "usage: jgd " + command in capsys.readouterr().out
    run = run_cli("fit", "--help")  # and through `python -m jgd`
    assert run.returncode == 0 and "usage: jgd fit" in run.stdout


def test_cli_without_command_prints_help(capsys):
    assert jgd.cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_a_diverged_fit_exits_3_with_one_clear_line_and_no_raw_warning():
    run = run_cli(
        "fit",
        "--csv",
        WEATHER,
        "--target",
        "temp_max",
        "--features",
        "temp_min,wind",
        "--lr",
        "50",
        "--epochs",
        "50",
    )
    assert run.returncode == jgd.cli.EXIT_DIVERGED == 3
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jgd fit: training diverged at epoch")
    assert "Warning" not in run.stderr and ".py:" not in run.stderr
    assert "status: DIVERGED" in run.stdout


def test_a_closed_pipe_ends_quietly():
    """The reader closes the pipe before jgd writes (as `| head` does): no error, exit 0."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jgd",
            "fit",
            "--csv",
            WEATHER,
            "--target",
            "temp_max",
            "--features",
            "temp_min",
            "--epochs",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=300) == 0
    assert "Broken pipe" not in stderr and "Errno" not in stderr and "Exception" not in stderr


def test_bad_numbers_are_printed_as_numbers():
    run = run_cli(
        "fit", "--csv", WEATHER, "--target", "temp_max", "--features", "wind", "--tol", "-1"
    )
    assert run.returncode == 1
    assert "got -1.0" in run.stderr and "np.float64" not in run.stderr


WEATHER_FEATURES = "precipitation,temp_max,temp_min,wind"


def test_fit_softmax_on_the_weather_column_beats_the_majority_class(tmp_path, cli):
    model = tmp_path / "weather.npz"
    args = ["fit", "--csv", WEATHER, "--target", "weather", "--features", WEATHER_FEATURES]
    args += ["--model", "softmax", "--epochs", "200", "--save", str(model)]
    text = cli(*args)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^epoch\s+train loss\s+val loss\s+val accuracy$", text.stdout, re.M)
    assert "5 classes: drizzle, fog, rain, snow, sun" in text.stdout
    report = json.loads(cli(*args, "--json").stdout)
    assert report["task"] == "classify"
    assert report["classes"] == ["drizzle", "fog", "rain", "snow", "sun"]
    data, _ = jgd.data.load_labeled_csv(WEATHER, "weather", WEATHER_FEATURES.split(","))
    *_, test = jgd.data.split(data, (0.6, 0.2, 0.2))
    counts = np.bincount(np.asarray(test.y).astype(int))
    assert report["test_accuracy"] > counts.max() / counts.sum()
    assert 0 < report["test_log_loss"] < np.log(5)  # better than a uniform guess
    assert jgd.load(model).metadata["classes"] == report["classes"]
    predicted = cli("predict", "--params", str(model), "--csv", WEATHER)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert lines[0] == "class,probability" and len(lines) == 1 + data.n_rows
    names = {line.split(",")[0] for line in lines[1:]}
    assert names <= set(report["classes"]) and "sun" in names
    probabilities = np.array([float(line.split(",")[1]) for line in lines[1:]])
    assert ((probabilities >= 0.2) & (probabilities <= 1)).all()  # the argmax of 5 classes


def test_fit_logistic_keeps_text_labels_for_predict(tmp_path, cli):
    rng = np.random.default_rng(1)
    x = rng.normal(size=120)
    label = np.where(x > 0, "yes", "no")
    path = tmp_path / "words.csv"
    path.write_text("x,answer\n" + "\n".join(f"{v},{c}" for v, c in zip(x, label)))
    model = tmp_path / "m.npz"
    run = cli(
        "fit",
        "--csv",
        str(path),
        "--target",
        "answer",
        "--model",
        "logistic",
        "--shuffle",
        "--epochs",
        "200",
        "--save",
        str(model),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["classes"] == ["no", "yes"]
    predicted = cli("predict", "--params", str(model), "--csv", str(path))
    rows = predicted.stdout.strip().splitlines()[1:]
    assert np.mean([row.split(",")[1] == c for row, c in zip(rows, label)]) > 0.9


def test_sweep_adam_with_patience_saves_the_best_for_predict(tmp_path, cli):
    best = tmp_path / "best.npz"
    run = cli(
        "sweep", "--csv", WEATHER, "--target", "weather", "--features", WEATHER_FEATURES,
        "--model", "softmax", "--optimizer", "adam", "--patience", "3", "--lr-min", "0.01",
        "--lr-max", "1", "--num", "3", "--epochs", "300", "--save-best", str(best), "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["saved"] == str(best) and "EARLY_STOPPED" in report["status"]
    assert report["lr_bound"] is None  # 2/L says nothing about Adam
    saved = jgd.load(best)
    assert saved.metadata["model"] == "softmax" and saved.metadata["classes"][0] == "drizzle"
    assert np.shape(saved.params["w"]) == (4, 5)
    predicted = cli("predict", "--params", str(best), "--csv", WEATHER)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0] == "class,probability"


def test_a_sweep_where_every_member_diverged_exits_3(tmp_path):
    best = tmp_path / "best.npz"
    run = run_cli(
        "sweep", "--csv", WEATHER, "--target", "temp_max", "--features", "temp_min,wind",
        "--lr-min", "50", "--lr-max", "100", "--num", "3", "--epochs", "30",
        "--save-best", str(best),
    )  # fmt: skip
    assert run.returncode == jgd.cli.EXIT_DIVERGED == 3
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "every one of the 3 members diverged" in lines[0]
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr
    assert "DIVERGED" in run.stdout and not best.exists()
