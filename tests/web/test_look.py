"""Readable on a phone, accessible, and nothing the CSP would block.

Screenshots of each page are taken at a phone's width; with
MAILCTL_SCREENSHOTS=DIR they are kept there (docs/img/ is made that way).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mailctl.web.app import HERE
from tests.web.conftest import Site, sign_in

PHONE = {"width": 390, "height": 844}


def _keep(page, name: str, full: bool = True) -> None:
    where = os.environ.get("MAILCTL_SCREENSHOTS")
    if where:
        page.screenshot(path=str(Path(where) / name), full_page=full)


def _check(page) -> None:
    """No horizontal scrolling, every field labelled, no CSP violation."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url}: {width}px wide"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]), select, textarea')].filter(el =>
        !(el.id && document.querySelector(`label[for="${el.id}"]`)) &&
        !el.getAttribute('aria-label') && !el.closest('label')).map(el => el.name)""")
    assert unlabelled == [], f"{page.url}: fields without a label: {unlabelled}"
    buttons = page.evaluate("""() => [...document.querySelectorAll('button, a')].filter(
        el => !(el.textContent.trim() || el.getAttribute('aria-label'))).length""")
    assert buttons == 0


def test_pages_fit_a_phone_and_are_labelled(site: Site, browser) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        page.goto(site.url + "/")
        _check(page)
        sign_in(page, site, "admin", expect="/admin")
        _check(page)
        _keep(page, "console-dashboard-phone.png")
        page.goto(f"{site.url}/admin/domains/{site.domain}")
        _check(page)
        page.goto(f"{site.url}/admin/domains/{site.domain}/tokens/none")
        _check(page)
    finally:
        context.close()
    assert violations == []


def test_keyboard_order_starts_with_skip_link_then_navigation(site: Site, browser_page) -> None:
    page = browser_page
    sign_in(page, site, "admin", expect="/admin")
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.innerText || "
                                   "document.activeElement.id"))
    assert order[0] == "Skip to content"
    assert order[1:4] == ["mailctl", "Domains", "Sign out"]
    assert order[4] == "Read the providers again"  # the first control of the page itself


def _luminance(hex_color: str) -> float:
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)] if len(hex_color) == 7 else [
        int(c * 2, 16) / 255 for c in hex_color[1:]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("fg,bg", [
    ("--fg", "#fff"), ("--muted", "#fff"), ("--muted", "#f4f6f9"), ("--accent", "#fff"),
    ("#fff", "--accent"), ("#fff", "--ok"), ("#fff", "--warn"), ("#fff", "--bad"),
    ("#fff", "--unknown"),
])
def test_colours_meet_wcag_aa_contrast(fg: str, bg: str) -> None:
    css = (HERE / "static" / "console.css").read_text()
    colours = dict(re.findall(r"(--[a-z]+):\s*(#[0-9a-fA-F]{3,6})", css))
    ratio = _contrast(colours.get(fg, fg), colours.get(bg, bg))
    assert ratio >= 4.5, f"{fg} on {bg}: {ratio:.2f}"


def test_templates_have_no_inline_script_or_style() -> None:
    for path in (HERE / "templates").glob("*.html"):
        text = path.read_text()
        assert "<script" not in text and "style=" not in text and " on" + "click" not in text, path


def test_screenshots_for_the_docs(site: Site, browser) -> None:
    """The pictures in docs/console.md (kept with MAILCTL_SCREENSHOTS=docs/img)."""
    desk = browser.new_context(viewport={"width": 1200, "height": 700})
    phone = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True)
    try:
        page = desk.new_page()
        sign_in(page, site, "admin", expect="/admin")
        assert page.locator("#domains tbody tr").count() >= 1
        _keep(page, "console-dashboard.png", full=False)
        page = phone.new_page()
        sign_in(page, site, "alice", expect="/me")
        page.fill("#app-name", "Phone")
        page.click("#app-create")
        page.goto(site.url + "/me")
        assert "Phone" in page.inner_text("#app-password-table")
        _check(page)
        _keep(page, "console-mailbox.png")
    finally:
        desk.close()
        phone.close()
