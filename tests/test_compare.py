import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
import jgd.cli
from jgd import compare, problems


@pytest.mark.parametrize("name", problems.names())
def test_builtin_pairs_agree_on_every_problem(name):
    report = compare.optax_parity(name, epochs=30)
    assert report.passed, report.table()
    assert len(report.rows) == 3
    for row in report.rows:
        assert row.max_param_diff <= row.tolerance
        np.testing.assert_allclose(row.jgd_loss, row.optax_loss, rtol=1e-5)


def test_minibatch_pairs_see_the_same_batches():
    report = compare.optax_parity("least_squares", epochs=3, batch_size=32)
    assert report.passed and report.rows[0].max_param_diff == 0.0


def test_a_wrong_twin_fails():
    pairs = {"gd vs a slightly different rate": (jgd.gd(0.1), optax.sgd(0.1001))}
    report = compare.optax_parity("least_squares", pairs, epochs=50)
    assert not report.passed
    assert report.rows[0].max_param_diff > report.rows[0].tolerance
    assert "FAIL" in report.table()


def test_user_pairs_with_other_optax_optimizers():
    pairs = {"adam twin": (optax.adam(0.01), optax.adam(0.01))}
    report = compare.optax_parity("rosenbrock", pairs, epochs=20)
    assert report.passed and report.rows[0].max_param_diff == 0.0


def test_tolerance_scales_with_dtype_and_steps():
    assert compare.tolerance(jnp.float32, 100, 1.0) == pytest.approx(64 * 2**-23 * 10)
    assert compare.tolerance(jnp.float32, 100, 5.0) == pytest.approx(
        5 * compare.tolerance(jnp.float32, 100, 1.0)
    )
    assert compare.tolerance(np.float64, 100, 1.0) < 1e-12


@pytest.mark.parametrize("name", ["weather", "least_squares", "quadratic_bowl", "rosenbrock"])
def test_problem_solutions_are_stationary_points(name):
    problem = problems.get(name)
    grad = jax.grad(problem.loss_fn)(problem.solution, problem.data)
    for leaf in jax.tree.leaves(grad):
        np.testing.assert_allclose(leaf, 0.0, atol=1e-3)


def test_problems_reach_their_solutions_with_plain_gd():
    for name in ["least_squares", "quadratic_bowl"]:
        problem = problems.get(name)
        result = jgd.fit(
            problem.loss_fn,
            problem.params,
            problem.data,
            optimizer=jgd.gd(problem.learning_rate),
            epochs=500,
        )
        for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(problem.solution)):
            np.testing.assert_allclose(a, b, atol=1e-3)


def test_unknown_problem():
    with pytest.raises(ValueError, match="unknown problem"):
        problems.get("nope")


def test_compare_command_prints_every_problem_and_exits_zero(capsys):
    assert jgd.cli.main(["compare", "--epochs", "10"]) == 0
    out = capsys.readouterr().out
    for name in problems.names():
        assert name in out
    assert "all pairs agree" in out


def test_compare_command_exits_nonzero_on_failure(capsys, monkeypatch):
    def broken(learning_rate, beta=0.9):
        return {"broken": (jgd.gd(learning_rate), optax.sgd(learning_rate * 1.01))}

    monkeypatch.setattr(compare, "default_pairs", broken)
    assert jgd.cli.main(["compare", "--epochs", "30"]) == 1
    assert "FAILED" in capsys.readouterr().out
