"""The auditor's desk under ``{prefix}/audit`` (off unless credentials are configured).

Access is HTTP Basic (over the site's TLS) against ``audit_users`` — user names with scrypt
password hashes made by ``consentkit hash-password`` — or a bearer ``audit_token`` (also kept as
a hash). There is no default password. Failed attempts are rate-limited per client address, and
every access, granted or not, is kept in the ledger's access log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse

from .errors import ConfigurationError, LedgerCorrupt, LedgerUnavailable
from .export import FORMATS, csv_line, jsonl_line
from .ledger import RecordFilter
from .ledger.records import ACTIONS, EXPORT_FIELDS, METHODS
from .netaddr import ip_prefix
from .overview import build

if TYPE_CHECKING:
    from .kit import ConsentKit

log = logging.getLogger("consentkit.audit")

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_FAILURES = 5  # per client address within WINDOW before it must wait
WINDOW = 300.0
PAGE = 50


def hash_password(password: str) -> str:
    """A hash for ``audit_users`` (scrypt, random salt): ``scrypt$n$r$p$salt$hash``."""
    if len(password) < 12:
        raise ValueError("use an audit password of at least 12 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def _parse_hash(value: str) -> tuple[dict[str, int], bytes, bytes]:
    try:
        scheme, n, r, p, salt, digest = value.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        return {"n": int(n), "r": int(r), "p": int(p)}, base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, binascii.Error):
        raise ConfigurationError(
            "audit_users values must be hashes made by `consentkit hash-password` (scrypt$…), never passwords"
        ) from None


def check_password(password: str, stored: tuple[dict[str, int], bytes, bytes]) -> bool:
    """Whether ``password`` matches a parsed hash, compared in constant time."""
    params, salt, digest = stored
    candidate = hashlib.scrypt(password.encode(), salt=salt, dklen=len(digest), maxmem=2**26, **params)
    return hmac.compare_digest(candidate, digest)


class AuditAccess:
    """Who may open the desk, and the rate limit on those who may not."""

    def __init__(self, users: Mapping[str, str] | None, token_hash: str | None) -> None:
        self.users = {name: _parse_hash(h) for name, h in (users or {}).items()}
        self.token = _parse_hash(token_hash) if token_hash else None
        self._decoy: tuple[dict[str, int], bytes, bytes] | None = None
        self._failures: dict[str, list[float]] = {}

    @property
    def decoy(self) -> tuple[dict[str, int], bytes, bytes]:
        """A hash unknown users are checked against, so that timing does not tell who exists
        (made on first use: scrypt takes ~50 ms, which every kit would otherwise pay)."""
        if self._decoy is None:
            self._decoy = _parse_hash(hash_password(secrets.token_urlsafe(24)))
        return self._decoy

    @property
    def enabled(self) -> bool:
        """Off (404) unless a user or a token is configured."""
        return bool(self.users) or self.token is not None

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait after too many failures (0: may try)."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, ()) if now - t < WINDOW]
        self._failures[client] = recent
        if len(recent) < MAX_FAILURES:
            return 0
        return int(WINDOW - (now - recent[0])) + 1

    def failed(self, client: str) -> None:
        """Count a failed attempt."""
        self._failures.setdefault(client, []).append(time.monotonic())
        if len(self._failures) > 10000:  # bound memory under a spray of addresses
            self._failures.clear()

    def authenticate(self, authorization: str | None) -> str | None:
        """The user (or ``"token"``) an ``Authorization`` header proves, else ``None``."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return "token" if check_password(value.strip(), self.token) else None
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        stored = self.users.get(user)
        ok = check_password(password, stored or self.decoy)
        return user if ok and stored is not None else None


class AuditDesk:
    """The pages and exports of ``{prefix}/audit``."""

    def __init__(self, kit: ConsentKit, users: Mapping[str, str] | None, token_hash: str | None) -> None:
        self.kit = kit
        self.access = AuditAccess(users, token_hash)
        self.base = f"{kit.prefix}/audit"

    async def __call__(self, request: Request) -> Response:
        """Answer any request under ``{prefix}/audit`` (404 when the desk is off)."""
        if not self.access.enabled:
            return PlainTextResponse("no such consent endpoint\n", status_code=404)
        client = request.client.host if request.client else "unknown"
        user: str | None = None
        wait = self.access.retry_after(client)
        if wait:
            response: Response = PlainTextResponse(
                "too many failed sign-ins; try again later\n",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        else:
            # scrypt takes ~50 ms: keep it off the event loop.
            user = await asyncio.to_thread(self.access.authenticate, request.headers.get("authorization"))
            if user is None:
                if request.headers.get("authorization"):
                    self.access.failed(client)
                response = PlainTextResponse(
                    "sign in to the consent audit desk\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="consentkit audit", charset="UTF-8"'},
                )
            else:
                try:
                    response = await self.route(request)
                except (LedgerUnavailable, LedgerCorrupt) as exc:
                    response = PlainTextResponse(
                        f"the consent ledger cannot be read: {exc}\n", status_code=503
                    )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex"
        await self._log(request, user, response.status_code)
        return response

    async def _log(self, request: Request, user: str | None, status: int) -> None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        address = ip_prefix(request.client.host if request.client else None)
        log.info("audit access %s %s by %s from %s: %d", request.method, path, user or "-", address, status)
        try:
            await self.kit.ledger.log_access(user, address, request.method, path[:1000], status)
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            log.error("audit access not kept in the ledger: %s", exc)

    async def route(self, request: Request) -> Response:
        """Dispatch an authenticated request."""
        sub = request.url.path[len(self.base) :].rstrip("/")
        method = request.method
        if sub == "" and method in ("GET", "HEAD"):
            return await self.overview(request)
        if sub == "/records" and method in ("GET", "HEAD"):
            return await self.records(request)
        if sub.startswith("/records/") and sub[9:].isdigit() and method in ("GET", "HEAD"):
            return await self.record(request, int(sub[9:]))
        if sub == "/export" and method in ("GET", "HEAD"):
            return self.export(request)
        if sub == "/verify" and method == "POST":
            return await self.verify(request)
        if sub == "/access" and method in ("GET", "HEAD"):
            return await self.access_log(request)
        return PlainTextResponse("no such audit page\n", status_code=404)

    # -- pages --------------------------------------------------------------------------------

    def _page(self, name: str, **context: Any) -> HTMLResponse:
        env = self.kit.renderer.env("en")
        html = env.get_template(f"consentkit/audit/{name}").render(
            base=self.base, controller=self.kit.policy.controller, css=Markup(_css()), **context
        )
        return HTMLResponse(html)

    async def overview(self, request: Request) -> Response:
        """Records, subjects, consent rates over time, the decision mix, GPC, the chain's state."""
        first = _day(request.query_params.get("since"))
        last = _day(request.query_params.get("until"))
        o = await build(self.kit.ledger, first, last, list(self.kit.policy.optional_ids))
        titles = {
            p.id: p.text("title", "en", self.kit.policy.default_locale) for p in self.kit.policy.purposes
        }
        return self._page("overview.html", o=o, titles=titles, since=first or "", until=last or "")

    async def records(self, request: Request) -> Response:
        """Filterable, paginated records (newest first)."""
        problems, flt, query = _filter(request)
        if problems:
            return PlainTextResponse("; ".join(problems) + "\n", status_code=400)
        before = request.query_params.get("before")
        if before is not None and not before.isdigit():
            return PlainTextResponse("before must be a record number\n", status_code=400)
        rows = await self._newest(flt, int(before) if before else None)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        return self._page(
            "records.html",
            rows=rows,
            query=query,
            next_before=rows[-1].seq if more and rows else None,
            actions=sorted(ACTIONS),
            methods=sorted(METHODS),
            purposes=self.kit.policy.ids,
        )

    async def _newest(self, flt: RecordFilter, before: int | None) -> list[Any]:
        # Keyset pages from the end: the last seq, then windows of seq below it.
        top = (before - 1) if before else await self.kit.ledger.last_seq()
        found: list[Any] = []
        window = 2000
        while top >= 1 and len(found) <= PAGE:
            lo = max(1, top - window + 1)
            page_filter = RecordFilter(**{**_fields(flt), "first_seq": lo, "last_seq": top})
            chunk = [r async for r in self.kit.ledger.records(page_filter)]
            found.extend(reversed(chunk))
            top = lo - 1
            window *= 4
        return found[: PAGE + 1]

    async def record(self, request: Request, seq: int) -> Response:
        """One record in full, with the policy text it refers to."""
        found = [r async for r in self.kit.ledger.records(RecordFilter(first_seq=seq, last_seq=seq))]
        if not found:
            return PlainTextResponse(f"no record {seq}\n", status_code=404)
        rec = found[0]
        text = await self.kit.ledger.policy_text(rec.policy_digest)
        policy = json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else None
        evidence = (
            json.dumps(rec.evidence, indent=2, ensure_ascii=False) if rec.evidence is not None else None
        )
        return self._page("record.html", r=rec, policy=policy, evidence=evidence)

    def export(self, request: Request) -> Response:
        """Streaming CSV or JSON Lines with the same filters as ``consentkit export``."""
        problems, flt, _ = _filter(request)
        fmt = request.query_params.get("format", "csv")
        if fmt not in FORMATS:
            problems.append("format must be csv or jsonl")
        if problems:
            return PlainTextResponse("; ".join(problems) + "\n", status_code=400)
        keep = flt.row_filter()
        line = csv_line if fmt == "csv" else jsonl_line
        ledger = self.kit.ledger

        async def body() -> AsyncIterator[bytes]:
            if fmt == "csv":
                yield (",".join(EXPORT_FIELDS) + "\n").encode()
            async for rows in ledger.row_pages(flt):
                if keep is not None:
                    rows = [r for r in rows if keep(r)]
                yield "".join(map(line, rows)).encode("utf-8")

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            body(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="consent-ledger-{stamp}.{fmt}"'},
        )

    async def verify(self, request: Request) -> Response:
        """Verify the chain now and keep the outcome; back to the overview."""
        problem = self.kit.csrf.origin_problem(
            request.headers.get("sec-fetch-site"), request.headers.get("origin"), request.headers.get("host")
        )
        if problem or (
            request.headers.get("origin") is None and request.headers.get("sec-fetch-site") is None
        ):
            return PlainTextResponse(
                (problem or "verification must be asked for from this site") + "\n", status_code=403
            )
        from .ledger.parallel import verify_parallel

        started = time.monotonic()
        report = await asyncio.to_thread(verify_parallel, self.kit.ledger.url)
        outcome = {
            "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "ok": report.ok,
            "records": report.records,
            "head": report.head_hash,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
            "seconds": round(time.monotonic() - started, 2),
        }
        await self.kit.ledger.set_meta("last_verify", json.dumps(outcome))
        return RedirectResponse(self.base, status_code=303)

    async def access_log(self, request: Request) -> Response:
        """Who opened the desk, newest first."""
        return self._page("access.html", entries=await self.kit.ledger.access_log(200))


def _css() -> str:
    from importlib.resources import files

    return (files("consentkit") / "templates" / "consentkit" / "audit" / "audit.css").read_text()


def _day(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        return None


def _fields(flt: RecordFilter) -> dict[str, Any]:
    return {k: getattr(flt, k) for k in flt.__dataclass_fields__}


def _filter(request: Request) -> tuple[list[str], RecordFilter, dict[str, str]]:
    """The records filter a query string asks for, with what is wrong in it."""
    q = request.query_params
    problems: list[str] = []
    query = {k: q.get(k, "") for k in ("since", "until", "action", "purpose", "subject", "method")}
    since = until = None
    if query["since"]:
        since = _day(query["since"])
        if since is None:
            problems.append("since must be a date like 2026-11-01")
    if query["until"]:
        day = _day(query["until"])
        if day is None:
            problems.append("until must be a date like 2026-11-30")
        else:
            until = f"{day}T99"  # the whole day, inclusive
    if query["action"] and query["action"] not in ACTIONS:
        problems.append(f"unknown action {query['action']!r}")
    if query["method"] and query["method"] not in METHODS:
        problems.append(f"unknown method {query['method']!r}")
    flt = RecordFilter(
        since=since,
        until=until,
        subject_id=query["subject"] or None,
        purpose=query["purpose"] or None,
        action=query["action"] or None,
        method=query["method"] or None,
    )
    return problems, flt, query
