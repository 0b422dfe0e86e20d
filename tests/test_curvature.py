import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from tests.helpers import hessian_top_eigenvalue, regression_problem


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_lr_bound_matches_numpy_for_mse_regression(scale):
    data = regression_problem(n=50, d=4)
    data = jgd.Dataset(data.X * scale + 1.0, data.y)  # uncentred: the bias couples in
    loss_fn = jgd.objective(jgd.models.linear(4), jgd.losses.mse)
    bound = jgd.lr_bound(loss_fn, loss_fn.model.init(None), data)
    expected = 2.0 / hessian_top_eigenvalue(data.X)
    np.testing.assert_allclose(bound, expected, rtol=1e-5)  # exact (dense) for 5 params


def test_lr_bound_includes_the_ridge_term():
    data = regression_problem(n=50, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3), jgd.losses.mse, l2=0.5)
    X1 = np.column_stack([np.asarray(data.X, np.float64), np.ones(50)])
    hessian = 2 / 50 * X1.T @ X1 + np.diag([1.0, 1.0, 1.0, 0.0])
    expected = 2 / np.linalg.eigvalsh(hessian)[-1]
    np.testing.assert_allclose(
        jgd.lr_bound(loss_fn, loss_fn.model.init(None), data), expected, rtol=1e-4
    )


def test_top_eigenvalue_of_a_nonquadratic_objective_matches_the_dense_hessian():
    data = regression_problem(n=30, d=2)
    model = jgd.models.mlp([2, 3, 1])
    loss_fn = jgd.objective(model, jgd.losses.mse)
    params = model.init(jax.random.key(0))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    hessian = jax.hessian(lambda f: loss_fn(unravel(f), data))(flat)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian, np.float64))
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    exact = jgd.curvature.top_hessian_eigenvalue(loss_fn, params, data)  # 13 params: dense
    np.testing.assert_allclose(exact, top, rtol=1e-5)
    iterated = jgd.curvature.top_hessian_eigenvalue(
        loss_fn, params, data, max_iterations=2000, rtol=1e-8, dense_limit=0
    )
    np.testing.assert_allclose(iterated, top, rtol=1e-3)


def test_power_iteration_path_agrees_with_numpy_for_mse_regression():
    data = regression_problem(n=50, d=4)
    loss_fn = jgd.objective(jgd.models.linear(4), jgd.losses.mse)
    estimate = jgd.curvature.top_hessian_eigenvalue(
        loss_fn, loss_fn.model.init(None), data, max_iterations=5000, rtol=1e-9, dense_limit=0
    )
    np.testing.assert_allclose(estimate, hessian_top_eigenvalue(data.X), rtol=1e-3)


def test_dense_limit_is_validated():
    data = regression_problem(n=10, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2), jgd.losses.mse)
    with pytest.raises(ValueError, match="dense_limit"):
        jgd.curvature.top_hessian_eigenvalue(
            loss_fn, loss_fn.model.init(None), data, dense_limit=-1
        )


def test_gd_just_below_the_bound_converges_and_above_diverges():
    data = regression_problem(n=40, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
    start = loss_fn.model.init(None)
    bound = jgd.lr_bound(loss_fn, start, data)
    below = jgd.fit(loss_fn, start, data, optimizer=jgd.gd(0.95 * bound), epochs=3000)
    above = jgd.fit(loss_fn, start, data, optimizer=jgd.gd(1.05 * bound), epochs=3000)
    exact = jgd.least_squares(data.X, data.y)
    np.testing.assert_allclose(below.params["w"], exact["w"], rtol=1e-3, atol=1e-3)
    assert above.status is jgd.Status.DIVERGED
    assert float(jnp.abs(below.params["b"] - exact["b"])) < 1e-3
