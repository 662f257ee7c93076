"""The console's files on the web port (core.console): the page revalidated, the hashed bundle
cached for good, gzip, the API's paths untouched, nothing outside the assets."""

from __future__ import annotations

import re

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from core.console import ASSETS, HASHED_CACHE, INDEX_CACHE, mounted


async def api(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"api {scope['path']}")(scope, receive, send)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=mounted(api)), base_url="http://t")


def test_the_checked_in_page_names_its_bundle() -> None:
    page = (ASSETS / "index.html").read_text()
    named = re.findall(r'(?:src|href)="(console-[A-Z0-9]+\.(?:js|css))"', page)
    assert sorted(n.rsplit(".", 1)[1] for n in named) == ["css", "js"]
    assert all((ASSETS / n).is_file() for n in named)


async def test_the_page_is_revalidated_and_the_bundle_kept() -> None:
    async with client() as http:
        moved = await http.get("/console?tenant=demo")
        assert (moved.status_code, moved.headers["location"]) == (308, "/console/?tenant=demo")
        page = await http.get("/console/")
        assert page.status_code == 200
        assert page.headers["cache-control"] == INDEX_CACHE
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = re.search(r'src="(console-[A-Z0-9]+\.js)"', page.text)
        assert script is not None
        bundle = await http.get(f"/console/{script[1]}", headers={"accept-encoding": "gzip"})
        assert bundle.status_code == 200
        assert bundle.headers["cache-control"] == HASHED_CACHE
        assert bundle.headers["content-encoding"] == "gzip"
        assert bundle.headers["content-type"].startswith("text/javascript")


async def test_other_paths_reach_the_api_and_nothing_escapes_the_assets() -> None:
    async with client() as http:
        relayed = await http.get("/usher.v1.AgentService/SetStatus")
        assert relayed.text == "api /usher.v1.AgentService/SetStatus"
        assert (await http.get("/consoles")).text == "api /consoles"
        assert (await http.get("/console/missing.js")).status_code == 404
        escaped = await http.get("/console/..%2F__init__.py")
        assert escaped.status_code == 404
