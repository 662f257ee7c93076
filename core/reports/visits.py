"""What a web chat visitor's conversation counts under: its page's path and referrer's host.

Pure functions of the URLs the widget sent (``ConversationStarted.page`` and ``referrer``):
the page without scheme, host, query or fragment, the referrer reduced to its host, so the
visitor report groups a site's pages and a search engine's many result links together.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

MAX_PATH: Final = 512
"""A path longer than this is cut (reports group by it; 2048-character URLs are noise)."""


def page_path(url: str) -> str:
    """``/pricing`` of ``https://shop.test/pricing?plan=pro#top``; "/" for a bare host; "" for
    no URL; a value that is not a URL is kept as its part before any ``?`` or ``#``."""
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0][:MAX_PATH]
    if parts.scheme or parts.netloc:
        return (parts.path or "/")[:MAX_PATH]
    return parts.path[:MAX_PATH]


def referrer_host(url: str) -> str:
    """The referrer's host, lower case, without port or credentials; "" for none or junk."""
    try:
        host = urllib.parse.urlsplit(url.strip()).hostname
    except ValueError:
        return ""
    return host or ""
