"""``jgd demo``: the whole gradient-descent story on the bundled Seattle weather data."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

import jgd
from jgd._text import ascii_chart, table

LEARNING_RATE = 0.1
EPOCHS = 500


def _rmse(params: dict, data: jgd.Dataset) -> float:
    predictions = data.X @ params["w"] + params["b"]
    return float(jnp.sqrt(jnp.mean((predictions - data.y) ** 2)))


def run(out_dir: str | None = None) -> int:
    """Print the demo; returns the process exit code."""
    del out_dir  # plots arrive with the plotting module
    start = time.perf_counter()
    raw = jgd.datasets.seattle_weather()
    print("Seattle daily weather 2012-2015: predict tomorrow's max temperature (°C)")
    print(f"from today's {', '.join(jgd.datasets.SEATTLE_FEATURES)}: {raw.n_rows} rows.\n")

    train, val, test = jgd.data.split(raw, (0.7, 0.15, 0.15))
    train, val, test, _ = jgd.data.standardize(train, val, test)
    print(
        f"Split in date order: {train.n_rows} train / {val.n_rows} validation / "
        f"{test.n_rows} test rows; features z-scored with the training mean and std.\n"
    )

    model = jgd.models.linear(train.n_features)
    loss_fn = jgd.objective(model, jgd.losses.mse)
    result = jgd.fit(
        loss_fn,
        model.init(None),
        train,
        optimizer=jgd.gd(LEARNING_RATE),
        epochs=EPOCHS,
        val_data=val,
    )
    print(
        f"Batch gradient descent: lr={LEARNING_RATE}, {EPOCHS} epochs, MSE loss, "
        "one compiled XLA program."
    )
    history = result.history
    shown = sorted({0, 1, 2, 4, 9, 19, 49, 99, 199, len(history.epoch) - 1})
    rows = [
        (int(history.epoch[i]), float(history.loss[i]), float(history.val_loss[i]))
        for i in shown
        if i < len(history.epoch)
    ]
    print(table(["epoch", "train MSE", "val MSE"], rows))
    print()
    print("Training loss (MSE, °C²):")
    print(ascii_chart(np.asarray(history.loss)))
    print(f"\nStatus: {result.status.name} after {result.epochs_run} epochs.\n")

    exact = jgd.least_squares(train.X, train.y)
    names = [*jgd.datasets.SEATTLE_FEATURES, "bias"]
    learned = [*np.asarray(result.params["w"]).tolist(), float(result.params["b"])]
    reference = [*np.asarray(exact["w"]).tolist(), float(exact["b"])]
    print("Weights (per standard deviation of each feature) vs the exact least-squares answer:")
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
    print(f"\nDone in {time.perf_counter() - start:.1f} s.")
    return 0
