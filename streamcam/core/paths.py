"""Checks on input paths that give one clear line where a decoder would give a cryptic one."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


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
