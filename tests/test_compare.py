import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
import jgd.cli
from jgd import compare, problems


def _json_out(capsys, argv, status=0):
    assert jgd.cli.main(argv) == status
    return json.loads(capsys.readouterr().out)


def test_default_command_runs_jgds_three_optimizers_on_every_problem(capsys, monkeypatch):
    calls = []

    def spy(problem, pairs, **settings):
        # Record what the command asked for; the real runs are checked below.
        calls.append((problem.name, list(pairs), settings))
        rows = [
            compare.ParityRow(problem.name, name, settings["epochs"], 0.0, 1.0, 0.5, 0.5, True)
            for name in pairs
        ]
        return compare.ParityReport(rows)

    monkeypatch.setattr(compare, "optax_parity", spy)
    report = _json_out(capsys, ["compare", "--epochs", "7", "--json"])
    assert [name for name, _, _ in calls] == problems.names()
    for _, pairs, settings in calls:
        assert pairs == list(compare.default_pairs(0.1))
        assert settings == {"epochs": 7, "batch_size": None, "repeats": 5}
    assert report["passed"] is True and len(report["rows"]) == 4 * len(problems.names())
    assert report["rows"][0]["jgd_seconds"] is None  # the spy's rows, untimed, as JSON null


def test_jgds_optimizers_follow_their_optax_twins_with_timing(capsys):
    argv = ["compare", "--problem", "weather", "--epochs", "10", "--repeats", "2", "--json"]
    report = _json_out(capsys, argv)
    assert report["passed"] is True and report["repeats"] == 2
    assert [row["pair"] for row in report["rows"]] == list(compare.default_pairs(0.1))
    for row in report["rows"]:
        assert row["problem"] == "weather"
        assert row["passed"] and row["max_param_diff"] <= row["tolerance"]
        np.testing.assert_allclose(row["jgd_loss"], row["optax_loss"], rtol=1e-5)
        assert row["jgd_seconds"] > 0 and row["optax_seconds"] > 0


def test_sgd_named_on_the_command_line_follows_the_optax_loop_on_shuffled_batches(capsys):
    argv = ["compare", "--optimizer", "sgd", "--problem", "least_squares", "--epochs", "5"]
    report = _json_out(capsys, [*argv, "--batch-size", "64", "--lr", "0.05", "--json"])
    assert report["passed"] is True and report["repeats"] == 5 and report["batch_size"] == 64
    (row,) = report["rows"]
    assert row["pair"] == "optax.sgd"
    # Mini-batches in another order would leave the loop ~1e-2 away, far above this.
    assert row["passed"] and row["max_param_diff"] <= row["tolerance"] < 1e-4
    assert row["jgd_seconds"] > 0 and row["optax_seconds"] > 0


def test_a_mismatched_pair_is_reported_as_a_mismatch_in_json(capsys, monkeypatch):
    def broken(learning_rate, beta=0.9):
        return {"broken": (jgd.gd(learning_rate), optax.sgd(learning_rate * 1.01))}

    monkeypatch.setattr(compare, "default_pairs", broken)
    argv = ["compare", "--problem", "least_squares", "--epochs", "30", "--repeats", "1"]
    report = _json_out(capsys, [*argv, "--json"], status=1)
    (row,) = report["rows"]
    assert report["passed"] is False and row["passed"] is False
    assert row["max_param_diff"] > row["tolerance"]
    assert jgd.cli.main(argv) == 1
    assert "FAILED" in capsys.readouterr().out


def test_text_output_and_exit_zero(capsys):
    argv = ["compare", "--problem", "quadratic_bowl", "--optimizer", "gd", "--optimizer", "adam"]
    assert jgd.cli.main([*argv, "--epochs", "10", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "quadratic_bowl" in out and "gd / optax.sgd" in out and "optax.adam" in out
    assert "all pairs agree" in out
    assert "optax loop s" in out


def test_an_unknown_optimizer_name_is_one_line_and_exit_one(capsys):
    assert jgd.cli.main(["compare", "--optimizer", "nope", "--problem", "least_squares"]) == 1
    assert "unknown optimizer 'nope'" in capsys.readouterr().err


def test_python_pairs_keep_working_and_can_be_timed():
    pairs = {"gd vs a slightly different rate": (jgd.gd(0.1), optax.sgd(0.1001))}
    report = compare.optax_parity("least_squares", pairs, epochs=50)
    assert not report.passed
    assert report.rows[0].max_param_diff > report.rows[0].tolerance
    assert "FAIL" in report.table() and report.rows[0].jgd_seconds is None
    pairs = {"adam twin": (optax.adam(0.01), optax.adam(0.01))}
    report = compare.optax_parity("rosenbrock", pairs, epochs=20, repeats=5)
    assert report.passed and report.rows[0].max_param_diff <= report.rows[0].tolerance
    assert report.rows[0].jgd_seconds > 0 and report.rows[0].optax_seconds > 0
    assert json.loads(json.dumps(report.to_dict()))["passed"] is True


def test_named_pairs_and_optimizer_names():
    pairs = compare.named_pairs(["nesterov", "rmsprop"], 0.1, beta=0.5)
    assert list(pairs) == ["nesterov / optax.sgd(nesterov)", "optax.rmsprop"]
    ours, theirs = pairs["optax.rmsprop"]
    assert ours is theirs
    assert isinstance(compare.optimizer_by_name("adamw", 1e-3), optax.GradientTransformation)
    for bad in ("nope", "apply_updates", "_private"):
        with pytest.raises(ValueError, match="unknown optimizer"):
            compare.optimizer_by_name(bad, 0.1)


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


def test_lbfgs_in_jgd_fit_follows_optax_documented_loop():
    report = compare.optax_parity(
        "quadratic_bowl", pairs={"lbfgs": (optax.lbfgs(), optax.lbfgs())}, epochs=30
    )
    assert report.passed and report.rows[0].max_param_diff <= report.rows[0].tolerance
