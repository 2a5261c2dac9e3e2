"""What the visitor was shown: every banner decision names it by digest, the ledger keeps it once."""

from __future__ import annotations

import hashlib
import json

from conftest import decide, make_app
from http_helpers import serve
from jinja2 import DictLoader, PackageLoader

from consentkit.ledger import RecordFilter


async def shown_rows(kit) -> list[tuple[str, str]]:
    return [tuple(r) for r in await kit.ledger._select("SELECT digest, content FROM consentkit_shown")]


async def records(kit):
    return [r async for r in kit.ledger.records(RecordFilter())]


async def test_a_decision_names_what_the_banner_showed_and_the_ledger_keeps_it_once(make_kit, any_ledger_url):
    kit = make_kit(ledger=any_ledger_url)
    async with serve(make_app(kit), kit) as c:
        await decide(c, "reject_all")
        c.cookies.clear()
        await decide(c, "accept_all")  # another visitor, same language, same first banner
        (digest, content), *more = await shown_rows(kit)
        assert more == []
        recs = await records(kit)
        assert [r.shown_digest for r in recs] == [digest, digest]
        assert hashlib.sha256(content.encode()).hexdigest() == digest
        shown = json.loads(content)
        assert shown["format"] == "consentkit-shown/1" and shown["locale"] == "en"
        # What was stored is the banner visitors get, less what differs per visitor.
        assert "Reject all" in shown["banner"] and "{csrf_token}" in shown["banner"]
        assert shown["widget"] in kit.renderer.js_url and shown["stylesheet"] in kit.renderer.css_url


async def test_each_language_and_banner_state_is_its_own_content(kit):
    async with serve(make_app(kit), kit) as c:
        await decide(c, "reject_all", headers={"accept-language": "fr-CA"})
        c.cookies.clear()
        await decide(c, "reject_all", headers={"accept-language": "en"})
        c.cookies.clear()
        await decide(c, "reject_all", headers={"accept-language": "en", "sec-gpc": "1"})
        contents = {d: json.loads(text) for d, text in await shown_rows(kit)}
        recs = await records(kit)
    assert len({r.shown_digest for r in recs}) == 3 == len(contents)
    french = contents[recs[0].shown_digest]
    assert french["locale"] == "fr" and "Tout refuser" in french["banner"]
    # The visitor with Global Privacy Control saw the notice that their signal was applied.
    assert contents[recs[2].shown_digest]["banner"] != contents[recs[1].shown_digest]["banner"]


async def test_a_sites_own_banner_template_is_what_its_records_name(make_kit):
    plain = make_kit()
    custom = make_kit(
        template_loader=DictLoader(
            {
                "consentkit/banner.html": PackageLoader("consentkit", "templates")
                .get_source(plain.renderer.env("en"), "consentkit/banner.html")[0]
                .replace("</section>", "<p>Our own words.</p></section>", 1)
            }
        )
    )
    for kit in (plain, custom):
        async with serve(make_app(kit)) as c:
            await decide(c, "reject_all")
    a, b = await records(plain)  # both kits write to the same ledger
    assert a.shown_digest != b.shown_digest
    assert (
        "Our own words." in json.loads((await custom.ledger.shown_content(b.shown_digest)) or "{}")["banner"]
    )
    await plain.aclose()
    await custom.aclose()


async def test_consents_recorded_by_the_site_name_nothing_shown(kit):
    async with serve(make_app(kit), kit):
        record = await kit.record("customer-42", {"sms_marketing": True}, evidence={"form": "signup"})
    assert record.shown_digest is None
    assert await shown_rows(kit) == []


async def test_the_desk_shows_what_was_shown_and_says_when_a_stored_text_was_altered(make_kit, ledger_path):
    import sqlite3

    from test_audit import ALICE, HASH

    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as c:
        await decide(c, "reject_all", headers={"accept-language": "fr"})
        await kit.record("customer-42", {"sms_marketing": True})
        page = (await c.get("/consent/audit/records/1", headers=ALICE)).text
        assert "What the visitor was shown" in page and "<li>Tout refuser</li>" in page
        assert "the stored content matches it" in page and "does NOT match" not in page
        assert "Nothing of the banner" in (await c.get("/consent/audit/records/2", headers=ALICE)).text
        with sqlite3.connect(ledger_path) as db:  # an operator rewrites what visitors were shown
            db.execute("UPDATE consentkit_shown SET content = replace(content, 'Tout refuser', 'Refuser')")
            db.execute("UPDATE consentkit_policies SET policy = replace(policy, 'Targeted', 'Some')")
        page = (await c.get("/consent/audit/records/1", headers=ALICE)).text
        assert "the stored content does NOT match it" in page
        assert "This stored text does NOT match the policy digest" in page
