import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jgd
from jgd import losses

rng = np.random.default_rng(0)
PREDICTIONS = jnp.asarray(rng.normal(size=12), jnp.float32)
TARGETS = jnp.asarray(rng.normal(size=12), jnp.float32)
LABELS = jnp.asarray(rng.integers(0, 2, size=12), jnp.float32)


def test_losses_match_numpy_formulas():
    p, t = np.asarray(PREDICTIONS, np.float64), np.asarray(TARGETS, np.float64)
    r = p - t
    np.testing.assert_allclose(losses.mse(PREDICTIONS, TARGETS), np.mean(r**2), rtol=1e-6)
    np.testing.assert_allclose(losses.mae(PREDICTIONS, TARGETS), np.mean(np.abs(r)), rtol=1e-6)
    huber = np.where(np.abs(r) <= 0.5, 0.5 * r**2, 0.5 * (np.abs(r) - 0.25))
    np.testing.assert_allclose(
        losses.huber(PREDICTIONS, TARGETS, delta=0.5), np.mean(huber), rtol=1e-6
    )
    y = np.asarray(LABELS, np.float64)
    sigmoid = 1 / (1 + np.exp(-p))
    bce = -np.mean(y * np.log(sigmoid) + (1 - y) * np.log(1 - sigmoid))
    np.testing.assert_allclose(losses.binary_cross_entropy(PREDICTIONS, LABELS), bce, rtol=1e-5)


def test_binary_cross_entropy_is_stable_for_huge_logits():
    value = losses.binary_cross_entropy(jnp.array([1000.0, -1000.0]), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(value, 1000.0, rtol=1e-6)
    assert jnp.isfinite(
        jax.grad(losses.binary_cross_entropy)(jnp.array([1000.0]), jnp.array([0.0]))
    ).all()


@pytest.mark.parametrize(
    "loss",
    [
        losses.mse,
        losses.mae,
        functools.partial(losses.huber, delta=0.7),
        losses.binary_cross_entropy,
    ],
)
def test_loss_gradients_pass_finite_differences(loss):
    targets = LABELS if loss is losses.binary_cross_entropy else TARGETS
    with jax.enable_x64(True):
        p = jnp.asarray(PREDICTIONS, jnp.float64)
        t = jnp.asarray(targets, jnp.float64)
        # Random points are away from the kinks of mae/huber (|r| = 0, |r| = delta).
        check_grads(lambda q: loss(q, t), (p,), order=2, modes=["rev", "fwd"])


def test_l2_penalty_skips_biases_everywhere():
    params = [
        {"w": jnp.array([[1.0, 2.0]]), "b": jnp.array([7.0])},
        {"w": jnp.array([3.0]), "b": jnp.array(9.0)},
    ]
    np.testing.assert_allclose(losses.l2_penalty(params), 14.0)


def test_objective_adds_the_penalty_and_its_gradient():
    model = jgd.models.linear(2)
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    batch = jgd.Dataset(jnp.array([[1.0, 1.0], [2.0, 0.0]]), jnp.array([0.0, 1.0]))
    plain = jgd.objective(model, losses.mse)
    ridge = jgd.objective(model, losses.mse, l2=0.3)
    np.testing.assert_allclose(ridge(params, batch), plain(params, batch) + 0.3 * 5.0, rtol=1e-6)
    grad = jax.grad(ridge)(params, batch)
    grad_plain = jax.grad(plain)(params, batch)
    np.testing.assert_allclose(grad["w"], grad_plain["w"] + 0.6 * params["w"], rtol=1e-6)
    np.testing.assert_allclose(grad["b"], grad_plain["b"], rtol=1e-6)


def test_objective_validates():
    with pytest.raises(ValueError, match="l2"):
        jgd.objective(jgd.models.linear(1), losses.mse, l2=-1.0)
    with pytest.raises(TypeError, match="Model"):
        jgd.objective(lambda p, x: x, losses.mse)
