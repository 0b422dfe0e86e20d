"""The general engine: pytree batches, any output width, metrics, aux, per-step keys."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jgd
from tests.helpers import (
    image_problem,
    regression_problem,
    softmax_logits,
    softmax_start,
    weighted_softmax_loss,
)

BATCH = image_problem(n=48)
VAL = image_problem(n=24, seed=1)


def accuracy(params, batch):
    return jnp.mean(jnp.argmax(softmax_logits(params, batch["image"]), axis=-1) == batch["label"])


def test_status_prints_its_name():
    assert str(jgd.Status.DIVERGED) == "DIVERGED"
    assert f"{jgd.Status.EARLY_STOPPED}" == "EARLY_STOPPED"
    assert f"{jgd.Status.CONVERGED:d}" == "1"


def test_dict_batch_full_batch_fit_equals_an_optax_loop():
    optimizer = optax.sgd(0.5)
    result = jgd.fit(weighted_softmax_loss, softmax_start(), BATCH, optimizer=optimizer, epochs=6)
    params, state = softmax_start(), optimizer.init(softmax_start())
    losses = []
    for _ in range(6):
        loss, grads = jax.value_and_grad(weighted_softmax_loss)(params, BATCH)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        losses.append(float(loss))
    np.testing.assert_allclose(result.history.loss, losses, rtol=1e-5)
    np.testing.assert_allclose(result.params["w"], params["w"], rtol=1e-5, atol=1e-6)
    assert int(result.history.epoch[-1]) == 6


def test_every_leaf_is_gathered_with_the_same_rows_as_the_dataset_path():
    """A dict batch and a Dataset holding the same columns train identically with mini-batches."""
    flat = jnp.concatenate([BATCH["image"].reshape(48, 64), BATCH["weight"][:, None]], axis=1)
    dataset = jgd.Dataset(flat, BATCH["label"])

    def dataset_loss(params, batch):
        as_dict = {
            "image": batch.X[:, :64].reshape(-1, 8, 8),
            "label": batch.y,
            "weight": batch.X[:, 64],
        }
        return weighted_softmax_loss(params, as_dict)

    kwargs = dict(optimizer=jgd.momentum(0.3), epochs=4, batch_size=10, key=jax.random.key(3))
    from_dict = jgd.fit(weighted_softmax_loss, softmax_start(), BATCH, **kwargs)
    from_dataset = jgd.fit(dataset_loss, softmax_start(), dataset, **kwargs)
    np.testing.assert_array_equal(from_dict.history.loss, from_dataset.history.loss)
    np.testing.assert_array_equal(from_dict.params["w"], from_dataset.params["w"])


def test_dict_batch_sweep_members_equal_solo_fits():
    rates = jnp.array([0.1, 0.5])
    swept = jgd.sweep(
        weighted_softmax_loss,
        softmax_start(),
        BATCH,
        optimizer=jgd.gd,
        grid={"learning_rate": rates},
        epochs=5,
        batch_size=16,
        key=jax.random.key(0),
        val_data=VAL,
        metrics={"accuracy": accuracy},
    )
    for i, rate in enumerate(rates.tolist()):
        solo = jgd.fit(
            weighted_softmax_loss,
            softmax_start(),
            BATCH,
            optimizer=jgd.gd(rate),
            epochs=5,
            batch_size=16,
            key=jax.random.key(0),
            val_data=VAL,
            metrics={"accuracy": accuracy},
        )
        member = swept.member(i)
        np.testing.assert_allclose(member.history.loss, solo.history.loss, rtol=1e-5)
        np.testing.assert_allclose(
            member.history.val_metrics["accuracy"], solo.history.val_metrics["accuracy"]
        )
        np.testing.assert_allclose(member.params["w"], solo.params["w"], rtol=1e-4, atol=1e-6)
    assert swept.history.metrics["accuracy"].shape == (2, 5)


def _loss_with_aux(params, batch):
    loss = weighted_softmax_loss(params, batch)
    return loss, {"logit_norm": jnp.mean(softmax_logits(params, batch["image"]) ** 2)}


def test_metrics_and_aux_histories_equal_a_python_loop():
    """Aux is the size-weighted mean over an epoch's steps; metrics are taken after the epoch."""
    optimizer, batch_size, n = optax.adam(0.05), 20, 48  # batches of 20, 20 and 8 rows
    result = jgd.fit(
        _loss_with_aux,
        softmax_start(),
        BATCH,
        optimizer=optimizer,
        epochs=3,
        batch_size=batch_size,
        val_data=VAL,
        metrics={"accuracy": accuracy},
        has_aux=True,
    )
    params, state = softmax_start(), optimizer.init(softmax_start())
    expected = {"loss": [], "aux": [], "train": [], "val": [], "val_loss": []}

    @jax.jit
    def step(params, state, rows):
        (loss, aux), grads = jax.value_and_grad(_loss_with_aux, has_aux=True)(params, rows)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss, aux

    for _ in range(3):
        loss_sum = aux_sum = 0.0
        for start in range(0, n, batch_size):
            rows = jax.tree.map(lambda a, s=start: a[s : s + batch_size], BATCH)
            params, state, loss, aux = step(params, state, rows)
            size = rows["label"].shape[0]
            loss_sum += float(loss) * size
            aux_sum += float(aux["logit_norm"]) * size
        expected["loss"].append(loss_sum / n)
        expected["aux"].append(aux_sum / n)
        expected["train"].append(float(accuracy(params, BATCH)))
        expected["val"].append(float(accuracy(params, VAL)))
        expected["val_loss"].append(float(weighted_softmax_loss(params, VAL)))
    np.testing.assert_allclose(result.history.loss, expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(result.history.aux["logit_norm"], expected["aux"], rtol=1e-5)
    np.testing.assert_allclose(result.history.metrics["accuracy"], expected["train"])
    np.testing.assert_allclose(result.history.val_metrics["accuracy"], expected["val"])
    np.testing.assert_allclose(result.history.val_loss, expected["val_loss"], rtol=1e-5)


def _quadratic_problem():
    """GD on (w - 2)^2 from w = 0: w rises through 1, where the metric -(w - 1)^2 peaks."""
    data = jgd.Dataset(jnp.ones((4, 1)), jnp.full(4, 2.0))
    loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)

    def closeness(params, batch):
        return -((params["w"][0] + params["b"] - 1.0) ** 2)

    return data, loss_fn, {"closeness": closeness}


def test_early_stopping_on_a_maximised_metric_returns_its_best_params():
    data, loss_fn, metrics = _quadratic_problem()
    kwargs = dict(optimizer=jgd.gd(0.05), epochs=100, val_data=data, metrics=metrics)
    result = jgd.fit(
        loss_fn,
        loss_fn.model.init(None),
        data,
        patience=3,
        monitor="val_closeness",
        mode="max",
        record_params=True,
        **kwargs,
    )
    trace = np.asarray(result.history.val_metrics["closeness"])
    best = int(np.argmax(trace))
    assert result.status is jgd.Status.EARLY_STOPPED
    assert 0 < best < len(trace) - 1 and result.epochs_run == best + 1 + 3
    np.testing.assert_array_equal(result.params["w"], result.history.params["w"][best])
    # Minimising the same metric stops as soon as patience runs out: it only rises at first.
    rising = jgd.fit(
        loss_fn, loss_fn.model.init(None), data, patience=3, monitor="val_closeness", **kwargs
    )
    assert rising.status is jgd.Status.EARLY_STOPPED and rising.epochs_run == 4


def _dropout_loss(params, batch, key):
    image = batch["image"].reshape(batch["image"].shape[0], -1)
    if key is not None:  # training step: drop half the pixels; evaluation: key is None
        image = jnp.where(jax.random.bernoulli(key, 0.5, image.shape), image * 2.0, 0.0)
    logits = image @ params["w"] + params["b"][None, :]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]))


def test_the_per_step_key_is_reproducible_and_independent_of_chunks(tmp_path):
    kwargs = dict(optimizer=jgd.gd(0.2), epochs=6, batch_size=16, loss_takes_key=True, val_data=VAL)
    first = jgd.fit(_dropout_loss, softmax_start(), BATCH, key=jax.random.key(1), **kwargs)
    again = jgd.fit(_dropout_loss, softmax_start(), BATCH, key=jax.random.key(1), **kwargs)
    other = jgd.fit(_dropout_loss, softmax_start(), BATCH, key=jax.random.key(2), **kwargs)
    chunked = jgd.fit(
        _dropout_loss,
        softmax_start(),
        BATCH,
        key=jax.random.key(1),
        checkpoint=tmp_path / "run.npz",
        checkpoint_every=2,
        **kwargs,
    )
    np.testing.assert_array_equal(first.params["w"], again.params["w"])
    np.testing.assert_array_equal(first.params["w"], chunked.params["w"])
    assert not np.allclose(first.params["w"], other.params["w"])
    # Dropout changes training: the same run without a key differs.
    plain = jgd.fit(
        lambda p, b: _dropout_loss(p, b, None),
        softmax_start(),
        BATCH,
        key=jax.random.key(1),
        **{k: v for k, v in kwargs.items() if k != "loss_takes_key"},
    )
    assert not np.allclose(first.params["w"], plain.params["w"])
    # Evaluation (the validation loss) is called with key=None: deterministic.
    np.testing.assert_allclose(
        first.history.val_loss[-1], _dropout_loss(first.params, VAL, None), rtol=1e-6
    )


def test_full_batch_key_per_epoch_differs():
    result = jgd.fit(
        _dropout_loss,
        softmax_start(),
        BATCH,
        optimizer=jgd.gd(0.0001),
        epochs=3,
        key=0,  # an int seed is accepted
        loss_takes_key=True,
    )
    # A tiny rate barely moves the params, so differing losses come from different masks.
    assert len(set(np.asarray(result.history.loss).tolist())) == 3


def test_pandas_dataframe_and_series_are_accepted():
    data = regression_problem(n=30, d=2)
    frame = pandas.DataFrame(np.asarray(data.X), columns=["a", "b"])
    series = pandas.Series(np.asarray(data.y))
    loss_fn = jgd.objective(jgd.models.linear(2))
    kwargs = dict(optimizer=jgd.gd(0.1), epochs=5)
    from_pandas = jgd.fit(loss_fn, loss_fn.model.init(None), jgd.Dataset(frame, series), **kwargs)
    from_arrays = jgd.fit(loss_fn, loss_fn.model.init(None), data, **kwargs)
    np.testing.assert_allclose(from_pandas.params["w"], from_arrays.params["w"], rtol=1e-6)


def test_multi_output_regression_reaches_least_squares_per_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    Y = (X @ rng.normal(size=(3, 2)) + np.array([0.5, -1.0])).astype(np.float32)
    model = jgd.models.linear(3, n_outputs=2)
    loss_fn = jgd.objective(model, jgd.losses.mse)
    result = jgd.fit(
        loss_fn, model.init(None), jgd.Dataset(X, Y), optimizer=jgd.gd(0.3), epochs=400
    )
    for k in range(2):
        exact = np.linalg.lstsq(np.column_stack([X, np.ones(50)]), Y[:, k], rcond=None)[0]
        np.testing.assert_allclose(result.params["w"][:, k], exact[:3], atol=1e-4)
        np.testing.assert_allclose(result.params["b"][k], exact[3], atol=1e-4)


def test_a_nonfinite_validation_value_with_patience_is_a_status_not_untrained_params():
    data = regression_problem(n=20, d=2)
    val = jgd.Dataset(data.X, data.y.at[0].set(1e30))  # its squared error overflows float32
    loss_fn = jgd.objective(jgd.models.linear(2))
    with pytest.warns(RuntimeWarning, match="val_loss"):
        result = jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            data,
            optimizer=jgd.gd(0.1),
            epochs=20,
            val_data=val,
            patience=3,
        )
    assert result.status is jgd.Status.VALIDATION_NONFINITE
    assert result.epochs_run == 1 and "NaN/inf" in result.message
    assert np.any(np.asarray(result.params["w"]) != 0)  # trained, not the initial params


@pytest.mark.parametrize(
    ("data", "val_data", "message"),
    [
        ({"x": jnp.ones((5, 2)), "y": jnp.ones(4)}, None, r"data\['y'\] has 4 rows"),
        ({"x": jnp.ones((5, 2)).at[3, 1].set(jnp.nan)}, None, r"data\['x'\] contains NaN at row 3"),
        ({"x": jnp.ones((5, 2))}, {"z": jnp.ones((3, 2))}, "same fields"),
        ({"x": jnp.ones((5, 2))}, {"x": jnp.ones((3, 4))}, r"val_data\['x'\] has rows of shape"),
        ({"x": jnp.ones((5, 2)) + 0j}, None, "real numbers"),
        ({"x": jnp.ones(())}, None, "scalar"),
    ],
)
def test_bad_pytree_data_is_refused_naming_the_leaf(data, val_data, message):
    with pytest.raises((ValueError, TypeError), match=message):
        jgd.fit(
            lambda p, b: jnp.sum(p["w"]) ** 2,
            {"w": jnp.ones(2)},
            data,
            optimizer=jgd.gd(0.1),
            epochs=1,
            val_data=val_data,
        )


def test_integer_leaves_are_labels_not_nan_checked():
    batch = {"x": jnp.ones((4, 2)), "label": jnp.array([0, 2**31 - 1, 5, -7], jnp.int32)}
    result = jgd.fit(
        lambda p, b: jnp.mean((b["x"] @ p["w"]) ** 2),
        {"w": jnp.ones(2)},
        batch,
        optimizer=jgd.gd(0.1),
        epochs=2,
    )
    assert result.status is jgd.Status.MAX_EPOCHS


@pytest.mark.parametrize(
    ("loss_fn", "kwargs", "message"),
    [
        (lambda p, b: (jnp.sum(p["w"] ** 2), {}), {}, "has_aux=True"),
        (lambda p, b: jnp.sum(p["w"] ** 2), {"has_aux": True}, r"\(loss, aux\)"),
        (lambda p, b: jnp.sum(p["w"] > 0), {}, "floating-point"),
        (lambda p, b, k: jnp.sum(p["w"] ** 2), {"loss_takes_key": True}, "needs key"),
        (lambda p, b: jnp.sum(p["w"] ** 2), {"metrics": {"m": lambda p, b: p["w"]}}, "scalar"),
        (lambda p, b: jnp.sum(p["w"] ** 2), {"monitor": "val_acc", "patience": 2}, "monitor"),
    ],
)
def test_loss_and_metric_contracts_give_clear_errors(loss_fn, kwargs, message):
    data = regression_problem(n=8, d=2)
    with pytest.raises((ValueError, TypeError), match=message):
        jgd.fit(
            loss_fn,
            {"w": jnp.ones(2)},
            data,
            optimizer=jgd.gd(0.1),
            epochs=1,
            val_data=data,
            **kwargs,
        )


def test_a_target_column_against_single_outputs_is_refused_not_broadcast():
    data = regression_problem(n=8, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    with pytest.raises(ValueError, match=r"predictions have shape \(8,\) but targets \(8, 1\)"):
        jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            jgd.Dataset(data.X, data.y[:, None]),
            optimizer=jgd.gd(0.1),
            epochs=1,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": jgd.gd(jnp.full(3, 0.1))}, r"hyperparameter .* shape \(3,\).*jgd.sweep"),
        ({"tol": jnp.array([1e-3, 1e-4])}, "tol must be a single number"),
        ({"epochs": 2**31 + 5}, "int32 epoch counter"),
        ({"key": "seed"}, "key must be a PRNG key"),
        ({"params": {"w": jnp.ones(3), "b": jnp.zeros(())}}, r"params shapes: .*'w': \(3,\)"),
        ({"params": [1.0, 2.0]}, "failed on the first batch"),
    ],
)
def test_vector_hyperparameters_huge_epochs_and_mismatched_params_are_refused(kwargs, message):
    data = regression_problem(n=6, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    call = {"optimizer": jgd.gd(0.1), "epochs": 2, "params": loss_fn.model.init(None), **kwargs}
    params = call.pop("params")
    with pytest.raises((ValueError, TypeError), match=message):
        jgd.fit(loss_fn, params, data, **call)


def test_history_memory_is_capped_with_a_stated_rule():
    data = regression_problem(n=6, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    with pytest.warns(UserWarning, match="record_every=3"):
        result = jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            data,
            optimizer=jgd.gd(0.1),
            epochs=3_000_000,
            tol=1e-3,
        )
    assert result.status is jgd.Status.CONVERGED
    assert result.history.epoch.tolist()[:-1] == list(range(3, result.epochs_run, 3))
    assert int(result.history.epoch[-1]) == result.epochs_run


def test_a_negative_optax_learning_rate_is_warned_about():
    data = regression_problem(n=8, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    with pytest.warns(UserWarning, match="learning rate negative"):
        jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=optax.adam(-0.05), epochs=2)


def test_an_overflow_in_the_last_update_is_reported_as_divergence():
    """The last epoch's update gives finite params whose loss overflows float32."""
    data = jgd.Dataset(jnp.ones((4, 1)), jnp.zeros(4))
    loss_fn = jgd.objective(jgd.models.linear(1))
    start = {"w": jnp.array([1e18]), "b": jnp.array(0.0)}
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = jgd.fit(loss_fn, start, data, optimizer=jgd.gd(10.0), epochs=1)
    assert np.isfinite(np.asarray(result.params["w"])).all()
    assert not np.isfinite(float(loss_fn(result.params, data)))
    assert result.status is jgd.Status.DIVERGED and result.diverged_at == 1


_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 10),
    st.sampled_from([None, "0.1", True]),
)


@settings(max_examples=40, deadline=None)
@given(
    learning_rate=_NUMBERS,
    epochs=st.one_of(st.integers(-2, 4), st.sampled_from([2**31, 1.5, None])),
    batch_size=st.one_of(st.none(), st.integers(-1, 12), st.sampled_from([2.0, "4"])),
    tol=st.one_of(st.none(), _NUMBERS),
    patience=st.one_of(st.none(), st.integers(-1, 3)),
)
def test_any_hyperparameters_give_a_clear_error_or_a_finite_result(
    learning_rate, epochs, batch_size, tol, patience
):
    """Generated settings: a ValueError/TypeError naming the input, or a sound result."""
    data = regression_problem(n=10, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    names = ("learning_rate", "epochs", "batch_size", "tol", "patience")
    try:
        optimizer = jgd.gd(learning_rate)
        result = jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            data,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            tol=tol,
            patience=patience,
            val_data=data,
            key=0,
        )
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in names), str(error)
        return
    assert isinstance(result.status, jgd.Status) and 1 <= result.epochs_run <= epochs
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result.params))
    assert len(result.history.loss) == result.epochs_run
