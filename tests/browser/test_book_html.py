"""Real-browser test of the built book: every page of ``_build/html`` in headless Chromium, offline.

Run it after the book build with ``make test-browser`` (``make test`` does). It drives Debian's
``chromium`` (``/usr/bin/chromium``, or ``$CHROMIUM``) through Playwright's Python package; it never
downloads a browser. The page is served by a ``http.server`` thread on 127.0.0.1; every request to
any other host is blocked and recorded, and fails the test.

In a plain ``pytest tests`` run it skips at once (set ``VITLEARN_BROWSER_TEST=1`` to run it), since
the package tests run before the book is built.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = "install it with `sudo apt-get install -y chromium` (Debian/Ubuntu) or set $CHROMIUM"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-extensions", "--disable-domain-reliability", "--metrics-recording-only",
]

if not os.environ.get("VITLEARN_BROWSER_TEST"):
    pytest.skip("Chromium browser test runs from `make test-browser` after the book build "
                "(VITLEARN_BROWSER_TEST=1)", allow_module_level=True)
if not Path(CHROMIUM).is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM}: {INSTALL}", allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    pytest.skip("Chromium is driven by the playwright package: pip install -r requirements.txt",
                allow_module_level=True)


def _pages() -> list[str]:
    """Every HTML page of the build, relative to _build/html (Sphinx's own _static etc. excluded)."""
    if not (HTML / "index.html").is_file():
        return []
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(HTML).parts))


PAGES = _pages()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def server():
    assert PAGES, f"no built book in {HTML}: run `make book` first"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


class Visit:
    """One page loaded in a fresh context, with every console error and off-host request recorded."""

    def __init__(self, browser, base: str, path: str):
        self.errors: list[str] = []
        self.external: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        host = urlsplit(base).netloc

        def route(r):
            url = r.request.url
            if urlsplit(url).netloc == host or url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.external.append(url)
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(f"{base}/{path}", wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, server):
    opened = []

    def _open(path):
        v = Visit(browser, server, path)
        opened.append(v)
        return v

    yield _open
    for v in opened:
        v.close()


MATH_DONE = """async () => {
  if (!document.querySelector('.math')) return 'no math';
  for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(r => setTimeout(r, 50));
  if (!(window.MathJax && MathJax.startup)) return 'MathJax not loaded';
  await MathJax.startup.promise;
  return 'typeset';
}"""

IMAGES = """async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
  return imgs.map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth}));
}"""

# Prose text of the article outside code, where an unrendered `$$` would show.
PROSE = """() => {
  const a = (document.querySelector('article') || document.body).cloneNode(true);
  a.querySelectorAll('pre, code, script, style, .highlight, .cell_input').forEach(e => e.remove());
  return a.textContent;
}"""


@pytest.mark.parametrize("path", PAGES)
def test_page(visit, path):
    v = visit(path)
    state = v.page.evaluate(MATH_DONE)
    assert state in ("no math", "typeset"), f"{path}: {state}"
    if state == "typeset":
        unrendered = v.page.evaluate(
            "() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
        assert unrendered == 0, f"{path}: {unrendered} math elements not rendered by MathJax"
        assert v.page.locator("mjx-container").count() > 0
        # the vendored copy, not a CDN
        assert v.page.evaluate("() => [...document.scripts].some(s => /_static\\/.*mathjax/i.test(s.src))"), path
    assert "$$" not in v.page.evaluate(PROSE), f"{path}: raw $$ in the rendered text"
    images = v.page.evaluate(IMAGES)
    broken = [i["src"] for i in images if i["w"] == 0]
    assert not broken, f"{path}: images not loaded: {broken}"
    if path.startswith("notebooks/"):  # a chapter
        figures = v.page.locator("article img").count()
        assert figures > 0, f"{path}: chapter page without figures"
    widgets = v.page.locator(".tag_widget-interact").count()
    if widgets:
        static = v.page.locator(".tag_explorer-static")
        assert static.count() >= widgets, (
            f"{path}: {widgets} widget-interact cell(s) but {static.count()} explorer-static cell(s)")
        for i in range(static.count()):
            img = static.nth(i).locator("img")
            assert img.count() > 0 and img.first.is_visible(), f"{path}: explorer-static figure {i} not visible"
    assert not v.external, f"{path}: requests leaving localhost: {v.external}"
    assert not v.errors, f"{path}: console errors: {v.errors}"


def test_search_finds_attention(visit):
    v = visit("search.html?q=attention")
    results = v.page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=30_000)
    assert results.count() > 0
    assert not v.external, v.external
    assert not v.errors, v.errors


def test_screenshots(visit):
    SHOTS.mkdir(parents=True, exist_ok=True)
    chapters = [p for p in PAGES if p.startswith("notebooks/")]
    assert chapters, "no chapter pages"
    for name, path in (("landing.png", "index.html"), ("chapter.png", chapters[0])):
        v = visit(path)
        v.page.evaluate(MATH_DONE)
        v.page.screenshot(path=str(SHOTS / name), full_page=True)
        assert (SHOTS / name).stat().st_size > 10_000, name
