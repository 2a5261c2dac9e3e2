"""Write a large, realistic consent ledger quickly (for the export, verify and audit benchmarks).

The records are sealed by the library's own chain code (so ``consentkit verify`` checks them
like any others) and written in large transactions, bypassing the per-decision path:

    python benchmarks/make_ledger.py --records 1000000 --ledger sqlite:///big.db
    python benchmarks/make_ledger.py --records 1000000 --ledger 'postgresql://postgres@127.0.0.1/test?schema=big'

Visitors come back (about 1.6 decisions per subject), accept about 55% of the time, reject 30%,
customise 10%, withdraw 5%; 8% send Global Privacy Control; a quarter see the French texts;
records spread evenly over ``--days`` days ending now.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consentkit import ConsentKit, Policy, open_ledger
from consentkit.ledger.daily import daily_counts_of_rows, upsert_rows
from consentkit.ledger.queries import INSERT_RECORD, UPSERT_DAILY, dollars
from consentkit.ledger.records import GENESIS_HASH, NewRecord, seal
from consentkit.ledger.sqlite import SQLiteLedger
from consentkit.ui.shown import Shown, ShownContents

ROOT = Path(__file__).resolve().parent.parent
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
]
BATCH = 20000


def banners(policy: Policy) -> dict[tuple[str, bool], Shown]:
    """What the first banner shows in each language, with and without a GPC signal: the kit's
    own rendering, as its decisions record it."""
    kit = ConsentKit(
        policy=policy,
        secret_keys=["make-ledger-secret-0123456789abcdef"],
        ledger=f"sqlite:///{tempfile.gettempdir()}/make-ledger-unused.db",
    )
    shown = ShownContents(kit.renderer)
    return {
        (lang, gpc): shown.of(kit.reader.of(None, gpc), lang)
        for lang in ("en", "fr")
        for gpc in (False, True)
    }


def generate(policy: Policy, n: int, days: int, seed: int):  # type: ignore[no-untyped-def]
    """Yield ``(recorded_at, NewRecord)`` in chain order."""
    seen = banners(policy)
    rng = random.Random(seed)
    optional = policy.optional_ids
    subjects = max(1, int(n / 1.6))
    start = datetime.now(UTC) - timedelta(days=days)
    step = timedelta(days=days) / n
    for i in range(n):
        moment = start + step * i
        recorded_at = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        roll = rng.random()
        if roll < 0.55:
            action, granted = "accept_all", set(optional)
        elif roll < 0.85:
            action, granted = "reject_all", set()
        elif roll < 0.95:
            action, granted = "save", {p for p in optional if rng.random() < 0.5}
        else:
            action, granted = "withdraw", set()
        gpc = rng.random() < 0.08
        locale = "fr" if rng.random() < 0.25 else "en"
        shown = seen[(locale, gpc)]
        entry = NewRecord(
            subject_id=f"s{rng.randrange(subjects):08d}-{seed}",
            action=action,
            purposes={p: (p in granted or p in policy.essential_ids) for p in policy.ids},
            method="no_js_form" if rng.random() < 0.1 else ("preferences" if action == "save" else "banner"),
            policy_revision=policy.revision,
            policy_version=policy.version,
            policy_digest=policy.digest,
            policy_json=policy.canonical_json,
            locale=locale,
            ip_prefix=f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24",
            user_agent=rng.choice(USER_AGENTS),
            gpc=gpc,
            shown_digest=shown.digest,
        )
        yield recorded_at, entry


def chained(policy: Policy, n: int, days: int, seed: int):  # type: ignore[no-untyped-def]
    prev = GENESIS_HASH
    for seq, (recorded_at, entry) in enumerate(generate(policy, n, days, seed), start=1):
        rec = seal(entry, seq=seq, prev_hash=prev, recorded_at=recorded_at)
        prev = rec.hash
        yield rec


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ledger", required=True, help="URL of a new, empty ledger")
    args = parser.parse_args()
    policy = Policy.from_toml(ROOT / "examples" / "consent.toml")
    ledger = open_ledger(args.ledger)
    await ledger.open()
    started = time.perf_counter()
    written = 0
    records = chained(policy, args.records, args.days, args.seed)
    first_time = None
    if isinstance(ledger, SQLiteLedger):
        await ledger.close()
        conn = sqlite3.connect(ledger.path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        if conn.execute("SELECT count(*) FROM consentkit_ledger").fetchone()[0]:
            raise SystemExit(f"{args.ledger} is not empty")
        while True:
            batch = [r for _, r in zip(range(BATCH), records, strict=False)]
            if not batch:
                break
            first_time = first_time or batch[0].recorded_at
            conn.execute("BEGIN")
            conn.executemany(INSERT_RECORD.sql(), [r.row() for r in batch])
            conn.executemany(
                "INSERT INTO consentkit_pii_salts VALUES (?,?)", [(r.seq, r.pii_salt) for r in batch]
            )
            daily = daily_counts_of_rows(r.to_row() for r in batch)
            conn.executemany(UPSERT_DAILY.sql(), upsert_rows(daily))
            conn.execute("COMMIT")
            written += len(batch)
        conn.execute(
            "INSERT OR IGNORE INTO consentkit_policies VALUES (?,?,?,?,?)",
            (policy.digest, policy.revision, policy.version, policy.canonical_json, first_time),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO consentkit_shown VALUES (?,?,?)",
            [(s.digest, s.content, first_time) for s in banners(policy).values()],
        )
        conn.close()
    else:
        pool = await ledger._get_pool()  # type: ignore[attr-defined]
        async with pool.acquire() as conn:
            if await conn.fetchval("SELECT count(*) FROM consentkit_ledger"):
                raise SystemExit(f"{args.ledger} is not empty")
            last = None
            while True:
                batch = [r for _, r in zip(range(BATCH), records, strict=False)]
                if not batch:
                    break
                first_time = first_time or batch[0].recorded_at
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "consentkit_ledger",
                        records=[r.row() for r in batch],
                        schema_name=ledger.schema,  # type: ignore[attr-defined]
                    )
                    await conn.copy_records_to_table(
                        "consentkit_pii_salts",
                        records=[(r.seq, r.pii_salt) for r in batch],
                        schema_name=ledger.schema,  # type: ignore[attr-defined]
                    )
                    daily = daily_counts_of_rows(r.to_row() for r in batch)
                    await conn.executemany(dollars(UPSERT_DAILY.sql()), upsert_rows(daily))
                written += len(batch)
                last = batch[-1]
            if last is not None:
                await conn.execute(
                    "INSERT INTO consentkit_head VALUES (1, $1, $2, $3) "
                    "ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, recorded_at = $3",
                    last.seq,
                    last.hash,
                    last.recorded_at,
                )
            await conn.execute(
                "INSERT INTO consentkit_policies VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                policy.digest,
                policy.revision,
                policy.version,
                policy.canonical_json,
                first_time,
            )
            await conn.executemany(
                "INSERT INTO consentkit_shown VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                [(s.digest, s.content, first_time) for s in banners(policy).values()],
            )
        await ledger.close()
    elapsed = time.perf_counter() - started
    print(f"wrote {written} records to {args.ledger} in {elapsed:.1f} s ({written / elapsed:,.0f}/s)")


if __name__ == "__main__":
    asyncio.run(main())
