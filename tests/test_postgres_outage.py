"""A site whose PostgreSQL goes away keeps serving pages, refuses decisions with 503 (no cookie),
and recovers by itself when the database is back.

The database is reached through a TCP relay on 127.0.0.1 that the test switches off and on: the
real server stays up for everybody else.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, make_app


class Relay:
    """Forwards 127.0.0.1:<port> to the PostgreSQL server while it is on."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """The database 'goes away': no new connections, and open ones are cut."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        for task in list(self.pipes):
            task.cancel()


@pytest.fixture
async def relay(pg_url):
    parts = urlsplit(pg_url)
    r = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await r.start()
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{r.port}"))
    yield r, url
    await r.stop()


async def decide(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)


async def wait_for_recovery(client: httpx.AsyncClient, seconds: float = 10.0) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        r = await decide(client)
        if r.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return r
        await asyncio.sleep(0.2)


async def test_database_down_at_startup_then_back(make_kit, relay):
    r, url = relay
    await r.stop()  # down before the site starts
    kit = make_kit(ledger=url)
    app = make_app(kit)
    await kit.startup()  # must not raise: the site starts
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await client.get("/")).status_code == 200
        refused = await decide(client)
        assert refused.status_code == 503 and refused.headers.get("retry-after")
        assert "set-cookie" not in refused.headers
        await r.start()
        accepted = await wait_for_recovery(client)
        assert accepted.status_code == 200, accepted.text
        assert "consentkit=" in accepted.headers["set-cookie"]
    await kit.aclose()


async def test_database_lost_while_running_then_back(make_kit, relay):
    r, url = relay
    kit = make_kit(ledger=url)
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        first = await decide(client)
        assert first.status_code == 200
        await r.stop()
        lost = await decide(client)
        assert lost.status_code == 503 and "set-cookie" not in lost.headers
        assert (await client.get("/")).status_code == 200
        await r.start()
        back = await wait_for_recovery(client)
        assert back.status_code == 200, back.text
    ledger = kit.ledger
    report = await ledger.verify()
    assert report.ok and report.records == 2  # the refused decision left no trace
    await kit.aclose()
