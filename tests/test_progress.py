import jax
import numpy as np
import optax
import pytest

import jgd
from jgd import _progress
from jgd._members import advance as _sweep_advance
from tests.helpers import fit_programs_compiled, regression_problem

DATA, VAL = jgd.data.split(regression_problem(n=80, d=3), (0.75, 0.25))
LOSS = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
START = LOSS.model.init(None)


def assert_same_bits(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 73},
        {"epochs": 73, "batch_size": 7, "key": jax.random.key(1), "record_every": 4},
        {"epochs": 400, "val_data": VAL, "patience": 3, "tol": 1e-5},
        {"epochs": 60, "record_params": True},
    ],
)
def test_chunked_fit_equals_unchunked_bit_for_bit(kwargs, capsys):
    plain = jgd.fit(LOSS, START, DATA, optimizer=jgd.momentum(0.05), progress=False, **kwargs)
    chunked = jgd.fit(LOSS, START, DATA, optimizer=jgd.momentum(0.05), progress=True, **kwargs)
    assert chunked.status == plain.status and chunked.epochs_run == plain.epochs_run
    assert_same_bits(chunked.params, plain.params)
    assert_same_bits(chunked.opt_state, plain.opt_state)
    assert_same_bits(chunked.history, plain.history)
    assert "jgd.fit" in capsys.readouterr().err  # the bar was drawn


def test_chunked_mlp_adam_with_metrics_and_patience_equals_unchunked_bit_for_bit():
    model = jgd.models.mlp([3, 8, 1])
    loss = jgd.objective(model)
    kwargs = dict(
        optimizer=optax.adam(0.01),
        epochs=40,
        batch_size=8,
        key=jax.random.key(5),
        val_data=VAL,
        patience=5,
        metrics={"r2": jgd.metrics.r2(model)},
    )
    start = model.init(jax.random.key(0))
    plain = jgd.fit(loss, start, DATA, progress=False, **kwargs)
    chunked = jgd.fit(loss, start, DATA, progress=True, **kwargs)
    assert chunked.status == plain.status and chunked.epochs_run == plain.epochs_run
    assert_same_bits((chunked.params, chunked.opt_state), (plain.params, plain.opt_state))
    assert_same_bits(chunked.history, plain.history)


def test_large_states_start_in_their_own_program_and_still_chunk_bit_for_bit(monkeypatch):
    # Small states start inside the loop program (a cached placeholder stands in for
    # the state); large ones call a start program first. Both give the same run.
    from jgd import training

    kwargs = {"optimizer": jgd.nesterov(0.02), "epochs": 23, "batch_size": 9, "key": 3}
    small = jgd.fit(LOSS, START, DATA, progress=False, **kwargs)
    assert any(value is not None for value in training._PLACEHOLDERS.values())
    monkeypatch.setattr(training, "_SMALL_STATE", 0)
    monkeypatch.setattr(training, "_PLACEHOLDERS", {})
    plain = jgd.fit(LOSS, START, DATA, progress=False, **kwargs)
    chunked = jgd.fit(LOSS, START, DATA, progress=True, **kwargs)
    assert training._PLACEHOLDERS and all(v is None for v in training._PLACEHOLDERS.values())
    assert_same_bits((chunked.params, chunked.opt_state), (plain.params, plain.opt_state))
    assert_same_bits(chunked.history, plain.history)
    for got, want in zip(jax.tree.leaves(plain[:3]), jax.tree.leaves(small[:3])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_a_bar_reuses_the_plain_runs_compiled_loop(capsys):
    # Plain and chunked runs call one compiled loop program: same bits by construction.
    kwargs = {"epochs": 37, "batch_size": 9, "key": jax.random.key(3)}
    jgd.fit(LOSS, START, DATA, optimizer=jgd.nesterov(0.02), progress=False, **kwargs)
    grid = {"learning_rate": [0.01, 0.02]}
    jgd.sweep(LOSS, START, DATA, optimizer=jgd.gd, grid=grid, progress=False, **kwargs)
    fits, sweeps = fit_programs_compiled(), _sweep_advance._cache_size()
    jgd.fit(LOSS, START, DATA, optimizer=jgd.nesterov(0.02), progress=True, **kwargs)
    jgd.sweep(LOSS, START, DATA, optimizer=jgd.gd, grid=grid, progress=True, **kwargs)
    assert fit_programs_compiled() == fits and _sweep_advance._cache_size() == sweeps
    assert "jgd.fit" in capsys.readouterr().err


def test_chunked_fit_stops_at_divergence_like_unchunked():
    kwargs = {"optimizer": jgd.gd(5.0), "epochs": 500}
    plain = jgd.fit(LOSS, START, DATA, progress=False, **kwargs)
    chunked = jgd.fit(LOSS, START, DATA, progress=True, **kwargs)
    assert plain.status is chunked.status is jgd.Status.DIVERGED
    assert chunked.diverged_at == plain.diverged_at
    assert_same_bits(chunked.params, plain.params)
    assert_same_bits(chunked.history, plain.history)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 45},
        {"epochs": 45, "batch_size": 16, "key": jax.random.key(2)},
        {"epochs": 300, "val_data": VAL, "patience": 4},
    ],
)
def test_chunked_sweep_equals_unchunked_bit_for_bit(kwargs, capsys):
    grid = {"learning_rate": [0.01, 0.1, 2.0], "beta": [0.0, 0.9]}
    plain = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.momentum, grid=grid, progress=False, **kwargs
    )
    chunked = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.momentum, grid=grid, progress=True, **kwargs
    )
    for field in (
        "params",
        "opt_state",
        "history",
        "final_loss",
        "status",
        "stop_epoch",
        "diverged_at",
    ):
        assert_same_bits(getattr(chunked, field), getattr(plain, field))
    err = capsys.readouterr().err
    assert "jgd.sweep" in err and "running=" in err


def test_progress_default_is_off_when_not_a_terminal():
    assert _progress.wanted(None, 10**6, 10**6) is False  # pytest captures stderr
    assert _progress.wanted(True, 1, 1) is True
    assert _progress.wanted(False, 10**6, 10**6) is False


def test_record_params_keeps_the_path():
    result = jgd.fit(
        LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=10, record_params=True, record_every=3
    )
    path = result.history.params
    assert path["w"].shape == (4, 3) and path["b"].shape == (4,)
    for i, epochs in enumerate([3, 6, 9, 10]):
        alone = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=epochs)
        np.testing.assert_array_equal(path["w"][i], alone.params["w"])
    swept = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.05, 0.1]},
        epochs=10,
        record_params=True,
    )
    assert swept.history.params["w"].shape == (2, 10, 3)
    np.testing.assert_allclose(
        swept.member(0).history.params["w"][-1], result.params["w"], rtol=1e-6
    )


def test_the_bar_shows_compiling_then_run_time_rates_and_validation_values(capsys):
    data = regression_problem(n=40, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    model = jgd.models.linear(2)
    jgd.fit(
        loss_fn,
        loss_fn.model.init(None),
        data,
        optimizer=jgd.gd(0.1),
        epochs=300,
        val_data=data,
        metrics={"r2": jgd.metrics.r2(model)},
        progress=True,
    )
    screen = capsys.readouterr().err.replace("\r", "\n")
    lines = [line for line in screen.splitlines() if "jgd.fit" in line]
    assert "jgd.fit (compiling)" in lines[0]
    assert "(compiling)" not in lines[-1] and "300/300" in lines[-1]
    assert "val_loss=" in lines[-1] and "val_r2=" in lines[-1] and "best=" in lines[-1]
    assert "status" not in screen and "MAX_EPOCHS" not in screen
