"""axe-core in a Playwright page: the WCAG 2.1 A + AA rule set the accessibility tests assert against, the
structure every page of ours shares (one h1, a skip link to <main>, reflow down to 320 CSS px), and Debian's
Chromium to run them in.

axe.min.js is vendored (tests/data/axe/) so the tests run with no network."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

AXE_JS = Path(__file__).resolve().parent.parent / "data" / "axe" / "axe.min.js"
WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# pytestmark of a module that drives the browser: marked, and skipped where Debian's chromium is missing
NEEDS_CHROMIUM = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed (/usr/bin/chromium); "
                              "install it with: apt-get install -y chromium"),
]
NARROWEST = 320   # CSS px a page must still fit without scrolling sideways (WCAG 1.4.10 Reflow)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless (one per test module: starting it takes a second or two)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def axe_violations(page: Page, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; return its violations (empty list when the page passes)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluate, not add_script_tag: the pages' Content-Security-Policy forbids inline scripts, and
        # DevTools evaluation is not subject to it.
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;0")
    result: dict[str, Any] = page.evaluate(
        "async (tags) => await window.axe.run(document, {runOnly: {type: 'tag', values: tags}, "
        "resultTypes: ['violations']})",
        tags or WCAG_AA_TAGS)
    return list(result["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation and node, for an assertion message a person can act on."""
    lines = []
    for violation in violations:
        for node in violation["nodes"][:5]:
            lines.append(f"{violation['impact']}: {violation['id']} — {violation['help']} — {node['target']}")
    return "\n".join(lines)


def horizontal_overflow(page: Page) -> int:
    """How many CSS px the page scrolls sideways (0 when it reflows to the viewport)."""
    return int(page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def accessibility_problems(page: Page, what: str) -> list[str]:
    """What keeps the page, as it is now, from passing: axe violations, not exactly one h1, not exactly one
    <main> (the one with id="main"), a first link that is not the skip link to it. Empty when it passes."""
    problems = []
    violations = axe_violations(page)
    if violations:
        problems.append(f"{what}:\n{describe(violations)}")
    if (h1 := page.locator("h1").count()) != 1:
        problems.append(f"{what}: {h1} h1")
    if page.locator("main").count() != 1 or page.locator("main#main").count() != 1:
        problems.append(f"{what}: not exactly one <main id=\"main\">")
    if page.locator("a").first.get_attribute("href") != "#main":
        problems.append(f"{what}: the first link is not the skip link to #main")
    return problems


def reflow_problems(page: Page, what: str, widths: Iterable[int]) -> list[str]:
    """The widths (CSS px) at which the page scrolls sideways; the viewport is put back afterwards."""
    before = page.viewport_size
    problems = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": before["height"] if before else 800})
        if overflow := horizontal_overflow(page):
            problems.append(f"{what}: scrolls sideways by {overflow} px at {width} px")
    if before:
        page.set_viewport_size(before)
    return problems


def assert_accessible(page: Page, what: str) -> None:
    """The page passes :func:`accessibility_problems` and reflows at its width and at 320 CSS px."""
    width = page.viewport_size["width"] if page.viewport_size else NARROWEST
    problems = accessibility_problems(page, what) + reflow_problems(page, what, (width, NARROWEST))
    assert not problems, "\n".join(problems)
