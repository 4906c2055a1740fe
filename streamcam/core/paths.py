"""Checks on input paths and output folders that give one clear line where a decoder or a
traceback would give a cryptic one, and durable renames of finished files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError, OutputError


def check_input_file(path: str | Path, what: str) -> Path:
    """The path, if it is a non-empty file; otherwise InputError naming `what` was expected."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file: {path}")
    if p.is_dir():
        raise InputError(f"is a directory, not {what}: {path}")
    if p.stat().st_size == 0:
        raise InputError(f"empty file (0 bytes): {path}")
    return p


def check_output_folder(path: str | Path) -> Path:
    """The folder, created if need be, once it is known to take files; otherwise OutputError in one
    line (a regular file in the way, no permission, a read-only or full file system). Called
    before the model loads, so a bad --out-dir costs a second, not a model load."""
    folder = Path(path)
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"cannot write to {folder}: {parent} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return folder


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself has happened
    finally:
        os.close(fd)


def replace_durably(partial: str | Path, final: str | Path) -> None:
    """Rename a finished temporary file to its final name: its data on disk first, then the
    rename, then the folder's entry, so a crash leaves the old file or the whole new one."""
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    fsync_folder(Path(final).parent)
