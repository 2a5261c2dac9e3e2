"""End to end against a real uvicorn server in a subprocess, with real sockets and a real ledger file.

A visitor (an httpx client with a cookie jar, like a browser) is undecided, decides, gets the
cookie back and sees the page change; the auditor's ``consentkit verify`` and ``consentkit
export`` then see exactly that decision. Then 300 visitors decide at once: every acknowledged
decision is in the ledger exactly once and the chain verifies.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import (
    Server,
    assert_verifies,
    export_jsonl,
    free_port,
    run_cli,
    server_env,
    uvicorn_command,
)

UNDECIDED = "necessary=1 analytics=0 ads=0"


@pytest.fixture
def server(tmp_path: Path, ledger_url: str) -> Iterator[Server]:
    """``python -m uvicorn`` serving the test site on a free port of 127.0.0.1."""
    port = free_port()
    srv = Server(uvicorn_command(port), port, tmp_path / "uvicorn.log", server_env(ledger_url))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


async def test_visitor_decides_and_the_auditor_sees_it(server: Server, ledger_url: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as visitor:
        # Undecided: only the essential purpose.
        r = await visitor.get("/")
        assert r.status_code == 200 and r.text == UNDECIDED
        state = (await visitor.get("/consent")).json()
        assert state["decided"] is False and state["needs_prompt"] is True
        assert state["purposes"] == {"necessary": True, "analytics": False, "ads": False}

        # The widget posts a JSON decision from the page's origin.
        r = await visitor.post(
            "/consent",
            json={"action": "save", "granted": ["analytics"]},
            headers={"origin": server.origin, "user-agent": "e2e-browser/1.0"},
        )
        assert r.status_code == 200, r.text
        assert "no-store" in r.headers["cache-control"]
        decided = r.json()
        assert decided["decided"] is True
        assert decided["purposes"] == {"necessary": True, "analytics": True, "ads": False}
        set_cookie = r.headers["set-cookie"]
        attrs = {a.strip().split("=", 1)[0].lower() for a in set_cookie.split(";")[1:]}
        assert set_cookie.startswith("consentkit=")
        assert {"path", "httponly", "samesite", "max-age"} <= attrs
        assert "secure" not in attrs  # cookie_secure=False: plain http on 127.0.0.1
        assert visitor.cookies.get("consentkit"), "the browser keeps the consent cookie"

        # The cookie comes back and the page reflects the decision.
        r = await visitor.get("/")
        assert r.text == "necessary=1 analytics=1 ads=0"
        assert "cookie" in r.headers.get("vary", "").lower()
        state = (await visitor.get("/consent")).json()
        assert state["decided"] is True and state["needs_prompt"] is False
        assert state["subject_id"] == decided["subject_id"]
        assert state["receipt"] == decided["receipt"]

        # A no-JS form from the same visitor changes it again: 303 back to the page.
        r = await visitor.post(
            "/consent",
            data={"action": "reject_all", "next": "/?from=form"},
            headers={"origin": server.origin},
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/?from=form"
        r = await visitor.get(r.headers["location"])
        assert r.text == "necessary=1 analytics=0 ads=0"  # decided now: everything optional refused
        state2 = (await visitor.get("/consent")).json()
        assert state2["decided"] is True
        assert state2["subject_id"] == decided["subject_id"], "the same visitor keeps their subject"
        assert state2["receipt"] != decided["receipt"]

        # The visitor's own history has both, oldest first.
        history = (await visitor.get("/consent/history")).json()
        assert [h["action"] for h in history["records"]] == ["save", "reject_all"]
        assert [h["receipt"] for h in history["records"]] == [decided["receipt"], state2["receipt"]]

    # The auditor's view, through the command line, while the server still runs.
    assert_verifies(ledger_url, 2)
    rows = export_jsonl(ledger_url)
    assert [r["seq"] for r in rows] == [1, 2]
    first, second = rows
    assert first["subject_id"] == second["subject_id"] == decided["subject_id"]
    assert first["action"] == "save" and first["method"] == "preferences"
    assert first["purposes"] == {"necessary": True, "analytics": True, "ads": False}
    assert first["hash"].startswith(decided["receipt"])
    assert first["ip_prefix"] == "127.0.0.0/24"
    assert first["user_agent"] == "e2e-browser/1.0"
    assert first["policy_revision"] == 1
    assert second["action"] == "reject_all" and second["method"] == "no_js_form"
    assert second["purposes"] == {"necessary": True, "analytics": False, "ads": False}
    assert second["prev_hash"] == first["hash"]
    assert second["hash"].startswith(state2["receipt"])

    # Filters and CSV.
    assert [r["seq"] for r in export_jsonl(ledger_url, "--subject", decided["subject_id"])] == [1, 2]
    assert export_jsonl(ledger_url, "--subject", "somebody-else") == []
    out = run_cli("export", "--ledger", ledger_url, "--format", "csv")
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(t["seq"], t["action"], t["subject_id"]) for t in table] == [
        ("1", "save", decided["subject_id"]),
        ("2", "reject_all", decided["subject_id"]),
    ]


async def test_forged_and_malformed_posts_to_a_real_server_write_nothing(
    server: Server, ledger_url: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as visitor:
        refused = [
            await visitor.post(
                "/consent", json={"action": "accept_all"}, headers={"origin": "https://evil.example"}
            ),
            await visitor.post(
                "/consent", data={"action": "accept_all"}, headers={"sec-fetch-site": "cross-site"}
            ),
            await visitor.post("/consent", data={"action": "accept_all"}),  # no origin, no token
            await visitor.post(
                "/consent", json={"action": "sell_my_data"}, headers={"origin": server.origin}
            ),
            await visitor.post(
                "/consent",
                content=b'{"action": "accept_all"}' + b" " * 20_000,
                headers={"origin": server.origin, "content-type": "application/json"},
            ),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 400, 413]
        assert all("set-cookie" not in r.headers for r in refused)
        assert not visitor.cookies
        assert (await visitor.get("/")).text == UNDECIDED
    assert export_jsonl(ledger_url) == []
    assert_verifies(ledger_url, 0)


@pytest.mark.slow
async def test_300_concurrent_visitors_each_recorded_exactly_once(server: Server, ledger_url: str) -> None:
    plans: list[dict[str, Any]] = [
        [
            {"action": "accept_all"},
            {"action": "reject_all"},
            {"action": "save", "granted": ["analytics"]},
            {"action": "save", "granted": ["ads"]},
            {"action": "withdraw"},
        ][i % 5]
        for i in range(300)
    ]
    # Each visitor is its own browser (its own cookie jar); they share one connection pool big
    # enough that all 300 requests are in flight at once.
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=400))

    async def visitor(plan: dict[str, Any]) -> tuple[int, Any, str | None]:
        c = httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False, transport=transport)
        r = await c.post("/consent", json=plan, headers={"origin": server.origin})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        return r.status_code, body, c.cookies.get("consentkit")

    try:
        results = await asyncio.gather(*(visitor(p) for p in plans))
    finally:
        await transport.aclose()
    statuses = Counter(status for status, _, _ in results)
    acknowledged = [
        (plan, body, cookie)
        for plan, (status, body, cookie) in zip(plans, results, strict=True)
        if status == 200
    ]

    rows = export_jsonl(ledger_url)
    by_receipt: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_receipt.setdefault(row["hash"][:16], []).append(row)
    for plan, body, cookie in acknowledged:
        assert cookie, "an acknowledged decision sets the cookie"
        matches = by_receipt.get(body["receipt"], [])
        assert len(matches) == 1, f"acknowledged decision {body['receipt']} found {len(matches)} times"
        record = matches[0]
        assert record["subject_id"] == body["subject_id"]
        assert record["purposes"] == body["purposes"]
        assert record["action"] == plan["action"]
    assert len(rows) == len(acknowledged), "the ledger holds records nobody was told about"
    assert len({row["subject_id"] for row in rows}) == len(rows), "every visitor is a separate subject"
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    assert_verifies(ledger_url, len(rows))

    # One server, one SQLite file, group commit: nothing should have had to be refused.
    assert statuses == {200: 300}, statuses

    # Each visitor's cookie carries their own decision back.
    async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as auditor:

        async def state_of(cookie: str) -> dict[str, Any]:
            r = await auditor.get("/consent", headers={"cookie": f"consentkit={cookie}"})
            return dict(r.json())

        states = await asyncio.gather(*(state_of(cookie) for _, _, cookie in acknowledged if cookie))
    assert [(s["subject_id"], s["receipt"], s["purposes"]) for s in states] == [
        (b["subject_id"], b["receipt"], b["purposes"]) for _, b, _ in acknowledged
    ]
