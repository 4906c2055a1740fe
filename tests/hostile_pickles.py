"""Pickle payloads with an observable effect, for the weight readers' refusal tests."""

from __future__ import annotations

import os
import shlex


class CreatesFile:
    """A payload with an observable effect: unpickling it creates `marker` (by a shell, or by open)."""

    def __init__(self, how: str, marker):
        self.how, self.marker = how, str(marker)

    def __reduce__(self):
        if self.how == "shell":
            return (os.system, (f"touch {shlex.quote(self.marker)}",))
        return (open, (self.marker, "w"))
