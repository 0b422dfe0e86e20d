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


def test_lbfgs_follows_optax_documented_loop_step_for_step():
    """optax's L-BFGS example loop (value_and_grad_from_state, the zoom line search)."""
    data = regression_problem(n=60, d=4)
    loss_fn = jgd.objective(jgd.models.linear(4))
    start = loss_fn.model.init(None)
    result = jgd.fit(loss_fn, start, data, optimizer=optax.lbfgs(), epochs=8, record_params=True)

    def objective(params):
        return loss_fn(params, data)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    @jax.jit
    def optax_step(params, state):  # the documented loop's step, jitted as in its example
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=objective
        )
        return optax.apply_updates(params, updates), state, value

    params, state = start, solver.init(start)
    for step in range(8):
        params, state, value = optax_step(params, state)
        np.testing.assert_allclose(result.history.loss[step], value, rtol=1e-5)
        np.testing.assert_allclose(
            result.history.params["w"][step], params["w"], rtol=1e-4, atol=1e-6
        )
    exact = jgd.least_squares(data.X, data.y)
    np.testing.assert_allclose(result.params["w"], exact["w"], atol=1e-4)


@pytest.mark.parametrize(
    "optimizer",
    [
        optax.polyak_sgd(max_learning_rate=1.0),
        optax.chain(optax.adam(0.1), optax.contrib.reduce_on_plateau(patience=5, factor=0.5)),
        optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(15)),
    ],
    ids=["polyak_sgd", "reduce_on_plateau", "backtracking"],
)
def test_optimizers_taking_extra_args_train_full_batch_and_minibatch(optimizer):
    data = regression_problem(n=48, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3))
    start_loss = float(loss_fn(loss_fn.model.init(None), data))
    for batch_size in (None, 16):
        result = jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            data,
            optimizer=optimizer,
            epochs=30,
            batch_size=batch_size,
            key=0,
        )
        assert result.status is jgd.Status.MAX_EPOCHS
        assert float(loss_fn(result.params, data)) < 0.2 * start_loss


def test_lbfgs_logistic_regression_matches_sklearn_on_breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    C = 1.0
    reference = LogisticRegression(C=C, solver="lbfgs", max_iter=5000, tol=1e-10).fit(X, y)
    data = jgd.Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))
    # scikit-learn minimises C * sum(log-loss) + |w|^2 / 2: the same as mean log-loss + l2 |w|^2.
    loss_fn = jgd.objective(
        jgd.models.logistic(30), jgd.losses.binary_cross_entropy, l2=1 / (2 * C * len(y))
    )
    result = jgd.fit(
        loss_fn, loss_fn.model.init(None), data, optimizer=optax.lbfgs(), epochs=200, tol=1e-9
    )
    np.testing.assert_allclose(result.params["w"], reference.coef_[0], atol=2e-3, rtol=1e-2)
    np.testing.assert_allclose(result.params["b"], reference.intercept_[0], atol=2e-3)
    predicted = np.asarray(jgd.models.logistic(30).apply(result.params, data.X)) > 0
    assert (predicted == reference.predict(X).astype(bool)).mean() >= 0.995
