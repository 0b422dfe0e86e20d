import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from jgd._members import advance as _sweep_advance
from tests.helpers import hessian_top_eigenvalue, regression_problem, run_with_devices

DATA, VAL = jgd.data.split(regression_problem(n=64, d=3), (0.75, 0.25))
MODEL = jgd.models.linear(3)
LOSS = jgd.objective(MODEL, jgd.losses.mse)
START = MODEL.init(None)
BOUND = 2 / hessian_top_eigenvalue(DATA.X)


def _rtol(losses) -> float:
    """1e-5, or 1e-4 for a run whose loss grows.

    A sweep and a single fit may sum in other orders (jgd's native kernels, or
    XLA's fused and plain products). On a stable run the round-off stays at a
    few ulp; on an unstable one every epoch adds its own relative error to an
    iterate that keeps growing, so after tens of epochs the two agree to about
    epochs x 1e-7 (seen: 1.1e-5 after 60 diverging epochs).
    """
    finite = np.asarray(losses)[np.isfinite(losses)]
    return 1e-4 if finite.size and finite[-1] > finite[0] else 1e-5


def assert_member_equals_solo(result, index, solo):
    member = result.member(index)
    assert member.status == solo.status
    assert member.epochs_run == solo.epochs_run
    assert member.diverged_at == solo.diverged_at
    rtol = _rtol(solo.history.loss)
    for a, b in zip(jax.tree.leaves(member.params), jax.tree.leaves(solo.params)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(member.history.loss, solo.history.loss, rtol=rtol)
    if solo.history.val_loss is not None:
        np.testing.assert_allclose(member.history.val_loss, solo.history.val_loss, rtol=1e-5)


CASES = {
    "gd-full-batch": (jgd.gd, {"learning_rate": [0.01, 0.1, 0.3]}, {}),
    "momentum-minibatch": (
        jgd.momentum,
        {"learning_rate": [0.01, 0.05], "beta": [0.0, 0.9]},
        {"batch_size": 10, "key": jax.random.key(3)},
    ),
    "adam-minibatch-val": (
        lambda learning_rate, b1: optax.adam(learning_rate, b1=b1),
        {"learning_rate": [0.01, 0.1], "b1": [0.5, 0.9]},
        {"batch_size": 16, "key": jax.random.key(4), "val_data": VAL},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_member_equals_solo_fit(case):
    factory, grid, kwargs = CASES[case]
    result = jgd.sweep(LOSS, START, DATA, optimizer=factory, grid=grid, epochs=30, **kwargs)
    assert result.n_members == int(np.prod([len(v) for v in grid.values()]))
    for i in range(result.n_members):
        config = result.config(i)
        solo = jgd.fit(LOSS, START, DATA, optimizer=factory(**config), epochs=30, **kwargs)
        assert_member_equals_solo(result, i, solo)


@pytest.mark.parametrize(
    ("n", "d", "rates", "batch_size"),
    [(13, 1, [0.05], 3), (37, 4, [1e-3, 0.01, 0.05, 0.1], None)],
)
def test_member_equals_solo_fit_on_other_shapes(n, d, rates, batch_size):
    """One- and four-member grids, one feature or four, 3-row batches with a short last one."""
    data = regression_problem(n=n, d=d, seed=n)
    loss = jgd.objective(jgd.models.linear(d), jgd.losses.mse)
    start = loss.model.init(None)
    kwargs = dict(epochs=15, batch_size=batch_size, key=jax.random.key(0))
    result = jgd.sweep(
        loss, start, data, optimizer=jgd.momentum, grid={"learning_rate": rates}, **kwargs
    )
    assert result.n_members == len(rates)
    for i, rate in enumerate(rates):
        solo = jgd.fit(loss, start, data, optimizer=jgd.momentum(rate), **kwargs)
        assert_member_equals_solo(result, i, solo)


def test_cartesian_product_order():
    result = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.momentum,
        grid={"learning_rate": [0.1, 0.2], "beta": [0.0, 0.5, 0.9]},
        epochs=2,
    )
    np.testing.assert_allclose(result.configs["learning_rate"], [0.1] * 3 + [0.2] * 3)
    np.testing.assert_allclose(result.configs["beta"], [0.0, 0.5, 0.9] * 2)


def test_diverging_members_are_isolated_and_keep_finite_params():
    rates = np.array([0.2, 0.6, 0.9, 1.5, 3.0]) * BOUND
    result = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.gd, grid={"learning_rate": rates}, epochs=300
    )
    status = [jgd.Status(int(s)) for s in result.status]
    assert status[:3] == [jgd.Status.MAX_EPOCHS] * 3
    assert status[3:] == [jgd.Status.DIVERGED] * 2
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))
    assert np.isfinite(np.asarray(result.final_loss)[:3]).all()
    for i in range(5):
        solo = jgd.fit(
            LOSS,
            START,
            DATA,
            optimizer=jgd.gd(float(result.configs["learning_rate"][i])),
            epochs=300,
        )
        assert_member_equals_solo(result, i, solo)
    # A stopped member no longer changes: its history stops at its divergence epoch.
    member = result.member(4)
    assert member.epochs_run == member.diverged_at < 300
    assert np.isnan(np.asarray(result.history.loss)[4, member.epochs_run :]).all()
    assert result.best(by="loss").index in (0, 1, 2)


def test_members_below_the_reported_bound_converge_and_above_diverge():
    rates = np.array([0.5, 0.9, 0.97, 1.1, 2.0])
    result = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": rates * BOUND},
        epochs=3000,
        tol=1e-9,
    )
    np.testing.assert_allclose(result.lr_bound, BOUND, rtol=1e-4)
    status = [jgd.Status(int(s)) for s in result.status]
    assert all(s is not jgd.Status.DIVERGED for s in status[:3])
    assert status[3:] == [jgd.Status.DIVERGED] * 2
    exact = jgd.least_squares(DATA.X, DATA.y)
    for i in range(3):
        np.testing.assert_allclose(result.params["w"][i], exact["w"], rtol=1e-3, atol=1e-3)


def test_early_stopping_and_tol_per_member():
    result = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.01, 0.3]},
        epochs=400,
        val_data=VAL,
        patience=5,
        tol=1e-4,
    )
    stops = np.asarray(result.stop_epoch)
    assert stops[1] < stops[0] <= 400  # the faster member stops first
    for i in range(2):
        solo = jgd.fit(
            LOSS,
            START,
            DATA,
            optimizer=jgd.gd(float(result.configs["learning_rate"][i])),
            epochs=400,
            val_data=VAL,
            patience=5,
            tol=1e-4,
        )
        assert_member_equals_solo(result, i, solo)


def test_l2_grid_sweeps_the_objective():
    result = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.momentum,
        grid={"learning_rate": [0.1], "l2": [0.0, 0.5]},
        epochs=500,
    )
    for i, l2 in enumerate([0.0, 0.5]):
        exact = jgd.least_squares(DATA.X, DATA.y, l2=l2)
        np.testing.assert_allclose(result.params["w"][i], exact["w"], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match=r"jgd\.objective"):
        jgd.sweep(
            lambda p, b: LOSS(p, b),
            START,
            DATA,
            optimizer=jgd.gd,
            grid={"learning_rate": [0.1], "l2": [0.1]},
            epochs=2,
        )


def test_seeds_train_each_config_from_several_initialisations():
    model = jgd.models.mlp([3, 4, 1])
    loss_fn = jgd.objective(model, jgd.losses.mse)
    result = jgd.sweep(
        loss_fn,
        model.init,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.01, 0.05]},
        epochs=5,
        seeds=3,
    )
    assert result.n_members == 6
    np.testing.assert_array_equal(result.configs["seed"], [0, 1, 2, 0, 1, 2])
    first_layer = np.asarray(result.params[0]["w"])
    assert not np.allclose(first_layer[0], first_layer[1])  # different initialisations
    # Member (lr 0.05, seed 1) equals a solo fit from the same initialisation.
    init_keys = jax.random.split(jax.random.fold_in(jax.random.key(0), 0x5EED), 3)
    solo = jgd.fit(loss_fn, model.init(init_keys[1]), DATA, optimizer=jgd.gd(0.05), epochs=5)
    assert_member_equals_solo(result, 4, solo)


def test_a_seeded_sweeps_work_estimate_counts_each_members_params_once(monkeypatch):
    # A seeded start is stacked (one set per member): the long-run estimate that switches
    # chunking and compaction on must count it once, as an unseeded start times members.
    from jgd import sweeps

    model = jgd.models.mlp([3, 4, 1])
    loss_fn = jgd.objective(model, jgd.losses.mse)
    counted = []
    monkeypatch.setattr(
        sweeps._progress,
        "long_run",
        lambda epochs, rows, per_row, params: counted.append(params) or False,
    )
    grid = {"learning_rate": [0.01, 0.05]}
    jgd.sweep(loss_fn, model.init, DATA, optimizer=jgd.gd, grid=grid, epochs=2, seeds=3)
    start = model.init(jax.random.key(0))
    jgd.sweep(loss_fn, start, DATA, optimizer=jgd.gd, grid=grid, epochs=2)
    per_model = sum(leaf.size for leaf in jax.tree.leaves(start))
    assert counted == [6 * per_model, 2 * per_model]


def test_second_sweep_with_other_values_does_not_recompile():
    grid = {"learning_rate": jnp.array([0.01, 0.02, 0.03]), "beta": jnp.array([0.5])}
    jgd.sweep(LOSS, START, DATA, optimizer=jgd.momentum, grid=grid, epochs=4)
    size = _sweep_advance._cache_size()
    other = {"learning_rate": jnp.array([0.1, 0.2, 0.3]), "beta": jnp.array([0.9])}
    jgd.sweep(LOSS, START, DATA, optimizer=jgd.momentum, grid=other, epochs=4)
    assert _sweep_advance._cache_size() == size


def test_result_summary_best_and_table():
    result = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.001, 0.1, 3 * BOUND]},
        epochs=50,
        val_data=VAL,
    )
    best = result.best()
    assert best.index == 1 and best.config == pytest.approx({"learning_rate": 0.1})
    np.testing.assert_array_equal(best.params["w"], result.params["w"][1])
    text = result.table()
    assert "MAX_EPOCHS 2, DIVERGED 1" in text and "2/L" in text
    lines = [line for line in text.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]
    assert lines[0].split()[1] == "1" and lines[-1].split()[1] == "2"  # diverged member last
    assert repr(result).startswith("SweepResult: 3 members")


@pytest.mark.parametrize(
    ("grid", "error", "message"),
    [
        ({}, ValueError, "non-empty"),
        ({"learning_rate": []}, ValueError, "empty"),
        ({"learning_rate": [0.1, -0.1]}, ValueError, "learning_rate"),
        ({"learning_rate": [0.1, float("nan")]}, ValueError, "finite"),
        ({"learning_rate": [[0.1]]}, ValueError, "1-D"),
        ({"learning_rate": ["a"]}, TypeError, "numbers"),
        ({"learning_rate": [0.1], "beta": [0, 1]}, ValueError, "beta"),
        ({"learning_rate": [0.1], "beta": [1.5]}, ValueError, "beta"),
        ({"learning_rat": [0.1]}, TypeError, "rejected grid names"),
    ],
)
def test_bad_grids(grid, error, message):
    with pytest.raises(error, match=message):
        jgd.sweep(LOSS, START, DATA, optimizer=jgd.momentum, grid=grid, epochs=2)


def test_eight_device_sharded_sweep_equals_one_device():
    script = """
        import json, jax, numpy as np, jgd
        from tests.helpers import regression_problem
        data = regression_problem(n=48, d=3)
        loss = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
        rates = np.geomspace(0.003, 1.0, 13)  # 13 members: padded to 16 on 8 devices
        r = jgd.sweep(loss, loss.model.init(None), data, optimizer=jgd.momentum,
                      grid={"learning_rate": rates}, epochs=40, batch_size=10,
                      key=jax.random.key(0))
        print(json.dumps({"devices": jax.device_count(),
                          "w": np.asarray(r.params["w"]).tolist(),
                          "loss": np.asarray(r.history.loss).tolist(),
                          "status": np.asarray(r.status).tolist()}))
        """
    runs = {count: run_with_devices(script, count) for count in (1, 8)}
    assert runs[1]["devices"] == 1 and runs[8]["devices"] == 8
    assert runs[1]["status"] == runs[8]["status"]
    for member, losses in enumerate(runs[1]["loss"]):
        rtol = _rtol(losses)  # one device uses jgd's native kernel where it is built
        np.testing.assert_allclose(runs[8]["w"][member], runs[1]["w"][member], rtol=rtol, atol=1e-6)
        np.testing.assert_allclose(runs[8]["loss"][member], losses, rtol=rtol)


def test_member_history_with_record_every_and_early_stop_equals_solo():
    grid = {"learning_rate": [0.01, 0.3, 5.0]}  # runs on, converges early, diverges
    kwargs = dict(epochs=50, record_every=4, tol=1e-4)
    swept = jgd.sweep(LOSS, START, DATA, optimizer=jgd.gd, grid=grid, **kwargs)
    for i, rate in enumerate(grid["learning_rate"]):
        solo = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(rate), **kwargs)
        member = swept.member(i)
        np.testing.assert_array_equal(member.history.epoch, solo.history.epoch)
        np.testing.assert_allclose(member.history.loss, solo.history.loss, rtol=1e-5)


def test_a_grid_mixing_integer_and_float_axes_equals_solo_fits():
    """An integer axis (a step-decay period) is traced as int32 beside a float one."""

    def step_decay(learning_rate, every):
        return optax.sgd(lambda count: learning_rate * 0.5 ** (count // every))

    grid = {"learning_rate": [0.05, 0.1], "every": [3, 7]}
    swept = jgd.sweep(LOSS, START, DATA, optimizer=step_decay, grid=grid, epochs=12)
    assert swept.configs["every"].dtype.kind == "i"
    for i in range(swept.n_members):
        config = swept.config(i)
        solo = jgd.fit(LOSS, START, DATA, optimizer=step_decay(**config), epochs=12)
        np.testing.assert_allclose(swept.member(i).history.loss, solo.history.loss, rtol=1e-5)


def test_the_stability_bound_is_reported_for_plain_gd_only_and_per_l2():
    rates = {"learning_rate": [0.01, 0.1]}
    adam = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=lambda learning_rate: optax.adam(learning_rate),
        grid=rates,
        epochs=2,
    )
    assert adam.lr_bound is None and "2/L" not in adam.table()
    skipped = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.gd, grid=rates, epochs=2, stability_bound=False
    )
    assert skipped.lr_bound is None
    ridge = jgd.sweep(
        LOSS, START, DATA, optimizer=jgd.gd, grid={**rates, "l2": [0.0, 1.0]}, epochs=2
    )
    X1 = np.column_stack([np.asarray(DATA.X, np.float64), np.ones(DATA.n_rows)])
    for i, l2 in enumerate(ridge.configs["l2"]):
        hessian = 2 / DATA.n_rows * X1.T @ X1 + 2 * l2 * np.diag([1.0] * DATA.n_features + [0.0])
        expected = 2 / np.linalg.eigvalsh(hessian)[-1]
        np.testing.assert_allclose(ridge.lr_bounds[i], expected, rtol=1e-4)
    assert ridge.lr_bound == pytest.approx(float(np.min(ridge.lr_bounds)))


def test_seeds_vary_the_data_order_and_members_equal_solo_fits_with_their_key():
    model = jgd.models.mlp([3, 4, 1])
    loss_fn = jgd.objective(model)
    key = jax.random.key(7)
    swept = jgd.sweep(
        loss_fn,
        model.init,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.05, 0.1]},
        epochs=4,
        batch_size=16,
        key=key,
        seeds=3,
        val_data=VAL,
    )
    init_keys = jax.random.split(jax.random.fold_in(key, 0x5EED), 3)
    for i in range(swept.n_members):
        config = swept.config(i)
        seed = config["seed"]
        solo = jgd.fit(
            loss_fn,
            model.init(init_keys[seed]),
            DATA,
            optimizer=jgd.gd(config["learning_rate"]),
            epochs=4,
            batch_size=16,
            key=jax.random.fold_in(key, seed),
            val_data=VAL,
        )
        np.testing.assert_allclose(swept.member(i).history.loss, solo.history.loss, rtol=1e-5)
    # Same init, different data order: the seeds' first-epoch losses differ.
    first = np.asarray(swept.history.loss)[:3, 0]
    assert len(set(first.tolist())) == 3


def test_aggregate_records_and_dataframe_against_numpy():
    model = jgd.models.mlp([3, 4, 1])
    swept = jgd.sweep(
        jgd.objective(model),
        model.init,
        DATA,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.05, 0.1, 50.0]},
        epochs=5,
        seeds=3,
        val_data=VAL,
        key=jax.random.key(1),
    )
    summary = swept.aggregate()
    assert summary.configs["learning_rate"].tolist() == [0.05, 0.1, 50.0]
    assert summary.seeds.tolist() == [3, 3, 3]
    rates = np.asarray(swept.configs["learning_rate"])
    for j, rate in enumerate(summary.configs["learning_rate"]):
        chosen = (rates == rate) & (np.asarray(swept.status) != jgd.Status.DIVERGED)
        values = np.asarray(swept.final_val_loss, np.float64)[chosen]
        values = values[np.isfinite(values)]
        if values.size:
            np.testing.assert_allclose(summary.final_val_loss_mean[j], values.mean(), rtol=1e-6)
            np.testing.assert_allclose(summary.final_val_loss_std[j], values.std(), rtol=1e-5)
        assert summary.diverged[j] == 3 - chosen.sum()
    records = swept.records()
    assert len(records) == 9 and records[4]["learning_rate"] == rates[4]
    assert records[4]["final_val_loss"] == pytest.approx(float(swept.final_val_loss[4]))
    frame = swept.to_dataframe()
    assert list(frame["status"]) == [r["status"] for r in records]


def test_halving_survivors_are_the_full_grids_top_members_at_every_rung():
    model = jgd.models.mlp([3, 6, 1])
    loss_fn = jgd.objective(model)
    kwargs = dict(
        optimizer=jgd.momentum,
        grid={"learning_rate": jnp.geomspace(1e-3, 0.5, 12)},
        epochs=12,
        val_data=VAL,
        batch_size=16,
        key=jax.random.key(0),
    )
    start = model.init(jax.random.key(1))
    full = jgd.sweep(loss_fn, start, DATA, **kwargs)
    halved = jgd.sweep(loss_fn, start, DATA, halving=jgd.Halving(eta=2, min_epochs=3), **kwargs)
    stop = np.asarray(halved.stop_epoch)
    val = np.asarray(full.history.val_loss)
    alive = np.arange(12)
    for end in (3, 6):  # rungs end at 3, 6 and 12 epochs; each keeps the better half
        ranked = alive[np.argsort(val[alive, end - 1], kind="stable")]
        survivors = np.sort(ranked[: len(alive) // 2])
        assert np.all(stop[np.setdiff1d(alive, survivors)] == end)
        alive = survivors
    assert np.all(stop[alive] == 12) and len(alive) == 3
    status = np.asarray(halved.status)
    assert np.all(status[alive] == jgd.Status.MAX_EPOCHS)
    assert np.sum(status == jgd.Status.ELIMINATED) == 9
    # Compaction changes no member's result: histories up to elimination and survivors' params.
    for i in range(12):
        kept = int(stop[i])
        np.testing.assert_allclose(halved.member(i).history.val_loss, val[i, :kept], rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(halved.params[0]["w"])[alive],
        np.asarray(full.params[0]["w"])[alive],
        rtol=1e-4,
        atol=1e-6,
    )
    assert halved.best().index in alive


def test_static_axes_run_one_program_each_and_equal_separate_sweeps():
    rates = {"learning_rate": [0.01, 0.05]}
    optimizers = {"gd": jgd.gd, "adam": lambda learning_rate: optax.adam(learning_rate)}
    kwargs = dict(key=jax.random.key(3), val_data=VAL)
    merged = jgd.sweep(
        LOSS,
        START,
        DATA,
        optimizer=optimizers,
        epochs=6,
        grid={**rates, "batch_size": [8, 16], "epochs": [6, 3]},
        **kwargs,
    )
    assert merged.programs == 8 and merged.n_members == 16
    assert set(merged.configs) == {"batch_size", "epochs", "optimizer", "learning_rate"}
    for batch_size, name in ((8, "adam"), (16, "gd")):
        separate = jgd.sweep(
            LOSS,
            START,
            DATA,
            optimizer=optimizers[name],
            grid=rates,
            batch_size=batch_size,
            epochs=3,
            **kwargs,
        )
        for position, rate in enumerate(rates["learning_rate"]):
            wanted = {
                "batch_size": batch_size,
                "epochs": 3,
                "optimizer": name,
                "learning_rate": rate,
            }
            i = [merged.config(j) for j in range(16)].index(wanted)
            member, alone = merged.member(i), separate.member(position)
            np.testing.assert_allclose(member.history.loss, alone.history.loss, rtol=1e-6)
            np.testing.assert_allclose(member.params["w"], alone.params["w"], rtol=1e-6, atol=1e-7)
            assert member.epochs_run == 3 and len(member.history.loss) == 3
    # The bigger batch takes fewer steps: Adam's count says so.
    counts = {
        merged.config(i)["batch_size"]: int(merged.member(i).opt_state[0].count)
        for i in range(16)
        if merged.config(i)["optimizer"] == "adam" and merged.config(i)["epochs"] == 6
    }
    assert counts == {8: 6 * 6, 16: 6 * 3}
    assert "optimizer" in merged.table()


def test_a_grid_in_member_chunks_equals_the_whole_grid():
    grid = {"learning_rate": [0.01, 0.05, 0.1, 0.2, 0.5], "beta": [0.0, 0.5]}
    kwargs = dict(optimizer=jgd.momentum, grid=grid, epochs=5, val_data=VAL)
    whole = jgd.sweep(LOSS, START, DATA, **kwargs)
    chunked = jgd.sweep(LOSS, START, DATA, member_chunk=4, **kwargs)
    assert chunked.n_members == whole.n_members == 10 and chunked.programs == 2  # 4, 4 and 2
    for name in grid:
        np.testing.assert_array_equal(chunked.configs[name], whole.configs[name])
    np.testing.assert_allclose(chunked.history.loss, whole.history.loss, rtol=1e-5)
    np.testing.assert_allclose(chunked.params["w"], whole.params["w"], rtol=1e-5, atol=1e-6)
    assert chunked.best().index == whole.best().index
    assert jgd.sweeps._member_chunk(None, whole.configs, START, DATA, 5, 1, None) == 10


def test_a_softmax_model_sweeps_like_solo_fits():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    labels = np.argmax(X @ rng.normal(size=(3, 4)), axis=1).astype(np.int32)
    data = jgd.Dataset(jnp.asarray(X), jnp.asarray(labels))
    model = jgd.models.softmax(3, 4)
    loss_fn = jgd.objective(model, jgd.losses.softmax_cross_entropy)
    swept = jgd.sweep(
        loss_fn,
        model.init(None),
        data,
        optimizer=jgd.gd,
        grid={"learning_rate": [0.1, 0.5]},
        epochs=5,
    )
    for i, rate in enumerate((0.1, 0.5)):
        solo = jgd.fit(loss_fn, model.init(None), data, optimizer=jgd.gd(rate), epochs=5)
        np.testing.assert_allclose(swept.member(i).history.loss, solo.history.loss, rtol=1e-5)


def _compaction_grid_sweep(compact, **extra):
    """An MLP grid whose upper half diverges within a few epochs."""
    model = jgd.models.mlp([3, 6, 1])
    kwargs = dict(
        optimizer=jgd.momentum,
        grid={"learning_rate": [1e-3, 3e-3, 0.01, 0.03, 30.0, 100.0, 300.0, 1000.0]},
        epochs=12,
        val_data=VAL,
        batch_size=16,
        key=jax.random.key(0),
        **extra,
    )
    return jgd.sweep(
        jgd.objective(model), model.init(jax.random.key(1)), DATA, compact=compact, **kwargs
    )


def test_compaction_runs_only_live_members_and_changes_no_result(monkeypatch):
    from jgd import _members

    blocks_run, program = [], _members.advance_blocks

    def counting(*args, **kwargs):
        blocks_run.append(int(args[7]))  # n_blocks
        return program(*args, **kwargs)

    monkeypatch.setattr(_members, "advance_blocks", counting)
    plain = _compaction_grid_sweep(False)
    assert blocks_run == []  # no compaction: the whole vmap
    compiled = program._cache_size()
    compacted = _compaction_grid_sweep(1)  # blocks of one member
    # 8 blocks run at first, 4 once the upper half diverged, with the one compiled
    # program for every live count.
    assert blocks_run[0] == 8 and blocks_run[-1] == 4 and len(blocks_run) > 1
    assert program._cache_size() <= compiled + 1
    # By default a run in chunks (here for its bar) of a model heavier than its data trains
    # in blocks; this model is so small that one block (all 8 members) keeps a step busy.
    blocks_run.clear()
    _compaction_grid_sweep(None, progress=True)
    assert blocks_run and blocks_run[0] == 1
    status = np.asarray(plain.status)
    assert status.tolist() == [jgd.Status.MAX_EPOCHS] * 4 + [jgd.Status.DIVERGED] * 4
    for name in ("status", "stop_epoch", "diverged_at"):
        np.testing.assert_array_equal(getattr(compacted, name), getattr(plain, name))
    # Up to round-off (a block vmaps fewer members than the whole grid: other
    # vectorisation), for the members that trained; the diverged ones' last finite
    # params are 1e27-sized chaos in both.
    pairs = [(compacted.params, plain.params), (compacted.history, plain.history)]
    pairs.append((compacted.final_val_loss, plain.final_val_loss))
    for ours, theirs in pairs:
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            np.testing.assert_allclose(a[:4], b[:4], rtol=1e-5, atol=1e-7)


def test_compact_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="compact must be"):
        _compaction_grid_sweep("yes")


def test_halving_ranks_by_the_monitored_metric_in_its_direction():
    """mode="max" on a metric: the survivors are those with the highest value."""
    model = jgd.models.mlp([3, 6, 1])
    loss_fn = jgd.objective(model)
    kwargs = dict(
        optimizer=jgd.momentum,
        grid={"learning_rate": jnp.geomspace(1e-3, 0.5, 8)},
        epochs=8,
        val_data=VAL,
        batch_size=16,
        key=jax.random.key(0),
        halving=jgd.Halving(eta=2, min_epochs=2),
    )
    start = model.init(jax.random.key(1))
    by_loss = jgd.sweep(loss_fn, start, DATA, **kwargs)
    by_metric = jgd.sweep(
        loss_fn,
        start,
        DATA,
        metrics={"negative_loss": lambda params, batch: -loss_fn(params, batch)},
        monitor="val_negative_loss",
        mode="max",
        **kwargs,
    )
    np.testing.assert_array_equal(by_metric.stop_epoch, by_loss.stop_epoch)
    assert len(set(np.asarray(by_loss.stop_epoch).tolist())) == 3  # rungs at 2, 4 and 8


def test_a_dict_of_models_is_a_static_axis_equal_to_separate_sweeps():
    widths = {"narrow": jgd.models.mlp([3, 2, 1]), "wide": jgd.models.mlp([3, 9, 1])}
    losses = {name: jgd.objective(model) for name, model in widths.items()}
    starts = {name: model.init(jax.random.key(2)) for name, model in widths.items()}
    kwargs = dict(optimizer=jgd.gd, grid={"learning_rate": [0.01, 0.1]}, epochs=5, val_data=VAL)
    merged = jgd.sweep(losses, starts, DATA, **kwargs)
    assert merged.programs == 2 and merged.n_members == 4
    assert list(merged.configs["model"]) == ["narrow", "narrow", "wide", "wide"]
    assert isinstance(merged.params, list)  # other shapes: one pytree per member
    for offset, name in ((0, "narrow"), (2, "wide")):
        alone = jgd.sweep(losses[name], starts[name], DATA, **kwargs)
        for i in range(2):
            ours, theirs = merged.member(offset + i), alone.member(i)
            assert ours.status == theirs.status
            for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(theirs.params)):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ours.history.val_loss, theirs.history.val_loss)
    best = merged.best()
    assert jax.tree.structure(best.params) == jax.tree.structure(
        starts[merged.configs["model"][best.index]]
    )
    with pytest.raises(ValueError, match="same names"):
        jgd.sweep(losses, starts["wide"], DATA, **kwargs)
