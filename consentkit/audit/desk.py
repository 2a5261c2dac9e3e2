"""The auditor's desk under ``{prefix}/audit`` (off unless credentials are configured).

Its pages: the overview, the records (filtered, paginated, each in full), streaming exports,
"verify now", and the access log — see the README's "The auditor's desk". Who may open it is
:mod:`consentkit.audit.access`; every access, granted or not, is kept in the ledger's access log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from markupsafe import Markup
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse

from ..errors import LedgerCorrupt, LedgerUnavailable
from ..http.client import ClientAddresses, limit_key
from ..http.csrf import CsrfGuard
from ..ledger import Ledger, LedgerRecord, RecordFilter
from ..ledger.full_check import check_everything
from ..ledger.vocabulary import Action, Method
from ..netaddr import ip_prefix
from ..policy import Policy
from ..ui.shown import ShownView, sha256_hex
from .access import AuditAccess
from .export import FORMATS, content_type, export_chunks, file_extension
from .filters import day, read_filter
from .overview import COUNTS, build, build_per_subject, verification
from .pages import TEMPLATES, style_hash, stylesheet

log = logging.getLogger("consentkit.audit")

PAGE = 50  # records per page
MAX_FORM = 4096  # bytes: the verify form carries one token
MAX_SEQ = 2**63 - 1  # the largest record number the databases store (a signed 64-bit integer)
# A record number as the desk's links write it: ASCII digits, no sign, no leading zero, at most
# 19 of them (``str.isdigit`` would also take "²" and other Unicode digits).
_SEQ = re.compile(r"[1-9][0-9]{0,18}")


def parse_seq(text: str | None) -> int | None:
    """A record number 1..2^63-1 written as plain ASCII decimal digits, else ``None``."""
    if text is None or not _SEQ.fullmatch(text):
        return None
    seq = int(text)
    return seq if seq <= MAX_SEQ else None


def security_headers() -> dict[str, str]:
    """What every answer of the desk carries: never framed (clickjacking "Verify now"), never
    cached or indexed, and a CSP that allows the pages exactly what they use — their one inline
    stylesheet, by its hash (no 'unsafe-inline'), and forms posted to the desk itself. The pages
    have no script, image, font or frame of any kind."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src '{style_hash()}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }


class AuditDesk:
    """The pages and exports of ``{prefix}/audit``.

    It is handed what it uses: the ledger it shows, the policy (purpose titles, the controller's
    name), its own ``base`` path, the anti-forgery guard, ``templates()``, which returns the
    Jinja environment its pages are rendered with, and ``clients``, who a request's client is
    (behind the site's trusted proxies).
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: Policy,
        base: str,
        csrf: CsrfGuard,
        templates: Callable[[], jinja2.Environment],
        users: Mapping[str, str] | None,
        token_hash: str | None,
        clients: ClientAddresses | None = None,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.base = base
        self.csrf = csrf
        self.templates = templates
        self.clients = clients or ClientAddresses()
        self.access = AuditAccess(users, token_hash)
        self.headers = security_headers()

    async def __call__(self, request: Request) -> Response:
        """Answer any request under ``{prefix}/audit`` (404 when the desk is off).

        Every answer, whatever it is — 401, 404, 429, a page, or a 500 for a bug of ours — is
        kept in the access log and carries the desk's security headers.
        """
        if not self.access.enabled:
            response: Response = PlainTextResponse("no such consent endpoint\n", status_code=404)
            response.headers.update(self.headers)
            return response
        address = self.clients.of(request.scope)
        user: str | None = None
        try:
            signed_in = await self._sign_in(request, limit_key(address))
            if isinstance(signed_in, Response):
                response = signed_in
            else:
                user = signed_in
                try:
                    response = await self.route(request, user)
                except (LedgerUnavailable, LedgerCorrupt) as exc:
                    response = PlainTextResponse(
                        f"the consent ledger cannot be read: {exc}\n", status_code=503
                    )
        except Exception:
            log.exception("the audit desk failed on %s %s", request.method, request.url.path)
            response = PlainTextResponse("the audit desk failed; see the server's log\n", status_code=500)
        response.headers.update(self.headers)
        await self._log(request, address, user, response.status_code)
        return response

    async def _sign_in(self, request: Request, client: str) -> str | Response:
        """Who signed in, or the answer to someone who did not (401, or 429 after too many
        failures from this client).

        An attempt with credentials is counted as failed before scrypt runs and un-counted if
        it succeeds, so that a burst of concurrent guesses cannot all get checked while the
        first ones are still running: those beyond the limit are refused without any scrypt.
        """
        authorization = request.headers.get("authorization")
        wait = self.access.reserve(client) if authorization else self.access.retry_after(client)
        if wait:
            return PlainTextResponse(
                "too many failed sign-ins; try again later\n",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        # scrypt takes ~50 ms: keep it off the event loop.
        user = await asyncio.to_thread(self.access.authenticate, authorization)
        if user is not None:
            self.access.succeeded(client)
            return user
        return PlainTextResponse(
            "sign in to the consent audit desk\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="consentkit audit", charset="UTF-8"'},
        )

    async def _log(self, request: Request, address: str | None, user: str | None, status: int) -> None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        prefix = ip_prefix(address)
        log.info("audit access %s %s by %s from %s: %d", request.method, path, user or "-", prefix, status)
        try:
            await self.ledger.log_access(user, prefix, request.method, path[:1000], status)
        except Exception as exc:  # the answer still goes out; the operator hears of the gap
            log.error("audit access not kept in the ledger: %s", exc)

    async def route(self, request: Request, user: str) -> Response:
        """Dispatch a request ``user`` signed in for."""
        sub = request.url.path[len(self.base) :].rstrip("/")
        method = request.method
        if method == "POST":
            if sub == "/verify":
                return await self.verify(request, user)
        elif method in ("GET", "HEAD"):
            if sub == "":
                return await self.overview(request, user)
            if sub == "/records":
                return await self.records(request)
            if sub.startswith("/records/"):
                seq = parse_seq(sub[9:])
                if seq is None:
                    return PlainTextResponse("no such record\n", status_code=404)
                return await self.record(seq)
            if sub == "/export":
                return self.export(request)
            if sub == "/access":
                return await self.access_log()
        return PlainTextResponse("no such audit page\n", status_code=404)

    # -- pages --------------------------------------------------------------------------------

    def _page(self, name: str, **context: Any) -> HTMLResponse:
        template = self.templates().get_template(f"{TEMPLATES}/{name}")
        html = template.render(
            base=self.base, controller=self.policy.controller, css=Markup(stylesheet()), **context
        )
        return HTMLResponse(html)

    async def overview(self, request: Request, user: str) -> Response:
        """Records, subjects, consent rates over time, the decision mix, GPC, the chain's state."""
        first = day(request.query_params.get("since"))
        last = day(request.query_params.get("until"))
        count = request.query_params.get("count") or "decisions"
        if count not in COUNTS:
            return PlainTextResponse(f"count must be {' or '.join(COUNTS)}\n", status_code=400)
        policy = self.policy
        if count == "subjects":
            # Each subject's latest decision once: reads the records of the range, not the
            # per-day figures (a few hundred ms for 100,000 records), so only when asked for.
            o = await build_per_subject(self.ledger, first, last, list(policy.optional_ids))
        else:
            o = await build(self.ledger, first, last, list(policy.optional_ids))
        titles = {p.id: p.text("title", "en", policy.default_locale) for p in policy.purposes}
        return self._page(
            "overview.html",
            o=o,
            titles=titles,
            since=first or "",
            until=last or "",
            count=count,
            csrf_token=self.csrf.token(_bound_to(user)),
        )

    async def records(self, request: Request) -> Response:
        """Filterable, paginated records (newest first)."""
        problems, flt, query = read_filter(request.query_params)
        if problems:
            return PlainTextResponse("; ".join(problems) + "\n", status_code=400)
        raw_before = request.query_params.get("before")
        before = parse_seq(raw_before)
        if raw_before is not None and before is None:
            return PlainTextResponse(f"before must be a record number from 1 to {MAX_SEQ}\n", status_code=400)
        rows = await self._newest(flt, before)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        return self._page(
            "records.html",
            rows=rows,
            query=query,
            next_before=rows[-1].seq if more and rows else None,
            actions=sorted(Action),
            methods=sorted(Method),
            purposes=self.policy.ids,
        )

    async def _newest(self, flt: RecordFilter, before: int | None) -> list[LedgerRecord]:
        """Up to ``PAGE + 1`` records matching ``flt`` below ``before``, newest first.

        Keyset pages from the end: the last seq, then ever wider windows of seq below it, so
        that a selective filter on a large ledger does not read it all at once.
        """
        top = (before - 1) if before else await self.ledger.last_seq()
        found: list[LedgerRecord] = []
        window = 2000
        while top >= 1 and len(found) <= PAGE:
            lo = max(1, top - window + 1)
            page_filter = dataclasses.replace(flt, first_seq=lo, last_seq=top)
            chunk = [r async for r in self.ledger.records(page_filter)]
            found.extend(reversed(chunk))
            top = lo - 1
            window *= 4
        return found[: PAGE + 1]

    async def record(self, seq: int) -> Response:
        """One record in full, with the policy text it refers to."""
        found = [r async for r in self.ledger.records(RecordFilter(first_seq=seq, last_seq=seq))]
        if not found:
            return PlainTextResponse(f"no record {seq}\n", status_code=404)
        rec = found[0]
        text = await self.ledger.policy_text(rec.policy_digest)
        policy = json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else None
        evidence = (
            json.dumps(rec.evidence, indent=2, ensure_ascii=False) if rec.evidence is not None else None
        )
        shown = None
        if rec.shown_digest is not None:
            content = await self.ledger.shown_content(rec.shown_digest)
            shown = ShownView.of(content, rec.shown_digest) if content is not None else None
        return self._page(
            "record.html",
            r=rec,
            policy=policy,
            # Each text against its digest, as verify checks them: the desk shows what it holds.
            policy_intact=text is not None and sha256_hex(text) == rec.policy_digest,
            evidence=evidence,
            shown=shown,
        )

    def export(self, request: Request) -> Response:
        """Streaming CSV, JSON Lines or ISO 27560 records with the filters of ``consentkit export``."""
        problems, flt, _ = read_filter(request.query_params)
        fmt = request.query_params.get("format", "csv")
        if fmt not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}")
        raw = request.query_params.get("raw", "0")
        if raw not in ("0", "1"):
            problems.append("raw must be 0 or 1")
        if problems:
            return PlainTextResponse("; ".join(problems) + "\n", status_code=400)
        # CSV cells that could start a spreadsheet formula are made inert unless ?raw=1 (for
        # machines that compare the export with the ledger byte for byte).
        chunks = export_chunks(
            self.ledger.row_pages(flt),
            fmt,
            flt.row_filter(),
            raw=raw == "1",
            policy_text=self.ledger.policy_text,  # as the CLI: the same bytes
        )

        async def body() -> AsyncIterator[bytes]:
            async for text, _rows in chunks:
                yield text.encode("utf-8")

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"consent-ledger-{stamp}.{file_extension(fmt)}"
        return StreamingResponse(
            body(),
            media_type=content_type(fmt),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def verify(self, request: Request, user: str) -> Response:
        """Verify the chain now and keep the outcome; back to the overview.

        The anti-forgery rule is the one every state-changing request follows: a browser's
        Origin / Sec-Fetch-Site must say this site, and a form without them (stripped by some
        browsers and proxies) must carry the token the overview page gave this auditor.
        """
        problem = self.csrf.problem(request.headers, await _form_token(request), bound_to=_bound_to(user))
        if problem:
            return PlainTextResponse(problem + "\n", status_code=403)
        started = time.monotonic()
        outcome = verification(await check_everything(self.ledger.url), seconds=time.monotonic() - started)
        await self.ledger.set_meta("last_verify", json.dumps(outcome))
        return RedirectResponse(self.base, status_code=303)

    async def access_log(self) -> Response:
        """Who opened the desk, newest first."""
        return self._page("access.html", entries=await self.ledger.access_log(200))


def _bound_to(user: str) -> str:
    """Whom the desk's anti-forgery tokens are issued to: the signed-in auditor, kept apart from
    visitors' subject ids."""
    return f"audit:{user}"


async def _form_token(request: Request) -> str | None:
    """The ``csrf_token`` of a small URL-encoded form body, if it has one."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return None
    except ClientDisconnect:
        return None
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return None
    return fields.get("csrf_token")
