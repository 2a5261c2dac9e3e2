"""``consentkit``: the command line for operators and auditors."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from .audit.export import FORMATS, write_export
from .errors import ConsentkitError
from .ledger import RecordFilter, open_ledger
from .ledger.vocabulary import Action

if TYPE_CHECKING:
    from .audit.stats import Bucket, Stats

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConsentkitError as exc:
        raise click.ClickException(str(exc)) from None


def _timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``2026-11-01`` or ``2026-11-01T12:00:00[Z|+hh:mm]`` to a ``recorded_at`` bound."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD or an ISO 8601 time such as 2026-11-01T12:00:00Z"
        ) from None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


ledger_option = click.option(
    "--ledger",
    "ledger_url",
    envvar="CONSENTKIT_LEDGER",
    required=True,
    metavar="URL",
    help="sqlite:///path/to/ledger.db or postgresql://user@host/db (or $CONSENTKIT_LEDGER).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="consentkit")
def main() -> None:
    """consentkit: consent policies and the tamper-evident consent ledger."""


@main.group()
def policy() -> None:
    """Consent policy files."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def policy_check(file: Path) -> None:
    """Validate a policy file (exit 1 naming the key and the problem)."""
    from .policy import Policy

    try:
        p = Policy.from_toml(file)
    except ConsentkitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: ok — revision {p.revision}, version {p.version}, {len(p.purposes)} purposes")
    for purpose in p.purposes:
        kind = "essential" if purpose.essential else "optional"
        extra = f", honours {'/'.join(purpose.opt_out_signals)}" if purpose.opt_out_signals else ""
        extra += ", sensitive" if purpose.sensitive else ""
        click.echo(f"  {purpose.id} ({kind}{extra}): {', '.join(purpose.cookies) or 'no cookies'}")
    if p.regions is None:
        click.echo("  regions: none (opt_in everywhere)")
    else:
        r = p.regions
        headers = r.country_header + (f", {r.subdivision_header}" if r.subdivision_header else "")
        rules = ", ".join(f"{key} {model}" for key, model in sorted(r.rules.items()))
        click.echo(f"  regions (from {headers}): {rules or 'no rules'}; elsewhere {r.default}")
    click.echo(f"  locales: {', '.join(p.locales)}")
    click.echo(f"  digest: {p.digest}")


@main.command()
@ledger_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: records as stored; csv: for spreadsheets; iso27560: one ISO/IEC TS 27560 consent "
    "record (JSON) per line.",
)
@click.option("--since", callback=_timestamp, help="Only records at or after this date/time (UTC).")
@click.option("--until", callback=_timestamp, help="Only records before this date/time (UTC).")
@click.option("--subject", help="Only this subject's records.")
@click.option("--purpose", help="Only records whose decision includes this purpose.")
@click.option(
    "--action", type=click.Choice(sorted(a.value for a in Action)), help="Only records of this action."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="File (default: stdout).",
)
@click.option(
    "--raw",
    is_flag=True,
    help="CSV: write every value exactly as stored, for machines. By default a cell that starts "
    "like a spreadsheet formula (= + - @ tab CR) gets a ' before it.",
)
def export(
    ledger_url: str,
    fmt: str,
    since: str | None,
    until: str | None,
    subject: str | None,
    purpose: str | None,
    action: str | None,
    output: Path | None,
    raw: bool,
) -> None:
    """Stream the ledger as CSV, JSON Lines or ISO/IEC TS 27560 consent records, in constant memory.

    CSV cells that could run as spreadsheet formulas are made inert unless --raw is given.
    iso27560 writes one ISO/IEC TS 27560 consent record (JSON) per line: docs/iso27560.md.
    """
    flt = RecordFilter(since=since, until=until, subject_id=subject, purpose=purpose, action=action)

    async def go(out: TextIO) -> int:
        ledger = open_ledger(ledger_url, create=False)
        try:
            await ledger.open()
            return await write_export(
                ledger.row_pages(flt),
                fmt,
                out,
                flt.row_filter(),
                _progress("exported"),
                raw=raw,
                policy_text=ledger.policy_text,  # iso27560 names each record's controller, purposes
            )
        finally:
            await ledger.close()

    if output is None:
        count = _run(go(sys.stdout))
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            count = _run(go(out))
    if sys.stderr.isatty():
        click.echo(f"\r{count} records exported", err=True)


@main.command()
@ledger_option
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1), help="Processes to verify with (default: one per CPU)."
)
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint kept earlier: the ledger must still hold its tree (repeatable).",
)
@click.option("--vkey", "vkey_text", metavar="KEY", help="The log's verifier key, or a file holding it.")
@click.option("--origin", "origin_name", help="The log's name (default: the key's name).")
def verify(
    ledger_url: str,
    jobs: int | None,
    checkpoint_files: tuple[Path, ...],
    vkey_text: str | None,
    origin_name: str | None,
) -> None:
    """Check the chain: sequence, links, hashes and ordering (exit 1 at the first bad seq); the
    stored tree chunks and checkpoints; each --checkpoint, signed by --vkey; and what is stored
    beside the records: policy texts, shown contents, per-day figures, erasures."""
    from .cli_tlog import check_checkpoints, load_checkpoints, verify_checkpoints_or_exit
    from .ledger.parallel import verify_with_tree

    checkpoints = load_checkpoints(checkpoint_files, vkey_text, origin_name)
    # The workers that check the chain also hash the tree from the rows they verified: the
    # stored tree and the checkpoints are then checked against it, with no second read.
    sizes = [cp.size for _, cp in checkpoints]
    report, tree = _run(asyncio.to_thread(verify_with_tree, ledger_url, jobs, sizes))
    if not report.ok:
        click.echo(f"FAILED at seq {report.first_bad_seq}: {report.problem}", err=True)
        click.echo(f"({report.records} records before it verified)", err=True)
        sys.exit(1)
    problems = _run(check_checkpoints(ledger_url, checkpoints, tree))
    problems += _run(_coverage(ledger_url, report))
    verify_checkpoints_or_exit(ledger_url, checkpoints, problems)
    erased = f", {report.erased} erased" if report.erased else ""
    click.echo(f"ok: {report.records} records verified{erased}; head {report.head_hash}")


@main.command()
@ledger_option
@click.option("--by", "period", type=click.Choice(["day", "month"]), default="day", show_default=True)
@click.option("--since", callback=_timestamp, help="Only records at or after this date/time (UTC).")
@click.option("--until", callback=_timestamp, help="Only records before this date/time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def stats(ledger_url: str, period: str, since: str | None, until: str | None, as_json: bool) -> None:
    """Records, subjects, decisions per action, consent rate per purpose, GPC share."""
    from .audit.stats import compute

    async def go() -> Any:
        ledger = open_ledger(ledger_url, create=False)
        try:
            await ledger.open()
            return await compute(ledger.records(RecordFilter(since=since, until=until)), period)
        finally:
            await ledger.close()

    result = _run(go())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_stats(result)


def _print_stats(result: Stats) -> None:
    """The figures as plain aligned text tables: totals, records per action, and per period the
    decisions, the consent rate of every purpose and the GPC share (and per law and region, where
    they say more)."""
    from .audit.stats import breaks_down

    total = result.total
    click.echo(
        f"{total.records} records, {result.subjects} subjects, "
        f"{total.decisions} decisions, GPC share {total.gpc_share():.1%}"
    )
    click.echo()
    actions = [(action, str(n)) for action, n in sorted(total.actions.items())]
    _table("Records per action", ("action", "records"), actions)
    click.echo()
    purposes = sorted(total.asked)
    rows = _rate_rows(result.periods, purposes)
    header = (result.period, "decisions", *[f"{p} %" for p in purposes], "GPC %")
    _table(f"Consent rate per {result.period}", header, rows)
    if not breaks_down(result.models, result.regions):
        return
    for title, name, buckets in (
        ("Consent rate per law", "model", result.models),
        ("Consent rate per region", "region", result.regions),
    ):
        click.echo()
        header = (name, "decisions", *[f"{p} %" for p in purposes], "GPC %")
        _table(title, header, _rate_rows(buckets, purposes))


def _rate_rows(buckets: dict[str, Bucket], purposes: list[str]) -> list[tuple[str, ...]]:
    """One row per bucket: its decisions, the consent rate of each purpose, its GPC share."""
    rows = []
    for key, bucket in sorted(buckets.items()):
        rates = bucket.consent_rate()
        rows.append(
            (
                key,
                str(bucket.decisions),
                *[f"{rates[p]:.1%}" if p in rates else "–" for p in purposes],
                f"{bucket.gpc_share():.1%}",
            )
        )
    return rows


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a plain aligned table: the first column (names) to the left, figures to the right."""
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    click.echo(title)
    click.echo(line(header))
    click.echo(line(["-" * width for width in widths]))
    for row in rows:
        click.echo(line(row))


@main.command()
@ledger_option
@click.argument("receipt")
def receipt(ledger_url: str, receipt: str) -> None:
    """Look up the record a consent receipt (from a visitor's cookie or history) names.

    Prints the record as JSON (exit 1 if no record has that receipt). Run `consentkit verify`
    to show that the chain holding it is intact.
    """
    if not re.fullmatch(r"[0-9a-f]{8,64}", receipt):
        raise click.BadParameter("a receipt is 8 to 64 lower-case hex digits", param_hint="RECEIPT")

    async def go() -> list[Any]:
        ledger = open_ledger(ledger_url, create=False)
        try:
            return [r async for r in ledger.records(RecordFilter(receipt=receipt))]
        finally:
            await ledger.close()

    found = _run(go())
    if not found:
        click.echo(f"no record has receipt {receipt}", err=True)
        sys.exit(1)
    for record in found:
        click.echo(json.dumps({"receipt": record.receipt, **record.to_dict()}, indent=2, ensure_ascii=False))


@main.command()
@ledger_option
@click.option("--subject", required=True, help="The subject id to erase.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(ledger_url: str, subject: str, yes: bool) -> None:
    """De-identify a subject (right to erasure); the chain still verifies afterwards."""
    if not yes:
        click.confirm(f"Erase the personal fields of every record of subject {subject!r}?", abort=True)

    async def go() -> Any:
        ledger = open_ledger(ledger_url, create=False)
        try:
            await ledger.open()
            return await ledger.erase(subject)
        finally:
            await ledger.close()

    record = _run(go())
    count = (record.evidence or {}).get("erased_records")
    click.echo(f"erased {count} records of that subject; the erasure is record seq {record.seq}")


@main.command("hash-password")
def hash_password_command() -> None:
    """Make a password hash for ConsentKit(audit_users={"name": HASH}) (asks for the password)."""
    from .audit import hash_password

    password = click.prompt("Audit password", hide_input=True, confirmation_prompt=True)
    try:
        click.echo(hash_password(password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@ledger_option
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--since", help="First day (YYYY-MM-DD, UTC).")
@click.option("--until", help="Last day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--title", default="", help="Who the report is about (the controller's name).")
def report(ledger_url: str, out: Path, since: str | None, until: str | None, title: str) -> None:
    """Write the overview (consent rates over time as charts, decisions, GPC, chain) to one
    self-contained HTML file, for sending to a regulator."""
    from .audit.report import render_report, report_overview
    from .ledger.full_check import check_everything

    for name, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise click.BadParameter(
                    f"{value!r} is not a date like 2026-11-01", param_hint=name
                ) from None

    verified = _run(check_everything(ledger_url))
    overview = _run(report_overview(ledger_url, since, until, verified))
    out.write_text(render_report(overview, controller=title, ledger_url=ledger_url), encoding="utf-8")
    chain = verified.report
    state = (
        "chain intact"
        if verified.ok
        else f"CHAIN BROKEN at seq {chain.first_bad_seq}"
        if not chain.ok
        else f"LEDGER NOT INTACT: {verified.problems[0]}"
    )
    click.echo(f"wrote {out} ({overview.records} records, {state})")


async def _coverage(ledger_url: str, report: Any) -> list[str]:
    """What ``verify`` finds wrong beside the records (``consentkit/ledger/coverage.py``)."""
    from .ledger.coverage import check_coverage

    ledger = open_ledger(ledger_url, create=False)
    try:
        return await check_coverage(ledger, report.erased, report.groups)
    finally:
        await ledger.close()


def _progress(verb: str) -> Callable[[int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(count: int) -> None:
        click.echo(f"\r{count} records {verb}…", err=True, nl=False)

    return show


# The transparency log's commands register themselves on ``main``.
from . import cli_tlog  # noqa: E402, F401
