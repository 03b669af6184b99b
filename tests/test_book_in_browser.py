"""The built ``smoke`` book in headless Chromium: every page loads without errors, every image loads,
no internal link is broken; a screenshot of each chapter is saved for review (``runs/smoke/screenshots``).

``make test`` builds the smoke book first (``radgazegen book --preset smoke --executed-dir
runs/smoke/notebooks``); run alone, the fixture builds it (executing the smoke notebooks if needed).
``RADGAZEGEN_CHECK_HTML=_build/html RADGAZEGEN_SCREENSHOTS=<folder>`` checks another built book (the
published one) instead.
Pages are served over HTTP from a local server, as GitHub Pages serves them; requests that leave
the machine are blocked, so the book must not need the network.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from radgazegen.book import build_book, chapter_notebooks, execute_notebooks
from radgazegen.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
SMOKE_RUN = Path("runs") / "smoke"
CHECK_HTML = "RADGAZEGEN_CHECK_HTML"  # check this built book instead of building the smoke one
SCREENSHOTS = Path(os.environ.get("RADGAZEGEN_SCREENSHOTS", ROOT / SMOKE_RUN / "screenshots"))
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # fmt: skip  (no calls home from a closed machine)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found (Debian: apt-get install chromium): the built book is not checked in a browser",
)


@pytest.fixture(scope="module")
def smoke_html() -> Path:
    if os.environ.get(CHECK_HTML):  # e.g. the published cpu book: RADGAZEGEN_CHECK_HTML=_build/html
        return Path(os.environ[CHECK_HTML]).resolve()
    smoke, executed = get_preset("smoke"), SMOKE_RUN / "notebooks"
    execute_notebooks(ROOT, smoke, run_dir=SMOKE_RUN, executed_dir=executed, progress=False)  # cached after make test
    return build_book(ROOT, smoke, run_dir=SMOKE_RUN, executed_dir=executed)


@pytest.fixture(scope="module")
def server(smoke_html: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(smoke_html))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
        httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log in the test output
        pass


class _Page(HTMLParser):
    """The ids of an HTML page and the local targets of its links and resources."""

    RESOURCE_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "script": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"])
        url = found.get(self.RESOURCE_ATTRIBUTES.get(tag, ""))
        if url and not urlsplit(url).scheme and not url.startswith("//"):
            self.targets.append((tag, url))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_page_of_the_toc_is_built(smoke_html: Path) -> None:
    pages = {p.relative_to(smoke_html).as_posix() for p in smoke_html.rglob("*.html")}
    chapters = {f"book/chapters/{name}.html" for name in chapter_notebooks(ROOT)}
    expected = chapters | {"book/intro.html", "book/method.html", "book/results.html", "book/reproduce.html"}
    assert expected <= pages, f"pages missing from the build: {sorted(expected - pages)}"


def test_no_internal_link_or_resource_is_broken(smoke_html: Path) -> None:
    parsed = {path: _parse(path) for path in smoke_html.rglob("*.html") if "_static" not in path.parts}
    broken = []
    for path, page in parsed.items():
        for tag, url in page.targets:
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{path.relative_to(smoke_html)}: <{tag}> {url} (no file)")
            elif parts.fragment and target.suffix == ".html" and tag == "a":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(smoke_html)}: <a> {url} (no element with that id)")
    assert not broken, "\n".join(broken)


@pytest.mark.slow
def test_pages_load_in_chromium_without_errors_and_with_every_image(smoke_html: Path, server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) drives Chromium")
    pages = sorted(p.relative_to(smoke_html).as_posix() for p in smoke_html.rglob("*.html") if "_static" not in p.parts)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort()
        )
        for name in pages:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error, errors=errors: errors.append(f"script error: {error}"))
            page.on("requestfailed", lambda request, errors=errors: errors.append(
                f"request failed: {request.url}") if request.url.startswith(server) else None)  # fmt: skip
            page.on("console", lambda message, errors=errors: errors.append(f"console error: {message.text}")
                    if message.type == "error" and server in (message.location or {}).get("url", server) else None)  # fmt: skip
            response = page.goto(server + name, wait_until="networkidle")
            if response is None or not response.ok:
                errors.append(f"HTTP {response.status if response else 'no response'}")
            if page.url != server + name:  # a redirect page (index.html): its target is checked on its own
                page.close()
                continue
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
            page.wait_for_load_state("networkidle")
            unloaded = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
            )
            errors += [f"image did not load: {src[:120]}" for src in unloaded]
            if name.startswith("book/chapters/") or name == "book/results.html":
                page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}.png"), full_page=True)
            problems += [f"{name}: {error}" for error in errors]
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
    assert {p.stem for p in SCREENSHOTS.glob("*.png")} >= set(chapter_notebooks(ROOT))
