import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import jgd
from jgd.estimators import GDClassifier, GDRegressor
from tests.helpers import classification_problem, regression_problem


@pytest.mark.parametrize("estimator", [GDRegressor(epochs=150), GDClassifier(epochs=150)])
def test_scikit_learn_estimator_checks(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed
    assert len(results) > 40


def test_regressor_reaches_least_squares_in_original_units():
    data = jgd.datasets.seattle_weather()
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y, np.float64)
    model = GDRegressor(epochs=3000, tol=None).fit(X, y)
    exact = jgd.least_squares(data.X, data.y)
    expected = X @ np.asarray(exact["w"], np.float64) + float(exact["b"])
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-2)
    assert model.status_ == "max_epochs" and model.n_iter_ == 3000
    assert (
        len(model.history_["loss"]) == 3000
        and model.history_["loss"][-1] < model.history_["loss"][0]
    )
    assert 0.0 < model.learning_rate_


def test_regressor_tol_stops_early_and_reports_it():
    data = regression_problem(n=100, d=3)
    model = GDRegressor(tol=1e-5).fit(np.asarray(data.X), np.asarray(data.y))
    assert model.status_ == "converged" and model.n_iter_ < 1000


def test_regressor_mlp_and_minibatch():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 1))
    y = np.sin(2 * X[:, 0])
    model = GDRegressor(
        model="mlp", hidden=(32, 32), optimizer="adam", epochs=200, batch_size=32, random_state=0
    )
    assert model.fit(X, y).score(X, y) > 0.95


def test_classifier_matches_sklearn_logistic_regression():
    data = classification_problem(n=120, d=2)
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y).astype(int)
    ours = GDClassifier(l2=0.01, optimizer="nesterov", epochs=3000, tol=None).fit(X, y)
    # Same objective on the standardized features: C = 1 / (2 n l2).
    Xs = StandardScaler().fit_transform(X)
    theirs = LogisticRegression(C=1 / (2 * 120 * 0.01), tol=1e-10, max_iter=10_000).fit(Xs, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(Xs), atol=2e-3)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(Xs))
    assert ours.predict_proba(X).shape == (120, 2)
    np.testing.assert_allclose(ours.predict_proba(X).sum(axis=1), 1.0)


def test_classifier_keeps_label_values():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = GDClassifier(epochs=300).fit(X, np.array(["cold", "cold", "warm", "warm"]))
    assert list(model.classes_) == ["cold", "warm"]
    assert model.predict([[0.1], [2.9]]).tolist() == ["cold", "warm"]
    with pytest.raises(ValueError, match="Only binary"):
        GDClassifier().fit(X, [0, 1, 2, 2])


def test_pipeline_and_grid_search():
    data = regression_problem(n=120, d=3, noise=0.3)
    X, y = np.asarray(data.X) * 50 + 7, np.asarray(data.y)
    pipe = make_pipeline(StandardScaler(), GDRegressor(epochs=300))
    assert pipe.fit(X, y).score(X, y) > 0.9
    search = GridSearchCV(
        make_pipeline(StandardScaler(), GDRegressor(epochs=200, optimizer="momentum")),
        {"gdregressor__learning_rate": [1e-4, 0.05], "gdregressor__l2": [0.0, 0.5]},
        cv=3,
    )
    search.fit(X, y)
    assert search.best_params_ == {"gdregressor__learning_rate": 0.05, "gdregressor__l2": 0.0}
    assert search.best_score_ > 0.9


def test_get_and_set_params():
    model = GDRegressor(learning_rate=0.1)
    assert model.get_params()["learning_rate"] == 0.1
    assert model.set_params(epochs=5).epochs == 5


def test_divergence_warns_and_keeps_finite_params():
    data = regression_problem(n=50, d=2)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        model = GDRegressor(learning_rate=50.0).fit(np.asarray(data.X), np.asarray(data.y))
    assert model.status_ == "diverged"
    assert np.isfinite(model.predict(np.asarray(data.X))).all()


def test_predict_with_other_feature_count_raises():
    data = regression_problem(n=30, d=3)
    model = GDRegressor(epochs=10).fit(np.asarray(data.X), np.asarray(data.y))
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 4)))
