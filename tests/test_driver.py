"""The driver: Ctrl-C, warm starts, chunked runs (real SIGINTs to child processes)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jgd
from tests.helpers import fit_programs_compiled, regression_problem

ROOT = Path(__file__).resolve().parents[1]

# A run of many seconds: 200,000 rows x 8 features, 100,000 epochs.
LONG_RUN = """
import sys, jax, numpy as np, jgd
rng = np.random.default_rng(0)
X = rng.normal(size=(200_000, 8)).astype(np.float32)
data = jgd.Dataset(X, X @ np.arange(8, dtype=np.float32))
loss_fn = jgd.objective(jgd.models.linear(8))
checkpoint = sys.argv[1] if len(sys.argv) > 1 else None
print("start", flush=True)
jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd(0.01), epochs=100_000,
        checkpoint=checkpoint, checkpoint_every=20 if checkpoint else None, progress=False)
print("finished", flush=True)
"""


def _interrupt(args: list[str], ready: callable) -> tuple[float, subprocess.CompletedProcess]:
    """Start the long run, wait until ``ready()``, send SIGINT; seconds until it exited."""
    child = subprocess.Popen(
        [sys.executable, "-c", LONG_RUN, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert child.stdout.readline().strip() == "start"
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the run, which takes minutes
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    return time.monotonic() - sent, subprocess.CompletedProcess(
        child.args, child.returncode, out, err
    )


def test_ctrl_c_stops_a_long_run_without_a_bar_promptly():
    elapsed, run = _interrupt([], lambda: True)
    assert run.returncode != 0 and "KeyboardInterrupt" in run.stderr
    assert "finished" not in run.stdout
    assert elapsed < 5, elapsed  # chunks aim at half a second each


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_continues_it(tmp_path):
    path = tmp_path / "run.npz"
    elapsed, run = _interrupt([str(path)], path.exists)
    assert run.returncode != 0 and "KeyboardInterrupt" in run.stderr
    assert elapsed < 5, elapsed
    from jgd import checkpoint

    # A complete, checksummed state from a chunk boundary (a multiple of checkpoint_every).
    header, arrays = jgd.serialization.read_npz(path, checkpoint.FORMAT)
    paths = [entry[0] for entry in header["fingerprint"]["state"]]
    epoch = int(arrays[f"s/{paths.index('.epoch')}"])
    assert epoch > 0 and epoch % 20 == 0
    assert not list(tmp_path.glob("*.tmp*"))


def test_warm_start_twenty_then_thirty_equals_fifty_bit_for_bit():
    data = regression_problem(n=50, d=3)
    loss_fn = jgd.objective(jgd.models.mlp([3, 8, 1]))
    start = loss_fn.model.init(jax.random.key(0))
    optimizer = optax.adam(optax.exponential_decay(0.05, 10, 0.5))
    kwargs = dict(optimizer=optimizer, batch_size=16, key=jax.random.key(4))
    whole = jgd.fit(loss_fn, start, data, epochs=50, **kwargs)
    first = jgd.fit(loss_fn, start, data, epochs=20, **kwargs)
    rest = jgd.fit(loss_fn, None, data, epochs=30, warm_start=first, **kwargs)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(rest.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        np.concatenate([first.history.loss, rest.history.loss]), whole.history.loss
    )
    assert rest.epochs_run == 50 and rest.history.epoch.tolist() == list(range(21, 51))
    # Adam's count (the schedule's step) carried over: 50 epochs x 4 steps.
    counts = [leaf for leaf in jax.tree.leaves(rest.opt_state) if leaf.dtype == np.int32]
    assert counts and all(int(c) == 200 for c in counts)


def test_new_hyperparameter_values_reuse_the_compiled_program():
    data = regression_problem(n=30, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    start = loss_fn.model.init(None)

    def chain(learning_rate, clip):  # a user factory returning an optax chain
        return optax.chain(optax.clip(clip), optax.adam(learning_rate))

    results = {}
    for factory in (optax.adam, jgd.momentum, chain):
        before = fit_programs_compiled()
        for rate in (1e-3, 3e-3, 1e-2):
            values = {"learning_rate": rate, **({"clip": 1.0} if factory is chain else {})}
            results[factory, rate] = jgd.fit(
                loss_fn, start, data, optimizer=factory, hyperparams=values, epochs=4
            )
        assert fit_programs_compiled() - before == 1, factory
    # The values really are used: the same as building the optimizer directly.
    direct = jgd.fit(loss_fn, start, data, optimizer=optax.adam(3e-3), epochs=4)
    np.testing.assert_allclose(results[optax.adam, 3e-3].params["w"], direct.params["w"], rtol=1e-6)


def test_a_freshly_built_optax_optimizer_reuses_the_compiled_program():
    data = regression_problem(n=30, d=2)
    loss_fn = jgd.objective(jgd.models.linear(2))
    jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=optax.adam(2e-3), epochs=3)
    before = fit_programs_compiled()
    jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=optax.adam(2e-3), epochs=3)
    assert fit_programs_compiled() == before
    jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=optax.adam(5e-3), epochs=3)
    assert fit_programs_compiled() == before + 1  # another rate: another constant


def test_a_checkpoint_resumes_with_more_epochs_and_refuses_fewer(tmp_path):
    data = regression_problem(n=40, d=3)
    loss_fn = jgd.objective(jgd.models.linear(3))
    kwargs = dict(optimizer=jgd.momentum(0.05), batch_size=8, key=jax.random.key(1))
    path = tmp_path / "run.npz"
    jgd.fit(loss_fn, loss_fn.model.init(None), data, epochs=30, checkpoint=path, **kwargs)
    longer = jgd.fit(
        loss_fn, loss_fn.model.init(None), data, epochs=60, checkpoint=path, resume=True, **kwargs
    )
    whole = jgd.fit(loss_fn, loss_fn.model.init(None), data, epochs=60, **kwargs)
    np.testing.assert_array_equal(longer.params["w"], whole.params["w"])
    np.testing.assert_array_equal(longer.history.loss, whole.history.loss)
    assert longer.epochs_run == 60
    with pytest.raises(ValueError, match=r"epochs=60 \(now 20\)"):
        jgd.fit(
            loss_fn,
            loss_fn.model.init(None),
            data,
            epochs=20,
            checkpoint=path,
            resume=True,
            **kwargs,
        )
