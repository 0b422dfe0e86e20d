"""Classification and regression metrics, and softmax regression, against scikit-learn."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import accuracy_score, log_loss, r2_score

import jgd


def test_metrics_equal_scikit_learn_binary_multiclass_and_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    labels = rng.integers(0, 4, size=40)
    model = jgd.models.softmax(3, 4)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": jnp.zeros(4)}
    data = jgd.Dataset(jnp.asarray(X), jnp.asarray(labels, jnp.int32))
    logits = np.asarray(model.apply(params, data.X), np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert float(jgd.metrics.accuracy(model)(params, data)) == pytest.approx(
        accuracy_score(labels, logits.argmax(axis=1))
    )
    assert float(jgd.metrics.log_loss(model)(params, data)) == pytest.approx(
        log_loss(labels, probabilities, labels=range(4)), rel=1e-5
    )
    binary = jgd.models.logistic(3)
    bparams = {"w": params["w"][:, 0], "b": jnp.asarray(0.1)}
    y01 = (labels % 2).astype(np.float32)
    bdata = jgd.Dataset(jnp.asarray(X), jnp.asarray(y01))
    z = np.asarray(binary.apply(bparams, bdata.X), np.float64)
    assert float(jgd.metrics.accuracy(binary)(bparams, bdata)) == pytest.approx(
        accuracy_score(y01, z > 0)
    )
    assert float(jgd.metrics.log_loss(binary)(bparams, bdata)) == pytest.approx(
        log_loss(y01, 1 / (1 + np.exp(-z))), rel=1e-5
    )
    linear = jgd.models.linear(3)
    lparams = {"w": jnp.array([1.0, -1.0, 0.5]), "b": jnp.asarray(0.2)}
    target = X @ np.array([0.9, -1.1, 0.4]) + rng.normal(size=40) * 0.1
    ldata = jgd.Dataset(jnp.asarray(X), jnp.asarray(target, jnp.float32))
    predicted = np.asarray(linear.apply(lparams, ldata.X))
    assert float(jgd.metrics.r2(linear)(lparams, ldata)) == pytest.approx(
        r2_score(target, predicted), rel=1e-4
    )


def test_softmax_cross_entropy_integer_float_and_one_hot_labels_agree():
    logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = jnp.array([0, 2])
    expected = -np.mean(
        [np.log(np.exp(row[k]) / np.exp(row).sum()) for row, k in zip(np.asarray(logits), [0, 2])]
    )
    for targets in (labels, labels.astype(jnp.float32), jnp.eye(3)[labels]):
        value = jgd.losses.softmax_cross_entropy(logits, targets)
        assert float(value) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="integer labels of shape"):
        jgd.losses.softmax_cross_entropy(logits, jnp.zeros((2, 2, 1)))


def test_softmax_regression_on_digits_matches_scikit_learn():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rows = np.random.default_rng(0).permutation(len(y))
    train, test = rows[:1400], rows[1400:]
    model = jgd.models.softmax(64, 10)
    C = 1.0
    loss_fn = jgd.objective(model, jgd.losses.softmax_cross_entropy, l2=1 / (2 * C * len(train)))
    data = jgd.Dataset(jnp.asarray(X[train], jnp.float32), jnp.asarray(y[train], jnp.int32))
    test_data = jgd.Dataset(jnp.asarray(X[test], jnp.float32), jnp.asarray(y[test], jnp.int32))
    result = jgd.fit(
        loss_fn,
        model.init(None),
        data,
        optimizer=optax.lbfgs(),
        epochs=300,
        tol=1e-8,
        val_data=test_data,
        metrics={"accuracy": jgd.metrics.accuracy(model)},
    )
    reference = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(X[train], y[train])
    jgd_accuracy = float(result.history.val_metrics["accuracy"][-1])
    sk_accuracy = reference.score(X[test], y[test])
    assert abs(jgd_accuracy - sk_accuracy) <= 0.01
    jgd_log_loss = float(jgd.metrics.log_loss(model)(result.params, test_data))
    sk_log_loss = log_loss(y[test], reference.predict_proba(X[test]), labels=range(10))
    assert jgd_log_loss == pytest.approx(sk_log_loss, rel=0.05)
