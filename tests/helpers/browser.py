"""Serving the dashboard in a subprocess and timing its pages in a real (headless) Chromium.

Used by `tools/bench_frontier.py` (the 10,000-member frontier budget: drawn within 2 s of
navigation) and by the browser tests of tests/dashboard (with the `page` fixture of its conftest).
The browser is Debian's Chromium (`/usr/bin/chromium`, or $SWEEPER_CHROMIUM) driven by Playwright;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_ENV = "SWEEPER_CHROMIUM"
# WebGL (Scattergl) in headless Chromium without a GPU: the SwiftShader software renderer.
CHROMIUM_ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--no-sandbox"]

# Resolves to the time (ms since navigation start) at which the frontier holds `n` points and two
# animation frames have passed (Plotly has drawn them), or false while it does not.
FRONTIER_DRAWN_JS = """
async (n) => {
  const frame = () => new Promise(r => requestAnimationFrame(r));
  for (;;) {
    const gd = document.querySelector('#frontier-graph .js-plotly-plot');
    if (gd && gd._fullData && gd._fullLayout) {
      let points = 0;
      for (const t of gd._fullData) if (t.mode === 'markers' && t.x) points += t.x.length;
      if (points === n && gd.querySelector('.main-svg')) { await frame(); await frame(); return performance.now(); }
    }
    await frame();
  }
}
"""


def chromium_path() -> str | None:
    """Debian's Chromium, if installed (or $SWEEPER_CHROMIUM)."""
    path = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
    return path if Path(path).is_file() else shutil.which("chromium")


needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="Chromium is not installed: the browser tests need /usr/bin/chromium (apt-get install -y chromium)",
)


def watch_errors(page) -> list[str]:
    """The list that collects `page`'s console errors and uncaught page errors from now on."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(url: str, *, host: str = "127.0.0.1", token: str | None = None, timeout_s: float = 60.0,
            full_plotly: bool = False):  # fmt: skip
    """`sweeper dashboard` on a free port in a subprocess; yields its base URL (http://127.0.0.1:PORT)."""
    port = free_port()
    command = [sys.executable, "-m", "sweeper", "dashboard", "--storage", url, "--host", host, "--port", str(port)]
    if token:
        command += ["--token", token]
    if full_plotly:
        command.append("--full-plotly")
    log = open(os.devnull, "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            try:
                request = urllib.request.Request(base + "/_alive", headers={"X-Sweeper-Token": token or ""})
                urllib.request.urlopen(request, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (404 for this path)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dashboard did not answer on {base} within {timeout_s:.0f} s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def browser():
    """A headless Debian Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium (or set $SWEEPER_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def time_frontier(b, base: str, study: str, members: int, timeout_s: float = 60.0, screenshot: str | None = None) -> dict:
    """One cold visit (a fresh browser context: empty cache) of the frontier page.

    Returns {"drawn_ms": navigation start -> `members` points drawn (browser clock),
    "wall_ms": the same seen from Python, "console_errors": [...]}.
    """
    context = b.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(timeout_s * 1000)
    start = time.perf_counter()
    page.goto(f"{base}/frontier?study={study}", wait_until="commit")
    drawn = page.evaluate(FRONTIER_DRAWN_JS, members)
    wall = (time.perf_counter() - start) * 1000
    if screenshot:
        page.screenshot(path=screenshot, full_page=False)
    context.close()
    return {"drawn_ms": drawn, "wall_ms": wall, "console_errors": errors}
