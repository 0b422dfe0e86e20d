import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

import jgd
from tests.helpers import regression_problem


def test_least_squares_matches_lstsq_and_sklearn():
    data = regression_problem(n=50, d=4)
    exact = jgd.least_squares(data.X, data.y)
    X = np.asarray(data.X, np.float64)
    y = np.asarray(data.y, np.float64)
    solution = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0]
    np.testing.assert_allclose(exact["w"], solution[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exact["b"], solution[-1], rtol=1e-5, atol=1e-6)
    sk = LinearRegression().fit(X, y)
    np.testing.assert_allclose(exact["w"], sk.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("l2", [0.01, 0.5])
def test_ridge_matches_sklearn_with_alpha_n_times_l2(l2):
    data = regression_problem(n=40, d=3)
    exact = jgd.least_squares(data.X, data.y, l2=l2)
    sk = Ridge(alpha=40 * l2).fit(np.asarray(data.X, np.float64), np.asarray(data.y, np.float64))
    np.testing.assert_allclose(exact["w"], sk.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exact["b"], sk.intercept_, rtol=1e-5, atol=1e-6)


def test_least_squares_is_a_stationary_point_of_the_objective():
    import jax

    data = regression_problem(n=40, d=3)
    exact = jgd.least_squares(data.X, data.y, l2=0.2)
    grad = jax.grad(jgd.objective(jgd.models.linear(3), jgd.losses.mse, l2=0.2))(exact, data)
    for leaf in jax.tree.leaves(grad):
        np.testing.assert_allclose(leaf, 0.0, atol=1e-4)


def test_least_squares_validates():
    with pytest.raises(ValueError, match="l2"):
        jgd.least_squares(np.ones((3, 1)), np.ones(3), l2=-1)
    with pytest.raises(ValueError, match="NaN"):
        jgd.least_squares(np.array([[1.0], [np.nan]]), np.ones(2))
