"""A virtual X display (Xvfb) for tests of real windows, and a few X helpers.

Needs the Debian packages `xvfb` (Xvfb) and `xdotool`; libX11 comes with both. No Python
package beyond the standard library is used: WM_DELETE_WINDOW is sent through libX11 with ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

XVFB_SCREEN = "1280x800x24"
XVFB_START_S = 10.0


class XvfbError(RuntimeError):
    pass


class Xvfb:
    """`Xvfb :N -screen 0 1280x800x24 -nolisten tcp` on a free display number; a context manager.

    Xvfb picks the number itself (-displayfd: the first one whose lock it can take, so two test
    runs never collide) and writes it to a pipe once it accepts connections; start() waits for
    that, and for the socket /tmp/.X11-unix/XN, at most `timeout` seconds.
    """

    def __init__(self, screen: str = XVFB_SCREEN, timeout: float = XVFB_START_S):
        self.screen, self.timeout = screen, timeout
        self.process: subprocess.Popen | None = None
        self.number: int | None = None

    @property
    def display(self) -> str:
        return f":{self.number}"

    def start(self) -> Xvfb:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise XvfbError("no Xvfb binary (install Debian's `xvfb` package)")
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [binary, "-displayfd", str(write_fd), "-screen", "0", self.screen, "-nolisten", "tcp"],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(write_fd)
        try:
            self.number = self._read_number(read_fd)
            self._wait_for_socket()
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        return self

    def _read_number(self, read_fd: int) -> int:
        deadline, text = time.monotonic() + self.timeout, b""
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise XvfbError(f"Xvfb did not report a display within {self.timeout:.0f} s")
            chunk = os.read(read_fd, 32)
            if not chunk:  # Xvfb exited (or closed the pipe) without a number
                break
            text += chunk
        if not text.strip().isdigit():
            raise XvfbError(f"Xvfb did not start: {self._stderr_tail()}")
        return int(text)

    def _wait_for_socket(self) -> None:
        socket_path = Path(f"/tmp/.X11-unix/X{self.number}")
        deadline = time.monotonic() + self.timeout
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise XvfbError(f"Xvfb {self.display} has no socket {socket_path}: {self._stderr_tail()}")
            time.sleep(0.05)

    def _stderr_tail(self) -> str:
        if self.process is None or self.process.poll() is None:
            return "(still running)"
        return (self.process.stderr.read() or b"").decode(errors="replace")[-500:] or f"exit code {self.process.returncode}"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        finally:
            if process.stderr:
                process.stderr.close()

    def __enter__(self) -> Xvfb:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def xdotool(display: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run xdotool on `display`; never raises for its exit code (search finding nothing exits 1)."""
    env = {**os.environ, "DISPLAY": display}
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=timeout)


def find_window(display: str, name: str, pid: int | None = None) -> int | None:
    """The id of a window whose title matches `name` (and that process `pid` owns), or None."""
    args = ["search", "--name", name] if pid is None else ["search", "--pid", str(pid), "--name", name]
    found = xdotool(display, *args).stdout.split()
    return int(found[0]) if found else None


def window_geometry(display: str, window: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a window, from `xdotool getwindowgeometry --shell`."""
    out = xdotool(display, "getwindowgeometry", "--shell", str(window)).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


# -- WM_DELETE_WINDOW, as a window manager sends it when the user clicks a window's close button --
# (xdotool 3.2016's `windowclose` is XDestroyWindow and `windowkill` is XKillClient: neither is a
# polite close; newer xdotool has `windowquit`, Debian's does not.)

_CLIENT_MESSAGE = 33


class _XClientMessageEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessageEvent), ("pad", ctypes.c_long * 24)]


def _libx11():
    lib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    lib.XOpenDisplay.restype, lib.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(_XEvent)]
    lib.XFlush.argtypes = lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return lib


def send_wm_delete_window(display: str, window: int) -> None:
    """Ask a window to close the way a window manager does: a WM_PROTOCOLS/WM_DELETE_WINDOW ClientMessage."""
    x11 = _libx11()
    connection = x11.XOpenDisplay(display.encode())
    if not connection:
        raise XvfbError(f"cannot open X display {display}")
    try:
        event = _XEvent()
        event.xclient.type = _CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(connection, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0  # CurrentTime
        if not x11.XSendEvent(connection, window, 0, 0, ctypes.byref(event)):
            raise XvfbError(f"XSendEvent to window {window} failed")
        x11.XFlush(connection)
    finally:
        x11.XCloseDisplay(connection)


def remap_window(display: str, window: int) -> None:
    """Unmap and map a window again, as a window manager does when it takes a window over.

    Qt's xcb platform plug-in (OpenCV's windows) now and then leaves a window unpainted after its
    first map on a bare X server with no window manager: in one probe, 5 of 18 runs of `streamcam
    live` on Xvfb with both CPUs busy showed a black window for the whole clip, though it was
    viewable, took keys and had drawn every frame. An Expose alone (XClearArea) did not wake it; an
    unmap and map did, every time, and the process played on."""
    for action in ("windowunmap", "windowmap"):
        done = xdotool(display, action, "--sync", str(window))
        if done.returncode != 0:
            raise XvfbError(f"xdotool {action} {window} failed: {done.stderr.strip()}")
