"""Markdown to safe HTML, for every text a browser shows: prompts, responses, guidelines, previews.

Model outputs are untrusted and often *contain* HTML on purpose ("write me a web page"). An annotator must
see that HTML as the text the model wrote, never as markup, so raw HTML is not passed through at all: the
Markdown parser is told to treat it as plain text (escaped), and only Markdown syntax becomes tags. The result
then goes through nh3 with a strict allowlist anyway, so a parser quirk can never smuggle in a script, an event
handler, a style, an image load or a ``javascript:`` link.
"""
from __future__ import annotations

import threading

import markdown
import nh3
from markdown.extensions import Extension

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del", "code", "pre",
        "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "sup", "sub",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Links open in a new tab so that following one never throws away a half-made judgment.
_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(URL_SCHEMES),
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)
# Texts beyond this are shown as plain text: Markdown parsing is super-linear on some inputs and the server
# must not spend seconds on one hostile record.
MAX_MARKDOWN_CHARS = 200_000


class _NoRawHtml(Extension):
    """Drop python-markdown's raw-HTML passthrough (block and inline), so ``<tag>`` stays literal text."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (python-markdown's API name)
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


_local = threading.local()


def _parser() -> markdown.Markdown:
    # One parser per thread: building one costs more than a short render, and instances are not thread-safe.
    md = getattr(_local, "md", None)
    if md is None:
        md = markdown.Markdown(
            extensions=[_NoRawHtml(), "fenced_code", "tables", "sane_lists", "nl2br"], output_format="html"
        )
        _local.md = md
    return md


def sanitize_html(html: str) -> str:
    """Clean HTML through the allowlist. Everything rendered for a browser passes here last."""
    return _CLEANER.clean(html)


def render_markdown(text: str | None) -> str:
    """Markdown ``text`` as sanitized HTML, safe to insert into a page as it is."""
    if not text:
        return ""
    if len(text) > MAX_MARKDOWN_CHARS:
        return sanitize_html(f"<pre>{nh3.clean_text(text)}</pre>")
    md = _parser()
    try:
        html = md.convert(text)
    finally:
        md.reset()
    return sanitize_html(html)
