"""axe-core in a Playwright page: the WCAG 2.1 A + AA rule set the accessibility tests assert against.

axe.min.js is vendored (tests/data/axe/) so the tests run with no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parent.parent / "data" / "axe" / "axe.min.js"
WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


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
