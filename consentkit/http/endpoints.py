"""The HTTP endpoints under the mount (the README's "What visitors' browsers talk to")."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..consent import Consent
from ..cookie import ConsentCookie
from ..decisions import Decisions, remembered
from ..errors import (
    IdempotencyKeyReused,
    LedgerCorrupt,
    LedgerError,
    LedgerOutcomeUnknown,
    LedgerUnavailable,
)
from ..firewall import CookieFirewall
from ..ledger import Ledger
from ..policy import Policy
from ..ui.rendering import Renderer
from .client import ClientAddresses, limit_key
from .decision_form import BadDecision, DecisionReader
from .facts import FactsRecorder
from .history import history_csv, history_row
from .limits import RateLimiter
from .paths import is_safe_next, same_site_referer
from .reading import ConsentReader
from .responses import FRAMING, NO_STORE, error, vary_on
from .static import WidgetAssets

log = logging.getLogger("consentkit")
_RECEIPT = re.compile(r"[0-9a-fA-F]{16}")

Handler = Callable[[Request], Awaitable[Response]]


class Endpoints:
    """Serves ``GET/POST {prefix}``, its pages, the widget's files, and the desk under
    ``{prefix}/audit``. It is handed every part it uses when the kit wires it: among them
    ``clients`` (who a request's client is) and ``decision_limit`` (decisions per client, or
    ``None`` for no limit)."""

    def __init__(
        self,
        policy: Policy,
        *,
        prefix: str,
        reader: ConsentReader,
        decision_reader: DecisionReader,
        decisions: Decisions,
        facts: FactsRecorder,
        cookie: ConsentCookie,
        firewall: CookieFirewall,
        renderer: Renderer,
        assets: WidgetAssets,
        ledger: Ledger,
        audit: Callable[[Request], Awaitable[ASGIApp]],
        clients: ClientAddresses | None = None,
        decision_limit: RateLimiter | None = None,
    ) -> None:
        self.policy = policy
        self.prefix = prefix
        self.reader = reader
        self.decision_reader = decision_reader
        self.decisions = decisions
        self.facts = facts
        self.cookie = cookie
        self.firewall = firewall
        self.renderer = renderer
        self.assets = assets
        self.ledger = ledger
        self.audit = audit
        self.clients = clients or ClientAddresses()
        self.decision_limit = decision_limit
        # What a visitor's own state depends on: the cookie, and the GPC signal if honoured.
        self.private = {
            "Cache-Control": "private, no-store",
            "Vary": vary_on(policy),
        }
        self.private_page = {**self.private, "Vary": self.private["Vary"] + ", Accept-Language"}
        self.routes: dict[str, dict[str, Handler]] = {
            "": {"GET": self.state, "POST": self.decide},
            "/history": {"GET": self.history},
            "/banner": {"GET": self.banner},
            "/cookies": {"GET": self.cookies},
            "/proof": {"GET": self.proof},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        sub = scope["path"][len(self.prefix) :]
        if sub.endswith("/") and sub != "/":
            sub = sub.rstrip("/")
        sub = "" if sub == "/" else sub
        if sub == "/audit" or sub.startswith("/audit/"):
            await (await self.audit(request))(scope, receive, send)
            return
        methods = self.routes.get(sub)
        if methods is None and sub.startswith("/static/"):
            methods = {"GET": self.static}
        if methods is None:
            response: Response = error(
                request.headers, 404, "not_found", f"no such consent endpoint: {scope['path']}"
            )
        else:
            method = request.method
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allow = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))
                response = error(
                    request.headers, 405, "method_not_allowed", f"use {allow} on {scope['path']}"
                )
                response.headers["Allow"] = allow
            else:
                response = await handler(request)
        # Nothing of ours is ever to be shown in a frame (a banner or a "withdraw" button under
        # a transparent layer of another site: clickjacking). The desk sets its own, stricter.
        response.headers.update(FRAMING)
        await response(scope, receive, send)

    async def gpc_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/.well-known/gpc.json``: this site honours Global Privacy Control."""
        body: dict[str, Any] = {"gpc": True}
        try:
            body["lastUpdate"] = datetime.strptime(self.policy.version, "%Y-%m-%d").date().isoformat()
        except ValueError:
            pass
        await JSONResponse(body, headers={"Cache-Control": "public, max-age=86400"})(scope, receive, send)

    # -- GET /consent ---------------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        """The visitor's state as JSON (and the cookie re-signed if an older key signed it)."""
        consent = self.reader.of_headers(request.scope["headers"])
        response = JSONResponse(self.state_body(consent, request), headers=self.private)
        if consent.stored is not None and consent.stored.old_key:
            response.raw_headers.append(self.cookie.header(consent.stored))
        return response

    def state_body(self, consent: Consent, request: Request) -> dict[str, Any]:
        """What ``GET /consent`` and JSON decisions answer."""
        policy = self.policy
        body: dict[str, Any] = {
            "decided": consent.decided,
            "purposes": consent.purposes(),
            "subject_id": consent.subject_id,
            "revision": policy.revision,
            "policy_version": policy.version,
            "gpc": consent.gpc,
            "gpc_purposes": sorted(policy.gpc_ids),
            "region": consent.region,
            "model": str(consent.model),
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
        return self.renderer.locale(request.headers.get("accept-language"))

    # -- POST /consent -------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        """Check a decision, record it durably (decisions.py), then set the cookie and answer."""
        before = self.reader.of_headers(request.scope["headers"])
        known = remembered(before)
        try:
            form = await self.decision_reader.read(
                request, request.headers, known.subject_id if known is not None else None
            )
        except BadDecision as exc:
            return error(request.headers, exc.status, exc.code, exc.message, json_body=exc.json)
        address = self.clients.of(request.scope)
        limit = self.decision_limit
        key = limit_key(address) if limit is not None else ""
        if limit is not None:
            # Counted before the write, so that concurrent posts cannot all pass the check.
            wait = limit.acquire(key)
            if wait:
                response = error(
                    request.headers,
                    429,
                    "too_many_decisions",
                    "too many choices were sent from your network just now, so this one was not "
                    "recorded or applied; please try again in a minute",
                    json_body=form.json,
                )
                response.headers["Retry-After"] = limit.retry_after(wait)
                return response
        try:
            facts = self.facts.at(request, before.gpc, address)
            outcome = await self.decisions.decide(form.choice, before, facts, form.key)
        except IdempotencyKeyReused as exc:
            if limit is not None:
                limit.release(key)
            return error(request.headers, 422, "idempotency_key_reused", str(exc), json_body=form.json)
        except LedgerOutcomeUnknown as exc:
            # Maybe recorded: not a 503, which says "not recorded"; no cookie, nor a refund.
            log.error("decision's outcome unknown, answering 500: %s", exc)
            return error(
                request.headers,
                500,
                "outcome_unknown",
                "we could not confirm whether your choice was recorded; please check your choices "
                "in a minute before trying again",
                json_body=form.json,
            )
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            if limit is not None:
                limit.release(key)  # nothing was recorded: it does not count
            log.error("decision not recorded, answering 503: %s", exc)
            response = error(
                request.headers,
                503,
                "ledger_unavailable",
                "your choice could not be recorded right now, so it was not applied; please try again",
                json_body=form.json,
            )
            response.headers["Retry-After"] = "5"
            return response
        if form.json:
            response = JSONResponse(self.state_body(outcome.consent, request), headers=NO_STORE)
        else:
            response = RedirectResponse(form.next, status_code=303, headers=NO_STORE)
        response.raw_headers.append(self.cookie.header(outcome.stored))
        response.raw_headers.extend(
            self.firewall.expiring_headers(
                request.cookies, outcome.consent.denied, request.headers.get("host"), self.cookie.secure
            )
        )
        return response

    # -- HTML for visitors ------------------------------------------------------------------

    async def banner(self, request: Request) -> Response:
        """The banner (or settings control) as an HTML fragment, for ``inject=False`` sites and
        for the widget after a decision. ``?next=`` is the page to come back to."""
        consent = self.reader.of_headers(request.scope["headers"])
        nxt = request.query_params.get("next") or same_site_referer(request.headers) or "/"
        if not is_safe_next(nxt):
            return error(
                request.headers, 400, "bad_next", "next must be a path on this site, such as /privacy"
            )
        renderer = self.renderer
        locale = renderer.locale(request.headers.get("accept-language"))
        return HTMLResponse(
            str(renderer.banner(consent, locale, nxt)),
            headers={**self.private_page, "Content-Language": locale},
        )

    async def cookies(self, request: Request) -> Response:
        """How to block or delete cookies, the visitor's browser first (``?browser=`` for another)."""
        consent = self.reader.of_headers(request.scope["headers"])
        renderer = self.renderer
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
        asset = self.assets.by_hashed.get(name)
        if asset is None:
            return error(request.headers, 404, "not_found", f"no such widget file: {name}")
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

    async def proof(self, request: Request) -> Response:
        """``?receipt=R``: the proof that one of the visitor's own records is in the ledger's
        transparency log (the JSON of ``consentkit proof``, checkable with ``consentkit
        check-proof``); 404 for a receipt that is not among the visitor's records."""
        receipt = request.query_params.get("receipt", "")
        if not _RECEIPT.fullmatch(receipt):
            return error(
                request.headers, 400, "bad_receipt", "receipt must be the 16 hex digits a receipt shows"
            )
        subject = self.reader.of_headers(request.scope["headers"]).subject_id
        try:
            records = await self.ledger.history(subject) if subject else []
            found = next((r for r in records if r.receipt == receipt.lower()), None)
            if found is None:
                # Whether it is somebody else's or nobody's is not the visitor's business.
                return error(request.headers, 404, "not_found", "no record of yours has this receipt")
            body = await self.ledger.inclusion_proof(found.seq)
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            log.error("proof not readable: %s", exc)
            return error(
                request.headers, 503, "ledger_unavailable", "the proof cannot be read now; try again"
            )
        except LedgerError:
            # Newer than the latest checkpoint: the site makes them on a schedule.
            return error(
                request.headers,
                409,
                "not_yet_checkpointed",
                "this record is not covered by a signed checkpoint yet; try again later",
            )
        return JSONResponse(body, headers=self.private)

    async def history(self, request: Request) -> Response:
        """The visitor's own records (JSON, or CSV with ``?format=csv``); nobody else's."""
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            return error(request.headers, 400, "bad_format", "format must be json or csv")
        consent = self.reader.of_headers(request.scope["headers"])
        subject = consent.subject_id
        try:
            records = await self.ledger.history(subject) if subject else []
        except (LedgerUnavailable, LedgerCorrupt) as exc:
            log.error("history not readable: %s", exc)
            return error(
                request.headers,
                503,
                "ledger_unavailable",
                "your history cannot be read right now; try again",
            )
        rows = [history_row(r) for r in records]
        if fmt == "csv":
            return Response(
                history_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={
                    **self.private,
                    "Content-Disposition": 'attachment; filename="consent-history.csv"',
                },
            )
        return JSONResponse({"subject_id": subject, "records": rows}, headers=self.private)


def _iso(epoch: float | None) -> str | None:
    if epoch is None or epoch == float("inf"):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
