"""How much the consentkit middleware costs per request, against a bare Starlette app.

In-process ASGI calls (no network, no server), so that the middleware's own cost is what is
measured. Every app answers the same route; the rounds are short and their order is shuffled, so
that the machine's noise falls on all apps alike. The figure of merit is the time consentkit
adds to one request: the median over rounds of (case − bare app) per request, in µs, against the
bare app serving the same kind of page in the same run. The budget (docs/architecture.md,
"Performance budget"): ≤ 1 µs for a page that does not read consent, ≤ 2 µs for one that reads
it, ≤ 4 µs for a page that gets the banner or the settings control.

    python benchmarks/middleware.py [--rounds 300] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from consentkit import ConsentKit, Policy, get_consent
from consentkit.cookie import StoredDecision

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-0123456789abcdef"


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def reads_consent(request: Request) -> PlainTextResponse:
    allowed = get_consent(request).allows("analytics")
    return PlainTextResponse("hello" if allowed else "hi")


async def reads_nothing(request: Request) -> PlainTextResponse:
    """What ``reads_consent`` is without consentkit: the bare app's endpoint at the same path."""
    return PlainTextResponse("hello")


TEMPLATE = Environment(autoescape=True).from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><header><nav>{% for link in links %}<a href="{{ link }}">{{ link }}</a> {% endfor %}</nav></header>
<main><h1>{{ title }}</h1>{% for plan in plans %}<section><h2>{{ plan.name }}</h2>
<p>{{ plan.text }}</p><p>{{ plan.price }} / month</p></section>{% endfor %}
{% if analytics %}<script type="text/plain" data-consent="analytics">track()</script>{% endif %}
</main></body></html>"""
)
PLANS = [
    {"name": f"Plan {i}", "text": "Unlimited calls in Canada and the US. " * 3, "price": i * 10}
    for i in range(8)
]
LINKS = ["/", "/plans", "/business", "/support", "/privacy"]


async def template_page(request: Request) -> HTMLResponse:
    return HTMLResponse(TEMPLATE.render(title="Plans", plans=PLANS, links=LINKS, analytics=False))


async def template_page_reads_consent(request: Request) -> HTMLResponse:
    analytics = get_consent(request).allows("analytics")
    return HTMLResponse(TEMPLATE.render(title="Plans", plans=PLANS, links=LINKS, analytics=analytics))


async def reads_session(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello" if request.session.get("user") else "hi")


class FloorMiddleware:
    """The least a pure ASGI middleware that can see responses does: wrap ``send``.

    Shown for scale: no middleware that filters response headers can cost less than this.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return self.app(scope, receive, send)

        def send_wrapper(message: Any) -> Any:
            return send(message)

        return self.app(scope, receive, send_wrapper)


def scope_for(path: str, headers: list[tuple[bytes, bytes]]) -> Callable[[], dict[str, Any]]:
    base = [
        (b"host", b"www.example.com"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
        (b"accept", b"text/html,application/xhtml+xml"),
        (b"accept-language", b"en-US,en;q=0.9"),
        *headers,
    ]

    def make() -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": base,
            "client": ("203.0.113.9", 50000),
            "server": ("www.example.com", 443),
            "state": {},
        }

    return make


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    pass


async def run_round(app: Any, make_scope: Callable[[], dict[str, Any]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await app(make_scope(), receive, send)
    return time.perf_counter() - start


def session_cookie() -> bytes:
    """A valid Starlette session cookie, made by the SessionMiddleware itself."""
    captured: list[bytes] = []

    async def login(request: Request) -> PlainTextResponse:
        request.session["user"] = "alice"
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", login)], middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])

    async def capture(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            for k, v in message["headers"]:
                if k == b"set-cookie":
                    captured.append(v.split(b";", 1)[0])

    asyncio.run(app(scope_for("/", [])(), receive, capture))
    return captured[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200, help="requests per app per round")
    parser.add_argument(
        "--only", metavar="TEXT", help="run only the cases whose name contains TEXT (and their bare app)"
    )
    args = parser.parse_args()

    policy = Policy.from_toml(ROOT / "examples" / "consent.toml")
    tmp = tempfile.mkdtemp()
    kit = ConsentKit(policy=policy, secret_keys=[SECRET], ledger=f"sqlite:///{tmp}/bench.db", inject=False)
    banner_kit = ConsentKit(policy=policy, secret_keys=[SECRET], ledger=f"sqlite:///{tmp}/bench.db")
    # The same policy with a [regions] table: what resolving a visitor's region adds.
    regional_policy = Policy.from_mapping(
        {
            "policy": policy.model_dump(exclude={"purposes", "regions"}),
            "purposes": [p.model_dump() for p in policy.purposes],
            "regions": {
                "country_header": "cf-ipcountry",
                "subdivision_header": "cf-region-code",
                "rules": {"US": "opt_out", "EU": "opt_in", "CA": "opt_in", "JP": "notice"},
            },
        }
    )
    regional_kit = ConsentKit(
        policy=regional_policy, secret_keys=[SECRET], ledger=f"sqlite:///{tmp}/bench.db", inject=False
    )
    stored = StoredDecision(
        subject_id="bVv3m9bq0i2Zx0lY7Yl1xw",
        revision=policy.revision,
        granted=frozenset({"analytics"}),
        denied=frozenset({"ads"}),
        decided_at=int(time.time()),
        receipt="0123456789abcdef",
        gpc=False,
    )
    consent_cookie = b"consentkit=" + kit.codec.encode(stored).encode() + b"; _ga=GA1.2.3; session=abc"
    other_cookies = b"_ga=GA1.2.3; session=abc"

    routes = [Route("/", plain), Route("/reads", reads_consent), Route("/session", reads_session)]
    # The same route table in the same order; the bare app's endpoints do what the kit's do,
    # less reading consent, so that the differences are what consentkit adds.
    bare = Starlette(
        routes=[
            Route("/", plain),
            Route("/reads", reads_nothing),
            Route("/session", reads_session),
            Route("/plans", template_page),
        ]
    )
    with_kit = Starlette(
        routes=[*routes, Route("/plans", template_page_reads_consent)], middleware=[kit.middleware]
    )
    # The same page, untouched by the site, with the banner (or settings control) injected.
    with_banner = Starlette(
        routes=[*routes, Route("/plans", template_page)], middleware=[banner_kit.middleware]
    )
    with_regions = Starlette(routes=routes, middleware=[regional_kit.middleware])
    with_floor = Starlette(routes=routes, middleware=[Middleware(FloorMiddleware)])
    with_session = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])

    cookie_hdr = [(b"cookie", consent_cookie)]
    undecided_hdr = [(b"cookie", other_cookies)]
    session_hdr = [(b"cookie", session_cookie() + b"; _ga=GA1.2.3")]
    region_hdr = [(b"cf-ipcountry", b"DE"), (b"cf-region-code", b"BE")]
    cases: dict[str, tuple[Any, Callable[[], dict[str, Any]]]] = {
        "bare Starlette, page": (bare, scope_for("/", cookie_hdr)),
        "bare Starlette, page at /reads": (bare, scope_for("/reads", cookie_hdr)),
        "floor: empty middleware wrapping send, page": (with_floor, scope_for("/", cookie_hdr)),
        "consentkit, valid cookie, page": (with_kit, scope_for("/", cookie_hdr)),
        "consentkit, undecided, page": (with_kit, scope_for("/", undecided_hdr)),
        "consentkit, valid cookie, page reads consent": (with_kit, scope_for("/reads", cookie_hdr)),
        "consentkit, undecided, page reads consent": (with_kit, scope_for("/reads", undecided_hdr)),
        # The difference between these two: resolving the region from the CDN's headers.
        "consentkit, valid cookie, page reads consent, region headers": (
            with_kit,
            scope_for("/reads", cookie_hdr + region_hdr),
        ),
        "consentkit with regions, valid cookie, page reads consent": (
            with_regions,
            scope_for("/reads", cookie_hdr + region_hdr),
        ),
        "SessionMiddleware, valid session, page reads session": (
            with_session,
            scope_for("/session", session_hdr),
        ),
        "bare Starlette, template page": (bare, scope_for("/plans", cookie_hdr)),
        "consentkit, valid cookie, template page reads consent": (
            with_kit,
            scope_for("/plans", cookie_hdr),
        ),
        "consentkit, undecided, template page reads consent": (
            with_kit,
            scope_for("/plans", undecided_hdr),
        ),
        "consentkit, undecided, template page with the banner injected": (
            with_banner,
            scope_for("/plans", undecided_hdr),
        ),
        "consentkit, valid cookie, template page with the settings control": (
            with_banner,
            scope_for("/plans", cookie_hdr),
        ),
    }
    if args.only:
        cases = {
            name: case
            for name, case in cases.items()
            if args.only in name or name.startswith("bare Starlette")
        }
    totals = dict.fromkeys(cases, 0.0)
    per_round: dict[str, list[float]] = {name: [] for name in cases}

    async def run() -> None:
        for app, make in cases.values():  # warm up caches and code paths
            await run_round(app, make, 200)
        for _ in range(args.rounds):
            order = list(cases.items())
            random.shuffle(order)
            for name, (app, make) in order:
                elapsed = await run_round(app, make, args.requests)
                totals[name] += elapsed
                per_round[name].append(elapsed)

    asyncio.run(run())
    total_requests = args.rounds * args.requests
    print(f"{args.rounds} rounds x {args.requests} requests per case, shuffled order")
    print("added = median over rounds of (case - bare app serving the same kind of page), per request")
    print(f"{'case':66} {'µs/req':>7} {'added µs':>9} {'ratio':>6}")
    for name in cases:
        bare_name = (
            "bare Starlette, template page"
            if "template" in name
            else "bare Starlette, page at /reads"
            if "reads consent" in name
            else "bare Starlette, page"
        )
        bare_rounds = per_round[bare_name]
        rps = total_requests / totals[name]
        ratio = totals[bare_name] / totals[name]
        added = statistics.median(
            (t - b) * 1e6 / args.requests for b, t in zip(bare_rounds, per_round[name], strict=True)
        )
        print(f"{name:66} {1e6 / rps:7.2f} {added:9.2f} {ratio:6.3f}")


if __name__ == "__main__":
    main()
