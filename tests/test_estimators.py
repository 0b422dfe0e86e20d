import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
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
        model="mlp",
        hidden=(32, 32),
        optimizer="adam",
        epochs=200,
        batch_size=32,
        tol=None,
        random_state=0,
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
    model = GDClassifier(epochs=300, tol=None).fit(X, np.array(["cold", "cold", "warm", "warm"]))
    assert list(model.classes_) == ["cold", "warm"]
    assert model.predict([[0.1], [2.9]]).tolist() == ["cold", "warm"]
    with pytest.raises(ValueError, match="Unknown label type"):
        GDClassifier().fit(X, [0.5, 1.5, 2.25, 2.0])


def test_pipeline_and_grid_search():
    data = regression_problem(n=120, d=3, noise=0.3)
    X, y = np.asarray(data.X) * 50 + 7, np.asarray(data.y)
    pipe = make_pipeline(StandardScaler(), GDRegressor(epochs=300, tol=None))
    assert pipe.fit(X, y).score(X, y) > 0.9
    search = GridSearchCV(
        make_pipeline(StandardScaler(), GDRegressor(epochs=200, tol=None, optimizer="momentum")),
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GDRegressor(learning_rate=50.0).fit(np.asarray(data.X), np.asarray(data.y))
    # Exactly one warning: jgd's own RuntimeWarning is folded into the ConvergenceWarning.
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "training diverged" in str(caught[0].message) and "2/L" in str(caught[0].message)
    assert model.status_ == "diverged"
    assert np.isfinite(model.predict(np.asarray(data.X))).all()


def test_predict_with_other_feature_count_raises():
    data = regression_problem(n=30, d=3)
    model = GDRegressor(epochs=10, tol=None).fit(np.asarray(data.X), np.asarray(data.y))
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 4)))


def _versus_sklearn(loader):
    """jgd (L-BFGS) and scikit-learn's LogisticRegression with the same objective."""
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    C = 1.0  # sklearn: C * sum(log-loss) + ||w||²/2  <=>  mean log-loss + ||w||² / (2 C n)
    ours = GDClassifier(optimizer="lbfgs", epochs=200, l2=1 / (2 * C * len(y_train)))
    ours.fit(X_train, y_train)
    theirs = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-8, max_iter=5000))
    theirs.fit(X_train, y_train)
    return ours, theirs, X_train, X_test, y_test


@pytest.fixture(scope="module")
def digits():
    return _versus_sklearn(load_digits)


@pytest.fixture(scope="module")
def breast_cancer():
    return _versus_sklearn(load_breast_cancer)


@pytest.mark.parametrize("problem", ["digits", "breast_cancer"])
def test_classifier_matches_sklearn_on_real_data(problem, request):
    ours, theirs, _, X_test, y_test = request.getfixturevalue(problem)
    assert ours.status_ == "converged"
    accuracy = accuracy_score(y_test, ours.predict(X_test))
    assert abs(accuracy - accuracy_score(y_test, theirs.predict(X_test))) <= 0.01
    assert accuracy > 0.94
    ours_loss = log_loss(y_test, ours.predict_proba(X_test), labels=ours.classes_)
    theirs_loss = log_loss(y_test, theirs.predict_proba(X_test))
    assert abs(ours_loss - theirs_loss) <= 0.05 * theirs_loss
    np.testing.assert_allclose(ours.predict_proba(X_test), theirs.predict_proba(X_test), atol=0.02)


def test_multiclass_shapes_and_coefficients_in_raw_units(digits):
    ours, theirs, _, X_test, _ = digits
    assert ours.classes_.tolist() == list(range(10))
    proba = ours.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ours.predict_log_proba(X_test), np.log(proba))
    logits = ours.decision_function(X_test)
    assert logits.shape == (len(X_test), 10)
    np.testing.assert_array_equal(ours.predict(X_test), ours.classes_[logits.argmax(axis=1)])
    assert ours.coef_.shape == (10, 64) and ours.intercept_.shape == (10,)
    np.testing.assert_allclose(X_test @ ours.coef_.T + ours.intercept_, logits, atol=1e-3)
    # The same model as scikit-learn's up to the softmax's free shift per row.
    sk = theirs[-1]
    scale = theirs[0].scale_
    np.testing.assert_allclose(
        ours.coef_ - ours.coef_.mean(axis=0), (sk.coef_ - sk.coef_.mean(axis=0)) / scale, atol=0.05
    )


def test_binary_coefficients_in_raw_units(breast_cancer):
    ours, _, _, X_test, _ = breast_cancer
    assert ours.coef_.shape == (1, 30) and ours.intercept_.shape == (1,)
    logits = ours.decision_function(X_test)
    assert logits.shape == (len(X_test),)
    np.testing.assert_allclose((X_test @ ours.coef_.T + ours.intercept_)[:, 0], logits, atol=1e-3)
    assert ours.predict_proba(X_test).shape == (len(X_test), 2)


def test_multiclass_string_and_float_labels():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    index = np.repeat(np.arange(3), 20)
    X = centers[index] + rng.normal(scale=0.5, size=(60, 2))
    # Strings, and integral floats as read from a CSV.
    for labels in (np.array(["sun", "fog", "rain"]), np.array([2.0, -1.0, 7.0])):
        model = GDClassifier(optimizer="lbfgs", epochs=100, l2=1e-3).fit(X, labels[index])
        np.testing.assert_array_equal(model.classes_, np.sort(labels))
        assert model.score(X, labels[index]) == 1.0
        assert model.predict(centers).tolist() == labels.tolist()


def test_regressor_coefficients_in_original_units():
    data = jgd.datasets.seattle_weather()
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y, np.float64)
    model = GDRegressor(optimizer="lbfgs", epochs=200).fit(X, y)
    exact = jgd.least_squares(data.X, data.y)
    assert model.coef_.shape == (X.shape[1],) and isinstance(model.intercept_, float)
    np.testing.assert_allclose(model.coef_, np.asarray(exact["w"]), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, float(exact["b"]), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(X @ model.coef_ + model.intercept_, model.predict(X), atol=1e-3)


def test_mlp_has_no_coefficients():
    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    for estimator in (GDRegressor, GDClassifier):
        model = estimator(model="mlp", hidden=(4,), epochs=5, tol=None, random_state=0).fit(X, y)
        assert not hasattr(model, "coef_") and not hasattr(model, "intercept_")
        with pytest.raises(AttributeError, match="model='mlp'"):
            model.coef_  # noqa: B018
        assert model.predict(X).shape == (4,)


def test_early_stopping_holds_out_a_fraction_and_keeps_the_best():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 30))
    y = X[:, 0] + rng.normal(size=80)
    model = GDRegressor(
        early_stopping=True, validation_fraction=0.25, n_iter_no_change=5, random_state=0
    ).fit(X, y)
    assert model.status_ == "early_stopped"
    val_loss = model.history_["val_loss"]
    best = int(np.argmin(val_loss))
    assert model.n_iter_ == best + 1 + 5
    # The held-out quarter (the split drawn from random_state) scores the kept parameters.
    seed = check_random_state(0).randint(2**31 - 1)
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.25, random_state=seed)
    assert len(y_val) == 20
    mse = np.mean(((model.predict(X_val) - y_val) / model.y_scale_) ** 2)
    np.testing.assert_allclose(mse, val_loss[best], rtol=1e-4)
    with pytest.raises(ValueError, match="validation_fraction"):
        GDRegressor(early_stopping=True, validation_fraction=1.5).fit(X, y)


def test_classifier_early_stopping_is_stratified():
    X, y = load_breast_cancer(return_X_y=True)
    model = GDClassifier(
        optimizer="adam", early_stopping=True, n_iter_no_change=3, epochs=2000, random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it stops early: no ConvergenceWarning
        model.fit(X, y)
    assert model.status_ == "early_stopped" and model.n_iter_ < 2000
    assert model.score(X, y) > 0.95


def test_warm_start_continues_the_previous_fit():
    data = regression_problem(n=60, d=3)
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y, np.float64)
    kwargs = dict(optimizer="adam", tol=None, random_state=0, batch_size=16)
    whole = GDRegressor(epochs=40, **kwargs).fit(X, y)
    warm = GDRegressor(epochs=20, warm_start=True, **kwargs).fit(X, y)
    x_mean = warm.x_mean_
    warm.fit(X, y)  # 20 more epochs
    assert warm.x_mean_ is x_mean and warm.history_["epoch"].tolist() == list(range(21, 41))
    np.testing.assert_allclose(warm.predict(X), whole.predict(X), rtol=1e-5, atol=1e-5)
    cold = GDRegressor(epochs=20, **kwargs).fit(X, y)
    first = cold.predict(X)
    np.testing.assert_array_equal(cold.set_params(epochs=20).fit(X, y).predict(X), first)
    with pytest.raises(ValueError, match="features"):
        warm.fit(X[:, :2], y)
    clf = GDClassifier(epochs=5, tol=None, warm_start=True).fit(X, (y > 0).astype(int))
    with pytest.raises(ValueError, match="classes"):
        clf.fit(X, np.where(y > 0, "a", "b"))


def test_convergence_warning_once_when_epochs_run_out():
    data = regression_problem(n=40, d=3)
    X, y = np.asarray(data.X), np.asarray(data.y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GDRegressor(epochs=3, learning_rate=1e-3).fit(X, y)
    assert model.status_ == "max_epochs"
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "did not converge" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GDRegressor(epochs=3, tol=None).fit(X, y)  # no tol: running out is what was asked


def test_random_state_accepts_what_sklearn_accepts():
    data = regression_problem(n=50, d=2)
    X, y = np.asarray(data.X), np.asarray(data.y)

    def predictions(random_state):
        model = GDRegressor(model="mlp", hidden=(8,), epochs=3, batch_size=8, tol=None)
        return model.set_params(random_state=random_state).fit(X, y).predict(X)

    np.testing.assert_array_equal(predictions(np.random.RandomState(0)), predictions(0))
    assert not np.allclose(predictions(0), predictions(1))
    assert np.isfinite(predictions(None)).all()
