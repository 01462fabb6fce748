"""CI's check of the built documentation site in a real browser: ``python docs/check_site.py site``.

Serves the folder ``mkdocs build`` wrote on a local port, opens the home page, a study page and an API
page in headless Chromium (Playwright; ``--chromium`` names the browser, Debian's by default), and fails
on any failed request, HTTP error or console error, and when the site search finds nothing for
``cc_norm``. Prints one line per page checked and one per problem; exit status 1 on any problem.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

PAGES = ("", "studies/capacity/", "api/experiment/")  # home, one study, one API page
QUERY = "cc_norm"
TIMEOUT_MS = 30_000


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves the site without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's signature)
        pass


def watch(page: Page, problems: list[str]) -> None:
    """Record the page's failed requests, HTTP errors, console errors and uncaught exceptions."""
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))


def search_hits(page: Page, base: str, query: str) -> int:
    """How many results the site search lists for ``query`` (Material's search box on the home page)."""
    page.goto(base, wait_until="networkidle", timeout=TIMEOUT_MS)
    box = page.locator("input.md-search__input")
    box.click()  # the header's search box (a desktop-wide window shows it)
    box.press_sequentially(query)  # typed: the search listens to key events
    try:
        page.locator("li.md-search-result__item").first.wait_for(timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        return 0
    return page.locator("li.md-search-result__item").count()


def main(argv: list[str] | None = None) -> int:
    """Check the site; return the exit status."""
    parser = argparse.ArgumentParser(prog="check_site", description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs build wrote (site/)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser (default: Debian's chromium)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"{args.site} holds no index.html: run mkdocs build first")

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(args.site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failed = False
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            for path in PAGES:
                page = browser.new_page()
                problems: list[str] = []
                watch(page, problems)
                page.goto(base + path, wait_until="networkidle", timeout=TIMEOUT_MS)
                if not page.locator("article h1").count():
                    problems.append("no rendered heading (article h1)")
                print(f"check_site: /{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
                for problem in problems:
                    print(f"check_site: /{path}: {problem}")
                failed |= bool(problems)
                page.close()
            page = browser.new_page()
            problems = []
            watch(page, problems)
            hits = search_hits(page, base, QUERY)
            print(f"check_site: search {QUERY!r}: {hits} result(s)")
            for problem in problems:
                print(f"check_site: search: {problem}")
            failed |= bool(problems) or hits == 0
            browser.close()
    finally:
        server.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
