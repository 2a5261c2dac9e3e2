"""The ``consentkit`` command line: policy check, verify and export, as auditors and operators use it."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_POLICY, ROOT
from unit_helpers import new_record, tamper

import consentkit
from consentkit import Policy
from consentkit.cli import main
from consentkit.ledger import LedgerRecord, open_ledger
from consentkit.ledger.records import EXPORT_FIELDS

NASTY_UA = 'Mozilla/5.0 (X11; Linux) "quoted", with comma\nand a newline, é 漢字'


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)


@pytest.fixture
def made(ledger_url, policy) -> list[LedgerRecord]:
    """Six records through the ledger API, each in its own millisecond."""
    entries = [
        new_record(policy, "subject-a", "save", {"necessary": True, "analytics": True, "ads": False}),
        new_record(policy, "subject-b", "accept_all", {"necessary": True, "analytics": True, "ads": True}),
        new_record(
            policy,
            "subject-a",
            "withdraw",
            {"necessary": True, "analytics": False, "ads": False},
            method="preferences",
        ),
        new_record(
            policy,
            "subject-c",
            "reject_all",
            {"necessary": True, "analytics": False, "ads": False},
            ip_prefix="203.0.113.0/24",
            user_agent=NASTY_UA,
            locale="fr",
        ),
        new_record(
            policy, "subject-b", "save", {"necessary": True, "analytics": True, "ads": False}, gpc=True
        ),
        new_record(
            policy,
            "customer-1",
            "record",
            {"sms_marketing": True},
            method="api",
            evidence={"form": "checkout", "text": "Send me offers by SMS", "checked": True},
        ),
    ]

    async def fill() -> list[LedgerRecord]:
        lg = open_ledger(ledger_url)
        out = []
        try:
            for entry in entries:
                out.append(await lg.append(entry))
                await asyncio.sleep(0.004)
        finally:
            await lg.close()
        return out

    records = asyncio.run(fill())
    times = [r.recorded_at for r in records]
    assert times == sorted(times) and len(set(times)) == len(times), times
    return records


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.split("\n") if line]


# -- help -------------------------------------------------------------------------------------


def test_help_lists_the_commands():
    for flag in ("--help", "-h"):
        result = run(flag)
        assert result.exit_code == 0, result.output
        for command in ("policy", "export", "verify", "stats", "erase"):
            assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["export", "--help"], ["--ledger", "--format", "--since", "--until", "--subject", "--action"]),
        (["verify", "--help"], ["--ledger"]),
        (["policy", "check", "--help"], ["FILE"]),
    ],
)
def test_subcommand_help(args, words):
    result = run(*args)
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.stdout


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert consentkit.__version__ in result.stdout


def test_console_script_help():
    script = Path(sys.executable).parent / "consentkit"
    assert script.is_file(), "the consentkit console script is not installed next to the interpreter"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "verify" in out.stdout and "export" in out.stdout


def test_python_m_consentkit_help():
    out = subprocess.run(
        [sys.executable, "-m", "consentkit", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "verify" in out.stdout and "export" in out.stdout


# -- policy check -----------------------------------------------------------------------------


def test_policy_check_ok():
    result = run("policy", "check", str(EXAMPLE_POLICY))
    assert result.exit_code == 0, result.output
    p = Policy.from_toml(EXAMPLE_POLICY)
    assert "ok" in result.stdout
    assert p.digest in result.stdout
    for pid in p.ids:
        assert pid in result.stdout
    assert "en, fr" in result.stdout


def test_policy_check_says_which_law_applies_where(tmp_path):
    assert "regions: none (opt_in everywhere)" in run("policy", "check", str(EXAMPLE_POLICY)).stdout
    good = tmp_path / "consent.toml"
    good.write_text(
        EXAMPLE_POLICY.read_text(encoding="utf-8")
        + '\n[regions]\ncountry_header = "cf-ipcountry"\nrules = { "US" = "opt_out", "EU" = "opt_in" }\n',
        encoding="utf-8",
    )
    result = run("policy", "check", str(good))
    assert result.exit_code == 0, result.output
    assert "regions (from cf-ipcountry): EU opt_in, US opt_out; elsewhere opt_in" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text(encoding="utf-8").replace('"US" = "opt_out"', '"USA" = "opt_out"'))
    result = run("policy", "check", str(bad))
    assert result.exit_code == 1 and f"{bad}: regions.rules.USA: 'USA' is not a region" in result.stderr


def test_policy_check_failing_names_file_and_key(tmp_path):
    bad = tmp_path / "consent.toml"
    bad.write_text(
        EXAMPLE_POLICY.read_text(encoding="utf-8").replace(
            "consent_lifetime_days = 180", "consent_lifetime_days = 400"
        ),
        encoding="utf-8",
    )
    result = run("policy", "check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: policy.consent_lifetime_days:" in result.stderr
    assert "395" in result.stderr
    assert "ok" not in result.stdout
    assert "Traceback" not in result.output


def test_policy_check_failing_purpose_key(tmp_path):
    bad = tmp_path / "consent.toml"
    bad.write_text(
        EXAMPLE_POLICY.read_text(encoding="utf-8").replace(
            'opt_out_signals = ["gpc"]', 'opt_out_signal = ["gpc"]'
        ),
        encoding="utf-8",
    )
    result = run("policy", "check", str(bad))
    assert result.exit_code == 1
    assert "purposes[2] (id='ads').opt_out_signal:" in result.stderr
    assert "unknown key" in result.stderr


def test_policy_check_missing_file(tmp_path):
    result = run("policy", "check", str(tmp_path / "missing.toml"))
    assert result.exit_code == 1
    assert "missing.toml" in result.stderr
    assert "cannot read" in result.stderr


# -- verify -----------------------------------------------------------------------------------


def test_verify_ok(made, ledger_url):
    result = run("verify", "--ledger", ledger_url)
    assert result.exit_code == 0, result.output
    assert f"{len(made)} records verified" in result.stdout
    assert made[-1].hash in result.stdout


def test_verify_reads_the_ledger_from_the_environment(made, ledger_url):
    result = run("verify", env={"CONSENTKIT_LEDGER": ledger_url})
    assert result.exit_code == 0, result.output
    assert f"{len(made)} records verified" in result.stdout


def test_verify_without_a_ledger_is_a_usage_error():
    result = run("verify", env={"CONSENTKIT_LEDGER": None})
    assert result.exit_code == 2
    assert "--ledger" in result.stderr


@pytest.mark.parametrize(
    ("statement", "seq"),
    [
        ("UPDATE consentkit_ledger SET purposes='{\"sms_marketing\":false}' WHERE seq=6", 6),
        ("UPDATE consentkit_ledger SET subject_id='subject-z' WHERE seq=3", 3),
        ("DELETE FROM consentkit_ledger WHERE seq=2", 2),
        ("UPDATE consentkit_ledger SET recorded_at='2001-01-01T00:00:00.000Z' WHERE seq=4", 4),
    ],
    ids=["purposes", "subject", "deleted", "recorded-at"],
)
def test_verify_fails_naming_the_first_bad_seq(made, ledger_url, ledger_path, statement, seq):
    assert tamper(ledger_path, statement) == 1
    result = run("verify", "--ledger", ledger_url)
    assert result.exit_code == 1
    assert f"seq {seq}" in result.stderr
    assert "FAILED" in result.stderr
    assert "ok:" not in result.stdout


def test_verify_exit_status_of_the_real_process(made, ledger_url, ledger_path):
    cmd = [sys.executable, "-m", "consentkit", "verify", "--ledger", ledger_url]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    tamper(ledger_path, "UPDATE consentkit_ledger SET action='accept_all' WHERE seq=5")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "seq 5" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_verify_foreign_database_is_a_clear_error(tmp_path):
    import sqlite3

    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()
    conn.close()
    result = run("verify", "--ledger", f"sqlite:///{path}")
    assert result.exit_code == 1
    assert "not a consentkit ledger" in result.stderr
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback


def test_verify_unknown_url_is_a_clear_error():
    result = run("verify", "--ledger", "mysql://127.0.0.1/consent")
    assert result.exit_code == 1
    assert "unknown ledger URL" in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_verify_of_a_missing_ledger_fails_and_creates_nothing(tmp_path):
    path = tmp_path / "typo.db"
    result = run("verify", "--ledger", f"sqlite:///{path}")
    assert not path.exists()
    assert result.exit_code != 0


# -- stats ------------------------------------------------------------------------------------


def _text_table(lines: list[str], title: str) -> list[list[str]]:
    """The rows (header first) of the plain table under ``title``, checking its alignment."""
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    header, rule, *rows = lines[start:end]
    assert set(rule) <= {"-", " "}, rule
    assert len({len(line) for line in (header, rule, *rows)}) == 1, "columns are aligned"
    return [line.split() for line in (header, *rows)]


def test_stats_prints_the_figures_as_aligned_text(made, ledger_url):
    result = run("stats", "--ledger", ledger_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "6 records, 4 subjects, 6 decisions, GPC share 16.7%"
    assert _text_table(lines, "Records per action") == [
        ["action", "records"],
        ["accept_all", "1"],
        ["record", "1"],
        ["reject_all", "1"],
        ["save", "2"],
        ["withdraw", "1"],
    ]
    header, *days = _text_table(lines, "Consent rate per day")
    assert " ".join(header) == "day decisions ads % analytics % necessary % sms_marketing % GPC %"
    assert days == [[made[0].recorded_at[:10], "6", "20.0%", "60.0%", "100.0%", "100.0%", "16.7%"]]
    monthly = run("stats", "--ledger", ledger_url, "--by", "month").stdout.splitlines()
    assert _text_table(monthly, "Consent rate per month")[1][0] == made[0].recorded_at[:7]


# -- export -----------------------------------------------------------------------------------


def test_export_jsonl_is_one_record_per_line_in_seq_order(made, ledger_url):
    result = run("export", "--ledger", ledger_url, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = jsonl(result.stdout)
    assert [r["seq"] for r in rows] == [r.seq for r in made]
    for row, rec in zip(rows, made, strict=True):
        assert list(row) == list(EXPORT_FIELDS)
        assert row == rec.to_dict()
    assert rows[3]["user_agent"] == NASTY_UA
    assert rows[3]["ip_prefix"] == "203.0.113.0/24"
    assert rows[4]["gpc"] is True
    assert rows[5]["evidence"] == {"form": "checkout", "text": "Send me offers by SMS", "checked": True}
    assert rows[0]["evidence"] is None and rows[0]["user_agent"] is None


def test_export_default_format_is_jsonl(made, ledger_url):
    result = run("export", "--ledger", ledger_url)
    assert result.exit_code == 0, result.output
    assert len(jsonl(result.stdout)) == len(made)


def test_export_csv_parses_with_a_header_and_one_row_per_record(made, ledger_url):
    result = run("export", "--ledger", ledger_url, "--format", "csv")
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout, newline=""))
    assert tuple(reader.fieldnames or ()) == EXPORT_FIELDS
    rows = list(reader)
    assert [int(r["seq"]) for r in rows] == [r.seq for r in made]
    for row, rec in zip(rows, made, strict=True):
        assert row["hash"] == rec.hash
        assert row["prev_hash"] == rec.prev_hash
        assert row["subject_id"] == rec.subject_id
        assert row["action"] == rec.action
        assert json.loads(row["purposes"]) == rec.purposes
        assert row["recorded_at"] == rec.recorded_at
        assert int(row["policy_revision"]) == rec.policy_revision
    assert rows[3]["user_agent"] == NASTY_UA
    assert rows[3]["locale"] == "fr"
    assert [r["gpc"] for r in rows] == ["false", "false", "false", "false", "true", "false"]
    assert json.loads(rows[5]["evidence"])["checked"] is True
    assert rows[0]["evidence"] == "" and rows[0]["ip_prefix"] == ""


def test_export_to_a_file_matches_stdout(made, ledger_url, tmp_path):
    out = tmp_path / "consents.csv"
    to_file = run("export", "--ledger", ledger_url, "--format", "csv", "--output", str(out))
    assert to_file.exit_code == 0, to_file.output
    to_stdout = run("export", "--ledger", ledger_url, "--format", "csv")
    assert out.read_text(encoding="utf-8") == to_stdout.stdout


def test_exported_chain_can_be_checked_by_the_auditor(made, ledger_url):
    rows = jsonl(run("export", "--ledger", ledger_url).stdout)
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]


def seqs(result) -> list[int]:
    assert result.exit_code == 0, result.output
    return [row["seq"] for row in jsonl(result.stdout)]


def test_export_filter_subject(made, ledger_url):
    assert seqs(run("export", "--ledger", ledger_url, "--subject", "subject-a")) == [1, 3]
    assert seqs(run("export", "--ledger", ledger_url, "--subject", "nobody")) == []


def test_export_filter_action(made, ledger_url):
    assert seqs(run("export", "--ledger", ledger_url, "--action", "withdraw")) == [3]
    assert seqs(run("export", "--ledger", ledger_url, "--action", "save")) == [1, 5]
    assert seqs(run("export", "--ledger", ledger_url, "--subject", "subject-b", "--action", "save")) == [5]


def test_export_unknown_action_is_a_usage_error(made, ledger_url):
    result = run("export", "--ledger", ledger_url, "--action", "delete")
    assert result.exit_code == 2
    assert "--action" in result.stderr
    assert result.stdout == ""


def test_export_filter_purpose(made, ledger_url):
    assert seqs(run("export", "--ledger", ledger_url, "--purpose", "sms_marketing")) == [6]
    assert seqs(run("export", "--ledger", ledger_url, "--purpose", "ads")) == [1, 2, 3, 4, 5]


def test_export_since_is_inclusive_and_until_exclusive(made, ledger_url):
    t = [r.recorded_at for r in made]
    assert seqs(run("export", "--ledger", ledger_url, "--since", t[2])) == [3, 4, 5, 6]
    assert seqs(run("export", "--ledger", ledger_url, "--until", t[2])) == [1, 2]
    assert seqs(run("export", "--ledger", ledger_url, "--since", t[1], "--until", t[4])) == [2, 3, 4]
    assert seqs(run("export", "--ledger", ledger_url, "--since", t[4], "--until", t[1])) == []


def test_export_since_accepts_offsets_and_naive_utc(made, ledger_url):
    at = datetime.fromisoformat(made[3].recorded_at.replace("Z", "+00:00"))
    paris = at.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")
    naive = at.replace(tzinfo=None).isoformat(timespec="milliseconds")
    assert "+02:00" in paris
    expected = [4, 5, 6]
    assert seqs(run("export", "--ledger", ledger_url, "--since", paris)) == expected
    assert seqs(run("export", "--ledger", ledger_url, "--since", naive)) == expected


def test_export_since_and_until_accept_dates(made, ledger_url):
    day = datetime.fromisoformat(made[0].recorded_at.replace("Z", "+00:00")).date()
    if made[-1].recorded_at[:10] != day.isoformat():  # pragma: no cover - ran across midnight UTC
        pytest.skip("records straddle midnight UTC")
    nxt = (day + timedelta(days=1)).isoformat()
    everything = [r.seq for r in made]
    assert seqs(run("export", "--ledger", ledger_url, "--since", day.isoformat())) == everything
    assert seqs(run("export", "--ledger", ledger_url, "--since", nxt)) == []
    assert seqs(run("export", "--ledger", ledger_url, "--until", nxt)) == everything
    assert seqs(run("export", "--ledger", ledger_url, "--until", day.isoformat())) == []


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-11-01T25:00:00Z", "01/11/2026", ""])
def test_export_bad_date_is_a_clear_error(made, ledger_url, option, value):
    result = run("export", "--ledger", ledger_url, option, value)
    assert result.exit_code == 2
    assert option in result.stderr
    assert "is not a date" in result.stderr
    assert "YYYY-MM-DD" in result.stderr
    assert result.stdout == ""


def test_export_of_a_tampered_ledger_still_streams(made, ledger_url, ledger_path):
    # Export is not verification: an auditor can still read what is there.
    tamper(ledger_path, "UPDATE consentkit_ledger SET subject_id='subject-z' WHERE seq=3")
    rows = jsonl(run("export", "--ledger", ledger_url).stdout)
    assert [r["subject_id"] for r in rows][2] == "subject-z"


def test_export_reads_the_ledger_from_the_environment(made, ledger_url):
    result = CliRunner().invoke(main, ["export", "--format", "csv"], env={"CONSENTKIT_LEDGER": ledger_url})
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout, newline="")))) == len(made)


def test_export_real_process_jsonl(made, ledger_url):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run(
        [sys.executable, "-m", "consentkit", "export", "--ledger", ledger_url, "--subject", "subject-c"],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    rows = jsonl(out.stdout.decode("utf-8"))
    assert [r["seq"] for r in rows] == [4]
    assert rows[0]["user_agent"] == NASTY_UA


def test_records_made_now_are_exported_with_todays_date(made):
    # recorded_at is UTC with milliseconds and a Z
    for r in made:
        parsed = datetime.strptime(r.recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - parsed).total_seconds()) < 120
