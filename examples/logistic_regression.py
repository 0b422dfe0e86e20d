"""Logistic regression on a generated two-class problem, checked against scikit-learn.

Run: python examples/logistic_regression.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import jgd

rng = np.random.default_rng(0)
labels = rng.integers(0, 2, size=400)
X = rng.normal(size=(400, 2)) + 2.0 * labels[:, None]  # two overlapping blobs
data = jgd.Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(labels, jnp.float32))
train, test = jgd.data.split(data, (0.75, 0.25), key=jax.random.key(0))

model = jgd.models.logistic(2)
loss_fn = jgd.objective(model, jgd.losses.binary_cross_entropy, l2=0.01)
result = jgd.fit(
    loss_fn, model.init(None), train, optimizer=jgd.nesterov(0.5), epochs=2000, tol=1e-7
)
print(result)

probability = jax.nn.sigmoid(model.apply(result.params, test.X))
accuracy = float(jnp.mean((probability > 0.5) == (test.y > 0.5)))
print(f"test accuracy: {accuracy:.3f}")

try:
    from sklearn.linear_model import LogisticRegression
except ImportError:
    print("(install scikit-learn to compare with LogisticRegression)")
else:
    # sklearn minimises C * sum(log loss) + |w|^2 / 2: the same objective when C = 1 / (2 n l2).
    sk = LogisticRegression(C=1 / (2 * train.n_rows * 0.01), tol=1e-10, max_iter=10_000)
    sk.fit(np.asarray(train.X), np.asarray(train.y))
    print("jgd weights:    ", np.asarray(result.params["w"]), float(result.params["b"]))
    print("sklearn weights:", sk.coef_[0], sk.intercept_[0])
