"""One streamcam run per output folder at a time: `<folder>/.streamcam.lock` while it runs.

Two runs writing the same names (`.<stem>.partial.csv`, the manifest) would tear each other's
files; the second is refused at once with exit 2 instead. The lock is the OS's (flock), so a
killed run holds nothing and the next run takes its leftover file. The holder removes the file
before letting go, and a run that locked a file removed meanwhile tries again, so a finished run
leaves nothing behind. Re-entrant within one process: the CLI takes it before the model loads,
and the library call inside takes it too when called alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, UsageError

LOCK_NAME = ".streamcam.lock"

_held: dict[str, list] = {}  # folder (real path) -> [file descriptor, holders]
_guard = threading.Lock()


def _take(path: Path) -> int:
    """A descriptor holding `path`'s lock; UsageError while another process holds it."""
    for _attempt in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(OSError):
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise UsageError(f"another streamcam run{who} is writing to {path.parent}: wait for it, or use another --out-dir") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder removed while we opened it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            return fd
        os.close(fd)
    raise UsageError(f"could not lock {path}: other runs keep taking it")


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold `folder`'s lock for the block; UsageError (exit 2) while another run holds it,
    OutputError (exit 1) when the folder cannot take the lock file."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    path = folder / LOCK_NAME
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            try:
                _held[key] = [_take(path), 1]
            except OSError as exc:
                raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if not entry[1]:
                del _held[key]
                with contextlib.suppress(OSError):
                    path.unlink()  # while still locked, so nobody holds a removed file unawares
                os.close(entry[0])
