"""A visitor's page is counted by its path, its referrer by its host."""

from __future__ import annotations

import pytest

from core.reports.visits import MAX_PATH, page_path, referrer_host


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://shop.test/pricing?plan=pro#faq", "/pricing"),
        ("https://shop.test", "/"),
        ("http://shop.test:8080/a/b/", "/a/b/"),
        ("", ""),
        ("  ", ""),
        ("/local/page?x=1", "/local/page"),
        ("https://shop.test/" + "x" * 3000, "/" + "x" * (MAX_PATH - 1)),
    ],
)
def test_the_page_is_its_path(url: str, path: str) -> None:
    assert page_path(url) == path


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://WWW.Google.com/search?q=x", "www.google.com"),
        ("https://user:pw@news.test:8443/item", "news.test"),
        ("", ""),
        ("not a url", ""),
        ("http://[::1", ""),
    ],
)
def test_the_referrer_is_its_host(url: str, host: str) -> None:
    assert referrer_host(url) == host
