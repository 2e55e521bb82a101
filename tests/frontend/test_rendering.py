"""labeling.rendering: Markdown becomes a few safe tags; raw HTML in model outputs stays visible text."""
from __future__ import annotations

import pytest

from labeling.rendering import MAX_MARKDOWN_CHARS, render_markdown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>window.__xss=1</script>", "<p>&lt;script&gt;window.__xss=1&lt;/script&gt;</p>"),
        ('<img src=x onerror="window.__xss=1">', '<p>&lt;img src=x onerror="window.__xss=1"&gt;</p>'),
        ("[x](javascript:alert(1))", '<p><a target="_blank" rel="noopener noreferrer nofollow">x</a></p>'),
        ("[x](JaVaScRiPt:alert(1))", '<p><a target="_blank" rel="noopener noreferrer nofollow">x</a></p>'),
        ("[x](data:text/html,hi)", '<p><a target="_blank" rel="noopener noreferrer nofollow">x</a></p>'),
        ("![i](https://tracker.example/p.png)", "<p></p>"),
        ("a <!-- c --> b", "<p>a &lt;!-- c --&gt; b</p>"),
        ("", ""),
    ],
)
def test_hostile_input_is_inert(text, expected):
    assert render_markdown(text) == expected


def test_markdown_features_survive():
    html = render_markdown("# T\n\n**b** *i* `c`\n\n```python\nx = '<b>'\n```\n\n| a |\n|---|\n| 1 |\n\n- one\n- two\n\nl1\nl2")
    for fragment in ["<h1>T</h1>", "<strong>b</strong>", "<em>i</em>", "<code>c</code>",
                     "<pre><code>x = '&lt;b&gt;'", "<table>", "<li>one</li>", "l1<br>"]:
        assert fragment in html


def test_links_keep_safe_schemes_with_noopener():
    html = render_markdown("[w](https://example.org) [m](mailto:a@example.org) <https://auto.example>")
    assert html.count('rel="noopener noreferrer nofollow"') == 3
    assert 'href="https://example.org"' in html and 'href="mailto:a@example.org"' in html


def test_huge_texts_are_escaped_plain_text():
    html = render_markdown("<b>" + "x" * MAX_MARKDOWN_CHARS)
    assert html.startswith("<pre>&lt;b&gt;xxx") and "<b>" not in html
