"""Checkpoints the kit makes on a schedule and hands to the site's sinks."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from consentkit import ConfigurationError, ConsentKit, Policy
from consentkit.ledger.checkpoints import parse_checkpoint
from consentkit.ledger.keys import generate_key, write_private_key

KEY = "publisher-test-key-0123456789"


class Collector(BaseHTTPRequestHandler):
    """A witness on 127.0.0.1 that keeps what it is sent."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Collector.received.append(self.rfile.read(length).decode())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_checkpoints_reach_a_file_a_url_and_a_callable_and_the_ledger(
    policy: Policy, tmp_path: Path
) -> None:
    private, verifier = generate_key("publisher-test")
    key_file = tmp_path / "log.key"
    write_private_key(key_file, private)
    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Collector.received = []
    seen: list[str] = []

    def broken(note: str) -> None:
        raise RuntimeError("this sink is down")

    notes_file = tmp_path / "checkpoints.txt"
    kit = ConsentKit(
        policy=policy,
        secret_keys=[KEY],
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
        checkpoint_key=key_file,
        checkpoint_every=0.05,
        checkpoint_sinks=[broken, notes_file, f"http://127.0.0.1:{server.server_port}/witness", seen.append],
    )
    try:
        for n in range(3):
            await kit.record(f"subject-{n}", {"sms_marketing": True})
        await kit.startup()
        await wait_for(lambda: seen and Collector.received)
        first = parse_checkpoint(seen[0], verifier, origin="consentkit/publisher-test")
        assert first.size == 3
        assert Collector.received[0] == seen[0]
        assert notes_file.read_text().startswith(seen[0])
        assert await kit.ledger.latest_checkpoint() == seen[-1]
        # Nothing new, nothing published; a new record, a new checkpoint.
        await asyncio.sleep(0.2)
        assert len(seen) == 1
        await kit.record("subject-3", {"sms_marketing": False})
        await wait_for(lambda: len(seen) == 2)
        assert parse_checkpoint(seen[1], verifier, origin="consentkit/publisher-test").size == 4
    finally:
        await kit.aclose()
        server.shutdown()


def test_a_key_file_others_can_read_is_refused_at_startup(policy: Policy, tmp_path: Path) -> None:
    private, _ = generate_key("publisher-test")
    key_file = tmp_path / "log.key"
    key_file.write_text(private + "\n")
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        ConsentKit(
            policy=policy,
            secret_keys=[KEY],
            ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
            checkpoint_key=key_file,
        )
