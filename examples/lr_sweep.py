"""A learning-rate sweep in one compiled program, and the divergence bound 2/L.

Run: python examples/lr_sweep.py [OUT_DIR]
"""

import sys

import numpy as np

import jgd

train, val = jgd.data.split(jgd.datasets.seattle_weather(), (0.8, 0.2))
train, val, _ = jgd.data.standardize(train, val)
loss_fn = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
start = loss_fn.model.init(None)

bound = jgd.lr_bound(loss_fn, start, train)  # 2 / (top Hessian eigenvalue)
result = jgd.sweep(
    loss_fn,
    start,
    train,
    optimizer=jgd.momentum,
    grid={"learning_rate": np.geomspace(1e-3, 4 * bound, 32), "beta": np.array([0.0, 0.9])},
    epochs=300,
    val_data=val,
)
print(result.table(max_rows=12))
print(f"\nplain GD is stable below 2/L = {bound:.4f}")
plain = np.asarray(result.configs["beta"]) == 0
diverged = np.asarray(result.status) == jgd.Status.DIVERGED
rates = np.asarray(result.configs["learning_rate"])
print(f"smallest diverging plain-GD rate: {rates[plain & diverged].min():.4f}")
print(f"largest converging plain-GD rate: {rates[plain & ~diverged].max():.4f}")
print("best:", result.best().config)

if len(sys.argv) > 1:
    import jgd.plot

    jgd.plot.sweep_curve(result, save=f"{sys.argv[1]}/lr_sweep.png")
    print(f"wrote {sys.argv[1]}/lr_sweep.png")
