"""Reading the detail page (/logs/{id}) as text, for tests that need no browser."""

from __future__ import annotations

import html
import re

TRUNCATED = "\n…[truncated by warden: 900000 bytes in all]"
"""What the recorder appends to a body it cut at its size limit."""


def section(page: str, name: str) -> str:
    """The text of one section of the page, markup removed and entities decoded."""
    found = re.search(rf'<section id="{name}">(.*?)</section>', page, re.DOTALL)
    assert found, name
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))
