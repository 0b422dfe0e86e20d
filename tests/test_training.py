import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression

import jgd
from tests.helpers import (
    classification_problem,
    fit_programs_compiled,
    hessian_top_eigenvalue,
    numpy_gd,
    numpy_minibatch_gd,
    regression_problem,
)

DATA = regression_problem(n=60, d=3)
MODEL = jgd.models.linear(3)
LOSS = jgd.objective(MODEL, jgd.losses.mse)
START = MODEL.init(None)


@pytest.fixture(scope="module")
def weather():
    train, val, test = jgd.data.split(jgd.datasets.seattle_weather())
    train, val, test, _ = jgd.data.standardize(train, val, test)
    return train, val


def test_full_batch_follows_numpy_epoch_by_epoch():
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=80)
    w, b, losses = numpy_gd(DATA.X, DATA.y, 0.05, 80)
    np.testing.assert_allclose(result.history.loss, losses, rtol=2e-5)
    np.testing.assert_array_equal(result.history.epoch, np.arange(1, 81))
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-5, atol=1e-6)
    assert result.status is jgd.Status.MAX_EPOCHS and result.epochs_run == 80


def test_reaches_least_squares_on_random_and_weather_data(weather):
    train, _ = weather
    for data in (DATA, train):
        model = jgd.models.linear(data.n_features)
        loss_fn = jgd.objective(model, jgd.losses.mse)
        result = jgd.fit(loss_fn, model.init(None), data, optimizer=jgd.gd(0.2), epochs=2000)
        exact = jgd.least_squares(data.X, data.y)
        lstsq = np.linalg.lstsq(
            np.column_stack([np.asarray(data.X, np.float64), np.ones(data.n_rows)]),
            np.asarray(data.y, np.float64),
            rcond=None,
        )[0]
        np.testing.assert_allclose(result.params["w"], exact["w"], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(result.params["w"], lstsq[:-1], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(result.params["b"], lstsq[-1], rtol=1e-3, atol=1e-3)


def test_ridge_fit_reaches_ridge_solution():
    loss_fn = jgd.objective(MODEL, jgd.losses.mse, l2=0.3)
    result = jgd.fit(loss_fn, START, DATA, optimizer=jgd.momentum(0.1), epochs=600)
    exact = jgd.least_squares(DATA.X, DATA.y, l2=0.3)
    np.testing.assert_allclose(result.params["w"], exact["w"], rtol=1e-4, atol=1e-5)


def counting_loss(params, batch):
    """With gd(1.0) every row in a batch adds exactly 1 to its own counter."""
    rows = batch.X[:, 0].astype(jnp.int32)
    return -jnp.sum(params["count"][rows])


@pytest.mark.parametrize(("n", "batch_size"), [(10, 1), (10, 3), (12, 4), (7, 6)])
def test_every_row_is_used_exactly_once_per_epoch(n, batch_size):
    data = jgd.Dataset(jnp.arange(n, dtype=jnp.float32)[:, None], jnp.zeros(n))
    params = {"count": jnp.zeros(n)}
    result = jgd.fit(
        counting_loss,
        params,
        data,
        optimizer=jgd.gd(1.0),
        epochs=3,
        batch_size=batch_size,
        key=jax.random.key(0),
    )
    np.testing.assert_array_equal(result.params["count"], np.full(n, 3.0))


@pytest.mark.parametrize("n", [60, 100])  # below 64 rows the shuffle sorts; above, Feistel
def test_minibatch_matches_numpy_with_the_same_row_orders(n):
    key = jax.random.key(7)
    data = DATA if n == 60 else regression_problem(n=n, d=3, seed=3)
    batch_size, epochs = 16, 5  # 60 rows: 3 full batches and one of 12; 100: 6 and one of 4
    result = jgd.fit(
        LOSS, START, data, optimizer=jgd.gd(0.05), epochs=epochs, batch_size=batch_size, key=key
    )
    orders = [
        np.asarray(jgd.data.permutation(jax.random.fold_in(key, e), n))
        for e in range(1, epochs + 1)
    ]
    w, b, losses = numpy_minibatch_gd(data.X, data.y, 0.05, orders, batch_size)
    np.testing.assert_allclose(result.history.loss, losses, rtol=1e-5)
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-5, atol=1e-6)


def test_sgd_without_key_visits_rows_in_order():
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.01), epochs=2, batch_size=1)
    orders = [np.arange(DATA.n_rows)] * 2
    w, b, losses = numpy_minibatch_gd(DATA.X, DATA.y, 0.01, orders, 1)
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.history.loss, losses, rtol=1e-5)


def test_same_key_same_result_other_key_other_order():
    def run(seed):
        return jgd.fit(
            LOSS,
            START,
            DATA,
            optimizer=jgd.gd(0.05),
            epochs=3,
            batch_size=8,
            key=jax.random.key(seed),
        )

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    np.testing.assert_array_equal(a.history.loss, b.history.loss)
    assert not np.array_equal(a.params["w"], c.params["w"])


def test_tol_stops_with_converged_status():
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.1), epochs=5000, tol=1e-7)
    assert result.status is jgd.Status.CONVERGED
    assert 1 < result.epochs_run < 5000
    assert result.history.loss.shape == (result.epochs_run,)
    last, previous = np.asarray(result.history.loss[-2:])[::-1]
    assert abs(previous - last) <= 1e-7 * abs(previous)
    earlier = np.asarray(result.history.loss[-3:-1])
    assert abs(earlier[0] - earlier[1]) > 1e-7 * abs(earlier[0])
    exact = jgd.least_squares(DATA.X, DATA.y)
    np.testing.assert_allclose(result.params["w"], exact["w"], rtol=1e-3, atol=1e-3)


def test_patience_returns_best_validation_params():
    # Training pulls w towards 2 but validation prefers w = 1: val loss falls, then rises.
    x = jnp.linspace(-1, 1, 20)[:, None]
    train = jgd.Dataset(x, 2 * x[:, 0])
    val = jgd.Dataset(x, 1 * x[:, 0])
    model = jgd.models.linear(1)
    loss_fn = jgd.objective(model, jgd.losses.mse)
    result = jgd.fit(
        loss_fn,
        model.init(None),
        train,
        optimizer=jgd.gd(0.1),
        epochs=500,
        val_data=val,
        patience=3,
    )
    assert result.status is jgd.Status.EARLY_STOPPED
    val_loss = np.asarray(result.history.val_loss)
    best_epoch = int(np.argmin(val_loss)) + 1
    assert result.epochs_run == best_epoch + 3
    again = jgd.fit(loss_fn, model.init(None), train, optimizer=jgd.gd(0.1), epochs=best_epoch)
    np.testing.assert_array_equal(result.params["w"], again.params["w"])
    assert abs(float(result.params["w"][0]) - 1.0) < 0.1


def test_divergence_keeps_last_finite_params():
    lr = 2.5 * 2 / hessian_top_eigenvalue(DATA.X)
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(lr), epochs=1000)
    assert result.status is jgd.Status.DIVERGED
    assert result.diverged_at == result.epochs_run < 1000
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))
    assert not np.isfinite(result.history.loss[-1])
    before = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(lr), epochs=result.diverged_at - 1)
    np.testing.assert_array_equal(result.params["w"], before.params["w"])
    # The last finite params have an infinite loss: the shorter run says so too.
    assert before.status is jgd.Status.DIVERGED
    assert before.diverged_at == before.epochs_run == result.diverged_at - 1


def test_nan_from_user_loss_mid_epoch_keeps_last_finite_params():
    def fragile(params, batch):
        # log of a negative number once w[0] passes 0.5: NaN mid-run.
        return LOSS(params, batch) + 0.0 * jnp.log(0.5 - params["w"][0])

    data = jgd.Dataset(DATA.X, 3 * DATA.X[:, 0])
    result = jgd.fit(
        fragile,
        START,
        data,
        optimizer=jgd.gd(0.002),
        epochs=200,
        batch_size=5,
        key=jax.random.key(0),
    )
    assert result.status is jgd.Status.DIVERGED
    assert 1 < result.diverged_at == result.epochs_run < 200
    # The kept params are finite: the last update before the NaN loss appeared.
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))
    assert float(result.params["w"][0]) > 0.5 and not np.isfinite(result.history.loss[-1])


def test_record_every_keeps_every_kth_and_the_last_epoch():
    full = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=10)
    sparse = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=10, record_every=3)
    np.testing.assert_array_equal(sparse.history.epoch, [3, 6, 9, 10])
    np.testing.assert_array_equal(sparse.history.loss, np.asarray(full.history.loss)[[2, 5, 8, 9]])
    np.testing.assert_array_equal(sparse.params["w"], full.params["w"])


def test_validation_loss_is_measured_after_each_epoch():
    val = regression_problem(n=20, d=3, seed=1)
    result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=4, val_data=val)
    after_two = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=2)
    np.testing.assert_allclose(result.history.val_loss[1], LOSS(after_two.params, val), rtol=1e-6)


def test_new_learning_rate_or_l2_value_does_not_recompile():
    jgd.fit(LOSS, START, DATA, optimizer=jgd.momentum(0.01, beta=0.9), epochs=7)
    size = fit_programs_compiled()
    jgd.fit(LOSS, START, DATA, optimizer=jgd.momentum(0.02, beta=0.5), epochs=7)
    jgd.fit(
        jgd.objective(jgd.models.linear(3), jgd.losses.mse),
        START,
        DATA,
        optimizer=jgd.momentum(0.03),
        epochs=7,
    )
    assert fit_programs_compiled() == size
    jgd.fit(
        jgd.objective(MODEL, jgd.losses.mse, l2=0.1), START, DATA, optimizer=jgd.gd(0.1), epochs=7
    )
    size = fit_programs_compiled()
    jgd.fit(
        jgd.objective(MODEL, jgd.losses.mse, l2=0.2), START, DATA, optimizer=jgd.gd(0.3), epochs=7
    )
    assert fit_programs_compiled() == size


def test_optax_optimizer_and_mlp_train():
    x = jnp.linspace(-2, 2, 64)[:, None]
    data = jgd.Dataset(x, jnp.sin(2 * x[:, 0]))
    model = jgd.models.mlp([1, 16, 16, 1])
    loss_fn = jgd.objective(model, jgd.losses.mse)
    result = jgd.fit(
        loss_fn,
        model.init(jax.random.key(0)),
        data,
        optimizer=optax.adam(0.02),
        epochs=300,
        batch_size=16,
        key=jax.random.key(1),
    )
    assert result.history.loss[-1] < 0.02 * result.history.loss[0]
    assert float(loss_fn(result.params, data)) < 0.01


def test_logistic_regression_matches_sklearn():
    data = classification_problem(n=80, d=2)
    l2 = 0.01
    model = jgd.models.logistic(2)
    loss_fn = jgd.objective(model, jgd.losses.binary_cross_entropy, l2=l2)
    result = jgd.fit(loss_fn, model.init(None), data, optimizer=jgd.nesterov(0.5), epochs=3000)
    # sklearn minimises C * sum(log loss) + ||w||^2 / 2, i.e. ours with C = 1 / (2 n l2).
    sk = LogisticRegression(C=1 / (2 * 80 * l2), tol=1e-10, max_iter=10_000)
    sk.fit(np.asarray(data.X), np.asarray(data.y))
    np.testing.assert_allclose(result.params["w"], sk.coef_[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(result.params["b"], sk.intercept_[0], rtol=1e-3, atol=1e-4)


def test_repr_is_readable():
    text = repr(jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=3))
    assert "status=MAX_EPOCHS" in text and "epochs_run=3" in text and "float32[3]" in text


VAL = regression_problem(n=10, d=3, seed=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
        ({"epochs": True}, TypeError, "epochs must be an integer"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 61}, ValueError, "larger than the data"),
        ({"record_every": 0}, ValueError, "record_every"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"tol": float("nan")}, ValueError, "tol"),
        ({"patience": 3}, ValueError, "patience needs val_data"),
        ({"patience": 0, "val_data": VAL}, ValueError, "patience must be >= 1"),
        (
            {"val_data": jgd.Dataset(jnp.ones((4, 2)), jnp.ones(4))},
            ValueError,
            "val_data has 2 features",
        ),
        ({"optimizer": "sgd"}, TypeError, "GradientTransformation"),
        ({"data": jgd.Dataset(jnp.ones(60), jnp.ones(60))}, ValueError, "2-D"),
        (
            {"data": jgd.Dataset(jnp.full((60, 3), jnp.nan), jnp.ones(60))},
            ValueError,
            "NaN at row 0",
        ),
        (
            {"params": {"w": jnp.array([jnp.nan, 0, 0]), "b": jnp.array(0.0)}},
            ValueError,
            "NaN or inf",
        ),
        ({"params": {}}, ValueError, "params is empty"),
        ({"loss_fn": lambda p, b: b.X @ p["w"]}, ValueError, "must return a scalar"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, error, message):
    arguments = {
        "loss_fn": LOSS,
        "params": START,
        "data": DATA,
        "optimizer": jgd.gd(0.1),
        "epochs": 5,
    }
    arguments.update(kwargs)
    loss_fn, params, data = arguments.pop("loss_fn"), arguments.pop("params"), arguments.pop("data")
    with pytest.raises(error, match=message):
        jgd.fit(loss_fn, params, data, **arguments)


def nan_after_fourteen(params, batch):
    """counting_loss, but NaN once the counters sum past 13 (step 8 of gd(1.0), batch 2)."""
    return counting_loss(params, batch) + 0.0 * jnp.log(13.0 - jnp.sum(params["count"]))


def test_mid_epoch_divergence_keeps_exactly_the_last_finite_step():
    # 10 rows in batches of 2: 5 steps per epoch, each adding 2 to the counter sum.
    # Steps 1-7 are finite (sum 14 after step 7); step 8's loss is NaN (epoch 2).
    data = jgd.Dataset(jnp.arange(10, dtype=jnp.float32)[:, None], jnp.zeros(10))
    params = {"count": jnp.zeros(10)}
    kwargs = {"optimizer": jgd.gd(1.0), "epochs": 5, "batch_size": 2, "key": jax.random.key(0)}
    result = jgd.fit(nan_after_fourteen, params, data, **kwargs)
    assert result.status is jgd.Status.DIVERGED and result.diverged_at == 2
    assert float(jnp.sum(result.params["count"])) == 14.0
    assert int(result.opt_state.count) == 7  # the optimizer state of the same step
    swept = jgd.sweep(
        nan_after_fourteen,
        params,
        data,
        optimizer=jgd.gd,
        grid={"learning_rate": [1.0]},
        epochs=5,
        batch_size=2,
        key=jax.random.key(0),
    )
    np.testing.assert_array_equal(swept.params["count"][0], result.params["count"])


def test_params_that_overflow_while_the_loss_stays_finite_end_the_run_at_the_last_finite_step():
    # The loss ignores "unused"; an optimizer multiplies it by 1e10 per step, so it is
    # finite after steps 1-3 (1e30) and inf after step 4 while every loss stays finite.
    # Steps only check their loss, so this is caught by the epoch's end check and the
    # replay, which must keep the params and optimizer state after step 3.
    def grow_unused() -> optax.GradientTransformation:
        def update(grads, state, params):
            updates = {"w": -0.1 * grads["w"], "unused": params["unused"] * (1e10 - 1)}
            return updates, optax.ScaleByScheduleState(state.count + 1)

        return optax.GradientTransformation(
            lambda params: optax.ScaleByScheduleState(jnp.zeros([], jnp.int32)), update
        )

    def loss_fn(params, batch):
        return jnp.mean((batch.X[:, 0] * params["w"] - batch.y) ** 2)

    data = jgd.Dataset(jnp.arange(8, dtype=jnp.float32)[:, None], jnp.arange(8.0))
    params = {"w": jnp.array(0.0), "unused": jnp.array(1.0)}
    result = jgd.fit(loss_fn, params, data, optimizer=grow_unused(), epochs=3, batch_size=2)
    assert result.status is jgd.Status.DIVERGED and result.diverged_at == 1
    assert int(result.opt_state.count) == 3
    np.testing.assert_allclose(float(result.params["unused"]), 1e30, rtol=1e-6)
    # The same three steps by hand (in order: no key, no shuffle).
    w = 0.0
    for step in range(3):
        X, y = np.arange(8.0)[2 * step : 2 * step + 2], np.arange(8.0)[2 * step : 2 * step + 2]
        w -= 0.1 * np.mean(2 * (X * w - y) * X)
    np.testing.assert_allclose(float(result.params["w"]), w, rtol=1e-6)
