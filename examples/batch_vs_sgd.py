"""Batch vs stochastic vs mini-batch gradient descent on the same problem.

Run: python examples/batch_vs_sgd.py
"""

import jax

import jgd

train, val = jgd.data.split(jgd.datasets.seattle_weather(), (0.8, 0.2))
train, val, _ = jgd.data.standardize(train, val)
model = jgd.models.linear(3)
loss_fn = jgd.objective(model, jgd.losses.mse)
best = float(loss_fn(jgd.least_squares(train.X, train.y), train))

for name, batch_size, rate, epochs in [
    ("batch", None, 0.1, 300),
    ("mini-batch 32", 32, 0.01, 15),
    ("stochastic", 1, 0.001, 15),
]:
    result = jgd.fit(
        loss_fn,
        model.init(None),
        train,
        optimizer=jgd.gd(rate),
        epochs=epochs,
        batch_size=batch_size,
        key=jax.random.key(0),
        val_data=val,
    )
    updates = epochs * (1 if batch_size is None else -(-train.n_rows // batch_size))
    gap = float(loss_fn(result.params, train)) / best - 1
    print(
        f"{name:14s} lr={rate:<6} {updates:6d} updates -> train MSE {best * (1 + gap):.4f} "
        f"({100 * gap:.2f} % above the exact minimum)"
    )
