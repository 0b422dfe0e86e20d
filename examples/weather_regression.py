"""The tutorial's story in jgd: predict tomorrow's max temperature in Seattle.

Load, split in date order, standardize with training statistics only, train a
linear model by batch gradient descent, and check it against the exact answer.
Run: python examples/weather_regression.py
"""

import jax.numpy as jnp

import jgd

data = jgd.datasets.seattle_weather()
train, val, test = jgd.data.split(data, (0.7, 0.15, 0.15))  # no key: keep the date order
train, val, test, stats = jgd.data.standardize(train, val, test)

model = jgd.models.linear(train.n_features)  # {"w": zeros(3), "b": 0.0}
loss_fn = jgd.objective(model, jgd.losses.mse)
result = jgd.fit(loss_fn, model.init(None), train, optimizer=jgd.gd(0.1), epochs=500, val_data=val)

for epoch, loss, val_loss in zip(
    result.history.epoch, result.history.loss, result.history.val_loss
):
    if int(epoch) in (1, 2, 5, 10, 50, 100, 500):
        print(
            f"epoch {int(epoch):4d}  train MSE {float(loss):9.4f}  val MSE {float(val_loss):9.4f}"
        )

exact = jgd.least_squares(train.X, train.y)
print("gradient descent:", result.params)
print("least squares:   ", exact)


def rmse(params):
    return float(jnp.sqrt(jnp.mean((test.X @ params["w"] + params["b"] - test.y) ** 2)))


print(f"test RMSE: gradient descent {rmse(result.params):.3f} °C, exact {rmse(exact):.3f} °C")
# Weights per °C of each raw feature (undo the standardization):
print("°C of tomorrow's max per °C/mm of today's features:", result.params["w"] / stats.scale)
