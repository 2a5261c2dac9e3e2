"""The demo provider site: a fictional telephony provider with consentkit mounted."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from consentkit import ConsentKit, Policy, get_consent

HERE = Path(__file__).parent


def create_app(ledger: str = "sqlite:///demo-ledger.db", policy_file: Path | None = None) -> Starlette:
    """The demo site, with its consent ledger at ``ledger``."""
    policy = Policy.from_toml(policy_file or HERE / "consent.toml")
    secret = os.environ.get("CONSENTKIT_SECRET")
    kit = ConsentKit(
        policy=policy,
        secret_keys=[secret] if secret else None,
        development=secret is None,
        ledger=ledger,
        cookie_secure=False,  # the demo runs on plain http://127.0.0.1
    )
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())

    def page(name: str, request: Request, **context: object) -> HTMLResponse:
        consent = get_consent(request)
        html = env.get_template(name).render(
            request=request,
            consent=consent,
            policy=policy,
            prefix=kit.prefix,
            csrf_token=kit.csrf.token(consent.subject_id),
            **context,
        )
        return HTMLResponse(html)

    async def home(request: Request) -> HTMLResponse:
        return page("home.html", request)

    async def privacy(request: Request) -> HTMLResponse:
        return page("privacy.html", request)

    app = Starlette(routes=[Route("/", home), Route("/privacy", privacy)], middleware=[kit.middleware])
    app.state.kit = kit
    return app
