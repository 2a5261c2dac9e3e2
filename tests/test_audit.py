"""The auditor's desk: access control, pages, export, verification; and consentkit report."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import statistics
import time

import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, make_app
from server_helpers import run_cli

from consentkit import ConfigurationError
from consentkit.audit import hash_password

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)
TOKEN = "audit-token-0123456789abcdefghij"


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ALICE = basic("alice", PASSWORD)


@pytest.fixture
async def desk(make_kit):
    kit = make_kit(audit_users={"alice": HASH}, audit_token=hash_password(TOKEN))
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield kit, client
    await kit.aclose()


async def visitors(client: httpx.AsyncClient, n: int = 12) -> None:
    """n visitors decide: accept, reject, customise in turn (each a new visitor)."""
    bodies = [
        {"action": "accept_all"},
        {"action": "reject_all"},
        {"action": "save", "granted": ["analytics"]},
    ]
    for i in range(n):
        r = await client.post(
            "/consent", json=bodies[i % 3], headers={**SAME_ORIGIN, "sec-gpc": "1" if i % 4 == 0 else "0"}
        )
        assert r.status_code == 200
        client.cookies.clear()


async def test_the_desk_is_off_without_credentials(client):
    for path in ("/consent/audit", "/consent/audit/records", "/consent/audit/export"):
        assert (await client.get(path, headers=ALICE)).status_code == 404


def test_passwords_are_never_configured_in_clear(make_kit):
    with pytest.raises(ConfigurationError, match="hash-password"):
        make_kit(audit_users={"alice": PASSWORD})
    with pytest.raises(ValueError, match="12 characters"):
        hash_password("short")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong password!"),
        basic("mallory", PASSWORD),
        {"authorization": "Bearer nope"},
        {"authorization": "Basic %%%"},
    ],
    ids=["none", "wrong-password", "unknown-user", "wrong-token", "garbage"],
)
async def test_wrong_or_missing_credentials_get_401(desk, headers):
    _kit, client = desk
    r = await client.get("/consent/audit", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert "Records" not in r.text


async def test_right_credentials_and_the_token_open_the_desk(desk):
    _kit, client = desk
    assert (await client.get("/consent/audit", headers=ALICE)).status_code == 200
    assert (
        await client.get("/consent/audit", headers={"authorization": f"Bearer {TOKEN}"})
    ).status_code == 200


async def test_failed_sign_ins_are_rate_limited(desk):
    _kit, client = desk
    for _ in range(5):
        assert (
            await client.get("/consent/audit", headers=basic("alice", "guess guess guess"))
        ).status_code == 401
    locked = await client.get("/consent/audit", headers=ALICE)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0


async def test_unknown_users_take_as_long_as_wrong_passwords(desk):
    """No timing difference tells who has an account: unknown users are checked against a decoy."""
    kit, client = desk

    async def took(headers):
        start = time.perf_counter()
        await client.get("/consent/audit", headers=headers)
        return time.perf_counter() - start

    wrong = statistics.median([await took(basic("alice", f"wrong {i}")) for i in range(3)])
    kit.audit.access.failures.clear()
    unknown = statistics.median([await took(basic(f"nobody{i}", "wrong")) for i in range(3)])
    assert 0.5 < unknown / wrong < 2.0


async def test_every_access_is_kept_in_the_access_log(desk):
    kit, client = desk
    await client.get("/consent/audit/records", headers=basic("alice", "nope nope nope"))
    await client.get("/consent/audit/records?action=save", headers=ALICE)
    log = await kit.ledger.access_log()
    assert [(e["user"], e["status"], e["path"]) for e in log[:2]] == [
        ("alice", 200, "/consent/audit/records?action=save"),
        (None, 401, "/consent/audit/records"),
    ]
    page = await client.get("/consent/audit/access", headers=ALICE)
    assert "/consent/audit/records?action=save" in page.text


async def test_overview_shows_the_ledgers_figures(desk):
    _kit, client = desk
    await visitors(client, 12)
    html = (await client.get("/consent/audit", headers=ALICE)).text
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert figures["Records"] == "12" and figures["Subjects"] == "12" and figures["Decisions"] == "12"
    assert figures["Decisions with GPC"] == "25.0%"  # 3 of 12
    assert figures["Consent rate: Analytics"] == "66.7%"  # accept + customise
    assert figures["Consent rate: Targeted advertising"] == "33.3%"
    assert html.count("<svg") == 2 and 'role="img"' in html
    assert "Not verified yet" in html


async def test_verify_now_keeps_the_outcome(desk):
    _kit, client = desk
    await visitors(client, 3)
    refused = await client.post("/consent/audit/verify", headers={**ALICE, "origin": "https://evil.example"})
    assert refused.status_code == 403
    r = await client.post("/consent/audit/verify", headers={**ALICE, **SAME_ORIGIN})
    assert r.status_code == 303
    html = (await client.get("/consent/audit", headers=ALICE)).text
    assert "intact" in html and "3 records" in html and "no checkpoint made yet" in html


async def test_the_badge_names_its_checkpoint_and_what_beside_the_chain_was_altered(desk, ledger_path):
    import sqlite3

    from consentkit.ledger.keys import generate_key

    kit, client = desk
    await visitors(client, 3)
    await kit.ledger.checkpoint(generate_key("example.org/consent")[0], "example.org/consent")
    await client.post("/consent/audit/verify", headers={**ALICE, **SAME_ORIGIN})
    html = (await client.get("/consent/audit", headers=ALICE)).text
    assert "checked against the signed checkpoint of 3 records of <code>example.org/consent</code>" in html
    with sqlite3.connect(ledger_path) as db:  # the operator edits a figure the overview charts
        db.execute("UPDATE consentkit_daily SET count = count + 5 WHERE metric = 'granted:analytics'")
    await client.post("/consent/audit/verify", headers={**ALICE, **SAME_ORIGIN})
    html = (await client.get("/consent/audit", headers=ALICE)).text
    assert "the chain holds, but not what is stored beside it" in html
    assert "the per-day figure granted:analytics of" in html and "intact" not in html


async def test_verify_now_without_browser_headers_needs_the_forms_token(desk):
    """Browsers and proxies that strip Origin and Sec-Fetch-Site can still verify: the overview's
    form carries an anti-forgery token issued to the signed-in auditor, and nobody else's works."""
    kit, client = desk
    await visitors(client, 2)
    bare = await client.post("/consent/audit/verify", headers=ALICE)
    assert bare.status_code == 403 and "token" in bare.text
    for wrong in ("forged", kit.csrf.token(None), kit.csrf.token("audit:token"), kit.csrf.token("alice")):
        refused = await client.post("/consent/audit/verify", headers=ALICE, data={"csrf_token": wrong})
        assert refused.status_code == 403, wrong
    assert "Not verified yet" in (await client.get("/consent/audit", headers=ALICE)).text
    page = (await client.get("/consent/audit", headers=ALICE)).text
    token = re.search(
        r'<form method="post"[^>]*/verify">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page
    )
    assert token, "the verify form carries the token"
    r = await client.post("/consent/audit/verify", headers=ALICE, data={"csrf_token": token.group(1)})
    assert r.status_code == 303
    html = (await client.get("/consent/audit", headers=ALICE)).text
    assert "intact" in html and "2 records" in html
    cross = await client.post(
        "/consent/audit/verify",
        headers={**ALICE, "sec-fetch-site": "cross-site"},
        data={"csrf_token": token.group(1)},
    )
    assert cross.status_code == 403, "a token does not excuse a browser that says cross-site"


async def test_records_filter_paginate_and_show_details(desk):
    _kit, client = desk
    await visitors(client, 60)
    first = (await client.get("/consent/audit/records", headers=ALICE)).text
    seqs = [int(s) for s in re.findall(r'/consent/audit/records/(\d+)"', first)]
    assert seqs == list(range(60, 10, -1))  # newest first, 50 a page
    older = re.search(r'href="([^"]*before=\d+)"', first).group(1).replace("&amp;", "&")
    rest = [
        int(s)
        for s in re.findall(r'/consent/audit/records/(\d+)"', (await client.get(older, headers=ALICE)).text)
    ]
    assert rest == list(range(10, 0, -1))
    saves = (await client.get("/consent/audit/records?action=save&method=preferences", headers=ALICE)).text
    assert len(re.findall(r'/consent/audit/records/\d+"', saves)) == 20
    bad = await client.get("/consent/audit/records?action=bogus&since=yesterday", headers=ALICE)
    assert bad.status_code == 400 and "action" in bad.text and "since" in bad.text
    detail = (await client.get("/consent/audit/records/3", headers=ALICE)).text
    assert "Targeted advertising" in detail  # the policy text the visitor was shown
    assert (await client.get("/consent/audit/records/999", headers=ALICE)).status_code == 404


async def test_export_streams_the_same_as_the_cli(desk, ledger_url):
    _kit, client = desk
    await visitors(client, 9)
    r = await client.get("/consent/audit/export?format=csv&action=reject_all", headers=ALICE)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == ["reject_all"] * 3
    jsonl = await client.get("/consent/audit/export?format=jsonl", headers=ALICE)
    cli = run_cli("export", "--ledger", ledger_url, "--format", "jsonl")
    assert jsonl.text == cli.stdout and len(jsonl.text.splitlines()) == 9
    assert (await client.get("/consent/audit/export?format=xml", headers=ALICE)).status_code == 400


def test_report_is_one_self_contained_html_file(tmp_path, ledger_url, make_kit):
    import asyncio

    async def fill():
        kit = make_kit()
        app = make_app(kit)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            await visitors(client, 6)
        await kit.aclose()

    asyncio.run(fill())
    out = tmp_path / "report.html"
    result = run_cli("report", "--ledger", ledger_url, "--out", str(out), "--title", "Example Telecom")
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert "6 records" in result.stdout and "chain intact" in result.stdout
    assert "<svg" in html and "<dd>6</dd>" in html and "intact" in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must load nothing from anywhere"
    bad = run_cli("report", "--ledger", ledger_url, "--out", str(out), "--since", "last week")
    assert bad.returncode == 2 and "date" in bad.stderr
    assert json.loads(run_cli("stats", "--ledger", ledger_url, "--json").stdout)["records"] == 6


async def test_links_keep_filter_values_exact(desk):
    kit, client = desk
    await kit.record("dana+news@example.net", {"email_marketing": True})
    await kit.record("dana news@example.net", {"email_marketing": True})
    page = (
        await client.get("/consent/audit/records", params={"subject": "dana+news@example.net"}, headers=ALICE)
    ).text
    assert len(re.findall(r'/consent/audit/records/\d+"', page)) == 1
    link = re.search(r'href="([^"]*)">Export these as CSV', page).group(1).replace("&amp;", "&")
    rows = list(csv.DictReader(io.StringIO((await client.get(link, headers=ALICE)).text)))
    assert [r["subject_id"] for r in rows] == ["dana+news@example.net"]
