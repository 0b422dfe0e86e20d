import json
import subprocess
import sys

from jgd import bench


def test_quick_bench_runs_every_workload_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "jgd", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    machine = report["machine"]
    for field in ("device_kind", "backend", "jax", "jaxlib", "optax", "cpu_count", "date"):
        assert machine[field] not in (None, "")
    rows = report["results"]
    workloads = {row["workload"] for row in rows}
    assert any(w.startswith("linear") for w in workloads)
    assert sum(w.startswith("sweep") for w in workloads) == 2  # linear and MLP sweeps
    assert sum(w.startswith("MLP") for w in workloads) == 2  # adam and momentum
    for workload in workloads:
        methods = {row["method"] for row in rows if row["workload"] == workload}
        assert any(m.startswith("jgd") for m in methods)
        assert len(methods) >= 2  # jgd beside at least one other way
        if workload.startswith("linear"):
            assert {"jgd.fit", "optax python loop", "optax lax.scan", "numpy"} <= methods
    for row in rows:
        assert row["value"] > 0 and row["compile_s"] >= 0
        if row["method"].startswith("jgd"):
            assert row["jgd_speedup"] == 1.0
    linear = [
        r for r in rows if r["workload"].startswith("linear") and r["metric"] == "us_per_step"
    ]
    assert all(r["x_gb_per_s"] > 0 for r in linear)
    # jgd's linear runs follow optax's trajectory, whichever kernel computed them.
    assert machine["jgd_native_kernel"]
    checked = [r for r in linear if r["method"] == "jgd.fit"]
    assert checked and all(0 <= r["loss_trace_vs_optax_scan"] < 1e-5 for r in checked)
    assert "jgd native kernel:" in run.stdout and "loss trace is optax lax.scan's" in run.stdout
    assert "jgd ×" in run.stdout and "µs/step" in run.stdout


def test_ratios_are_relative_to_jgd_in_the_same_workload():
    rows = [
        {"workload": "w", "method": "jgd.fit", "metric": "us_per_step", "value": 2.0},
        {"workload": "w", "method": "other", "metric": "us_per_step", "value": 6.0},
        {"workload": "s", "method": "jgd.sweep", "metric": "models_per_s", "value": 100.0},
        {"workload": "s", "method": "seq", "metric": "models_per_s", "value": 25.0},
        {"workload": "w", "method": "sk", "metric": "us_per_epoch", "value": 9.0},
    ]
    bench._ratios(rows)
    assert [r["jgd_speedup"] for r in rows] == [1.0, 3.0, 1.0, 4.0, None]
