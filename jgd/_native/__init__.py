"""jgd's native CPU kernels: linear least squares' loss and gradient in one pass over X.

XLA computes ``X @ w`` and ``X.T @ r`` as two products, so a full-batch step
reads X from memory twice; ``linear_mse.cc`` reads each block of rows once and
takes the gradient while the block is still in L1 (1,000,000 x 16 float32 on a
2-core AVX-512 CPU: 1.6 against 4.4 ms per step). It is an XLA FFI custom call built
on first use with the machine's C++ compiler (``$CXX`` or ``c++``) and XLA's
FFI headers (``jax.ffi.include_dir()``), cached in ``$JGD_CACHE_DIR`` (default
``~/.cache/jgd``) under a name that hashes the source, the flags, jaxlib's
version and the CPU, so a cache shared between machines is never wrong.

A second kernel does the same for a sweep's members at once (``X @ W`` for a
vector of members at a time, 16 with AVX-512, with their weights and gradients
in registers, so the (rows, members) residual matrix is never written to
memory: 256 members, 10,000 x 10, 1.0 -> 0.41 ms per epoch).

Each build is for one instruction set (``VARIANTS``): AVX-512 (16 lanes) or
AVX2 + FMA (8 lanes) on x86-64, generic 4-lane vector code on ARM64 (NEON);
``$JGD_NATIVE_ISA`` forces one the CPU runs (tests build the AVX2 variant on
AVX-512 machines). A cached library is loaded only when the sha256 written
beside it matches, so a truncated one is rebuilt instead of crashing the
process.

They are used only where they are built for: float32 linear MSE with 5 to 64
features (a sweep: 1 to 16), data and members on one device. Anywhere else,
when no compiler is found, or with ``JGD_NATIVE=0``, jgd uses XLA as before;
nothing fails because the kernels are missing. ``status()`` says which variant
was built, or why none.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
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
_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-w")
# Each variant's instruction-set flags. AVX-512 keeps the flags it was tuned
# with; the portable code asks for fused multiply-adds in a * b + c.
VARIANTS = {
    "avx512": ("-march=native",),
    "avx2": ("-mavx2", "-mfma", "-mtune=native", "-ffp-contract=fast"),
    "generic": ("-ffp-contract=fast",),
}
_DESCRIPTIONS = {
    "avx512": "AVX-512 (16 lanes)",
    "avx2": "AVX2 + FMA (8 lanes)",
    "generic": "generic vector code (4 lanes: NEON on ARM64, SSE2 on x86-64)",
}
_X86 = ("x86_64", "amd64")
_ARM64 = ("aarch64", "arm64")


class _Loader:
    """Builds (or finds in the cache) and loads the kernel once; remembers why if it cannot.

    ``isa`` (or ``$JGD_NATIVE_ISA``) forces one of ``VARIANTS`` instead of the
    best one this CPU runs, e.g. the AVX2 variant on an AVX-512 machine (tests).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        compiler: str | None = None,
        isa: str | None = None,
    ):
        self._cache_dir = cache_dir
        self._compiler = compiler
        self._isa = isa
        self._lock = threading.Lock()
        self._done = False
        self.library: ctypes.CDLL | None = None
        self.variant: str | None = None  # the instruction set of the loaded library
        self.path: Path | None = None  # where it was loaded from
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
        variant, why_not = choose_variant(self._isa or os.environ.get("JGD_NATIVE_ISA"))
        if variant is None:
            return None, why_not
        compiler = self._compiler or os.environ.get("CXX") or "c++"
        compiler_path = shutil.which(compiler)
        if compiler_path is None:
            return None, f"no C++ compiler found (tried {compiler!r}; set CXX)"
        path = self._library_path(compiler_path, variant)
        if not _verified(path):  # missing, or truncated/changed: loading it could crash
            path, error = self._compile(compiler_path, variant, path)
            if error:
                return None, error
        try:
            library = ctypes.CDLL(str(path))
        except OSError as error:
            return None, f"could not load {path}: {error}"
        library.jgd_native_variant.restype = ctypes.c_char_p
        built_for = library.jgd_native_variant().decode()
        if built_for != variant or not library.jgd_native_cpu_ok():
            return None, f"{_NO_VARIANT[variant]} (the compiler built {built_for})"
        self.variant, self.path = variant, path
        where = f"built with {compiler_path} for {_DESCRIPTIONS[variant]}"
        return library, f"{where}, loaded from {path}"

    def _library_path(self, compiler_path: str, variant: str) -> Path:
        cache = Path(
            self._cache_dir
            or os.environ.get("JGD_CACHE_DIR")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jgd"
        )
        key = hashlib.sha256()
        flags = " ".join(_FLAGS + VARIANTS[variant])
        for part in (_SOURCE.read_bytes(), flags.encode(), compiler_path.encode()):
            key.update(part)
        key.update(jaxlib.__version__.encode())
        key.update(_cpu_identity().encode())
        return cache / f"linear_mse-{variant}-{key.hexdigest()[:16]}.so"

    def _compile(self, compiler_path: str, variant: str, path: Path) -> tuple[Path, str]:
        """Build the library at ``path``; returns where it is, and an error or ""."""
        self.compiled += 1
        with tempfile.TemporaryDirectory() as scratch:
            built = Path(scratch) / "linear_mse.so"
            flags = (*_FLAGS, *VARIANTS[variant])
            command = [compiler_path, *flags, "-I", jax.ffi.include_dir(), str(_SOURCE)]
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
            _write_verified(path, data)
        except OSError:
            # A read-only cache (a locked-down HOME, CI): keep this process's build
            # in a private temporary folder instead.
            path = Path(tempfile.mkdtemp(prefix="jgd-native-")) / path.name
            path.write_bytes(data)
        return path, ""


# Why a variant cannot run here (the start of each is a machine reason to tests).
_NO_VARIANT = {
    "avx512": "this CPU has no AVX-512",
    "avx2": "this CPU has no AVX2 with FMA",
    "generic": "no vector code for this CPU",
}


def choose_variant(forced: str | None = None) -> tuple[str | None, str]:
    """The instruction set to build for: ``forced`` if this CPU runs it, else the best one.

    Returns ``(variant, "")`` or ``(None, why not)``. Automatically: AVX-512,
    else AVX2 + FMA on x86-64; the 4-lane generic code (NEON) on ARM64. x86-64
    CPUs with neither keep XLA: nobody has measured the 4-lane code against
    XLA there (``JGD_NATIVE_ISA=generic`` builds it anyway).
    """
    machine = platform.machine().lower()
    flags = _cpu_flags()
    runs = {"generic": machine in _X86 + _ARM64}
    runs["avx512"] = machine in _X86 and "avx512f" in flags
    runs["avx2"] = machine in _X86 and {"avx2", "fma"} <= flags
    if forced:
        forced = forced.strip().lower()
        if forced not in VARIANTS:
            return None, f"JGD_NATIVE_ISA={forced!r} is not one of {', '.join(VARIANTS)}"
        if not runs[forced]:
            return None, f"{_NO_VARIANT[forced]} (JGD_NATIVE_ISA={forced}; {machine})"
        return forced, ""
    if machine in _ARM64:
        return "generic", ""
    if machine not in _X86:
        return None, f"no kernel for this CPU ({platform.machine()}: x86-64 and ARM64 only)"
    for variant in ("avx512", "avx2"):
        if runs[variant]:
            return variant, ""
    return None, "this CPU has neither AVX-512 nor AVX2 with FMA"


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verified(path: Path) -> bool:
    """Whether ``path`` exists and matches the sha256 written beside it when it was built.

    A truncated library (a full disk, a killed copy) would otherwise be mapped
    by the dynamic loader and kill the process with SIGBUS on first use.
    """
    try:
        expected = _checksum_path(path).read_text().split()[0]
        data = path.read_bytes()
    except (OSError, IndexError):
        return False
    return hashlib.sha256(data).hexdigest() == expected


def _write_verified(path: Path, data: bytes) -> None:
    """Write the library and then its checksum, each atomically.

    A crash between the two leaves a library without a checksum, which the
    next load rebuilds rather than trusts.
    """
    atomic_write(path, lambda handle: handle.write(data))
    line = f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode()
    atomic_write(_checksum_path(path), lambda handle: handle.write(line))


def _cpu_flags() -> set[str]:
    """The CPU's feature flags in lower case (x86 ``flags``, ARM ``Features``; macOS sysctl)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].lower().split())
    if sys.platform == "darwin":
        keys = ["machdep.cpu.features", "machdep.cpu.leaf7_features"]
        try:
            result = subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True)
        except OSError:
            return set()
        return set(result.stdout.lower().split())
    return set()


def _cpu_identity() -> str:
    """The CPU's model and flags: ``-march=native`` code must not move to another CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = text.splitlines()
    # x86-64 names its model and flags; ARM64 its implementer, part and features.
    fields = ("model name", "flags", "CPU implementer", "CPU part", "Features")
    keep = {line.split(":")[0].strip(): line for line in lines if line.startswith(fields)}
    return "\n".join(keep.values())


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


def variant() -> str | None:
    """The instruction set of the loaded kernels (a key of ``VARIANTS``), or None."""
    return _loader.variant if _loader.available() else None


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
