"""``jgd demo``: the whole gradient-descent story on the bundled Seattle weather data."""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jgd
from jgd._text import ascii_chart, table

LEARNING_RATE = 0.1
EPOCHS = 500
SGD_EPOCHS = 20
CLASSIFY_EPOCHS = 300
CLASSIFY_LEARNING_RATE = 2.0  # about half of 2/L for both models on the standardized days
CLASSIFY_FEATURES = ("precipitation", "temp_max", "temp_min", "wind")


def _rmse(params: dict, data: jgd.Dataset) -> float:
    predictions = data.X @ params["w"] + params["b"]
    return float(jnp.sqrt(jnp.mean((predictions - data.y) ** 2)))


def _section(title: str) -> None:
    print(f"\n== {title} ==\n")


def run(out_dir: str | None = "jgd-demo") -> int:
    """Print the demo (and write plots to ``out_dir`` when matplotlib is there)."""
    start = time.perf_counter()
    raw = jgd.datasets.seattle_weather()
    print("Seattle daily weather 2012-2015 (NOAA): predict tomorrow's maximum temperature (°C)")
    print(f"from today's {', '.join(jgd.datasets.SEATTLE_FEATURES)}: {raw.n_rows} rows.")

    train, val, test = jgd.data.split(raw, (0.7, 0.15, 0.15))
    train, val, test, _ = jgd.data.standardize(train, val, test)
    print(
        f"Split in date order: {train.n_rows} train / {val.n_rows} validation / "
        f"{test.n_rows} test rows; features z-scored with the training mean and std."
    )

    model = jgd.models.linear(train.n_features)
    loss_fn = jgd.objective(model, jgd.losses.mse)
    start_params = model.init(None)

    _section("1. Batch gradient descent")
    result = jgd.fit(
        loss_fn,
        start_params,
        train,
        optimizer=jgd.gd(LEARNING_RATE),
        epochs=EPOCHS,
        val_data=val,
        record_params=True,
    )
    print(
        f"theta <- theta - lr * grad(MSE), lr={LEARNING_RATE}, {EPOCHS} epochs over all "
        f"{train.n_rows} rows: one compiled XLA program."
    )
    history = result.history
    shown = sorted({0, 1, 2, 4, 9, 19, 49, 99, 199, len(history.epoch) - 1})
    rows = [
        (int(history.epoch[i]), float(history.loss[i]), float(history.val_loss[i]))
        for i in shown
        if i < len(history.epoch)
    ]
    print(table(["epoch", "train MSE", "val MSE"], rows))
    print("\nTraining loss (MSE, °C²):")
    print(ascii_chart(np.asarray(history.loss)))
    print(f"\nStatus: {result.status.name} after {result.epochs_run} epochs.")

    _section("2. The exact answer")
    exact = jgd.least_squares(train.X, train.y)
    names = [*jgd.datasets.SEATTLE_FEATURES, "bias"]
    learned = [*np.asarray(result.params["w"]).tolist(), float(result.params["b"])]
    reference = [*np.asarray(exact["w"]).tolist(), float(exact["b"])]
    print("Weights (°C per standard deviation of each feature) vs closed-form least squares:")
    print(
        table(
            ["parameter", "gradient descent", "least squares", "difference"],
            [(n, g, e, g - e) for n, g, e in zip(names, learned, reference)],
        )
    )
    print()
    print(
        table(
            ["model", "test RMSE (°C)"],
            [
                ("gradient descent", _rmse(result.params, test)),
                ("least squares", _rmse(exact, test)),
            ],
        )
    )
    print(f"(Persistence, 'tomorrow = today': {_persistence_rmse(raw, test.n_rows):.2f} °C.)")

    _section("3. Batch vs stochastic vs mini-batch")
    variants = [
        ("batch (all rows)", None, 0.1, EPOCHS),
        ("mini-batch (32 rows)", 32, 0.01, SGD_EPOCHS),
        ("stochastic (1 row)", 1, 0.001, SGD_EPOCHS),
    ]
    rows = []
    key = jax.random.key(0)
    for name, batch_size, rate, epochs in variants:
        steps = epochs * (1 if batch_size is None else -(-train.n_rows // batch_size))
        began = time.perf_counter()
        run_result = jgd.fit(
            loss_fn,
            start_params,
            train,
            optimizer=jgd.gd(rate),
            epochs=epochs,
            batch_size=batch_size,
            key=key,
            val_data=val,
        )
        jax.block_until_ready(run_result.params)
        seconds = time.perf_counter() - began
        rows.append(
            (
                name,
                rate,
                epochs,
                steps,
                float(run_result.history.loss[-1]),
                _rmse(run_result.params, test),
                f"{seconds:.2f}",
            )
        )
    print(
        table(["method", "lr", "epochs", "updates", "last train MSE", "test RMSE", "seconds"], rows)
    )
    print(
        "Smaller batches make many more, noisier updates per epoch; each needs a smaller rate\n"
        "to stay stable, and ends near (not at) the minimum. Seconds include compilation."
    )

    _section("4. Learning-rate sweep: converge, crawl, diverge")
    bound = jgd.lr_bound(loss_fn, start_params, train)
    rates = np.geomspace(1e-3, 3 * bound, 24)
    sweep = jgd.sweep(
        loss_fn,
        start_params,
        train,
        optimizer=jgd.gd,
        grid={"learning_rate": rates},
        epochs=200,
        val_data=val,
    )
    best_loss = float(loss_fn(exact, train))
    rows = []
    for i, rate in enumerate(rates):
        status = jgd.Status(int(sweep.status[i]))
        final = float(sweep.final_loss[i])
        if status is jgd.Status.DIVERGED:
            verdict = f"diverges (epoch {int(sweep.diverged_at[i])})"
        elif final <= best_loss * 1.001:
            verdict = "converges"
        else:
            verdict = f"crawls ({100 * (final / best_loss - 1):.2g} % above the minimum)"
        shown = final if status is not jgd.Status.DIVERGED and np.isfinite(final) else "–"
        rows.append((rate, rate / bound, shown, verdict))
    print(
        f"24 learning rates trained together in one program (200 epochs each). The Hessian of "
        f"the MSE has\ntop eigenvalue L = {2 / bound:.4g}, so plain GD is stable below "
        f"2/L = {bound:.4g}."
    )
    print(table(["learning rate", "× 2/L", "final train MSE", "what happens"], rows))
    print(f"status counts: {sweep.status_counts()}")

    _classification()

    plots = _plots(out_dir, loss_fn, exact, train, result, sweep, start_params)
    if plots:
        _section("Plots")
        for path in plots:
            print(f"wrote {path}")
    print(f"\nDone in {time.perf_counter() - start:.1f} s.")
    return 0


def _persistence_rmse(raw: jgd.Dataset, test_rows: int) -> float:
    today, tomorrow = raw.X[-test_rows:, 0], raw.y[-test_rows:]
    return float(jnp.sqrt(jnp.mean((today - tomorrow) ** 2)))


def _plots(out_dir, loss_fn, exact, train, result, sweep, start_params) -> list[str]:
    if not out_dir:
        return []
    try:
        import jgd.plot as plot
    except ImportError:
        print("\n(matplotlib is not installed: pip install 'jgd[plot]' for the plots.)")
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        name: os.path.join(out_dir, f"{name}.png")
        for name in ("loss_curve", "loss_vs_params", "loss_surface", "sweep_curve", "sweep_losses")
    }
    plot.loss_curve(result, save=paths["loss_curve"])
    plot.loss_vs_params(result, loss_fn, train, save=paths["loss_vs_params"])
    plot.loss_surface(
        loss_fn,
        exact,
        train,
        path=result,
        start=start_params,
        indices=("w[0]", "b"),
        save=paths["loss_surface"],
    )
    plot.sweep_curve(sweep, save=paths["sweep_curve"])
    plot.loss_curve(sweep, save=paths["sweep_losses"])
    return list(paths.values())


def _classification_data() -> tuple[jgd.Dataset, jgd.Dataset, list[str]]:
    """Today's measurements -> rain tomorrow (0/1) and tomorrow's weather type (0..4)."""
    days, classes = jgd.data.load_labeled_csv(
        jgd.datasets.seattle_weather_path(), "weather", list(CLASSIFY_FEATURES)
    )
    # In NumPy: these few slices would each compile a tiny XLA program.
    X, codes = np.asarray(days.X), np.asarray(days.y)
    today = X[:-1]
    rain = (X[1:, 0] > 0).astype(X.dtype)  # tomorrow's precipitation > 0 mm
    return jgd.Dataset(today, rain), jgd.Dataset(today, codes[1:]), classes


def _classification() -> None:
    _section("5. Classification: will it rain tomorrow? what weather type?")
    rain, weather, classes = _classification_data()
    print(
        f"The same days, today's {', '.join(CLASSIFY_FEATURES)} as features; the last 15 % "
        "of the days\nare the test set. Targets: rain tomorrow (precipitation > 0: yes/no), "
        f"and tomorrow's 'weather'\ncolumn ({', '.join(classes)}), read as text and mapped to "
        "0..4 by jgd.data.load_labeled_csv."
    )
    tasks = [
        (
            "rain tomorrow",
            rain,
            jgd.models.logistic,
            jgd.losses.binary_cross_entropy,
            ["no", "yes"],
        ),
        ("weather tomorrow", weather, _softmax_model, jgd.losses.softmax_cross_entropy, classes),
    ]
    for title, data, make_model, loss, names in tasks:
        # No validation part: a smaller program to compile keeps the demo quick.
        train, test = jgd.data.split(data, (0.85, 0.15))
        train, test, _ = jgd.data.standardize(train, test)
        model = make_model(train.n_features)
        loss_fn = jgd.objective(model, loss)
        result = jgd.fit(
            loss_fn,
            model.init(None),
            train,
            optimizer=jgd.gd(CLASSIFY_LEARNING_RATE),
            epochs=CLASSIFY_EPOCHS,
            metrics={"accuracy": jgd.metrics.accuracy(model)},
        )
        kind = "logistic" if len(names) == 2 else f"softmax over {len(names)} classes"
        print(f"\n-- {title} ({kind}), gd lr={CLASSIFY_LEARNING_RATE}, {CLASSIFY_EPOCHS} epochs --")
        print(table(["epoch", "loss", "accuracy"], _trace(result)))
        _classification_report(result.params, train, test, names)


def _softmax_model(n_features: int) -> jgd.models.Model:
    return jgd.models.softmax(n_features, 5)


def _trace(result: jgd.FitResult) -> list[tuple]:
    history = result.history
    count = len(history.epoch)
    shown = sorted({0, 1, 4, 9, 29, 99, count - 1} & set(range(count)))
    return [
        (
            int(history.epoch[i]),
            float(history.loss[i]),
            float(history.metrics["accuracy"][i]),
        )
        for i in shown
    ]


def _classification_report(
    params: Any, train: jgd.Dataset, test: jgd.Dataset, names: list[str]
) -> None:
    """Confusion matrix and per-class accuracy on the test days; scikit-learn beside."""
    # The linear logits in NumPy: no program to compile for 219 rows.
    logits = np.asarray(test.X) @ np.asarray(params["w"]) + np.asarray(params["b"])
    predicted = (logits > 0).astype(int) if logits.ndim == 1 else logits.argmax(axis=1)
    truth = np.asarray(test.y).astype(int)
    k = len(names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    rows = [
        (
            names[i],
            *confusion[i].tolist(),
            f"{confusion[i, i] / confusion[i].sum():.0%}" if confusion[i].sum() else "–",
        )
        for i in range(k)
    ]
    print(f"\nTest days ({test.n_rows}): rows are the true class, columns the predicted one.")
    print(table(["true \\ predicted", *names, "class accuracy"], rows))
    majority = np.bincount(truth, minlength=k).max() / truth.size
    accuracy = float(np.mean(predicted == truth))
    comparison = [("jgd gradient descent", accuracy)]
    reference = _sklearn_accuracy(train, test)
    if reference is not None:
        comparison.append(("scikit-learn LogisticRegression", reference))
    comparison.append(("always the most common class", majority))
    print(table(["model", "test accuracy"], comparison))


def _sklearn_accuracy(train: jgd.Dataset, test: jgd.Dataset) -> float | None:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("(scikit-learn is not installed: no LogisticRegression comparison.)")
        return None
    labels = np.asarray(train.y).astype(int)
    classifier = LogisticRegression(max_iter=1000).fit(np.asarray(train.X), labels)
    return float(classifier.score(np.asarray(test.X), np.asarray(test.y).astype(int)))
