"""Security headers for the web UI's pages.

Every page gets a strict Content-Security-Policy: scripts only from our own static files (no inline script:
page data travels in ``<script type="application/json">`` blocks, which browsers never execute), no inline
styles, no plugins, no framing, no loads from anywhere else. Texts are already sanitized server-side
(``labeling.rendering``); the policy is the second wall if that ever fails.
"""
from __future__ import annotations

from functools import wraps

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        # 'self' covers ws:/wss: to this host in CSP level 3 (the dashboard's socket).
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def with_csp(view):
    """Add the Content-Security-Policy (and a no-store cache rule for pages holding private data)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return wrapped
