"""A small HTML inspector for the report tests (stdlib html.parser)."""

from __future__ import annotations

from html.parser import HTMLParser

#: every tag a report fragment may use (no script, img, link, iframe, form...)
ALLOWED_TAGS = {
    "div",
    "span",
    "b",
    "p",
    "ul",
    "li",
    "h3",
    "h4",
    "section",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "pre",
    "details",
    "summary",
    "a",
    "mark",
    "style",
    "svg",
    "g",
    "rect",
    "path",
    "text",
    "title",
}


class Inspector(HTMLParser):
    """Collects tags, attributes and text of an HTML fragment."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        """All text content, entities decoded."""
        return "".join(self.text_parts)

    def names(self) -> set[str]:
        """Every tag name used."""
        return {t for t, _ in self.tags}

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        """Attributes of every ``tag`` whose attributes include ``attrs``."""
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]
