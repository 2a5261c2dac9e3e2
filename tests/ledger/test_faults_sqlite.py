"""SQLite faults on real files: a writer that failed for a reason that can pass is reopened.

- A file that cannot be written when the ledger opens it: SQLite silently opens it read-only.
  The tests run as root, for whom permissions do not stop writes, so the file is made immutable
  (``chattr +i``: refused even to root) and then mutable again. Decisions answer 503 (no cookie)
  while it is, and succeed on the next attempt after, without a restart.
- A full disk: the ledger on a small tmpfs filled up, then freed (needs root to mount; skipped
  with the reason where the machine does not allow it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, make_app
from unit_helpers import new_record

from consentkit import LedgerUnavailable
from consentkit.ledger import open_ledger
from consentkit.ledger.sqlite import SQLiteLedger


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``path`` cannot be opened for writing, even by root, inside the block."""
    done = _run("chattr", "+i", str(path)) if _which("chattr") else None
    if done is None or done.returncode != 0:
        why = "chattr is not installed" if done is None else done.stderr.strip()
        pytest.skip(
            f"cannot make {path} immutable here ({why}); a read-only file cannot be simulated for root"
        )
    try:
        yield
    finally:
        _run("chattr", "-i", str(path))


def _which(cmd: str) -> bool:
    return any(os.access(Path(d) / cmd, os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep))


async def make_ledger_file(path: Path, policy) -> None:
    ledger = SQLiteLedger(path)
    await ledger.append(new_record(policy, "first"))
    await ledger.close()


async def test_a_ledger_opened_read_only_is_reopened_once_writable(tmp_path, policy):
    path = tmp_path / "ledger.db"
    await make_ledger_file(path, policy)
    ledger = SQLiteLedger(path)
    try:
        with immutable(path):
            with pytest.raises(LedgerUnavailable, match=r"readonly|read-only|cannot be written"):
                await ledger.open()
            refused = new_record(policy, "refused")
            with pytest.raises(LedgerUnavailable):
                await ledger.append(refused)
        accepted = await ledger.append(new_record(policy, "accepted"))  # the next attempt
        assert accepted.seq == 2
        events = [r.event_id async for r in ledger.records()]
        assert refused.event_id not in events and (await ledger.verify()).ok
    finally:
        await ledger.close()


async def test_over_http_a_read_only_ledger_answers_503_then_recovers(tmp_path, policy, make_kit):
    path = tmp_path / "ledger.db"
    await make_ledger_file(path, policy)
    kit = make_kit(ledger=f"sqlite:///{path}")
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        with immutable(path):
            await kit.startup()  # warns, does not raise: the site starts
            for _ in range(3):
                refused = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
                assert refused.status_code == 503 and "set-cookie" not in refused.headers
        accepted = await client.post("/consent", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        assert accepted.status_code == 200, accepted.text
        assert "consentkit=" in accepted.headers["set-cookie"]
    await kit.aclose()
    ledger = open_ledger(f"sqlite:///{path}", create=False)
    try:
        assert [r.receipt async for r in ledger.records()][1:] == [accepted.json()["receipt"]]
    finally:
        await ledger.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards; skipped (with why) where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = _run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        _run("umount", "-l", str(mount))


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem is full (unbuffered: each write meets the disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512):  # then the last few blocks
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


async def test_a_full_disk_refuses_decisions_then_recovers(small_disk, policy):
    path = small_disk / "ledger.db"
    ledger = SQLiteLedger(path)
    refused: list[str] = []
    try:
        await ledger.append(new_record(policy, "first"))
        fill(small_disk / "filler")
        big = {"note": "x" * 20000}  # needs new pages in the write-ahead log
        for i in range(50):
            entry = new_record(policy, f"full-{i}", evidence=big)
            try:
                await ledger.append(entry)
            except LedgerUnavailable as exc:
                assert "full" in str(exc)
                refused.append(entry.event_id)
                break
        assert refused, "the disk never filled up"
        (small_disk / "filler").unlink()
        after = await ledger.append(new_record(policy, "after", evidence=big))  # no restart
        events = [r.event_id async for r in ledger.records()]
        assert after.event_id in events and refused[0] not in events
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()
