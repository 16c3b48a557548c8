"""Checks of the HTML that objects show in notebooks (SPEC §16): self-contained and well formed."""

from __future__ import annotations

import html.parser

VOID = {"br", "img", "input", "meta", "link", "hr", "col", "wbr"}


def problems(markup: str) -> list[str]:
    """What keeps ``markup`` from being self-contained and well formed: a tag that loads or
    runs something (script, link, img, iframe ...), an attribute that does (src, href, on...),
    a stylesheet that fetches (url, @import), a tag left open or closed out of order."""
    found: list[str] = []
    stack: list[str] = []

    class Parser(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "link", "img", "iframe", "object", "embed", "video", "audio"):
                found.append(f"<{tag}>")
            found.extend(f"{tag} {name}=" for name, _ in attrs
                         if name in ("src", "href", "srcset") or name.startswith("on"))
            if tag not in VOID:
                stack.append(tag)

        def handle_endtag(self, tag):
            if not stack or stack.pop() != tag:
                found.append(f"</{tag}> out of order")

        def handle_data(self, data):
            if stack and stack[-1] == "style" and ("url(" in data or "@import" in data):
                found.append("a stylesheet that fetches")

    Parser().feed(markup)
    return found + [f"<{tag}> left open" for tag in stack]


def assert_self_contained(markup: str) -> None:
    assert problems(markup) == []
    assert "http" not in markup.lower()
