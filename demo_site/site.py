"""The Northwind Telecom web site for one consent policy: a Starlette app with consentkit mounted.

:func:`build_site` makes the site around one :class:`consentkit.ConsentKit`. The demo builds one
site per policy revision and switches between them (see :mod:`demo_site.app`); everything here
is what a provider's own site would look like with consentkit.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentkit import ConsentKit, LedgerCorrupt, LedgerRecord, LedgerUnavailable, get_consent

from . import account as acct
from .analytics import PageViews
from .texts import PRIVACY_TEXTS
from .visit_as import VISIT_AS, VISIT_AS_COOKIE

if TYPE_CHECKING:
    from .app import PolicySwitch

HERE = Path(__file__).parent
FPID_COOKIE = "nw_fpid"  # first-party visitor id of the server-side measurement ("analytics")
SESSION_COOKIE = "nw_session"  # the customer's sign-in session ("necessary")
NAV = (
    ("/", "Home"),
    ("/plans", "Plans"),
    ("/your-privacy", "Your privacy"),
    ("/account", "Account"),
    ("/privacy", "Privacy policy"),
)
MAX_FORM = 8 * 1024
LEDGER_ERRORS = (LedgerUnavailable, LedgerCorrupt)
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """A pure ASGI middleware: a CSP nonce per request, given to consentkit's injected tags.

    consentkit reads ``request.state.csp_nonce`` when it injects its stylesheet and scripts, so
    this runs inside ``kit.middleware`` (listed after it) and puts the nonce there first.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        extra = [
            (b"content-security-policy", CSP.format(nonce=nonce).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_site(
    kit: ConsentKit,
    *,
    switch: PolicySwitch,
    analytics: PageViews,
) -> Starlette:
    """The site, with ``kit`` mounted the documented way (``middleware=[kit.middleware]``)."""
    policy = kit.policy

    def site_context(request: Request) -> dict[str, Any]:
        consent = get_consent(request)
        return {
            "csrf_token": kit.csrf.token(consent.subject_id),
            "nav": NAV,
            "here": request.url.path,
            "policy": policy,
            "prefix": kit.prefix,
            "switch": switch,
        }

    templates = Jinja2Templates(
        directory=HERE / "templates", context_processors=[kit.context_processor, site_context]
    )

    # -- first-party analytics: a server-side hook that runs only with "analytics" consent ----

    @kit.hooks.on("analytics")
    async def count_page_view(request: Request, path: str) -> None:
        await analytics.add(path, request.cookies.get(FPID_COOKIE), policy.revision)

    async def page(request: Request, template: str, **context: Any) -> Response:
        await kit.hooks.fire("analytics", request, path=request.url.path)
        response = templates.TemplateResponse(request, template, context)
        if FPID_COOKIE not in request.cookies:
            # Set on every page on purpose: consentkit's cookie firewall drops this Set-Cookie
            # for every visitor who has not granted "analytics" (see /demo for the count).
            response.set_cookie(
                FPID_COOKIE,
                secrets.token_urlsafe(12),
                max_age=390 * 86400,
                httponly=True,
                samesite="lax",
                secure=kit.cookie.secure,
            )
        return response

    # -- targeted ads: a slot guarded by @kit.requires("ads") ---------------------------------

    def fragment(request: Request, template: str, *, ad: bool) -> Response:
        html = templates.get_template(template).render(consent=get_consent(request))
        if "application/json" in request.headers.get("accept", ""):
            # What ads.js asks for: JSON is not HTML, so consentkit injects no banner into it.
            return JSONResponse({"ad": ad, "html": html})
        return Response(html, media_type="text/html")

    def ads_off(request: Request) -> Response:
        return fragment(request, "_ad_off.html", ad=False)

    @kit.requires("ads", fallback=ads_off)
    async def ad_slot(request: Request) -> Response:
        return fragment(request, "_ad.html", ad=True)

    # -- pages --------------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        slot = await ad_slot(request)  # a server-side include: works without JavaScript
        return await page(request, "home.html", ad_html=Markup(bytes(slot.body).decode()))

    async def plans(request: Request) -> Response:
        return await page(request, "plans.html")

    async def privacy(request: Request) -> Response:
        locale = kit.renderer.locale(request.headers.get("accept-language"))
        texts = PRIVACY_TEXTS.get(locale.split("-")[0], PRIVACY_TEXTS["en"])
        default = policy.default_locale
        purposes = [
            {
                "id": p.id,
                "title": p.text("title", locale, default),
                "description": p.text("description", locale, default),
                "cookies": p.cookies,
                "consent_mode": p.consent_mode,
                "essential": p.essential,
                "gpc": "gpc" in p.opt_out_signals,
            }
            for p in policy.purposes
        ]
        response = await page(request, "privacy.html", t=texts, page_lang=locale, purposes=purposes)
        response.headers["Content-Language"] = locale
        return response

    async def your_privacy(request: Request) -> Response:
        consent = get_consent(request)
        history: list[LedgerRecord] = []
        problem = None
        if consent.subject_id:
            try:
                history = await kit.ledger.history(consent.subject_id)
            except LEDGER_ERRORS:
                problem = "Your consent history cannot be read right now. Please try again in a minute."
        # This page is in English (the policy's default language), like the rest of the site.
        en = policy.default_locale
        titles = {p.id: p.text("title", en, en) for p in policy.purposes}
        return await page(
            request,
            "your_privacy.html",
            purposes=policy.purposes,
            titles=titles,
            history=list(reversed(history)),
            history_problem=problem,
            verifier_key=switch.verifier_key,
            gpc_ids=policy.gpc_ids,
            decided_at=_iso(consent.decided_at),
            expires_at=_iso(consent.valid_until) if consent.decided else None,
        )

    async def account_page(request: Request) -> Response:
        problem = None
        records: list[LedgerRecord] = []
        try:
            records = await kit.ledger.history(acct.ACCOUNT_ID)
        except LEDGER_ERRORS:
            problem = "Your account's consent records cannot be read right now. Please try again later."
        response = await page(
            request,
            "account.html",
            acct=acct,
            state=acct.standing(records),
            records=list(reversed(records)),
            problem=problem,
            done=request.query_params.get("done"),
        )
        if SESSION_COOKIE not in request.cookies:
            # The (fictional) sign-in session: strictly necessary, so the firewall lets it pass.
            response.set_cookie(
                SESSION_COOKIE,
                "demo-" + secrets.token_urlsafe(12),
                httponly=True,
                samesite="lax",
                secure=kit.cookie.secure,
            )
        return response

    async def demo_page(request: Request) -> Response:
        try:
            records = await kit.ledger.last_seq()
        except LEDGER_ERRORS:
            records = None
        return await page(
            request,
            "demo.html",
            views=await analytics.recent(12),
            view_count=await analytics.count(),
            ledger_records=records,
            switched=request.query_params.get("switched"),
            visit_as=VISIT_AS,
        )

    # -- forms of this site (not consentkit's): same anti-forgery rules as its own -------------

    async def read_form(request: Request) -> dict[str, list[str]] | Response:
        """The posted form, or the response refusing it (wrong type, too big, cross-site)."""
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return PlainTextResponse("send this form as application/x-www-form-urlencoded\n", 415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return PlainTextResponse(f"the form is over {MAX_FORM} bytes\n", 413)
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError) as exc:
            return PlainTextResponse(f"the form cannot be read: {exc}\n", 400)
        # consentkit's own anti-forgery rule, as for its banner's forms.
        problem = kit.form_problem(request, (fields.get("csrf_token") or [""])[0])
        if problem:
            return PlainTextResponse(problem + "\n", 403)
        return fields

    async def save_account_consent(
        request: Request, *, section: str, wording: str, labels: Mapping[str, str]
    ) -> Response:
        """Record what the customer ticked or unticked in one section of /account."""
        fields = await read_form(request)
        if isinstance(fields, Response):
            return fields
        ticked = set(fields.get("granted", []))
        unknown = sorted(ticked - set(labels))
        if unknown:
            return PlainTextResponse(f"unknown consent {unknown[0]!r}\n", 400)
        if fields.get("action") == ["withdraw"]:
            ticked = set()  # the one-click "withdraw" button
        try:
            state = acct.standing(await kit.ledger.history(acct.ACCOUNT_ID))
        except LEDGER_ERRORS:
            return _not_recorded()
        before = {p: state[p].granted for p in labels}
        after = {p: p in ticked for p in labels}
        withdrawn = [p for p in labels if before[p] and not after[p]]
        added = [p for p in labels if after[p] and not before[p]]
        common = {
            "channel": "web_form",
            "form": "/account",
            "ip_prefix": acct.ip_prefix(request.client.host if request.client else None),
            "user_agent": (request.headers.get("user-agent") or "")[:512] or None,
        }
        try:
            if withdrawn:
                await kit.record(
                    acct.ACCOUNT_ID,
                    {p: before[p] and p not in withdrawn for p in labels},
                    method="api",
                    action="withdraw",
                    evidence={
                        **common,
                        "withdrawn": withdrawn,
                        "how": "withdraw button" if fields.get("action") == ["withdraw"] else "unticked box",
                    },
                )
            if added:
                await kit.record(
                    acct.ACCOUNT_ID,
                    after,
                    method="api",
                    evidence={
                        **common,
                        "wording": wording,
                        "wording_sha256": acct.sha256(wording),
                        "checkbox_labels": {p: labels[p] for p in added},
                        "checkbox_prechecked": False,
                    },
                )
        except LEDGER_ERRORS:
            return _not_recorded()
        done = "withdrawn" if withdrawn and not added else "saved" if added else "unchanged"
        return RedirectResponse(f"/account?done={section}-{done}#{section}", status_code=303)

    async def account_marketing(request: Request) -> Response:
        return await save_account_consent(
            request, section="marketing", wording=acct.MARKETING_WORDING, labels=acct.MARKETING_CHANNELS
        )

    async def account_call_recording(request: Request) -> Response:
        return await save_account_consent(
            request,
            section="call-recording",
            wording=acct.CALL_RECORDING_WORDING,
            labels={acct.CALL_RECORDING: acct.CALL_RECORDING_LABEL},
        )

    async def switch_policy(request: Request) -> Response:
        fields = await read_form(request)
        if isinstance(fields, Response):
            return fields
        wanted = (fields.get("revision") or [""])[0]
        if not wanted.isdigit() or int(wanted) not in switch.revisions:
            choices = ", ".join(map(str, switch.revisions))
            return PlainTextResponse(f"revision must be one of {choices}\n", 400)
        switch.activate(int(wanted))
        return RedirectResponse(f"/demo?switched={int(wanted)}", status_code=303)

    async def visit_as(request: Request) -> Response:
        fields = await read_form(request)
        if isinstance(fields, Response):
            return fields
        wanted = (fields.get("region") or [""])[0]
        if wanted and wanted not in VISIT_AS:
            return PlainTextResponse(f"region must be one of {', '.join(VISIT_AS)}, or empty\n", 400)
        response = RedirectResponse("/demo#visit-as-title", status_code=303)
        if wanted:
            # Strictly necessary for the demo's own control: not a consent purpose's cookie.
            secure = kit.cookie.secure
            response.set_cookie(VISIT_AS_COOKIE, wanted, httponly=True, samesite="lax", secure=secure)
        else:
            response.delete_cookie(VISIT_AS_COOKIE)
        return response

    routes = [
        Route("/", home),
        Route("/plans", plans),
        Route("/privacy", privacy),
        Route("/your-privacy", your_privacy),
        Route("/account", account_page),
        Route("/account/marketing", account_marketing, methods=["POST"]),
        Route("/account/call-recording", account_call_recording, methods=["POST"]),
        Route("/ads/slot", ad_slot),
        Route("/demo", demo_page),
        Route("/demo/policy", switch_policy, methods=["POST"]),
        Route("/demo/visit-as", visit_as, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[kit.middleware, Middleware(SecurityHeaders)])
    app.state.kit = kit
    return app


def _not_recorded() -> Response:
    return PlainTextResponse(
        "your choice could not be recorded right now, so nothing was changed; please try again\n",
        503,
        headers={"Retry-After": "5"},
    )


def _iso(epoch: float | None) -> str | None:
    if epoch is None or epoch == float("inf"):
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
