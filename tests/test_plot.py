import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
import jgd.plot
from tests.helpers import hessian_top_eigenvalue, regression_problem

DATA, VAL = jgd.data.split(regression_problem(n=60, d=2), (0.75, 0.25))
LOSS = jgd.objective(jgd.models.linear(2), jgd.losses.mse)
START = LOSS.model.init(None)


@pytest.fixture(scope="module")
def run():
    return jgd.fit(
        LOSS, START, DATA, optimizer=jgd.gd(0.1), epochs=25, val_data=VAL, record_params=True
    )


def test_loss_curve_draws_train_and_validation(run):
    axes = jgd.plot.loss_curve(run).axes[0]
    train, val = axes.lines
    np.testing.assert_array_equal(train.get_xdata(), run.history.epoch)
    np.testing.assert_allclose(train.get_ydata(), run.history.loss)
    np.testing.assert_allclose(val.get_ydata(), run.history.val_loss)
    assert axes.get_yscale() == "log"
    assert jgd.plot.loss_curve(run, log=False).axes[0].get_yscale() == "linear"


def test_loss_curve_of_a_sweep_draws_one_line_per_member():
    sweep = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.01, 0.05, 0.1, 0.3]},
        epochs=12,
    )
    figure = jgd.plot.loss_curve(sweep)
    lines = figure.axes[0].lines
    assert len(lines) == 4
    np.testing.assert_allclose(lines[2].get_ydata(), sweep.history.loss[2])
    colours = {tuple(line.get_color()) for line in lines}
    assert len(colours) == 4  # coloured by learning rate
    assert figure.axes[1].get_ylabel() == "learning rate"  # the colour bar


def test_loss_vs_params_one_panel_per_scalar_parameter(run):
    figure = jgd.plot.loss_vs_params(run)
    assert [axes.get_xlabel() for axes in figure.axes] == ["b", "w[0]", "w[1]"]
    line = figure.axes[2].lines[0]
    # loss[e+1] was measured at the params recorded after epoch e.
    np.testing.assert_allclose(line.get_xdata(), run.history.params["w"][:-1, 1])
    np.testing.assert_allclose(line.get_ydata(), run.history.loss[1:])
    exact = jgd.plot.loss_vs_params(run, LOSS, DATA).axes[0].lines[0]
    np.testing.assert_allclose(exact.get_xdata(), run.history.params["b"])
    expected = [
        float(LOSS({"w": w, "b": b}, DATA))
        for w, b in zip(run.history.params["w"], run.history.params["b"])
    ]
    np.testing.assert_allclose(exact.get_ydata(), expected, rtol=1e-5)
    np.testing.assert_allclose(exact.get_ydata()[:-1], run.history.loss[1:], rtol=1e-5)


def test_loss_vs_params_needs_the_path():
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.1), epochs=3)
    with pytest.raises(ValueError, match="record_params=True"):
        jgd.plot.loss_vs_params(result)


def test_loss_surface_draws_the_path_from_start_to_end(run):
    exact = jgd.least_squares(DATA.X, DATA.y)
    figure = jgd.plot.loss_surface(LOSS, exact, DATA, path=run, start=START, resolution=15)
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("w[0]", "b")
    path, start, end = axes.lines
    assert len(path.get_xdata()) == run.epochs_run + 1  # start + every epoch
    np.testing.assert_allclose(path.get_xdata()[1:], run.history.params["w"][:, 0])
    np.testing.assert_allclose(path.get_ydata()[1:], run.history.params["b"])
    assert (start.get_xdata()[0], start.get_ydata()[0]) == (0.0, 0.0)
    np.testing.assert_allclose(end.get_xdata()[0], run.params["w"][0])
    np.testing.assert_allclose(end.get_ydata()[0], run.params["b"])
    assert len(axes.collections) >= 1  # the contours


def test_loss_surface_contours_are_the_loss(run):
    exact = jgd.least_squares(DATA.X, DATA.y)
    figure = jgd.plot.loss_surface(
        LOSS, exact, DATA, indices=("w[1]", "w[0]"), span=0.5, resolution=5
    )
    contour = figure.axes[0].collections[0]
    levels = np.asarray(contour.levels)
    minimum = float(LOSS(exact, DATA))
    assert levels.min() >= minimum - 1e-6  # nothing below the exact minimum
    corner = {"w": exact["w"] + jnp.array([0.5, 0.5]), "b": exact["b"]}
    assert levels.max() <= float(LOSS(corner, DATA)) + 1e-4
    with pytest.raises(ValueError, match="two different parameters"):
        jgd.plot.loss_surface(LOSS, exact, DATA, indices=("b", "b"))


def test_sweep_curve_marks_diverged_members_and_the_bound():
    bound = 2 / hessian_top_eigenvalue(DATA.X)
    rates = bound * np.array([0.1, 0.5, 0.9, 1.5, 3.0])
    sweep = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.gd, grid={"learning_rate": rates}, epochs=200
    )
    axes = jgd.plot.sweep_curve(sweep).axes[0]
    finished, diverged = axes.collections
    assert len(finished.get_offsets()) == 3 and len(diverged.get_offsets()) == 2
    np.testing.assert_allclose(np.asarray(diverged.get_offsets())[:, 0], rates[3:], rtol=1e-6)
    curve, bound_line = axes.lines  # the loss through the finished members, and 2/L
    np.testing.assert_allclose(bound_line.get_xdata()[0], bound, rtol=1e-4)
    assert np.isfinite(curve.get_ydata()).sum() == 3
    assert axes.get_xscale() == axes.get_yscale() == "log"


def test_sweep_curve_plots_validation_loss_against_any_axis_with_a_seed_band():
    model = jgd.models.mlp([2, 4, 1])
    sweep = jgd.sweep(
        jgd.objective(model),
        model.init,
        DATA,
        optimizer=jgd.momentum,
        grid={"learning_rate": [0.01, 0.05], "beta": [0.0, 0.5, 0.9]},
        epochs=5,
        seeds=2,
        val_data=VAL,
        key=jax.random.key(0),
    )
    axes = jgd.plot.sweep_curve(sweep, x="beta").axes[0]
    assert axes.get_ylabel() == "final validation loss" and axes.get_xlabel() == "beta"
    lines = [line for line in axes.lines if line.get_label().startswith("learning_rate=")]
    assert len(lines) == 2  # one per learning rate, each the mean over the two seeds
    summary = sweep.aggregate()
    for line in lines:
        rate = float(line.get_label().split("=")[1])
        chosen = np.isclose(summary.configs["learning_rate"], rate)
        np.testing.assert_allclose(line.get_ydata(), summary.final_val_loss_mean[chosen], rtol=1e-5)
    assert len(axes.collections) >= 2  # the seed bands (fill_between) and the points


def test_save_writes_a_png(run, tmp_path):
    target = tmp_path / "plots" / "loss.png"
    jgd.plot.loss_curve(run, save=str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_without_matplotlib_says_how_to_install():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "try:\n import jgd.plot\nexcept ImportError as e:\n print(e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'jgd[plot]'" in out


def test_loss_vs_params_with_many_features_shows_the_largest_named():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 30))
    weights = np.zeros(30)
    weights[[3, 7, 11, 19, 25]] = [5.0, -4.0, 3.0, 2.5, -2.0]
    data = jgd.Dataset(jnp.asarray(X), jnp.asarray(X @ weights + 0.01 * rng.normal(size=120)))
    loss = jgd.objective(jgd.models.linear(30), jgd.losses.mse)
    result = jgd.fit(
        loss, loss.model.init(None), data, optimizer=jgd.gd(0.2), epochs=60, record_params=True
    )
    names = [f"feature_{i}" for i in range(30)]
    figure = jgd.plot.loss_vs_params(result, feature_names=names)
    labels = [axes.get_xlabel() for axes in figure.axes]
    assert len(labels) == 8
    for i in (3, 7, 11, 19, 25):
        assert f"feature_{i}" in labels
    assert not any(label.startswith("w[") for label in labels)
    width, height = figure.get_size_inches() * 120
    assert height < 1500 and width < 1500
    assert "31 parameters" in figure.texts[0].get_text()
