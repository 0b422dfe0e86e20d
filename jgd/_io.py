"""Crash-safe file writing, and checking early that a path can be written."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_write", "check_writable"]

# A temporary file is named ``.<target>.<pid>.<16 hex digits>.tmp`` beside its
# target, so a later write of the same target can tell which ones are its own
# and whether their writer is gone.
_STALE_AFTER_S = 5.0  # a dead writer's file untouched this long is garbage
_UNKNOWN_WRITER_STALE_AFTER_S = 3600.0  # no usable PID (old names, Windows): wait an hour


def _temporary_name(path: str) -> str:
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{os.getpid()}.{secrets.token_hex(8)}.tmp")


def _process_exists(pid: int) -> bool | None:
    """Whether ``pid`` runs on this machine; ``None`` where that cannot be asked."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return None
    return True


def _remove_stale_temporaries(path: str) -> None:
    """Delete temporaries of ``path`` left by writers that were killed mid-write.

    Only files named like ours for this very target are considered: ours
    (``.<target>.<pid>.<hex>.tmp``) once their writer process no longer exists
    and they have not been modified for 5 s (a live writer keeps writing; the
    delay also covers a PID that means nothing here, e.g. on a shared network
    folder), and those of older jgd versions (``.<target>.<8 chars>.tmp``, no
    PID) or whose writer cannot be checked, after an hour untouched.
    """
    folder, base = os.path.split(path)
    pattern = re.compile(
        rf"\.{re.escape(base)}\.(?:(?P<pid>\d+)\.[0-9a-f]{{16}}|[a-z0-9_]{{8}})\.tmp"
    )
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    now = time.time()
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        candidate = os.path.join(folder, name)
        try:
            age = now - os.stat(candidate).st_mtime
        except OSError:
            continue  # gone already
        pid = match.group("pid")
        alive = None if pid is None else _process_exists(int(pid))
        limit = _UNKNOWN_WRITER_STALE_AFTER_S if alive is None else _STALE_AFTER_S
        if alive is not True and age > limit:
            with contextlib.suppress(OSError):
                os.unlink(candidate)


def _create_temporary(path: str) -> tuple[str, IO[bytes]]:
    """A new temporary file beside ``path``, created with mode 0666 less the umask."""
    while True:
        name = _temporary_name(path)
        try:
            # os.open applies the umask, like open(); tempfile would force 0600.
            descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return name, os.fdopen(descriptor, "wb")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that a crash leaves either the old file or the new one.

    ``write`` fills a temporary file in the same folder; it is flushed and
    fsynced, then renamed over ``path`` with ``os.replace`` (atomic on POSIX
    and Windows), and the folder entry is fsynced where the OS allows it. The
    file gets the permissions any new file gets (0666 less the umask).
    Temporaries of the same target left by killed writers are removed first
    (see ``_remove_stale_temporaries`` for the rule).
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(path)
    name, handle = _create_temporary(path)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _nearest_existing(folder: str) -> str:
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_writable(path: str | os.PathLike[str], what: str = "output file") -> None:
    """Raise ``ValueError`` now if ``atomic_write(path, ...)`` could not succeed later.

    Call it before long work whose result goes to ``path`` (training before
    ``--save``, a ``checkpoint=`` path). Refused, with the path and the
    problem: a path that is a folder, one below a file, and a folder where
    files cannot be created (read-only, no permission). The folder is probed
    by creating and removing a temporary file, so the answer is the file
    system's own (also for root and read-only mounts); missing folders are
    judged by their nearest existing parent (``atomic_write`` creates them).

    Args:
        path: the file to be written.
        what: what the file is, for the message (e.g. ``"--save path"``).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder; give a file name inside it.")
    folder = os.path.dirname(path)
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise ValueError(
            f"{what} {path!r} cannot be created: {existing!r} is a file, not a folder."
        )
    if existing != folder:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(
                f"{what} {path!r} cannot be created: no permission to create folders in "
                f"{existing!r}."
            )
        return
    try:
        name, handle = _create_temporary(path)
    except OSError as error:
        reason = "the folder is read-only" if error.errno == errno.EROFS else error.strerror
        raise ValueError(
            f"{what} {path!r} cannot be written: {reason} ({folder!r}). Choose another path."
        ) from None
    handle.close()
    with contextlib.suppress(OSError):
        os.unlink(name)
