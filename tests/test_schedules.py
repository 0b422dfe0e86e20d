"""jgd.schedules equal optax's schedules at fixed values, and sweep with traced parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from tests.helpers import regression_problem

COUNTS = jnp.arange(0, 260)

PAIRS = [
    (jgd.schedules.linear(1.0, 0.1, 100, 20), optax.linear_schedule(1.0, 0.1, 100, 20)),
    (jgd.schedules.linear(1.0, 0.1, 0), optax.linear_schedule(1.0, 0.1, 0)),
    (
        jgd.schedules.cosine_decay(0.5, 150, 0.1, 2.0),
        optax.cosine_decay_schedule(0.5, 150, 0.1, 2.0),
    ),
    (
        jgd.schedules.exponential_decay(1.0, 30, 0.5, 10, staircase=True, end_value=0.05),
        optax.exponential_decay(1.0, 30, 0.5, 10, staircase=True, end_value=0.05),
    ),
    (
        jgd.schedules.exponential_decay(1.0, 25, 1.5, end_value=4.0),
        optax.exponential_decay(1.0, 25, 1.5, end_value=4.0),
    ),
    (
        jgd.schedules.piecewise_constant(0.3, [50, 120], [0.1, 0.5]),
        optax.piecewise_constant_schedule(0.3, {50: 0.1, 120: 0.5}),
    ),
    (
        jgd.schedules.warmup_cosine_decay(0.0, 0.8, 40, 200, 0.01),
        optax.warmup_cosine_decay_schedule(0.0, 0.8, 40, 200, 0.01),
    ),
    (
        jgd.schedules.warmup_cosine_decay(0.1, 0.0, 40, 200),
        optax.warmup_cosine_decay_schedule(0.1, 0.0, 40, 200),
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_schedules_equal_optax_at_fixed_values(ours, theirs):
    np.testing.assert_allclose(
        jax.vmap(ours)(COUNTS), jnp.stack([theirs(c) for c in COUNTS]), rtol=2e-6, atol=1e-7
    )


def test_every_schedule_parameter_is_a_sweep_axis():
    """Peak (float) and warm-up steps (int) traced together: optax's own raises here."""
    data = regression_problem(n=40, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3))
    start = loss_fn.model.init(None)

    def factory(peak, warmup):
        return optax.sgd(jgd.schedules.warmup_cosine_decay(0.0, peak, warmup, 60, 0.001))

    def optax_factory(peak, warmup):
        return optax.sgd(optax.warmup_cosine_decay_schedule(0.0, peak, warmup, 60, 0.001))

    with pytest.raises(jax.errors.TracerBoolConversionError):
        jgd.sweep(
            loss_fn,
            start,
            data,
            optimizer=optax_factory,
            grid={"peak": [0.1, 0.2], "warmup": [5, 20]},
            epochs=3,
        )
    swept = jgd.sweep(
        loss_fn,
        start,
        data,
        optimizer=factory,
        grid={"peak": [0.1, 0.2], "warmup": [5, 20]},
        epochs=30,
        batch_size=10,
        key=jax.random.key(0),
    )
    for i in range(swept.n_members):
        config = swept.config(i)
        solo = jgd.fit(
            loss_fn,
            start,
            data,
            optimizer=optax_factory(**config),
            epochs=30,
            batch_size=10,
            key=jax.random.key(0),
        )
        np.testing.assert_allclose(swept.member(i).history.loss, solo.history.loss, rtol=1e-5)
