"""The loss surface of linear regression with the gradient-descent path drawn on it.

Run: python examples/loss_surface.py [OUT_DIR]   (needs matplotlib)
"""

import sys

import jgd
import jgd.plot

out = sys.argv[1] if len(sys.argv) > 1 else "."
train, _ = jgd.data.split(jgd.datasets.seattle_weather(), (0.8, 0.2))
train, _ = jgd.data.standardize(train)
model = jgd.models.linear(3)
loss_fn = jgd.objective(model, jgd.losses.mse)
start = model.init(None)
exact = jgd.least_squares(train.X, train.y)

for name, optimizer in (("gd", jgd.gd(0.3)), ("momentum", jgd.momentum(0.05, beta=0.9))):
    result = jgd.fit(loss_fn, start, train, optimizer=optimizer, epochs=150, record_params=True)
    path = f"{out}/loss_surface_{name}.png"
    jgd.plot.loss_surface(
        loss_fn, exact, train, path=result, start=start, indices=("w[0]", "b"), save=path
    )
    print(f"{name}: final loss {float(result.history.loss[-1]):.4f}; wrote {path}")
