"""Faults, bad input and invariants: what jgd guarantees, tested on CPU."""

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jgd
import jgd._checks
import jgd.checkpoint
import jgd.cli
from jgd._members import advance as _sweep_advance
from jgd.estimators import GDRegressor
from tests.helpers import fit_programs_compiled, hessian_top_eigenvalue, regression_problem

ROOT = Path(__file__).resolve().parents[1]
DATA = regression_problem(n=64, d=3)
LOSS = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
START = LOSS.model.init(None)


def same_bits(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=np.asarray(x).dtype.kind == "f")
        for x, y in zip(leaves_a, leaves_b)
    )


# ------------------------------------------------------------ 1. crashes

# A run long enough to be killed mid-way: 400 epochs of mini-batch momentum,
# checkpointed every 20 epochs. KILL_AT=N makes the N-th checkpoint write
# SIGKILL its own process half way through writing the temporary file.
RUNNER = textwrap.dedent(
    """
    import os, signal, sys, time
    import jax, numpy as np
    import jgd
    from tests.helpers import regression_problem

    kill_at = int(os.environ.get("KILL_AT", "0"))
    slow = float(os.environ.get("SLOW", "0"))
    if kill_at:
        writes = {"n": 0}
        original = np.savez

        def dying_savez(handle, **arrays):
            writes["n"] += 1
            if writes["n"] == kill_at:
                handle.write(b"partial checkpoint bytes")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            original(handle, **arrays)

        np.savez = dying_savez
    if slow:
        from jgd import checkpoint
        saving = checkpoint.save_state

        def slow_save(*args, **kwargs):
            saving(*args, **kwargs)
            time.sleep(slow)

        checkpoint.save_state = slow_save
    data = regression_problem(n=64, d=3)
    loss = jgd.objective(jgd.models.linear(3), jgd.losses.mse)
    result = jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.momentum(0.02),
                     epochs=400, batch_size=9, key=jax.random.key(5),
                     checkpoint=sys.argv[1], checkpoint_every=20, resume=True)
    print("finished", result.epochs_run)
    """
)
RUN_KWARGS = dict(optimizer=jgd.momentum(0.02), epochs=400, batch_size=9, key=jax.random.key(5))


def runner(path, **env):
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(path)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def uninterrupted():
    return jgd.fit(LOSS, START, DATA, **RUN_KWARGS)


def test_sigkill_between_checkpoint_writes_then_resume(tmp_path, uninterrupted):
    path = tmp_path / "run.npz"
    process = runner(path, SLOW="0.3")  # slow checkpoints: the kill lands between writes
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), process.communicate()[1].decode()[-2000:]
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    resumed = jgd.fit(LOSS, START, DATA, **RUN_KWARGS, checkpoint=path, resume=True)
    assert resumed.epochs_run == 400 and resumed.status is uninterrupted.status
    assert same_bits(resumed.params, uninterrupted.params)
    assert same_bits(resumed.opt_state, uninterrupted.opt_state)
    assert same_bits(resumed.history, uninterrupted.history)


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, uninterrupted):
    path = tmp_path / "run.npz"
    process = runner(path, KILL_AT="3")  # dies while writing the 3rd checkpoint
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]
    # The 2nd checkpoint is intact (epoch 40); the half-written temporary file is not it.
    state_epoch = jgd.serialization.read_npz(path, jgd.checkpoint.FORMAT)[1]
    assert state_epoch  # readable and checksum-verified
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run.npz"]
    assert all(name.endswith(".tmp") for name in leftovers)
    resumed = jgd.fit(LOSS, START, DATA, **RUN_KWARGS, checkpoint=path, resume=True)
    assert same_bits(resumed.params, uninterrupted.params)
    assert same_bits(resumed.history, uninterrupted.history)
    # The same script, run again, resumes and finishes on its own.
    again = runner(tmp_path / "again.npz")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and b"finished 400" in out, err.decode()[-2000:]


def test_sweep_checkpoint_resume_equals_uninterrupted(tmp_path):
    grid = {"learning_rate": [0.01, 0.1, 3.0], "beta": [0.0, 0.9]}
    kwargs = dict(
        optimizer=jgd.momentum, grid=grid, epochs=60, batch_size=16, key=jax.random.key(1)
    )
    plain = jgd.sweep(LOSS, START, DATA, **kwargs)
    path = tmp_path / "sweep.npz"
    jgd.sweep(LOSS, START, DATA, **{**kwargs, "epochs": 60}, checkpoint=path, checkpoint_every=25)
    resumed = jgd.sweep(LOSS, START, DATA, **kwargs, checkpoint=path, resume=True)
    for field in ("params", "opt_state", "history", "status", "stop_epoch", "final_loss"):
        assert same_bits(getattr(resumed, field), getattr(plain, field)), field
    with pytest.raises(ValueError, match="sweep grid differs"):
        other = {**kwargs, "grid": {"learning_rate": [0.02, 0.1, 3.0], "beta": [0.0, 0.9]}}
        jgd.sweep(LOSS, START, DATA, **other, checkpoint=path, resume=True)


# ------------------------------------------------- 2. damaged checkpoints


@pytest.fixture
def checkpoint_file(tmp_path):
    path = tmp_path / "ck.npz"
    jgd.fit(
        LOSS, START, DATA, optimizer=jgd.gd(0.05), epochs=20, checkpoint=path, checkpoint_every=10
    )
    return path


def resume_from(path, **overrides):
    kwargs = dict(optimizer=jgd.gd(0.05), epochs=20, checkpoint=path, resume=True)
    kwargs.update(overrides)
    return jgd.fit(LOSS, START, DATA, **kwargs)


def test_truncated_checkpoint_is_refused(checkpoint_file):
    raw = checkpoint_file.read_bytes()
    checkpoint_file.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"corrupted or truncated"):
        resume_from(checkpoint_file)


def test_a_flipped_byte_is_never_loaded_silently(checkpoint_file, tmp_path):
    # Anywhere in the file: refused (checksum, zip CRC, header) or, where the
    # byte is only padding, loaded unchanged. Never a different state.
    good = resume_from(checkpoint_file)
    raw = checkpoint_file.read_bytes()
    refused = 0
    for position in np.linspace(0, len(raw) - 1, 20).astype(int):
        damaged = bytearray(raw)
        damaged[position] ^= 0x01
        path = tmp_path / f"flip{position}.npz"
        path.write_bytes(bytes(damaged))
        try:
            loaded = resume_from(path)
        except ValueError as error:
            assert (
                "corrupted" in str(error)
                or "another run" in str(error)
                or "not a jgd" in str(error)
            )
            refused += 1
        else:
            assert same_bits(loaded, good)
    assert refused >= 15
    # A flip inside the stored state itself is caught by the checksum.
    header, arrays = jgd.serialization.read_npz(checkpoint_file, jgd.checkpoint.FORMAT)
    arrays["s/0"] = arrays["s/0"] + 1  # an edited value under the old header and checksum
    stale = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "edited.npz", __jgd__=stale, **arrays)
    with pytest.raises(ValueError, match="checksum does not match"):
        resume_from(tmp_path / "edited.npz")


def test_pickle_bearing_checkpoint_is_refused(checkpoint_file):
    np.savez(
        checkpoint_file,
        __jgd__=np.frombuffer(b"{}", np.uint8),
        evil=np.array([print], dtype=object),
    )
    with pytest.raises(ValueError, match="pickled objects; refused"):
        resume_from(checkpoint_file)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer": jgd.gd(0.07)}, "optimizer differs.*learning_rate"),
        ({"optimizer": jgd.momentum(0.05)}, "optimizer differs"),
        ({"epochs": 10}, "epochs=20 \\(now 10\\)"),  # more epochs would continue it
        ({"batch_size": 8}, "batch_size=None \\(now 8\\)"),
    ],
)
def test_checkpoint_of_another_run_is_refused_saying_what_differs(
    checkpoint_file, overrides, message
):
    with pytest.raises(ValueError, match=message):
        resume_from(checkpoint_file, **overrides)


def test_checkpoint_for_other_data_or_shapes_is_refused(checkpoint_file):
    other = regression_problem(n=64, d=3, seed=9)
    with pytest.raises(ValueError, match="training or validation data differs"):
        jgd.fit(
            LOSS,
            START,
            other,
            optimizer=jgd.gd(0.05),
            epochs=20,
            checkpoint=checkpoint_file,
            resume=True,
        )
    wide = regression_problem(n=64, d=4)
    loss4 = jgd.objective(jgd.models.linear(4), jgd.losses.mse)
    with pytest.raises(ValueError, match="shapes or dtypes"):
        jgd.fit(
            loss4,
            loss4.model.init(None),
            wide,
            optimizer=jgd.gd(0.05),
            epochs=20,
            checkpoint=checkpoint_file,
            resume=True,
        )


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    result = jgd.fit(
        LOSS,
        START,
        DATA,
        optimizer=jgd.gd(0.05),
        epochs=5,
        checkpoint=tmp_path / "new.npz",
        resume=True,
    )
    assert result.epochs_run == 5 and (tmp_path / "new.npz").exists()


# ------------------------------------------------ 3-4. divergence and NaN


def test_too_large_learning_rate_diverges_with_a_helpful_message():
    bound = 2 / hessian_top_eigenvalue(DATA.X)
    with pytest.warns(RuntimeWarning, match="2/L"):
        result = jgd.fit(LOSS, START, DATA, optimizer=jgd.gd(1.5 * bound), epochs=500)
    assert result.status is jgd.Status.DIVERGED and 1 < result.diverged_at == result.epochs_run
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))
    assert f"{bound:.4g}" in result.message and "smaller rate" in result.message


def test_features_scaled_by_1e30_diverge_and_suggest_standardizing():
    huge = jgd.Dataset(DATA.X * 1e30, DATA.y)
    with pytest.warns(RuntimeWarning, match="standardize"):
        result = jgd.fit(LOSS, START, huge, optimizer=jgd.gd(0.01), epochs=50)
    assert result.status is jgd.Status.DIVERGED
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))
    assert "largest |X|" in result.message


def test_nan_from_a_user_loss_is_a_divergence_not_a_crash():
    def log_loss(params, batch):
        # log of a negative number once w[0] grows past 1: NaN mid-run.
        return LOSS(params, batch) + 1e-3 * jnp.log(1.0 - params["w"][0])

    data = jgd.Dataset(DATA.X, 4 * DATA.X[:, 0])
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = jgd.fit(log_loss, START, data, optimizer=jgd.gd(0.01), epochs=300)
    assert result.status is jgd.Status.DIVERGED and result.diverged_at > 1
    assert float(result.params["w"][0]) < 1.0 + 0.05
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(result.params))


# --------------------------------------------------------- 5. float64


def test_float64_input_without_x64_warns_once_and_trains_in_float32():
    code = textwrap.dedent(
        """
        import warnings, numpy as np, jgd
        warnings.simplefilter("always")
        X = np.random.default_rng(0).normal(size=(20, 2)); y = X @ np.array([1.0, 2.0])
        loss = jgd.objective(jgd.models.linear(2), jgd.losses.mse)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                r = jgd.fit(loss, loss.model.init(None), jgd.Dataset(X, y),
                            optimizer=jgd.gd(0.1), epochs=5)
        texts = [str(w.message) for w in caught if "float64" in str(w.message)]
        print(len(texts), r.params["w"].dtype, r.history.loss.dtype)
        print(texts[0])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    count, params_dtype, loss_dtype = out.splitlines()[0].split()
    assert (count, params_dtype, loss_dtype) == ("1", "float32", "float32")
    assert "converted it to float32" in out and "jax_enable_x64" in out


def test_switching_x64_on_between_fits_gives_each_its_own_state_dtypes():
    # fit caches a placeholder state per problem layout; the x64 switch changes the state's
    # dtypes (here a weakly typed counter) without changing the arrays passed in.
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np, optax, jgd
        def counting_gd(rate):
            def update(grads, count, params=None):
                return jax.tree.map(lambda g: -rate * g, grads), count + 1
            return optax.GradientTransformation(lambda params: jnp.array(0.0), update)
        X = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
        data = jgd.Dataset(X, (X @ np.array([1.0, 2.0], np.float32)).astype(np.float32))
        loss = jgd.objective(jgd.models.linear(2), jgd.losses.mse)
        start = loss.model.init(None)
        before = jgd.fit(loss, start, data, optimizer=counting_gd(0.1), epochs=3)
        jax.config.update("jax_enable_x64", True)
        after = jgd.fit(loss, start, data, optimizer=counting_gd(0.1), epochs=3)
        print(before.opt_state.dtype, after.opt_state.dtype, float(after.opt_state))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.split() == ["float32", "float64", "3.0"], out.stdout


def test_with_x64_on_dtypes_are_float64_end_to_end():
    code = textwrap.dedent(
        """
        import jax
        jax.config.update("jax_enable_x64", True)
        import numpy as np, jgd
        X = np.random.default_rng(0).normal(size=(30, 2)); y = X @ np.array([1.0, 2.0]) + 0.5
        data = jgd.Dataset(X, y)
        loss = jgd.objective(jgd.models.linear(2), jgd.losses.mse)
        r = jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.momentum(0.1), epochs=2000,
                    val_data=data, batch_size=10, key=jax.random.key(0))
        leaves = jax.tree.leaves((r.params, r.history.loss, r.history.val_loss))
        dtypes = {str(a.dtype) for a in leaves}
        velocity = {str(a.dtype) for a in jax.tree.leaves(r.opt_state.velocity)}
        exact = jgd.least_squares(X, y)
        err = float(np.max(np.abs(np.asarray(r.params["w"]) - np.asarray(exact["w"]))))
        s = jgd.sweep(loss, loss.model.init(None), data, optimizer=jgd.gd,
                      grid={"learning_rate": [0.1]}, epochs=3)
        print(sorted(dtypes), sorted(velocity), exact["w"].dtype, s.params["w"].dtype, err)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert out.startswith("['float64'] ['float64'] float64 float64"), out
    assert float(out.split()[-1]) < 1e-10  # float64 precision reached


# ----------------------------------------- 6. bad input at every entry point

BAD_DATA = {
    "NaN in X": (np.array([[1.0], [np.nan], [2.0]]), np.ones(3), "NaN at row 1"),
    "inf in y": (np.ones((3, 1)), np.array([1.0, 2.0, np.inf]), "inf at row 2"),
    "lengths differ": (np.ones((3, 1)), np.ones(2), "3 rows but"),
    "zero rows": (np.ones((0, 1)), np.ones(0), "0 rows"),
    "zero columns": (np.ones((3, 0)), np.ones(3), "0 feature"),
    "1-D X": (np.ones(3), np.ones(3), "must be 2-D"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
@pytest.mark.parametrize(
    "entry", ["split", "standardize", "fit", "sweep", "least_squares", "lr_bound", "estimator"]
)
def test_bad_data_is_refused_by_every_entry_point(case, entry):
    X, y, message = BAD_DATA[case]
    data = jgd.Dataset(X, y)
    loss = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
    calls = {
        "split": lambda: jgd.data.split(data),
        "standardize": lambda: jgd.data.standardize(data),
        "fit": lambda: jgd.fit(loss, loss.model.init(None), data, optimizer=jgd.gd(0.1), epochs=2),
        "sweep": lambda: jgd.sweep(
            loss,
            loss.model.init(None),
            data,
            optimizer=jgd.gd,
            grid={"learning_rate": [0.1]},
            epochs=2,
        ),
        "least_squares": lambda: jgd.least_squares(X, y),
        "lr_bound": lambda: jgd.lr_bound(loss, loss.model.init(None), data),
        "estimator": lambda: GDRegressor(epochs=2).fit(X, y),
    }
    with pytest.raises(ValueError, match="" if entry == "estimator" else message):
        calls[entry]()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,t\n1,x\n", "cannot read 'x' as a number"),
        ("", "is empty"),
        ("a,t\n", "header but no data rows"),
        ("a,b\n1,2\n", "target column 't' not found"),
    ],
)
def test_bad_csv_files_in_the_loader_and_the_cli(tmp_path, text, message, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        jgd.data.load_csv(path, "t")
    assert jgd.cli.main(["fit", "--csv", str(path), "--target", "t"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.split("'")[0] in err[0]


@pytest.mark.parametrize("rate", [0.0, -0.1, float("nan"), float("inf"), True])
def test_bad_learning_rates_everywhere(rate):
    error = TypeError if rate is True else ValueError
    for build in (jgd.gd, jgd.momentum, jgd.nesterov):
        with pytest.raises(error, match=r"learning_rate|number"):
            build(rate)
    with pytest.raises(error):
        jgd.sweep(
            LOSS, START, DATA, optimizer=jgd.gd, grid={"learning_rate": [0.1, rate]}, epochs=2
        )
    with pytest.raises(error):
        GDRegressor(learning_rate=rate, epochs=2).fit(np.asarray(DATA.X), np.asarray(DATA.y))


def test_bad_grids_and_predicting_with_another_feature_count():
    with pytest.raises(ValueError, match="non-empty"):
        jgd.sweep(LOSS, START, DATA, optimizer=jgd.gd, grid={}, epochs=2)
    with pytest.raises(ValueError, match="beta"):  # integer 1 is still out of [0, 1)
        jgd.sweep(
            LOSS,
            START,
            DATA,
            optimizer=jgd.momentum,
            grid={"learning_rate": [0.1], "beta": [0, 1]},
            epochs=2,
        )
    model = GDRegressor(epochs=5).fit(np.asarray(DATA.X), np.asarray(DATA.y))
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 5)))
    _, stats = jgd.data.standardize(DATA)
    with pytest.raises(ValueError, match="shape"):
        stats.transform(np.ones((2, 5)))


# --------------------------------------------------- 7. properties

problems = st.builds(
    lambda n, d, seed: regression_problem(n=n, d=d, seed=seed),
    n=st.integers(8, 40),
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(problems, st.floats(0.2, 0.9), st.floats(2.0, 6.0))
def test_gd_below_the_bound_reaches_least_squares_and_above_twice_it_diverges(
    data, fraction, factor
):
    """One problem, one bound, both sides of it (one compiled program: only the rate differs)."""
    loss = jgd.objective(jgd.models.linear(data.n_features), jgd.losses.mse)
    start = loss.model.init(None)
    bound = jgd.lr_bound(loss, start, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        above = jgd.fit(loss, start, data, optimizer=jgd.gd(factor * bound), epochs=4000)
    assert above.status is jgd.Status.DIVERGED
    assert above.epochs_run <= 2000  # reported within the 2000 epochs this test used to run
    eigenvalues = np.linalg.eigvalsh(
        2
        / data.n_rows
        * np.column_stack([data.X, np.ones(data.n_rows)]).T
        @ np.column_stack([data.X, np.ones(data.n_rows)])
    )
    condition = eigenvalues[-1] / max(eigenvalues[0], 1e-12)
    if condition > 200:  # too ill-conditioned to converge in a few thousand epochs
        return
    below = jgd.fit(loss, start, data, optimizer=jgd.gd(fraction * bound), epochs=4000)
    exact = jgd.least_squares(data.X, data.y)
    assert below.status is jgd.Status.MAX_EPOCHS
    np.testing.assert_allclose(below.params["w"], exact["w"], atol=2e-3)


@PROPERTY
@given(problems, st.integers(1, 60), st.sampled_from([None, 4]))
def test_chunked_equals_unchunked(data, epochs, batch_size):
    loss = jgd.objective(jgd.models.linear(data.n_features), jgd.losses.mse)
    kwargs = dict(
        optimizer=jgd.nesterov(0.05), epochs=epochs, batch_size=batch_size, key=jax.random.key(0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = jgd.fit(loss, loss.model.init(None), data, progress=False, **kwargs)
        chunked = jgd.fit(loss, loss.model.init(None), data, progress=True, **kwargs)
    assert same_bits(plain, chunked[:6])


# ------------------------------------------- 8. repeated calls: memory, compiles


def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_repeated_fits_and_sweeps_do_not_grow_memory_or_recompile():
    data = regression_problem(n=200, d=4)
    loss = jgd.objective(jgd.models.linear(4), jgd.losses.mse)
    start = loss.model.init(None)

    def once(i):
        rate = 0.01 + 1e-4 * i
        jgd.fit(loss, start, jgd.Dataset(data.X + 0.0, data.y), optimizer=jgd.gd(rate), epochs=20)
        jgd.sweep(
            loss, start, data, optimizer=jgd.gd, grid={"learning_rate": [rate, 2 * rate]}, epochs=20
        )

    for i in range(20):  # warm up: compile, allocator pools
        once(i)
    gc.collect()
    fits, sweeps, before = fit_programs_compiled(), _sweep_advance._cache_size(), rss_mb()
    for i in range(200):
        once(i)
    gc.collect()
    assert fit_programs_compiled() == fits and _sweep_advance._cache_size() == sweeps
    assert rss_mb() - before < 40, f"RSS grew by {rss_mb() - before:.1f} MB over 200 calls"
    assert len(jgd._checks._FINITE) < 50  # remembered finite checks die with their arrays
