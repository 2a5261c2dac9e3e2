"""The demo's "Visit as…" control: one site, the law of each visitor (README, "Regions").

In a module of its own: ``test_demo.py`` ends with browser tests whose Playwright loop must not
be running when async tests start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_demo import AUDIT_PASSWORD, client, forms, has_banner, state

from demo_site.app import PolicySwitch, create_app


@pytest.fixture
async def visitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.delenv("CONSENTKIT_SECRET", raising=False)
    monkeypatch.setenv("DEMO_AUDIT_PASSWORD", AUDIT_PASSWORD)
    app: PolicySwitch = create_app(ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    async with client(app) as c:
        yield c
    await app.aclose()


async def visit_as(visitor: httpx.AsyncClient, region: str) -> None:
    controls = forms((await visitor.get("/demo")).text).by_action("/demo/visit-as")
    r = await visitor.post("/demo/visit-as", data={**controls.hidden, "region": region})
    assert r.status_code == 303, r.text


@pytest.mark.parametrize(
    ("region", "model", "banner", "opt_out_link"),
    [
        ("DE", "opt_in", True, False),
        ("CA-QC", "opt_in", True, False),  # Quebec's rule before Canada's
        ("CA-ON", "opt_out", False, True),
        ("US-CA", "opt_out", False, True),
        ("US-TX", "opt_out", False, True),
        ("JP", "notice", True, False),
        ("", "opt_in", True, False),  # nowhere in particular: the default
    ],
)
async def test_visit_as_shows_each_model(visitor, region, model, banner, opt_out_link) -> None:
    await visit_as(visitor, region)
    now = await state(visitor)
    assert (now["region"], now["model"]) == (region or None, model)
    home = (await visitor.get("/")).text
    assert has_banner(home) is banner
    assert ("Do Not Sell or Share My Personal Information" in home) is opt_out_link
    assert f"the law there is\n    <strong>{model}</strong>" in (await visitor.get("/demo")).text


async def test_a_visitors_own_region_headers_are_not_believed(visitor) -> None:
    r = await visitor.get("/consent", headers={"x-demo-country": "US", "x-demo-subdivision": "CA"})
    assert (r.json()["region"], r.json()["model"]) == (None, "opt_in")
    await visit_as(visitor, "DE")
    r = await visitor.get("/consent", headers={"x-demo-country": "US"})
    assert r.json()["region"] == "DE"


async def test_visit_as_refuses_an_unknown_region_and_a_foreign_form(visitor) -> None:
    controls = forms((await visitor.get("/demo")).text).by_action("/demo/visit-as")
    assert (await visitor.post("/demo/visit-as", data={**controls.hidden, "region": "FR"})).status_code == 400
    r = await visitor.post(
        "/demo/visit-as", data={"region": "US-CA"}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert (await state(visitor))["region"] is None


async def test_the_privacy_page_explains_what_each_visitor_gets(visitor) -> None:
    await visit_as(visitor, "US-CA")
    page = (await visitor.get("/privacy")).text
    assert "Where you are visiting from" in page and "Do Not Sell or Share My Personal Information" in page
    assert "You are visiting from US-CA: the law there is opt_out." in page
