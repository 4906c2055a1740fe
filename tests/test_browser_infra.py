"""The real-browser test infrastructure itself: Playwright drives the system Chromium (fixtures
`browser` and `browser_page` in conftest.py) on a self-contained page opened via file://.

These tests check that the browser renders and runs scripts (DOM and canvas pixels after a key
press), and that the page's recorders work both ways: an offline page leaves console_errors and
external_requests empty, and a page that reaches for the network is caught.
"""

from __future__ import annotations

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>infra</title></head>
<body>
<canvas id="c" width="40" height="20"></canvas>
<button id="b" type="button">waiting</button>
<script>
  const ctx = document.getElementById("c").getContext("2d");
  ctx.fillStyle = "rgb(255, 0, 0)";
  ctx.fillRect(0, 0, 20, 20);           // left half red
  ctx.fillStyle = "rgb(0, 0, 255)";
  ctx.fillRect(20, 0, 20, 20);          // right half blue
  document.addEventListener("keydown", (event) => {
    document.getElementById("b").textContent = "pressed " + event.key;
  });
</script>
</body></html>
"""

_PIXELS = """() => {
  const ctx = document.getElementById("c").getContext("2d");
  const at = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);
  return {left: at(5, 10), right: at(35, 10)};
}"""


def test_a_local_page_renders_and_reacts_to_a_key(browser_page, tmp_path):
    html = tmp_path / "page.html"
    html.write_text(_PAGE, encoding="utf-8")
    page = browser_page
    page.goto(html.as_uri())
    assert page.inner_text("#b") == "waiting"

    page.keyboard.press("k")
    assert page.inner_text("#b") == "pressed k"

    pixels = page.evaluate(_PIXELS)
    assert pixels == {"left": [255, 0, 0, 255], "right": [0, 0, 255, 255]}
    assert page.console_errors == []
    assert page.external_requests == []


def test_the_recorders_catch_a_network_request_and_console_errors(browser_page, tmp_path):
    """The recorders can fail: a fetch to http://127.0.0.1:9 is recorded (and aborted, so the
    network is never touched), and both console.error and an uncaught exception are recorded."""
    html = tmp_path / "leaky.html"
    html.write_text(
        """<!doctype html><meta charset="utf-8"><body><p id="s">start</p><script>
        console.error("boom from the page");
        fetch("http://127.0.0.1:9/x").then(
          () => { document.getElementById("s").textContent = "loaded"; },
          () => { document.getElementById("s").textContent = "failed"; });
        setTimeout(() => { throw new Error("uncaught in timer"); }, 0);
        </script></body>""",
        encoding="utf-8",
    )
    page = browser_page
    page.goto(html.as_uri())
    page.wait_for_function("document.getElementById('s').textContent !== 'start'")
    assert page.inner_text("#s") == "failed"
    assert page.external_requests == ["http://127.0.0.1:9/x"]
    assert "boom from the page" in page.console_errors
    assert any(e.startswith("pageerror:") and "uncaught in timer" in e for e in page.console_errors)
