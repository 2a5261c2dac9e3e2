"""Small helpers for the HTTP-level tests (endpoints, CSRF, firewall, GPC, gating, middleware)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from conftest import BASE, SAME_ORIGIN

from consentkit import ConsentKit, LedgerRecord

FORM = "application/x-www-form-urlencoded"


@asynccontextmanager
async def serve(
    app: Any,
    *kits: ConsentKit,
    base_url: str = BASE,
    client: tuple[str, int] = ("127.0.0.1", 123),
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process; closes ``kits`` (their ledgers) afterwards."""
    transport = httpx.ASGITransport(app=app, client=client)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
            yield c
    finally:
        for kit in kits:
            await kit.aclose()


def set_cookies(response: httpx.Response) -> list[str]:
    """The raw ``Set-Cookie`` header values of a response."""
    return response.headers.get_list("set-cookie")


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """``name=value; Attr=x; Flag`` to ``(name, value, {attr_lowercase: value})``."""
    first, *attrs = header.split(";")
    name, _, value = first.strip().partition("=")
    parsed: dict[str, str] = {}
    for attr in attrs:
        key, _, val = attr.strip().partition("=")
        parsed[key.strip().lower()] = val.strip()
    return name.strip(), value.strip(), parsed


def cookies_named(response: httpx.Response, name: str) -> list[tuple[str, dict[str, str]]]:
    """``(value, attrs)`` of every ``Set-Cookie`` of ``name`` in a response."""
    found = []
    for header in set_cookies(response):
        n, v, attrs = parse_set_cookie(header)
        if n == name:
            found.append((v, attrs))
    return found


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [parse_set_cookie(h)[0] for h in set_cookies(response)]


def consent_cookie(response: httpx.Response, name: str = "consentkit") -> tuple[str, dict[str, str]]:
    """The one consent cookie a response sets (fails the test when there is not exactly one)."""
    found = cookies_named(response, name)
    assert len(found) == 1, f"expected one {name} cookie, got {set_cookies(response)}"
    return found[0]


async def all_records(kit: ConsentKit) -> list[LedgerRecord]:
    return [r async for r in kit.ledger.records()]


def message(response: httpx.Response) -> str:
    """The error message of a 4xx/5xx answer, JSON or plain text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert set(body) >= {"error", "message"}, body
        return str(body["message"])
    return response.text


async def post_form(
    client: httpx.AsyncClient, data: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    """POST a form decision (list values repeat a field); same-origin unless ``headers`` are given."""
    return await client.post("/consent", data=data, headers=SAME_ORIGIN if headers is None else headers, **kw)


async def assert_refused(kit: ConsentKit, response: httpx.Response, status: int, *words: str) -> None:
    """A refused decision: the status, a message naming the problem, no cookie, nothing recorded."""
    assert response.status_code == status, (response.status_code, response.text)
    text = message(response)
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in message {text!r}"
    assert set_cookies(response) == []
    assert await all_records(kit) == []


async def run_raw(
    app: Any, scope_extra: dict[str, Any] | None = None, headers: Any = ()
) -> list[dict[str, Any]]:
    """One GET of ``app`` through raw ASGI calls, no client in between: the messages it sends."""
    sent: list[dict[str, Any]] = []
    received: list[bool] = []

    async def receive() -> dict[str, Any]:
        if received:  # the client stays connected until the response is over
            await asyncio.Event().wait()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        **(scope_extra or {}),
    }
    await app(scope, receive, send)
    return sent
