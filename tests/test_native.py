"""jgd's native CPU kernel for linear MSE: built where it can be, equal to NumPy and to optax."""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jgd
from jgd import _fused, _native, _sharding, _validate
from tests.helpers import regression_problem, run_with_devices

# Reasons that depend on the machine, not on jgd's code.
_MACHINE_REASONS = (
    "disabled by JGD_NATIVE=0",
    "no kernel for this CPU",
    "no C++ compiler",
    "this CPU has no AVX-512",
    "this CPU has no AVX2",
    "this CPU has neither AVX-512 nor AVX2",
    "no vector code for this CPU",
    "jax ",  # too old to have jax.ffi
)


def _runnable_variants() -> list[str]:
    """The kernel variants this CPU runs, read from /proc/cpuinfo apart from the loader."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return ["generic"]
    if machine not in ("x86_64", "amd64"):
        return []
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    runnable = ["generic"]
    if {"avx2", "fma"} <= flags:
        runnable.append("avx2")
    if "avx512f" in flags:
        runnable.append("avx512")
    return runnable


def _expected_variant() -> str | None:
    """The variant the loader must build here: forced by JGD_NATIVE_ISA, else the widest."""
    if os.environ.get("JGD_NATIVE", "1") == "0":
        return None
    if shutil.which(os.environ.get("CXX") or "c++") is None:
        return None
    runnable = _runnable_variants()
    forced = os.environ.get("JGD_NATIVE_ISA")
    if forced:
        return forced if forced in runnable else None
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "generic"
    wide = [v for v in ("avx512", "avx2") if v in runnable]
    return wide[0] if wide else None


def _buildable_here() -> bool:
    """A compiler and a CPU the kernels are written for: they must build and load."""
    return _expected_variant() is not None


def _kernels_here() -> bool:
    """Whether the kernels are loaded; if not, only for a machine reason."""
    if _native.available():
        return True
    assert _native.status().startswith(_MACHINE_REASONS), _native.status()
    return False


def test_the_kernel_is_built_wherever_the_machine_allows_it():
    if _buildable_here():
        assert _native.available(), _native.status()
        assert _native.status().startswith("built with")
        assert _native.variant() == _expected_variant()
    else:
        # Only a machine reason may keep it out, never a compile error in jgd's code.
        assert not _native.available()
        assert _native.status().startswith(_MACHINE_REASONS), _native.status()


def _reference(X, y, w, b):
    X64, y64 = np.asarray(X, np.float64), np.asarray(y, np.float64)
    residual = X64 @ np.asarray(w, np.float64) + float(b) - y64
    n = len(y64)
    return np.mean(residual**2), 2 / n * X64.T @ residual, 2 / n * residual.sum()


# Shapes around the kernels' edges: 4-, 8- and 16-lane vectors (d = 3 to 5, 7 to
# 9, 15 to 17, 63, 64), groups of 4, 8 and 16 rows, blocks (256 rows with
# AVX-512; 8 KB, 32 to 128 rows, otherwise) with n below, at and above them,
# several 16,384-row partitions and one row past them.
SHAPES = [
    (1, 1),
    (7, 8),
    (8, 7),
    (9, 9),
    (17, 3),
    (300, 5),
    (255, 4),
    (256, 12),
    (513, 15),
    (1000, 16),
    (999, 17),
    (100, 33),
    (129, 63),
    (257, 64),
    (16384, 24),
    (16385, 5),
    (2 * 16384 + 37, 16),
]


@pytest.mark.parametrize("n,d", SHAPES)
def test_kernel_equals_numpy_in_float64(n, d):
    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    w = rng.normal(size=d).astype(np.float32)
    b = np.float32(0.3)
    value, grad_w, grad_b = _reference(X, y, w, b)
    if not _kernels_here():
        return
    got = jax.jit(_native.linear_mse)(w, b, X, y)
    assert [a.dtype for a in got] == [jnp.float32] * 3 and got[1].shape == (d,)
    np.testing.assert_allclose(got[0], value, rtol=2e-6)
    scale = np.abs(grad_w).max() + abs(grad_b)
    np.testing.assert_allclose(got[1], grad_w, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(got[2], grad_b, rtol=1e-5, atol=1e-6 * scale)


def test_kernel_does_not_depend_on_threads():
    """Partitions are summed in a fixed order: repeated calls give the same bits."""
    if not _kernels_here():
        return
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(5 * 16384 + 3, 12)), jnp.float32)
    y = jnp.asarray(rng.normal(size=X.shape[0]), jnp.float32)
    w, b = jnp.linspace(-1, 1, 12, dtype=jnp.float32), jnp.float32(0.1)
    call = jax.jit(_native.linear_mse)
    first = [np.asarray(a) for a in call(w, b, X, y)]
    for _ in range(5):
        for got, expected in zip(call(w, b, X, y), first):
            np.testing.assert_array_equal(got, expected)


def _custom_calls(function, *args) -> bool:
    """Whether the lowered program calls one of jgd's kernels."""
    text = jax.jit(function).lower(*args).as_text()
    return _native.TARGET in text or _native.MEMBERS_TARGET in text


def test_fused_step_uses_the_kernel_only_where_it_fits():
    params = {"w": jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32), "b": jnp.float32(0.5)}
    data = regression_problem(n=50, d=8)
    loss_fn = jgd.objective(jgd.models.linear(8))
    with_kernel = _custom_calls(_fused.value_and_grad(loss_fn), params, data)
    assert with_kernel == _native.available()
    # Kept out: asked not to (arrays on several devices), few features (column
    # by column), a sweep (the members kernel, up to 16 features), other losses.
    assert not _custom_calls(_fused.value_and_grad(loss_fn, native=False), params, data)
    few = regression_problem(n=50, d=3)
    few_params = {"w": jnp.ones(3, jnp.float32), "b": jnp.float32(0.0)}
    assert not _custom_calls(
        _fused.value_and_grad(jgd.objective(jgd.models.linear(3))), few_params, few
    )
    members = jax.tree.map(lambda a: jnp.stack([a, a + 1]), params)
    swept = jax.vmap(_fused.value_and_grad(loss_fn), in_axes=(0, None))
    assert _native.TARGET not in jax.jit(swept).lower(members, data).as_text()
    many = regression_problem(n=50, d=17)  # past the sweep kernel's 16 features
    many_members = {"w": jnp.ones((2, 17), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    many_loss = jgd.objective(jgd.models.linear(17))
    assert not _custom_calls(
        jax.vmap(_fused.value_and_grad(many_loss), in_axes=(0, None)), many_members, many
    )
    huber = jgd.objective(jgd.models.linear(8), jgd.losses.huber)
    assert not _custom_calls(_fused.value_and_grad(huber), params, data)


def test_fit_follows_the_optax_trajectory():
    """The kernel's run is the optax.sgd run of plain autodiff, epoch by epoch."""
    n, d, epochs, lr = 3 * 16384 + 100, 16, 30, 0.05
    data = regression_problem(n=n, d=d, seed=4)
    loss_fn = jgd.objective(jgd.models.linear(d))
    start = loss_fn.model.init(None)
    result = jgd.fit(loss_fn, start, data, optimizer=jgd.gd(lr), epochs=epochs, record_params=True)

    sgd = optax.sgd(lr)

    @jax.jit
    def optax_run(params):
        def body(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, data)
            updates, state = sgd.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), (loss, params)

        return jax.lax.scan(body, (params, sgd.init(params)), length=epochs)[1]

    losses, path = optax_run(start)
    np.testing.assert_allclose(result.history.loss, losses, rtol=1e-5)
    # The parameters after every epoch, weights and bias.
    for name in ("w", "b"):
        np.testing.assert_allclose(result.history.params[name], path[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["w"], path["w"][-1], rtol=1e-5, atol=1e-6)


def test_arrays_on_several_devices_keep_the_kernels_out():
    """XLA cannot split a custom call: only arrays on one device may use the kernels.

    (With 8 devices, tests/test_distributed.py checks the sharded case itself.)
    """
    data = regression_problem(n=64, d=8)
    assert _sharding.on_one_device([data.X, data.y, jnp.ones(3)])
    loss_fn = jgd.objective(jgd.models.linear(8))
    kwargs = dict(optimizer=jgd.momentum(0.05), epochs=20)
    plain = jgd.fit(loss_fn, loss_fn.model.init(None), data, **kwargs)
    meshed = jgd.fit(loss_fn, loss_fn.model.init(None), data, mesh="auto", **kwargs)
    np.testing.assert_allclose(meshed.history.loss, plain.history.loss, rtol=1e-5)
    np.testing.assert_allclose(meshed.params["w"], plain.params["w"], rtol=1e-5, atol=1e-6)


# Members around 4-, 8- and 16-lane groups, 1 to 16 features, rows around the
# 512-row partitions and the pairs of rows (an odd last row).
MEMBER_SHAPES = [
    (1, 1, 2 * 512 + 13),
    (5, 3, 2 * 512 + 13),
    (8, 8, 1),
    (9, 5, 511),
    (16, 10, 2 * 512 + 13),
    (17, 16, 2 * 512 + 13),
    (24, 12, 512),
    (33, 2, 513),
    (40, 7, 2 * 512 + 13),
]


@pytest.mark.parametrize("members,d,n", MEMBER_SHAPES)
def test_members_kernel_equals_numpy_in_float64(members, d, n):
    rng = np.random.default_rng(members * 100 + d)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    W = rng.normal(size=(members, d)).astype(np.float32)
    b = rng.normal(size=members).astype(np.float32)
    if not _kernels_here():
        return
    value, grad_w, grad_b = jax.jit(_native.linear_mse_members)(W, b, X, y)
    assert value.shape == (members,) and grad_w.shape == (members, d) and grad_b.shape == (members,)
    for k in range(members):
        expected = _reference(X, y, W[k], b[k])
        scale = np.abs(expected[1]).max() + abs(expected[2])
        np.testing.assert_allclose(value[k], expected[0], rtol=2e-6)
        np.testing.assert_allclose(grad_w[k], expected[1], rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(grad_b[k], expected[2], rtol=1e-5, atol=1e-6 * scale)


def test_sweep_uses_the_members_kernel_and_equals_fits():
    data = regression_problem(n=700, d=6, seed=2)
    loss_fn = jgd.objective(jgd.models.linear(6))
    start = loss_fn.model.init(None)
    members = {"w": jnp.stack([start["w"]] * 3), "b": jnp.zeros(3, jnp.float32)}
    swept = jax.vmap(_fused.value_and_grad(loss_fn), in_axes=(0, None))
    assert _custom_calls(swept, members, data) == _native.available()
    assert not _custom_calls(
        jax.vmap(_fused.value_and_grad(loss_fn, native=False), in_axes=(0, None)), members, data
    )
    rates = [0.01, 0.05, 0.2]
    result = jgd.sweep(
        loss_fn, start, data, optimizer=jgd.gd, grid={"learning_rate": rates}, epochs=25
    )
    for k, rate in enumerate(rates):
        alone = jgd.fit(loss_fn, start, data, optimizer=jgd.gd(rate), epochs=25)
        np.testing.assert_allclose(result.history.loss[k], alone.history.loss, rtol=1e-5)
        np.testing.assert_allclose(result.params["w"][k], alone.params["w"], rtol=1e-5, atol=1e-6)


def test_loader_caches_the_build_and_leaves_no_temporary_files(tmp_path):
    if not _buildable_here():
        loader = _native._Loader(cache_dir=tmp_path)
        assert not loader.available()
        assert loader.reason.startswith(_MACHINE_REASONS), loader.reason
        return
    first = _native._Loader(cache_dir=tmp_path)
    assert first.available(), first.reason
    assert first.compiled == 1
    built = sorted(p.name for p in tmp_path.iterdir())
    # The library and its checksum, nothing else (no temporary files).
    assert len(built) == 2 and built[0].startswith("linear_mse-") and built[0].endswith(".so")
    assert built[1] == built[0] + ".sha256"
    assert first.variant == _expected_variant() and f"-{first.variant}-" in built[0]
    second = _native._Loader(cache_dir=tmp_path)
    assert second.available(), second.reason
    assert second.compiled == 0  # loaded from the cache, not built again
    assert sorted(p.name for p in tmp_path.iterdir()) == built


def test_a_forced_variant_this_cpu_cannot_run_is_a_machine_reason(tmp_path):
    for isa in sorted(set(_native.VARIANTS) - set(_runnable_variants())):
        loader = _native._Loader(cache_dir=tmp_path, isa=isa)
        assert not loader.available()
        assert loader.reason.startswith(_MACHINE_REASONS), loader.reason
    unknown = _native._Loader(cache_dir=tmp_path, isa="sse9")
    assert not unknown.available() and "JGD_NATIVE_ISA='sse9'" in unknown.reason
    assert list(tmp_path.iterdir()) == []  # nothing was compiled


@pytest.mark.parametrize("isa", sorted(_native.VARIANTS))
def test_every_variant_this_cpu_runs_passes_the_kernel_tests(isa):
    """JGD_NATIVE_ISA builds a narrower variant (the AVX2 one on an AVX-512 CPU).

    The variant this process loaded already ran every test here; each other one
    the CPU runs gets the kernel tests against NumPy again, in a new process.
    """
    if isa not in _runnable_variants() or _expected_variant() in (None, isa):
        return
    # In the forced process (JGD_NATIVE_ISA set) -k does not select this test.
    env = {**os.environ, "JGD_NATIVE_ISA": isa, "JAX_PLATFORMS": "cpu"}
    tests = "built_wherever or equals_numpy or does_not_depend_on_threads or for_any_shape"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # one process (the configured -n auto would start workers in here)
            "-k",
            tests,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]


def test_a_library_is_trusted_only_with_its_checksum(tmp_path):
    library = tmp_path / "linear_mse-x.so"
    _native._write_verified(library, b"\x7fELF library bytes")
    assert _native._verified(library)
    library.write_bytes(b"\x7fELF libr")  # truncated
    assert not _native._verified(library)
    _native._write_verified(library, b"\x7fELF library bytes")
    (tmp_path / "linear_mse-x.so.sha256").unlink()  # a cache from before checksums
    assert not _native._verified(library)
    assert not _native._verified(tmp_path / "missing.so")


def test_a_truncated_cached_library_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    """A cut-off .so in the cache used to kill every later linear fit with SIGBUS."""
    if not _kernels_here():
        return
    # This process's library (same name in any cache folder), copied and cut in half.
    built = _native._loader.path
    cached = tmp_path / built.name
    cached.write_bytes(built.read_bytes()[: built.stat().st_size // 2])
    shutil.copy(built.with_name(built.name + ".sha256"), tmp_path)
    monkeypatch.setenv("JGD_CACHE_DIR", str(tmp_path))
    result = run_with_devices(
        """
        import json
        import numpy as np
        import jax
        from jgd import _native

        assert _native.available(), _native.status()  # registers the kernels
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 7)).astype(np.float32)
        y = rng.normal(size=300).astype(np.float32)
        w = rng.normal(size=7).astype(np.float32)
        value, grad_w, _ = jax.jit(_native.linear_mse)(w, np.float32(0.5), X, y)
        r = X.astype(np.float64) @ w + 0.5 - y
        error = max(abs(float(value) / np.mean(r**2) - 1),
                    float(np.abs(grad_w - 2 / 300 * X.T.astype(np.float64) @ r).max()))
        print(json.dumps({"compiled": _native._loader.compiled, "error": error,
                          "status": _native.status()}))
        """,
        devices=1,
    )
    assert result["compiled"] == 1, result  # rebuilt, not loaded
    assert result["error"] < 1e-5, result
    assert result["status"].startswith("built with") and str(tmp_path) in result["status"]
    assert _native._verified(cached)


def test_loader_without_a_compiler_says_so(tmp_path):
    loader = _native._Loader(cache_dir=tmp_path, compiler="no-such-compiler-for-jgd")
    assert not loader.available()
    reason = loader.reason
    assert "no C++ compiler" in reason or reason.startswith(_MACHINE_REASONS), reason
    assert list(tmp_path.iterdir()) == []


def test_loader_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("JGD_NATIVE", "0")
    loader = _native._Loader(cache_dir=tmp_path)
    assert not loader.available()
    assert loader.reason == "disabled by JGD_NATIVE=0"


def test_kernels_under_an_outer_vmap_run_member_by_member():
    """Nobody in jgd vmaps the calls themselves; if someone does, results stay right."""
    if not _kernels_here():
        return
    rng = np.random.default_rng(5)
    X = jnp.asarray(rng.normal(size=(3, 40, 6)), jnp.float32)  # three datasets
    y = jnp.asarray(rng.normal(size=(3, 40)), jnp.float32)
    w, b = jnp.linspace(-1, 1, 6, dtype=jnp.float32), jnp.float32(0.2)
    batched = jax.vmap(_native.linear_mse, in_axes=(None, None, 0, 0))(w, b, X, y)
    for k in range(3):
        for got, expected in zip(batched, _reference(X[k], y[k], w, b)):
            np.testing.assert_allclose(got[k], expected, rtol=1e-5, atol=1e-6)


def test_a_read_only_cache_still_gives_a_kernel(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)  # readable, not writable
    try:
        if os.access(cache, os.W_OK):  # root ignores permissions: use a file as the "folder"
            cache.chmod(0o700)
            cache.rmdir()
            cache.write_text("not a folder")
        loader = _native._Loader(cache_dir=cache)
        if not _buildable_here():
            assert not loader.available()
            assert loader.reason.startswith(_MACHINE_REASONS), loader.reason
            return
        assert loader.available(), loader.reason
        assert loader.compiled == 1 and "jgd-native-" in loader.reason
    finally:
        if cache.is_dir():
            cache.chmod(0o700)


def test_a_checkpoint_does_not_depend_on_the_kernels(tmp_path):
    """Whether the kernels ran changes round-off only: a checkpoint resumes either way."""
    from jgd import checkpoint

    data = regression_problem(n=40, d=6)
    loss_fn = jgd.objective(jgd.models.linear(6))
    config = _validate.prepare(
        loss_fn,
        data,
        epochs=3,
        batch_size=None,
        key=None,
        val_data=None,
        tol=None,
        patience=None,
        record_every=1,
    ).config
    state = loss_fn.model.init(None)

    def fingerprint(config):
        return checkpoint.fingerprint(
            loss_fn=loss_fn,
            optimizer=jgd.gd(0.1),
            data=data,
            val_data=None,
            key=None,
            tol=None,
            config=config,
            state=state,
        )

    assert fingerprint(config._replace(native=True)) == fingerprint(config._replace(native=False))
    assert fingerprint(config._replace(epochs=4)) != fingerprint(config)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 2000),
    d=st.integers(1, 64),
    members=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_kernels_equal_numpy_for_any_shape(n, d, members, seed):
    if not _kernels_here():
        return
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.normal(size=n).astype(np.float32)
    W = rng.normal(size=(members, d)).astype(np.float32)
    b = rng.normal(size=members).astype(np.float32)
    single = jax.jit(_native.linear_mse)(W[0], b[0], X, y)
    swept = jax.jit(_native.linear_mse_members)(W, b, X, y) if d <= 16 else None
    for k in range(members if swept is not None else 1):
        value, grad_w, grad_b = _reference(X, y, W[k], b[k])
        scale = np.abs(grad_w).max() + abs(grad_b)
        outs = ([single] if k == 0 else []) + ([[a[k] for a in swept]] if swept else [])
        for got in outs:
            np.testing.assert_allclose(got[0], value, rtol=1e-5)
            np.testing.assert_allclose(got[1], grad_w, rtol=1e-4, atol=1e-5 * scale)
            np.testing.assert_allclose(got[2], grad_b, rtol=1e-4, atol=1e-5 * scale)
