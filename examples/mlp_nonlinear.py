"""A small MLP learns a nonlinear function by mini-batch gradient descent.

Run: python examples/mlp_nonlinear.py [OUT_DIR]
"""

import os
import sys

import jax
import jax.numpy as jnp
import optax

import jgd

x = jnp.linspace(-3, 3, 512)[:, None]
data = jgd.Dataset(x, jnp.sin(2 * x[:, 0]) * jnp.exp(-0.1 * x[:, 0] ** 2))
train, val = jgd.data.split(data, (0.8, 0.2), key=jax.random.key(0))

model = jgd.models.mlp([1, 32, 32, 1], activation=jax.nn.tanh)
loss_fn = jgd.objective(model, jgd.losses.mse)
result = jgd.fit(
    loss_fn,
    model.init(jax.random.key(1)),
    train,
    optimizer=optax.adam(1e-2),
    epochs=50 if os.environ.get("JGD_EXAMPLE_QUICK") else 400,  # quick: the test suite
    batch_size=32,
    key=jax.random.key(2),
    val_data=val,
    patience=40,
)
print(result)
print(
    f"validation MSE {float(loss_fn(result.params, val)):.5f} (the target's variance is "
    f"{float(jnp.var(val.y)):.3f})"
)

if len(sys.argv) > 1:
    import jgd.plot

    jgd.plot.loss_curve(result, save=f"{sys.argv[1]}/mlp_loss.png")
    print(f"wrote {sys.argv[1]}/mlp_loss.png")
