"""`python -m streamcam live ...` as a real child process with no display, for the CLI and browser tests."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO

URL_WAIT_S = 90  # model load (TensorFlow import, embedded weights) before the server starts


class LiveProcess:
    """The child's stdout and stderr are drained by threads; every wait is bounded."""

    def __init__(self, *args: str, max_open_files: int | None = None):
        """max_open_files: the child's descriptor limit (RLIMIT_NOFILE), lowered from the start."""

        def limit_files():
            if max_open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamcam", "live", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=limit_files if max_open_files is not None else None,
        )
        self.err_lines: list[str] = []
        self.out_lines: list[str] = []
        # Both pipes drained by threads (never also by communicate(): two readers would split the text).
        self._readers = [
            threading.Thread(target=self._drain, args=(pipe, lines), daemon=True)
            for pipe, lines in ((self.proc.stderr, self.err_lines), (self.proc.stdout, self.out_lines))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(pipe, lines: list[str]) -> None:
        for line in iter(pipe.readline, b""):
            lines.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.err_lines)

    def wait_for_url(self, seconds: float = URL_WAIT_S) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", self.stderr)
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                pytest.fail(f"streamcam live ended early ({self.proc.returncode}): {self.stderr}")
            time.sleep(0.1)
        pytest.fail(f"no 'live view:' URL on stderr after {seconds:g}s: {self.stderr}")

    def finish(self, seconds: float = 30) -> tuple[int, str]:
        """Wait for the exit; returns (exit code, stdout)."""
        self.proc.wait(timeout=seconds)
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode, "".join(self.out_lines)

    def interrupt(self, seconds: float = 30) -> tuple[int, str, float]:
        """One SIGINT; returns (exit code, stdout, seconds it took to exit)."""
        self.proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        code, stdout = self.finish(seconds)
        return code, stdout, time.monotonic() - sent

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
