"""The fused loss-and-gradient for linear MSE under a sweep's vmap."""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from jgd import _fused
from jgd.models import for_batched_params
from tests.helpers import regression_problem

MEMBERS = 6


def _members(d: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(MEMBERS, d)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=MEMBERS), jnp.float32),
    }


def _reference(loss_fn, params, data, l2=None):
    """Plain autodiff, vmapped: what every member would compute alone."""

    def one(p, strength):
        member_loss = loss_fn if strength is None else loss_fn._replace(l2=strength)
        return jax.value_and_grad(member_loss)(p, data)

    return jax.vmap(one, in_axes=(0, None if l2 is None else 0))(params, l2)


def _fused_batched(loss_fn, params, data, l2=None):
    def one(p, strength):
        member_loss = loss_fn if strength is None else loss_fn._replace(l2=strength)
        return _fused.value_and_grad(member_loss)(p, data)

    return jax.jit(jax.vmap(one, in_axes=(0, None if l2 is None else 0)))(params, l2)


def _assert_close(got, expected):
    (loss, grads), (loss_ref, grads_ref) = got, expected
    np.testing.assert_allclose(loss, loss_ref, rtol=2e-6)
    for leaf, ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(leaf, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("member_major", [False, True])
def test_fused_batched_loss_and_gradient_equal_autodiff(member_major):
    data = regression_problem(n=37, d=4)
    model = jgd.models.linear(4)
    loss_fn = jgd.objective(for_batched_params(model) if member_major else model)
    params = _members(4)
    _assert_close(_fused_batched(loss_fn, params, data), _reference(loss_fn, params, data))


def test_fused_matches_numpy_formulas():
    data = regression_problem(n=23, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3))
    params = _members(3, seed=1)
    loss, grads = _fused_batched(loss_fn, params, data)
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y, np.float64)
    for i in range(MEMBERS):
        w, b = np.asarray(params["w"][i], np.float64), float(params["b"][i])
        residual = X @ w + b - y
        np.testing.assert_allclose(loss[i], np.mean(residual**2), rtol=1e-5)
        np.testing.assert_allclose(grads["w"][i], 2 / len(y) * X.T @ residual, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grads["b"][i], 2 / len(y) * residual.sum(), rtol=1e-4, atol=1e-5)


def test_fused_with_swept_l2_adds_the_penalty():
    data = regression_problem(n=30, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3), l2=0.1)
    params = _members(3)
    l2 = jnp.linspace(0.0, 1.0, MEMBERS)
    _assert_close(_fused_batched(loss_fn, params, data, l2), _reference(loss_fn, params, data, l2))


def test_fused_with_shared_bias_and_batched_data_fall_back_correctly():
    data = regression_problem(n=20, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    params = _members(2)
    # Bias shared by all members (unbatched b).
    shared_b = jax.jit(
        jax.vmap(lambda w: _fused.value_and_grad(loss_fn)({"w": w, "b": jnp.float32(0.3)}, data))
    )(params["w"])
    expected = jax.vmap(
        lambda w: jax.value_and_grad(loss_fn)({"w": w, "b": jnp.float32(0.3)}, data)
    )(params["w"])
    _assert_close(shared_b, expected)
    # Data batched as well (one dataset per member): the plain rule, vmapped.
    X = jnp.stack([data.X * (i + 1) for i in range(MEMBERS)])
    batched = jax.vmap(lambda p, x: _fused.value_and_grad(loss_fn)(p, jgd.Dataset(x, data.y)))
    plain = jax.vmap(lambda p, x: jax.value_and_grad(loss_fn)(p, jgd.Dataset(x, data.y)))
    _assert_close(batched(params, X), plain(params, X))


def test_a_single_run_without_the_native_kernel_traces_plain_autodiff():
    data = regression_problem(n=25, d=6)
    loss_fn = jgd.objective(jgd.models.linear(6))
    params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.float32(0.5)}
    loss, grads = jax.jit(_fused.value_and_grad(loss_fn, native=False))(params, data)
    loss_ref, grads_ref = jax.jit(jax.value_and_grad(loss_fn))(params, data)
    assert float(loss) == float(loss_ref)  # the same ops, so the same bits
    for leaf, ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_array_equal(leaf, ref)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_few_features_are_written_column_by_column(d):
    data = regression_problem(n=31, d=d)
    loss_fn = jgd.objective(jgd.models.linear(d))
    params = {"w": jnp.linspace(-1.0, 1.0, d), "b": jnp.float32(0.5)}
    value_and_grad = _fused.value_and_grad(loss_fn)
    names = [eqn.primitive.name for eqn in _equations(jax.make_jaxpr(value_and_grad)(params, data))]
    assert "custom_vmap_call" in names and "dot_general" not in names
    loss, grads = jax.jit(value_and_grad)(params, data)
    X, y = np.asarray(data.X, np.float64), np.asarray(data.y, np.float64)
    residual = X @ np.asarray(params["w"], np.float64) + 0.5 - y
    np.testing.assert_allclose(loss, np.mean(residual**2), rtol=1e-6)
    np.testing.assert_allclose(grads["w"], 2 / 31 * X.T @ residual, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["b"], 2 / 31 * residual.sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss_fn",
    [
        jgd.objective(jgd.models.linear(2), jgd.losses.huber),
        jgd.objective(jgd.models.mlp([2, 3, 1])),
        jgd.objective(jgd.models.linear(2), functools.partial(jgd.losses.huber, delta=2.0)),
        lambda p, batch: jnp.mean((batch.X @ p["w"] + p["b"] - batch.y) ** 2),
    ],
    ids=["huber", "mlp", "partial-loss", "user-function"],
)
def test_other_objectives_use_plain_autodiff(loss_fn):
    assert not _fused._is_linear_mse(loss_fn)
    data = regression_problem(n=20, d=2)
    params = {"w": jnp.ones(2), "b": jnp.float32(0.0)}
    if isinstance(loss_fn, jgd.losses.Objective):
        params = loss_fn.model.init(jax.random.key(0))
    loss, _ = _fused.value_and_grad(loss_fn)(params, data)
    assert float(loss) == float(loss_fn(params, data))


def test_the_sweep_program_uses_the_rows_by_members_layout():
    data = regression_problem(n=29, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3))
    params = _members(3)
    jaxpr = jax.make_jaxpr(jax.vmap(_fused.value_and_grad(loss_fn), in_axes=(0, None)))(
        params, data
    )
    dots = [eqn for eqn in _equations(jaxpr) if eqn.primitive.name == "dot_general"]
    shapes = sorted(tuple(eqn.outvars[0].aval.shape) for eqn in dots)
    # One product for the residuals (rows, members) and one for every gradient.
    assert shapes == [(3 + 1, MEMBERS), (29, MEMBERS)]


def _equations(closed_jaxpr):
    """Every equation of a jaxpr, inner jaxprs (jit, custom_vmap...) included."""
    found = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            found.append(eqn)
            for inner in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(inner)

    visit(closed_jaxpr.jaxpr)
    return found
