"""jgd's native CPU kernels: linear least squares' loss and gradient in one pass over X.

XLA computes ``X @ w`` and ``X.T @ r`` as two products, so a full-batch step
reads X from memory twice; ``linear_mse.cc`` reads each block of rows once and
takes the gradient while the block is still in L1 (1,000,000 x 16 float32 on a
2-core CPU: 1.6 against 4.4 ms per step). It is an XLA FFI custom call built
on first use with the machine's C++ compiler (``$CXX`` or ``c++``) and XLA's
FFI headers (``jax.ffi.include_dir()``), cached in ``$JGD_CACHE_DIR`` (default
``~/.cache/jgd``) under a name that hashes the source, the flags, jaxlib's
version and the CPU, so a cache shared between machines is never wrong.

A second kernel does the same for a sweep's members at once (``X @ W`` for
16 members at a time with their weights and gradients in registers, so the
(rows, members) residual matrix is never written to memory: 256 members,
10,000 x 10, 1.0 -> 0.41 ms per epoch).

They are used only where they are built for: float32 linear MSE with 5 to 64
features (a sweep: 1 to 16), an x86-64 CPU with AVX-512, data and members on
one device. Anywhere else, when no compiler is found, or with ``JGD_NATIVE=0``,
jgd uses XLA as before; nothing fails because the kernels are missing.
``status()`` says which and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib

from jgd._io import atomic_write

TARGET = "jgd_linear_mse_f32"
MEMBERS_TARGET = "jgd_linear_mse_members_f32"
MAX_FEATURES = 64
MAX_MEMBER_FEATURES = 16  # a sweep's kernel keeps 2 x features vectors in registers
_SOURCE = Path(__file__).with_name("linear_mse.cc")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")


class _Loader:
    """Builds (or finds in the cache) and loads the kernel once; remembers why if it cannot."""

    def __init__(
        self, cache_dir: str | os.PathLike[str] | None = None, compiler: str | None = None
    ):
        self._cache_dir = cache_dir
        self._compiler = compiler
        self._lock = threading.Lock()
        self._done = False
        self.library: ctypes.CDLL | None = None
        self.reason = "not built yet"
        self.compiled = 0  # how many times this loader ran the compiler

    def available(self) -> bool:
        with self._lock:
            if not self._done:
                self._done = True
                self.library, self.reason = self._load()
            return self.library is not None

    def _load(self) -> tuple[ctypes.CDLL | None, str]:
        if os.environ.get("JGD_NATIVE", "1") == "0":
            return None, "disabled by JGD_NATIVE=0"
        if not hasattr(jax, "ffi") or not hasattr(jax.ffi, "include_dir"):
            return None, f"jax {jax.__version__} has no jax.ffi (needs jax >= 0.5)"
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return None, f"written for x86-64 with AVX-512, this CPU is {platform.machine()}"
        compiler = self._compiler or os.environ.get("CXX") or "c++"
        compiler_path = shutil.which(compiler)
        if compiler_path is None:
            return None, f"no C++ compiler found (tried {compiler!r}; set CXX)"
        path = self._library_path(compiler_path)
        if not path.exists():
            path, error = self._compile(compiler_path, path)
            if error:
                return None, error
        try:
            library = ctypes.CDLL(str(path))
        except OSError as error:
            return None, f"could not load {path}: {error}"
        if library.jgd_native_isa() != 1:
            return None, "this CPU has no AVX-512"
        return library, f"built with {compiler_path}, loaded from {path}"

    def _library_path(self, compiler_path: str) -> Path:
        cache = Path(
            self._cache_dir
            or os.environ.get("JGD_CACHE_DIR")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jgd"
        )
        key = hashlib.sha256()
        for part in (_SOURCE.read_bytes(), " ".join(_FLAGS).encode(), compiler_path.encode()):
            key.update(part)
        key.update(jaxlib.__version__.encode())
        key.update(_cpu_identity().encode())
        return cache / f"linear_mse-{key.hexdigest()[:16]}.so"

    def _compile(self, compiler_path: str, path: Path) -> tuple[Path, str]:
        """Build the library at ``path``; returns where it is, and an error or ""."""
        self.compiled += 1
        with tempfile.TemporaryDirectory() as scratch:
            built = Path(scratch) / "linear_mse.so"
            command = [compiler_path, *_FLAGS, "-I", jax.ffi.include_dir(), str(_SOURCE)]
            try:
                result = subprocess.run(
                    [*command, "-o", str(built)], capture_output=True, text=True, timeout=300
                )
            except (OSError, subprocess.SubprocessError) as error:
                return path, f"compiling the kernel failed: {error}"
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                return path, f"compiling the kernel failed: {' / '.join(tail)}"
            data = built.read_bytes()
        try:
            atomic_write(path, lambda handle: handle.write(data))
        except OSError:
            # A read-only cache (a locked-down HOME, CI): keep this process's build
            # in a private temporary folder instead.
            path = Path(tempfile.mkdtemp(prefix="jgd-native-")) / path.name
            path.write_bytes(data)
        return path, ""


def _cpu_identity() -> str:
    """The CPU's model and flags: ``-march=native`` code must not move to another CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = text.splitlines()
    keep = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


_loader = _Loader()
_registered = False
_register_lock = threading.Lock()


def available() -> bool:
    """Whether the kernel is built and registered (builds it on the first call)."""
    global _registered
    if not _loader.available():
        return False
    with _register_lock:
        if not _registered:
            # Once per process: XLA refuses a second handler under the same name.
            library = _loader.library
            for name, handler in (
                (TARGET, library.JgdLinearMseF32),
                (MEMBERS_TARGET, library.JgdLinearMseMembersF32),
            ):
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
            _registered = True
    return True


def status() -> str:
    """Why the kernel is or is not in use, e.g. ``"no C++ compiler found ..."``."""
    _loader.available()
    return _loader.reason


def fits(X: jax.Array) -> bool:
    """Data the kernel is written for (float32, 1 to 64 features, at least one row)."""
    return X.dtype == jnp.float32 and 0 < X.shape[1] <= MAX_FEATURES and X.shape[0] > 0


def linear_mse(
    w: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``mean(r**2)``, ``(2/n) X^T r`` and ``(2/n) sum(r)`` for ``r = X @ w + b - y``."""
    f32 = jnp.float32
    results = (
        jax.ShapeDtypeStruct((), f32),
        jax.ShapeDtypeStruct(w.shape, f32),
        jax.ShapeDtypeStruct((), f32),
    )
    # jgd never vmaps this call (sweeps use the members kernel); should anyone,
    # "sequential" makes it a loop rather than an error.
    call = jax.ffi.ffi_call(TARGET, results, vmap_method="sequential")
    value, grad_w, grad_b = call(X, y, w, b)
    return value, grad_w, grad_b


def fits_members(X: jax.Array) -> bool:
    """Data a sweep's kernel is written for (float32, 1 to 16 features, at least one row)."""
    return X.dtype == jnp.float32 and 0 < X.shape[1] <= MAX_MEMBER_FEATURES and X.shape[0] > 0


def linear_mse_members(
    W: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``linear_mse`` for every member of a sweep: W (members, d), b (members,).

    Returns each member's loss (members,), weight gradient (members, d) and bias
    gradient (members,). The kernel takes members 16 at a time, so the member
    axis is padded with zeros to a multiple of 16 and the padding cut off again.
    """
    members, d = W.shape
    padded = -(-members // 16) * 16
    W_t = jnp.pad(W, ((0, padded - members), (0, 0))).T
    b = jnp.pad(b, (0, padded - members))
    f32 = jnp.float32
    results = (
        jax.ShapeDtypeStruct((padded,), f32),
        jax.ShapeDtypeStruct((d, padded), f32),
        jax.ShapeDtypeStruct((padded,), f32),
    )
    call = jax.ffi.ffi_call(MEMBERS_TARGET, results, vmap_method="sequential")
    value, grad_w, grad_b = call(X, y, W_t, b)
    return value[:members], grad_w[:, :members].T, grad_b[:members]
