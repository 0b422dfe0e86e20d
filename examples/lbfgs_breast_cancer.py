"""L-BFGS (optax.lbfgs with its zoom line search) on scikit-learn's breast-cancer data,
against scikit-learn's LogisticRegression(solver="lbfgs").

jgd passes optax's extra arguments (value, grad, value_fn) to the optimizer, so every optax
transform runs inside the compiled training loop; one full-batch epoch is one L-BFGS step.

Run: python examples/lbfgs_breast_cancer.py   (needs scikit-learn)
"""

import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import jgd

X, y = load_breast_cancer(return_X_y=True)
data = jgd.Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))
train, test = jgd.data.split(data, (0.8, 0.2))
train, test, stats = jgd.data.standardize(train, test)

# scikit-learn minimises C * sum(log-loss) + |w|^2 / 2: mean log-loss + l2 |w|^2 with
# l2 = 1 / (2 C n).
C = 1.0
model = jgd.models.logistic(train.n_features)
loss_fn = jgd.objective(model, jgd.losses.binary_cross_entropy, l2=1 / (2 * C * train.n_rows))
result = jgd.fit(loss_fn, model.init(None), train, optimizer=optax.lbfgs(), epochs=200, tol=1e-9)
print(result)

reference = LogisticRegression(C=C, solver="lbfgs", max_iter=10_000, tol=1e-10)
reference.fit(np.asarray(train.X), np.asarray(train.y))


def accuracy(predicted, y):
    return float(np.mean(predicted == (np.asarray(y) > 0.5)))


jgd_test = accuracy(np.asarray(model.apply(result.params, test.X)) > 0, test.y)
sk_test = accuracy(reference.predict(np.asarray(test.X)) > 0.5, test.y)
gap = float(np.max(np.abs(np.asarray(result.params["w"]) - reference.coef_[0])))
print(f"L-BFGS steps: {result.epochs_run} ({result.status})")
print(f"test accuracy: jgd {jgd_test:.3f}, scikit-learn {sk_test:.3f}")
print(f"largest weight difference from scikit-learn: {gap:.2e}")
