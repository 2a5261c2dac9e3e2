"""GET /consent/banner, /consent/cookies and /consent/static/…"""

from __future__ import annotations

import gzip
import re

import pytest
from conftest import decide

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


async def test_banner_fragment_follows_the_visitors_state(client):
    r = await client.get("/consent/banner", params={"next": "/plans"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().startswith('<div class="ck" id="consentkit"') and "data-ck-banner" in r.text
    assert 'name="next" value="/plans"' in r.text
    assert "no-store" in r.headers["cache-control"]
    await decide(client, "reject_all")
    after = await client.get("/consent/banner")
    assert "data-ck-settings" in after.text and "data-ck-banner" not in after.text


async def test_banner_fragment_refuses_an_off_site_next(client):
    r = await client.get("/consent/banner", params={"next": "https://evil.example/"})
    assert r.status_code == 400 and "next" in r.text


@pytest.mark.parametrize(("ua", "first"), [(FIREFOX, "firefox"), (SAFARI_IOS, "safari_ios")])
async def test_cookie_instructions_put_the_visitors_browser_first(client, ua, first):
    r = await client.get("/consent/cookies", headers={"user-agent": ua})
    assert r.status_code == 200
    sections = re.findall(r'<section class="ck-browser[^"]*" id="([a-z_]+)"', r.text)
    assert sections[0] == first
    assert len(sections) == len(set(sections)) >= 12  # all the others listed below
    assert {"internet_explorer", "netscape"} <= set(sections)


async def test_cookie_instructions_for_another_browser_and_in_french(client):
    r = await client.get(
        "/consent/cookies",
        params={"browser": "edge"},
        headers={"user-agent": FIREFOX, "accept-language": "fr"},
    )
    sections = re.findall(r'<section class="ck-browser[^"]*" id="([a-z_]+)"', r.text)
    assert sections[0] == "edge"
    assert '<html lang="fr">' in r.text and "Bloquer tous les cookies" in r.text
    unknown = await client.get(
        "/consent/cookies", params={"browser": "mosaic"}, headers={"user-agent": FIREFOX}
    )
    assert re.findall(r'<section class="ck-browser[^"]*" id="([a-z_]+)"', unknown.text)[0] == "firefox"


async def test_widget_files_are_served_under_hashed_names_for_a_year(client, kit):
    for url in (kit.renderer.js_url, kit.renderer.css_url, kit.renderer.consent_mode_url):
        r = await client.get(url, headers={"accept-encoding": "identity"})
        assert r.status_code == 200
        assert "immutable" in r.headers["cache-control"] and "max-age=31536000" in r.headers["cache-control"]
        name = url.rsplit("/", 1)[1]
        logical = re.sub(r"\.[0-9a-f]{12}\.", ".", name)
        assert r.content == kit.assets.by_logical[logical].body
        etag = r.headers["etag"]
        assert (await client.get(url, headers={"if-none-match": etag})).status_code == 304
        zipped = await client.get(url, headers={"accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip" and zipped.content == r.content
    assert (await client.get("/consent/static/consentkit.000000000000.js")).status_code == 404


def test_gzipped_asset_is_the_file():
    from consentkit.http.static import WidgetAssets

    for asset in WidgetAssets().by_logical.values():
        assert gzip.decompress(asset.gzipped) == asset.body
