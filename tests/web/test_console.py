"""The pages the app serves itself (web/console.py): the console at /console/, the member demo
page at / (only when DEMO_PAGE is on), their assets, and the CSP on each."""

from __future__ import annotations

import pytest

from web.console import DIST

pytestmark = pytest.mark.skipif(not (DIST / "console.html").exists(),
                                reason="console/dist not built (bin/test builds it)")


@pytest.fixture
async def demo_client(aiohttp_client, settings, bound_db):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(settings.model_copy(update={"demo_page": True}),
                                           db=bound_db))


async def test_console_shell_under_a_strict_csp(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/console/")
    assert resp.status == 200 and resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    host = f"{client.server.host}:{client.server.port}"
    assert f"connect-src 'self' ws://{host}/ws;" in csp
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe" not in csp
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    assert "<script>" not in html and "style=" not in html  # nothing inline
    redirect = await client.get("/console", allow_redirects=False)
    assert redirect.status == 308 and redirect.headers["Location"] == "/console/"


async def test_assets_are_served_with_their_type(client) -> None:  # type: ignore[no-untyped-def]
    js = await client.get("/console/assets/console.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    css = await client.get("/console/assets/console.css")
    assert css.status == 200 and css.content_type == "text/css"


@pytest.mark.parametrize("name", ["..%2Fconsole.html", "%2E%2E%2F%2E%2E%2Fpyproject.toml",
                                  "missing.js", "console.html", ".hidden.js"])
async def test_nothing_but_a_built_asset_is_served(client, name: str) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get(f"/console/assets/{name}")
    assert resp.status == 404
    assert (await resp.json())["success"] is False


async def test_demo_page_is_off_outside_development(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/")
    assert resp.status == 404 and (await resp.json())["success"] is False


async def test_demo_page_when_on(demo_client) -> None:  # type: ignore[no-untyped-def]
    resp = await demo_client.get("/")
    assert resp.status == 200 and "/console/assets/member.js" in await resp.text()
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


def test_demo_page_defaults_to_development_only(settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.model_copy(update={"app_env": "development"}).demo_page_on
    assert not settings.model_copy(update={"app_env": "production"}).demo_page_on
