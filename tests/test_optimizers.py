import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from tests.helpers import regression_problem

DATA = regression_problem(n=32, d=3)
MODEL = jgd.models.mlp([3, 4, 1])
LOSS = jgd.objective(MODEL, jgd.losses.mse)
START = MODEL.init(jax.random.key(0))


def trajectory(optimizer, steps=120):
    """Parameters after every step of a plain optax loop."""

    @jax.jit
    def step(params, state):
        grads = jax.grad(LOSS)(params, DATA)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state, path = START, optimizer.init(START), []
    for _ in range(steps):
        params, state = step(params, state)
        path.append(params)
    return path


SCHEDULE = optax.exponential_decay(0.05, transition_steps=10, decay_rate=0.7)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (jgd.gd(0.05), optax.sgd(0.05)),
        (jgd.momentum(0.05, beta=0.9), optax.sgd(0.05, momentum=0.9)),
        (jgd.nesterov(0.05, beta=0.8), optax.sgd(0.05, momentum=0.8, nesterov=True)),
        (jgd.gd(SCHEDULE), optax.sgd(SCHEDULE)),
        (jgd.momentum(SCHEDULE, beta=0.5), optax.sgd(SCHEDULE, momentum=0.5)),
        (jgd.gd(jnp.array(0.05)), optax.sgd(0.05)),
    ],
    ids=["gd", "momentum", "nesterov", "gd-schedule", "momentum-schedule", "gd-array-lr"],
)
def test_trajectories_equal_optax(ours, theirs):
    for a, b in zip(trajectory(ours), trajectory(theirs)):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7)


def test_optimizers_are_gradient_transformations_usable_in_optax_chains():
    chained = optax.chain(optax.clip_by_global_norm(1.0), jgd.momentum(0.1))
    assert isinstance(jgd.gd(0.1), optax.GradientTransformation)
    state = chained.init(START)
    updates, _ = chained.update(jax.grad(LOSS)(START, DATA), state, START)
    assert jax.tree.structure(updates) == jax.tree.structure(START)


def test_momentum_first_steps_by_hand():
    opt = jgd.momentum(0.1, beta=0.5)
    state = opt.init(jnp.zeros(1))
    u1, state = opt.update(jnp.array([1.0]), state)
    u2, state = opt.update(jnp.array([1.0]), state)
    np.testing.assert_allclose(u1, [-0.1])
    np.testing.assert_allclose(u2, [-0.15])  # v = 1 + 0.5 * 1


def test_learning_rate_is_a_traced_leaf_so_vmap_works():
    def first_update(lr):
        opt = jgd.gd(lr)
        return opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))[0]

    updates = jax.vmap(first_update)(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(updates[:, 0], [-0.2, -0.4])


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: jgd.gd(0.0), ValueError, "learning_rate"),
        (lambda: jgd.gd(-0.1), ValueError, "learning_rate"),
        (lambda: jgd.gd(float("nan")), ValueError, "finite"),
        (lambda: jgd.gd(float("inf")), ValueError, "finite"),
        (lambda: jgd.gd(True), TypeError, "bool"),
        (lambda: jgd.gd("0.1"), TypeError, "number"),
        (lambda: jgd.momentum(0.1, beta=1.0), ValueError, "beta"),
        (lambda: jgd.nesterov(0.1, beta=-0.1), ValueError, "beta"),
    ],
)
def test_bad_hyperparameters(build, error, message):
    with pytest.raises(error, match=message):
        build()
