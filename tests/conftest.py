"""Shared fixtures. Tests never touch the network: Keras and streamcam caches point at temp dirs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="streamcam-tests-"))
os.environ["KERAS_HOME"] = str(_SESSION_TMP / "keras")
os.environ["STREAMCAM_CACHE_DIR"] = str(_SESSION_TMP / "cache")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite's own process runs Keras on TensorFlow, whatever the shell says; the JAX backend is
# tested in child processes (tests/test_backends.py), since Keras fixes its backend per process.
os.environ["KERAS_BACKEND"] = "tensorflow"
# Child processes (the CLI, live sessions, the JAX side) write and reuse bytecode like a user's
# runs: a shell's PYTHONDONTWRITEBYTECODE would make each of them compile streamcam again.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/media, or skip the test with the reason."""
    path = SHARED_MEDIA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test media not available: {path} (a user's clone has no ../shared)")
    return path


@pytest.fixture(scope="session")
def default_classifier():
    from streamcam.models import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def default_engine(default_classifier):
    from streamcam.explain.engine import CamEngine

    return CamEngine(default_classifier)


# --- Real-browser fixtures -------------------------------------------------------------------
# Playwright (the `test` extra) drives the system's Chromium (Debian package `chromium`, which
# .ci/run installs), so no browser is ever downloaded: `playwright install` is never needed.
# Without chromium or playwright the browser tests FAIL in CI (env CI set: a skipped test in CI
# tests nothing) and are skipped elsewhere (a user's clone without a browser).

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# URL schemes a self-contained page may load; anything else is recorded in external_requests.
LOCAL_URL_SCHEMES = ("file:", "data:", "blob:", "about:")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _browser_unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"real-browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"real-browser tests skipped: {reason}")


def chromium_path() -> str | None:
    """The Chromium binary to drive: $STREAMCAM_CHROMIUM if set, else `chromium` on PATH."""
    import shutil

    override = os.environ.get("STREAMCAM_CHROMIUM")
    return shutil.which(override) if override else shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (a Playwright sync-API Browser) for the whole test run."""
    executable = chromium_path()
    if executable is None:
        _browser_unavailable(
            "no Chromium binary (install Debian's `chromium` package: "
            "apt-get install --no-install-recommends chromium; or set STREAMCAM_CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _browser_unavailable(f"playwright is not installed ({exc}); pip install -e '.[test]'")
    playwright = sync_playwright().start()
    try:
        try:
            # launch() gives every run a fresh temporary profile (user-data-dir).
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, chromium_sandbox=False, timeout=60_000)
        except Exception as exc:
            _browser_unavailable(f"Chromium at {executable} did not start: {exc}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def browser_page(browser):
    """A new Playwright Page in its own fresh context, with two recorders attached:

    - page.console_errors: text of every console message of type "error", plus every uncaught
      page exception (as "pageerror: ...");
    - page.external_requests: URL of every request (and WebSocket) whose scheme is not
      file:/data:/blob:/about:. Such requests are recorded, then aborted, so tests never touch
      the network; a self-contained page should leave this list empty.
    """
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.console_errors = []
    page.external_requests = []

    def is_external(url: str) -> bool:
        return not url.lower().startswith(LOCAL_URL_SCHEMES)

    def on_console(message):
        if message.type == "error":
            page.console_errors.append(message.text)

    def on_request(request):
        if is_external(request.url):
            page.external_requests.append(request.url)

    def on_websocket(websocket):
        page.external_requests.append(websocket.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(f"pageerror: {error}"))
    page.on("request", on_request)
    page.on("websocket", on_websocket)
    context.route(lambda url: is_external(url), lambda route: route.abort())
    try:
        yield page
    finally:
        context.close()
