"""Unpickling weight files safely (shared by the weight readers): only allowed globals
(AllowListUnpickler), and size fields checked before the unpickler trusts them (check_pickle_sizes).

Refusing globals (find_class) stops code from running, but not memory bombs: CPython's
unpickler allocates from length fields and memo indices before reading any data.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from typing import BinaryIO, ClassVar


class UnsafePickleError(ValueError):
    """A pickle whose size fields do not fit the file, or that is not a pickle at all."""


class AllowListUnpickler(pickle.Unpickler):
    """Resolves only the globals in ALLOWED ({(module, name): the object to use}); any other is
    refused with a REFUSED error (subclasses may accept more in other_global)."""

    ALLOWED: ClassVar[dict] = {}
    REFUSED: ClassVar[type[Exception]] = UnsafePickleError

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        return self.other_global(module, name)

    def other_global(self, module: str, name: str):
        raise self.REFUSED(f"refusing to load {module}.{name} from a weights file")


# What unpickling a malformed or hostile file can raise, beyond the readers' own errors.
MALFORMED_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    struct.error,
    AttributeError,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    RecursionError,
    MemoryError,
)


def error_reason(exc: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# Length-prefixed pickle arguments: pickletools' marker -> struct format of the length.
_COUNTED = {
    pickletools.TAKEN_FROM_ARGUMENT1: "<B",
    pickletools.TAKEN_FROM_ARGUMENT4: "<i",
    pickletools.TAKEN_FROM_ARGUMENT4U: "<I",
    pickletools.TAKEN_FROM_ARGUMENT8U: "<Q",
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def check_pickle_sizes(f: BinaryIO, end: int) -> None:
    """Walk the pickle at f's position without building anything, then rewind to it.

    CPython's unpickler trusts two kinds of field and allocates from them at once: a length
    (it allocates the claimed bytes, then reads) and a memo index (it grows its memo table to
    twice the index, zeroed): 8 bytes of pickle can ask for GiBs. So every length must fit in
    the `end - position` bytes left, and every memo index must be below the number of opcodes
    read so far (real pickles number their memo entries 0, 1, 2, ...).
    """
    start = f.tell()
    try:
        for count in range(end - start):  # every opcode takes at least one byte
            code = f.read(1)
            op = pickletools.code2op.get(code.decode("latin-1")) if code else None
            if op is None:
                raise UnsafePickleError(f"not a pickle: unknown opcode {code!r} at byte {f.tell() - 1}" if code else "pickle is truncated")
            value = None
            if op.arg is not None and op.arg.n in _COUNTED:  # skip the bytes, do not read them
                fmt = _COUNTED[op.arg.n]
                raw = f.read(struct.calcsize(fmt))
                (size,) = struct.unpack(fmt, raw) if len(raw) == struct.calcsize(fmt) else (-1,)
                if not 0 <= size <= end - f.tell():
                    raise UnsafePickleError(f"pickle {op.name} claims {size} bytes; the file has {end - f.tell()} left")
                f.seek(size, io.SEEK_CUR)
            elif op.arg is not None:
                value = op.arg.reader(f)  # fixed-size or newline-terminated, so bounded by the file
            if op.name in _MEMO_PUTS and not (type(value) is int and 0 <= value <= count):
                raise UnsafePickleError(f"pickle memo index {value!r:.30} is out of sequence")
            if op.name == "FRAME" and value > end - f.tell():
                raise UnsafePickleError(f"pickle frame claims {value} bytes; the file has {end - f.tell()} left")
            if op.name == "STOP":
                break
        else:
            raise UnsafePickleError("pickle is truncated")
    except UnsafePickleError:
        raise
    except ValueError as exc:  # pickletools' readers: missing newline, short field, bad number
        raise UnsafePickleError(f"malformed pickle: {exc}") from exc
    f.seek(start)
