"""Shared fixtures: real SQLite ledger files, policies and apps built the way users build them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from consentkit import ConsentKit, Policy, get_consent

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "consent.toml"
SECRET = "test-secret-key-0123456789abcdef"
BASE = "http://testserver"
SAME_ORIGIN = {"origin": BASE}


@pytest.fixture
def policy() -> Policy:
    return Policy.from_toml(EXAMPLE_POLICY)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger_url(ledger_path: Path) -> str:
    return f"sqlite:///{ledger_path}"


PG_DSN = os.environ.get("CONSENTKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_available() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"

    async def probe() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
        await conn.close()

    try:
        run_sync(probe())
    except Exception as exc:
        return f"PostgreSQL at {PG_DSN} does not answer: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN; in CI a missing server fails the run instead of skipping."""
    problem = _pg_available()
    if problem:
        if in_ci():
            pytest.fail(f"CI needs PostgreSQL: {problem}")
        pytest.skip(problem)
    return PG_DSN


@pytest.fixture
def pg_url(pg_dsn: str) -> Iterator[str]:
    """A ledger URL in a fresh PostgreSQL schema, dropped afterwards."""
    import asyncpg

    schema = f"ck_test_{uuid.uuid4().hex[:12]}"
    yield f"{pg_dsn}?schema={schema}"

    async def drop() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    run_sync(drop())


@pytest.fixture(params=["sqlite", "postgres"])
def any_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger on each backend: a new SQLite file, then a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_kit(policy: Policy, ledger_url: str) -> Callable[..., ConsentKit]:
    def make(**options: Any) -> ConsentKit:
        options.setdefault("policy", policy)
        options.setdefault("secret_keys", [SECRET])
        options.setdefault("ledger", ledger_url)
        options.setdefault("cookie_secure", False)
        return ConsentKit(**options)

    return make


@pytest.fixture
def kit(make_kit: Callable[..., ConsentKit]) -> ConsentKit:
    return make_kit()


async def page(request: Request) -> PlainTextResponse:
    consent = get_consent(request)
    return PlainTextResponse(" ".join(f"{p}={int(v)}" for p, v in consent.purposes().items()))


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def make_app(kit: ConsentKit, routes: list[Route] | None = None) -> Starlette:
    """A Starlette app with the kit mounted the documented way."""
    return Starlette(
        routes=[Route("/", page), Route("/plain", plain), *(routes or [])], middleware=[kit.middleware]
    )


@pytest.fixture
def app(kit: ConsentKit) -> Starlette:
    return make_app(kit)


@pytest.fixture
async def client(app: Starlette, kit: ConsentKit) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c
    await kit.aclose()


async def decide(
    client: httpx.AsyncClient, action: str, granted: list[str] | None = None, **kw: Any
) -> httpx.Response:
    """POST a JSON decision from the same origin, as the widget does."""
    body: dict[str, Any] = {"action": action}
    if granted is not None:
        body["granted"] = granted
    headers = {**SAME_ORIGIN, **kw.pop("headers", {})}
    return await client.post("/consent", json=body, headers=headers, **kw)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright's sync API.

    Module-scoped: Playwright's sync API keeps an event loop registered while it runs, which
    must be gone before the async tests of the next module start.
    """
    from browser_support import CHROMIUM_ARGS, chromium_path, missing

    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python (pip install playwright)")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
