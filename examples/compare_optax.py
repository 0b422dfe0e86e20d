"""jgd's optimizers against optax, step by step, and a small timing side by side.

Run: python examples/compare_optax.py   (the full suite: jgd bench)
"""

import os
import time

import jax
import jax.numpy as jnp
import optax

import jgd

QUICK = bool(os.environ.get("JGD_EXAMPLE_QUICK"))  # the test suite: shorter runs
report = jgd.compare.optax_parity("weather", epochs=50 if QUICK else 200)
print(report.table())
assert report.passed

problem = jgd.problems.get("least_squares")
epochs = 200 if QUICK else 2000


def optax_loop():
    optimizer = optax.sgd(problem.learning_rate)

    @jax.jit
    def step(params, state):
        grads = jax.grad(problem.loss_fn)(params, problem.data)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params, state = problem.params, optimizer.init(problem.params)
    for _ in range(epochs):
        params, state = step(params, state)
    return jax.block_until_ready(params)


def jgd_fit():
    result = jgd.fit(
        problem.loss_fn,
        problem.params,
        problem.data,
        optimizer=jgd.gd(problem.learning_rate),
        epochs=epochs,
    )
    return jax.block_until_ready(result.params)


for name, function in (
    ("optax step in a Python loop", optax_loop),
    ("jgd.fit (one program)", jgd_fit),
):
    function()  # warm-up: compile
    start = time.perf_counter()
    params = function()
    print(f"{name:28s} {1e6 * (time.perf_counter() - start) / epochs:7.2f} µs/step")
print("same answer:", bool(jnp.allclose(optax_loop()["w"], jgd_fit()["w"], atol=1e-5)))
