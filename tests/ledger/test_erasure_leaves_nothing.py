"""After ``erase``, the subject is gone from the SQLite ledger's files, not only from its tables."""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import make_app
from http_helpers import SAME_ORIGIN

from consentkit import ConsentKit, Policy, open_ledger
from consentkit.audit import hash_password

SUBJECT = "erase-me-7f3c9d2a41b8e6"
PASSWORD = "a long auditor password"


def file_bytes(db: Path) -> bytes:
    """Everything SQLite keeps of the ledger on disk: the file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


async def test_an_erased_subject_is_in_no_byte_of_the_files_the_access_log_included(
    policy: Policy, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    kit = ConsentKit(
        policy=policy,
        secret_keys=["erasure-test-key-0123456789"],
        ledger=f"sqlite:///{db}",
        audit_users={"auditor": hash_password(PASSWORD)},
        decision_rate_limit=None,
    )
    for n in range(3):
        await kit.record(SUBJECT, {"sms_marketing": n % 2 == 0}, evidence={"form": f"erase-evidence-{n}"})
    await kit.record("someone-else-0123", {"sms_marketing": True}, evidence={"form": "kept-evidence"})
    # An auditor looks the subject up on the desk: the search lands in the access log.
    app = make_app(kit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get(
            f"/consent/audit/records?subject={SUBJECT}", auth=("auditor", PASSWORD), headers=SAME_ORIGIN
        )
        assert r.status_code == 200
    ledger = open_ledger(f"sqlite:///{db}")
    salts_before = [row[0] for row in await ledger._select("SELECT salt FROM consentkit_pii_salts")]
    assert SUBJECT.encode() in file_bytes(db)

    await ledger.erase(SUBJECT)

    data = file_bytes(db)
    assert SUBJECT.encode() not in data
    assert b"erase-evidence-" not in data
    remaining = {row[0] for row in await ledger._select("SELECT salt FROM consentkit_pii_salts")}
    erased_salts = [s for s in salts_before if s not in remaining]
    assert len(erased_salts) == 3
    assert not any(bytes(s) in data for s in erased_salts)
    # What was not erased is still there, and the chain still verifies.
    assert b"kept-evidence" in data and b"someone-else-0123" in data
    assert (await ledger.verify()).ok
    log = await ledger.access_log(10)
    assert any("[erased]" in entry["path"] for entry in log)
    assert not any(SUBJECT in entry["path"] for entry in log)
    await ledger.close()
    await kit.aclose()
