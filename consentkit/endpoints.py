"""The HTTP endpoints under the mount (DESIGN §4)."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from .consent import Consent, evaluate
from .cookie import StoredDecision, new_subject_id
from .decisions import BadDecision, header_dict, is_safe_next, parse_decision, same_site_referer
from .errors import LedgerCorrupt, LedgerUnavailable
from .netaddr import ip_prefix

if TYPE_CHECKING:
    from .kit import ConsentKit
    from .ledger import LedgerRecord

log = logging.getLogger("consentkit")

Handler = Callable[[Request], Awaitable[Response]]
NO_STORE = {"Cache-Control": "no-store"}
HISTORY_FIELDS = (
    "seq",
    "recorded_at",
    "action",
    "purposes",
    "method",
    "policy_revision",
    "policy_version",
    "policy_digest",
    "locale",
    "gpc",
    "ip_prefix",
    "user_agent",
    "receipt",
)


class Endpoints:
    """Serves ``GET/POST {prefix}``, ``{prefix}/history`` and ``/.well-known/gpc.json``."""

    def __init__(self, kit: ConsentKit) -> None:
        self.kit = kit
        # What a visitor's own state depends on: the cookie, and the GPC signal if honoured.
        self.private = {
            "Cache-Control": "private, no-store",
            "Vary": "Cookie, Sec-GPC" if kit.policy.gpc_ids else "Cookie",
        }
        self.private_page = {**self.private, "Vary": self.private["Vary"] + ", Accept-Language"}
        self.routes: dict[str, dict[str, Handler]] = {
            "": {"GET": self.state, "POST": self.decide},
            "/history": {"GET": self.history},
            "/banner": {"GET": self.banner},
            "/cookies": {"GET": self.cookies},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        sub = scope["path"][len(self.kit.prefix) :]
        if sub.endswith("/") and sub != "/":
            sub = sub.rstrip("/")
        sub = "" if sub == "/" else sub
        if sub == "/audit" or sub.startswith("/audit/"):
            await (await self.kit.audit(request))(scope, receive, send)
            return
        methods = self.routes.get(sub)
        if methods is None and sub.startswith("/static/"):
            methods = {"GET": self.static}
        if methods is None:
            # /audit answers 404 until credentials are configured (a later feature).
            response: Response = _error(
                request, 404, "not_found", f"no such consent endpoint: {scope['path']}"
            )
        else:
            method = request.method
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allow = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))
                response = _error(request, 405, "method_not_allowed", f"use {allow} on {scope['path']}")
                response.headers["Allow"] = allow
            else:
                response = await handler(request)
        await response(scope, receive, send)

    async def gpc_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/.well-known/gpc.json``: this site honours Global Privacy Control."""
        body: dict[str, Any] = {"gpc": True}
        try:
            body["lastUpdate"] = datetime.strptime(self.kit.policy.version, "%Y-%m-%d").date().isoformat()
        except ValueError:
            pass
        await JSONResponse(body, headers={"Cache-Control": "public, max-age=86400"})(scope, receive, send)

    # -- GET /consent ---------------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        """The visitor's state as JSON (and the cookie re-signed if an older key signed it)."""
        consent = self.kit.consent_for_scope(request.scope)
        response = JSONResponse(self.state_body(consent, request), headers=self.private)
        if consent.stored is not None and consent.stored.old_key:
            response.raw_headers.append(self.kit.cookie_header(consent.stored))
        return response

    def state_body(self, consent: Consent, request: Request) -> dict[str, Any]:
        """What ``GET /consent`` and JSON decisions answer."""
        policy = self.kit.policy
        body: dict[str, Any] = {
            "decided": consent.decided,
            "purposes": consent.purposes(),
            "subject_id": consent.subject_id,
            "revision": policy.revision,
            "policy_version": policy.version,
            "gpc": consent.gpc,
            "gpc_purposes": sorted(policy.gpc_ids),
            "needs_prompt": consent.needs_prompt,
            "locale": self.locale(request),
            "receipt": consent.receipt,
            "decided_at": _iso(consent.decided_at),
            "expires_at": _iso(consent.valid_until) if consent.decided else None,
        }
        if consent.previous is not None:
            # An earlier decision (older revision or expired) to pre-fill the banner with.
            prev = consent.previous
            body["previous"] = {
                pid: pid in prev.granted
                for pid in policy.optional_ids
                if pid in prev.granted or pid in prev.denied
            }
        return body

    def locale(self, request: Request) -> str:
        """The policy locale that best fits the visitor's ``Accept-Language``."""
        return self.kit.renderer.locale(request.headers.get("accept-language"))

    # -- POST /consent -------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        """Record a decision durably, then set the cookie and answer."""
        kit = self.kit
        before = kit.consent_for_scope(request.scope)
        headers = header_dict(request)
        try:
            decision = await parse_decision(request, kit, before, headers)
        except BadDecision as exc:
            return _error(request, exc.status, exc.code, exc.message, json_body=exc.json)
        policy = kit.policy
        known = kit.stored_for(before)
        subject = known.subject_id if known is not None else new_subject_id()
        purposes = {pid: pid in decision.granted for pid in policy.ids}
        entry = kit.new_record(
            subject_id=subject,
            action=decision.action,
            purposes=purposes,
            method=decision.method,
            locale=kit.renderer.locale(headers.get("accept-language")),
            ip_prefix=ip_prefix(request.client.host if request.client else None) if kit.record_ip else None,
            user_agent=(headers.get("user-agent") or "")[:512] or None if kit.record_user_agent else None,
            gpc=before.gpc,
        )
        try:
            record = await kit.ledger.append(entry)
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            log.error("decision not recorded, answering 503: %s", exc)
            response = _error(
                request,
                503,
                "ledger_unavailable",
                "your choice could not be recorded right now, so it was not applied; please try again",
                json_body=decision.json,
            )
            response.headers["Retry-After"] = "5"
            return response
        stored = StoredDecision(
            subject_id=subject,
            revision=policy.revision,
            granted=frozenset(p for p in policy.optional_ids if purposes[p]),
            denied=frozenset(p for p in policy.optional_ids if not purposes[p]),
            decided_at=int(_epoch(record.recorded_at)),
            receipt=record.receipt,
            gpc=before.gpc,
        )
        after = evaluate(policy, stored, before.gpc, time.time())
        if decision.json:
            body = self.state_body(after, request)
            response = JSONResponse(body, headers=NO_STORE)
        else:
            response = RedirectResponse(decision.next, status_code=303, headers=NO_STORE)
        response.raw_headers.append(kit.cookie_header(stored))
        response.raw_headers.extend(
            kit.firewall.expiring_headers(
                request.cookies, after.denied, headers.get("host"), kit.cookie_secure
            )
        )
        return response

    # -- HTML for visitors ------------------------------------------------------------------

    async def banner(self, request: Request) -> Response:
        """The banner (or settings control) as an HTML fragment, for ``inject=False`` sites and
        for the widget after a decision. ``?next=`` is the page to come back to."""
        consent = self.kit.consent_for_scope(request.scope)
        nxt = request.query_params.get("next") or same_site_referer(header_dict(request)) or "/"
        if not is_safe_next(nxt):
            return _error(request, 400, "bad_next", "next must be a path on this site, such as /privacy")
        renderer = self.kit.renderer
        locale = renderer.locale(request.headers.get("accept-language"))
        return HTMLResponse(
            str(renderer.banner(consent, locale, nxt)),
            headers={**self.private_page, "Content-Language": locale},
        )

    async def cookies(self, request: Request) -> Response:
        """How to block or delete cookies, the visitor's browser first (``?browser=`` for another)."""
        consent = self.kit.consent_for_scope(request.scope)
        renderer = self.kit.renderer
        locale = renderer.locale(request.headers.get("accept-language"))
        html = renderer.cookies_page(
            consent,
            locale,
            request.headers.get("user-agent"),
            request.headers.get("sec-ch-ua"),
            request.query_params.get("browser"),
        )
        return HTMLResponse(html, headers={**self.private_page, "Content-Language": locale})

    async def static(self, request: Request) -> Response:
        """A widget file by its content-hashed name, cached for a year."""
        name = request.url.path.rsplit("/", 1)[-1]
        asset = self.kit.renderer.static.by_hashed.get(name)
        if asset is None:
            return _error(request, 404, "not_found", f"no such widget file: {name}")
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "ETag": asset.etag,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.content_type, headers=headers)
        return Response(asset.body, media_type=asset.content_type, headers=headers)

    # -- GET /consent/history -------------------------------------------------------------------

    async def history(self, request: Request) -> Response:
        """The visitor's own records (JSON, or CSV with ``?format=csv``); nobody else's."""
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            return _error(request, 400, "bad_format", "format must be json or csv")
        consent = self.kit.consent_for_scope(request.scope)
        subject = consent.subject_id
        try:
            records = await self.kit.ledger.history(subject) if subject else []
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            log.error("history not readable: %s", exc)
            return _error(
                request,
                503,
                "ledger_unavailable",
                "your history cannot be read right now; try again",
            )
        rows = [_history_row(r) for r in records]
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(HISTORY_FIELDS)
            for row in rows:
                writer.writerow(
                    json.dumps(row[f], separators=(",", ":")) if f == "purposes" else _csv_cell(row[f])
                    for f in HISTORY_FIELDS
                )
            return Response(
                out.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={
                    **self.private,
                    "Content-Disposition": 'attachment; filename="consent-history.csv"',
                },
            )
        return JSONResponse({"subject_id": subject, "records": rows}, headers=self.private)


def _history_row(r: LedgerRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "recorded_at": r.recorded_at,
        "action": r.action,
        "purposes": r.purposes,
        "method": r.method,
        "policy_revision": r.policy_revision,
        "policy_version": r.policy_version,
        "policy_digest": r.policy_digest,
        "locale": r.locale,
        "gpc": r.gpc,
        "ip_prefix": r.ip_prefix,
        "user_agent": r.user_agent,
        "receipt": r.receipt,
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Spreadsheets run cells that start like formulas: keep visitors' data inert.
        return "'" + value
    return value


def _error(
    request: Request, status: int, code: str, message: str, *, json_body: bool | None = None
) -> Response:
    if json_body is None:
        accept = request.headers.get("accept", "")
        ctype = request.headers.get("content-type", "")
        json_body = "application/json" in ctype or (
            "application/json" in accept and "text/html" not in accept
        )
    if json_body:
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=NO_STORE)
    return PlainTextResponse(message + "\n", status_code=status, headers=NO_STORE)


def _iso(epoch: float | None) -> str | None:
    if epoch is None or epoch == float("inf"):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _epoch(recorded_at: str) -> float:
    return datetime.fromisoformat(recorded_at).timestamp()
