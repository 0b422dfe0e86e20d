"""Many devices on CPU: 8 forced host devices in a subprocess (two processes over gloo: the
multiprocess_fit example, run by tests/test_examples.py)."""

from pathlib import Path

import numpy as np

from tests.helpers import run_with_devices

ROOT = Path(__file__).resolve().parents[1]


FIT = """
import json, jax, numpy as np, jgd
from tests.helpers import regression_problem
assert jax.device_count() == 8
loss = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
out = {}
for n in (64, 61):  # 61 rows: a short last shard
    data = regression_problem(n=n, d=3)
    for name, kwargs in {"full": dict(epochs=40),
                         "mini": dict(epochs=8, batch_size=7, key=jax.random.key(3))}.items():
        one = jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.momentum(0.05), **kwargs)
        many = jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.momentum(0.05),
                       mesh="auto", **kwargs)
        out[f"{n}-{name}"] = {
            "w": [np.asarray(one.params["w"]).tolist(), np.asarray(many.params["w"]).tolist()],
            "loss": [np.asarray(one.history.loss).tolist(), np.asarray(many.history.loss).tolist()],
            "devices": len(many.params["w"].sharding.device_set),
        }
# The program really is data-parallel: rows sharded, gradients all-reduced.
from jgd import _filtering, _sharding, _validate, training
from jgd._engine import Problem, Start
data = regression_problem(n=64, d=3)
placed = jgd.data.shard(data, jgd.distributed.data_mesh("auto"))
out["shard_rows"] = sorted({s.data.shape[0] for s in placed.X.addressable_shards})
checked = _validate.prepare(loss, placed, epochs=3, batch_size=None, key=None,
    val_data=None, tol=None, patience=None, record_every=1)
problem = Problem(checked.loss_fn, jgd.gd(0.1), checked.data, None, None, None)
start = Start(loss.model.init(None))
problem, start, cfg = training._placed(problem, start, checked.config, "auto")
arrays, static = _filtering.partition((problem, start))
state = training._fit_start(arrays, static, cfg)
hlo = training._fit_run.lower(arrays, static, cfg, state, False, 3).compile().as_text()
out["all_reduce"] = "all-reduce" in hlo
# Rows on 8 devices: jgd's native CPU kernels (custom calls) must stay out.
out["one_device"] = _sharding.on_one_device(arrays)
out["custom_call"] = "custom-call" in hlo
print(json.dumps(out))
"""


def test_sharded_fit_equals_one_device_full_batch_minibatch_and_uneven_rows():
    out = run_with_devices(FIT)
    for case in ("64-full", "64-mini", "61-full", "61-mini"):
        one, many = out[case]["w"]
        np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6, err_msg=case)
        np.testing.assert_allclose(
            out[case]["loss"][1], out[case]["loss"][0], rtol=1e-5, err_msg=case
        )
        assert out[case]["devices"] == 8
    assert out["shard_rows"] == [8]  # 64 rows: 8 on each device
    assert out["all_reduce"]
    assert not out["one_device"] and not out["custom_call"]


SWEEP = """
import json, jax, numpy as np, jgd
from tests.helpers import regression_problem
data = regression_problem(n=61, d=3)
loss = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
grid = {"learning_rate": np.geomspace(0.003, 1.0, 5), "beta": [0.0, 0.9]}
kwargs = dict(optimizer=jgd.momentum, grid=grid, epochs=25, batch_size=9, key=jax.random.key(0))
auto = jax.sharding.AxisType.Auto
one = jax.make_mesh((1, 1), ("members", "data"), devices=jax.devices()[:1], axis_types=(auto, auto))
two_d = jax.make_mesh((4, 2), ("members", "data"), axis_types=(auto, auto))
a = jgd.sweep(loss, loss.model.init(None), data, mesh=one, **kwargs)
b = jgd.sweep(loss, loss.model.init(None), data, mesh=two_d, **kwargs)
print(json.dumps({
    "w": [np.asarray(a.params["w"]).tolist(), np.asarray(b.params["w"]).tolist()],
    "status": [np.asarray(a.status).tolist(), np.asarray(b.status).tolist()],
    "stop": [np.asarray(a.stop_epoch).tolist(), np.asarray(b.stop_epoch).tolist()],
    "loss": [np.asarray(a.history.loss).tolist(), np.asarray(b.history.loss).tolist()],
    "devices": [len(a.configs["learning_rate"]), len(b.params["w"].sharding.device_set)],
}))
"""


def test_two_dimensional_mesh_sweep_equals_one_device_sweep():
    out = run_with_devices(SWEEP)
    assert out["status"][0] == out["status"][1] and out["stop"][0] == out["stop"][1]
    one, many = np.asarray(out["w"][0]), np.asarray(out["w"][1])
    finite = np.asarray(out["status"][0]) != 3  # diverged members keep huge last-finite params
    assert finite.sum() >= 8
    np.testing.assert_allclose(many[finite], one[finite], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(out["loss"][1])[finite], np.asarray(out["loss"][0])[finite], rtol=1e-5
    )
    assert out["devices"] == [10, 8]


NPY = """
import json, os, sys, tempfile, jax, numpy as np, jgd
folder = tempfile.mkdtemp()
rng = np.random.default_rng(0)
X = rng.normal(size=(80, 3)).astype(np.float32); y = X @ np.array([1.0, -2.0, 0.5], np.float32)
np.save(os.path.join(folder, "X.npy"), X); np.save(os.path.join(folder, "y.npy"), y)
mesh = jgd.distributed.data_mesh("auto")
data = jgd.data.load_npy(os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy"), mesh)
loss = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
r = jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.gd(0.2), epochs=300, mesh=mesh)
print(json.dumps({"rows_per_device": sorted({s.data.shape[0] for s in data.X.addressable_shards}),
                  "w": np.asarray(r.params["w"]).tolist()}))
"""


def test_memory_mapped_npy_is_placed_shard_by_shard_and_trains():
    out = run_with_devices(NPY)
    assert out["rows_per_device"] == [10]
    np.testing.assert_allclose(out["w"], [1.0, -2.0, 0.5], atol=1e-3)


# The two-process gloo run (2 processes x 4 CPU devices against one process) is
# examples/multiprocess_fit.py; tests/test_examples.py runs it once and checks both
# workers' device counts and that they agree with the single-process fit.


MESH_CHECKPOINT = """
import json, os, tempfile, jax, jax.numpy as jnp, numpy as np, jgd
from tests.helpers import image_problem, softmax_start, weighted_softmax_loss
folder = tempfile.mkdtemp()
batch = image_problem(n=40)
kwargs = dict(optimizer=jgd.momentum(0.2), epochs=6, batch_size=8, key=jax.random.key(0))
plain = jgd.fit(weighted_softmax_loss, softmax_start(), batch, mesh="auto", **kwargs)
path = os.path.join(folder, "fit.npz")
saved = jgd.fit(weighted_softmax_loss, softmax_start(), batch, mesh="auto", checkpoint=path,
                checkpoint_every=2, **kwargs)
resumed = jgd.fit(weighted_softmax_loss, softmax_start(), batch, mesh="auto", checkpoint=path,
                  checkpoint_every=2, resume=True, **kwargs)
sweep_path = os.path.join(folder, "sweep.npz")
grid = {"learning_rate": jnp.array([0.05, 0.1, 0.2])}
swept = [jgd.sweep(weighted_softmax_loss, softmax_start(), batch, optimizer=jgd.gd, grid=grid,
                   epochs=4, mesh="auto", checkpoint=sweep_path, checkpoint_every=2,
                   resume=resume) for resume in (False, True)]
print(json.dumps({
    "w": [np.asarray(r.params["w"]).tolist() for r in (plain, saved, resumed)],
    "devices": len(saved.params["w"].sharding.device_set),
    "sweep_w": [np.asarray(s.params["w"]).tolist() for s in swept],
}))
"""


def test_mesh_with_checkpoints_trains_and_resumes_for_fit_and_sweep():
    out = run_with_devices(MESH_CHECKPOINT)
    plain, saved, resumed = (np.asarray(w) for w in out["w"])
    np.testing.assert_array_equal(saved, plain)
    np.testing.assert_array_equal(resumed, saved)
    assert out["devices"] == 8
    np.testing.assert_array_equal(*(np.asarray(w) for w in out["sweep_w"]))
