import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
import jgd.cli
from jgd import bench
from jgd._idioms import Run, optax_loop, optax_scan
from jgd.bench._suite import _ratios

METHODS = ["jgd.fit", "optax python loop", "optax lax.scan"]


def _user_workload():
    """A loss jgd knows nothing about: a two-parameter cubic fit, written by hand."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)).astype(np.float32)
    y = (X[:, 0] ** 3 - X[:, 1]).astype(np.float32)

    def loss_fn(params, batch):
        prediction = params["a"] * batch.X[:, 0] ** 3 + params["b"] * batch.X[:, 1]
        return jnp.mean((prediction - batch.y) ** 2)

    start = {"a": jnp.float32(0.0), "b": jnp.float32(0.0)}
    return loss_fn, start, jgd.Dataset(jnp.asarray(X), jnp.asarray(y))


def _check_machine(info):
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert info["jax"] == jax.__version__ and info["jaxlib"]
    assert (info["accelerator"] is None) == (jax.default_backend() == "cpu")


def test_time_workload_times_a_user_workload_three_ways():
    loss_fn, start, data = _user_workload()
    timing = bench.time_workload(
        loss_fn, start, data, optax.sgd(0.01), epochs=6, batch_size=16, repeats=5
    )
    assert [m.method for m in timing.methods] == METHODS
    # 50 rows in batches of 16: three full batches and a short one, every epoch.
    assert (timing.rows, timing.features, timing.batch_size, timing.epochs) == (50, 2, 16, 6)
    assert timing.steps == 6 * 4
    assert timing.bytes_per_epoch == 50 * 3 * 4
    for m in timing.methods:
        assert m.seconds.repeats == 5
        assert 0 < m.seconds.min <= m.seconds.median <= m.seconds.max
        assert m.compile_s is not None and m.compile_s > 0
        assert m.steps_per_s == pytest.approx(timing.steps / m.seconds.median)
        assert m.samples_per_s == pytest.approx(6 * 50 / m.seconds.median)
        assert m.gb_per_s == pytest.approx(6 * timing.bytes_per_epoch / m.seconds.median / 1e9)
    # No FLOP model given: XLA's count of the optax step.
    assert timing.flops_source == "cost_analysis" and timing.flops_per_step > 0
    assert timing.peaks.read_gb_per_s > 0 and timing.peaks.matmul_gflop_per_s > 0
    assert timing.peaks.read_bytes >= 64 * 2**20
    record = json.loads(json.dumps(timing.to_dict()))
    _check_machine(record["machine"])
    assert [m["seconds"]["repeats"] for m in record["methods"]] == [5, 5, 5]
    assert "median of 5" in timing.table() and "GB/s" in timing.table()


def test_the_three_methods_do_the_same_work():
    # Same start, same shuffled mini-batches (and short last batch): same end.
    loss_fn, start, data = _user_workload()
    run = Run(loss_fn, start, data, optax.adam(0.05), 3, 16, jax.random.key(1))
    path = optax_loop(run, keep_path=True).call()
    assert len(path) == 3
    ours = jgd.fit(loss_fn, start, data, optimizer=run.optimizer, epochs=3, batch_size=16,
                   key=run.key).params  # fmt: skip
    for params in (optax_loop(run).call(), optax_scan(run).call(), ours):
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(path[-1])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(path[-1]["a"] - start["a"])) > 0.01  # it did move


def test_cli_workload_softmax_writes_its_sizes_and_machine_as_fields(tmp_path, capsys):
    out = tmp_path / "softmax.json"
    args = ["bench", "--workload", "softmax", "--rows", "200", "--features", "3"]
    args += ["--classes", "4", "--batch-size", "64", "--epochs", "3", "--json", str(out)]
    assert jgd.cli.main(args) == 0
    assert "softmax" in capsys.readouterr().out
    record = json.loads(out.read_text())
    for field, value in {"rows": 200, "features": 3, "batch_size": 64, "epochs": 3}.items():
        assert type(record[field]) is int and record[field] == value
    assert record["steps"] == 3 * 4  # 200 rows: three batches of 64 and one of 8
    # The FLOP model of softmax regression: 4 · batch · features · classes a step.
    assert record["flops_source"] == "given" and record["flops_per_step"] == 4 * 64 * 3 * 4
    assert [m["method"] for m in record["methods"]] == METHODS
    for m in record["methods"]:
        seconds = m["seconds"]
        assert seconds["repeats"] == 5
        assert seconds["min"] <= seconds["median"] <= seconds["max"]
        assert m["compile_s"] > 0 and m["gflop_per_s"] > 0
    _check_machine(record["machine"])
    assert record["peaks"]["read_gb_per_s"] > 0


def test_builtin_workloads_have_finite_losses_and_gradients():
    for kind in bench.BUILTIN_WORKLOADS:
        workload = bench.builtin(kind, 64, 3, classes=3, hidden=(8,))
        value_and_grad = jax.jit(jax.value_and_grad(workload.loss_fn))  # one compile, not per op
        loss, grads = value_and_grad(workload.params, workload.data)
        assert np.isfinite(float(loss)), kind
        assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads)), kind
        assert workload.flops_per_step > 0


def test_suite_at_tiny_sizes_reports_median_and_spread(tmp_path):
    tiny = bench.Sizes(linear=((300, 2, 20),), sweep=(2, 5), mlp_sweep=(2, 1), mlp=(256, 1))
    report = bench.run(only=["linear"], sizes=tiny, repeats=5)
    rows = report["results"]
    methods = [row["method"] for row in rows]
    assert methods[:4] == [*METHODS, "numpy"]
    for row in rows:
        low, high = row["value_range"]
        assert row["repeats"] == 5 and low <= row["value"] <= high
        assert type(row["rows"]) is int and row["rows"] == 300
    timed = [row for row in rows if row["metric"] == "us_per_step"]
    assert all(row["compile_s"] > 0 for row in timed if row["method"] in METHODS)
    assert all(row["compile_s"] is None for row in timed if row["method"] not in METHODS)
    assert timed[0]["jgd_speedup"] == 1.0 and timed[0]["epochs"] == 20
    assert 0 <= timed[0]["loss_trace_vs_optax_scan"] < 1e-5
    _check_machine(report["machine"])
    text = bench.format_table(report)
    assert "median (min–max)" in text and "loss trace is optax lax.scan's" in text
    path = tmp_path / "suite.json"
    bench.write(report, str(path))
    assert json.loads(path.read_text())["repeats"] == 5


def test_unknown_suite_workload_is_refused():
    with pytest.raises(ValueError, match="unknown workload"):
        bench.run(only=["nope"])


def test_ratios_are_relative_to_jgd_in_the_same_workload():
    rows = [
        {"workload": "w", "method": "jgd.fit", "metric": "us_per_step", "value": 2.0},
        {"workload": "w", "method": "other", "metric": "us_per_step", "value": 6.0},
        {"workload": "s", "method": "jgd.sweep", "metric": "models_per_s", "value": 100.0},
        {"workload": "s", "method": "seq", "metric": "models_per_s", "value": 25.0},
        {"workload": "w", "method": "sk", "metric": "us_per_epoch", "value": 9.0},
    ]
    _ratios(rows)
    assert [r["jgd_speedup"] for r in rows] == [1.0, 3.0, 1.0, 4.0, None]


def test_timing_statistics():
    timing = bench.Timing(1.0, 2.0, 5.0, 3)
    assert timing.to_dict() == {"min": 1.0, "median": 2.0, "max": 5.0, "repeats": 3}
    # Measured once per process: every workload is read against the same peaks.
    assert bench.device_peaks() is bench.device_peaks()
