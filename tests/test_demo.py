"""The demo site, started the way `make demo` starts it, used the way a visitor without JavaScript
uses it: read the page, submit its form, land back on the page, see the choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from server_helpers import Server, assert_verifies, export_jsonl, free_port


class ConsentForm(HTMLParser):
    """The first ``<form method="post">`` of a page: its action, hidden inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done and a.get("method", "").lower() == "post":
            self._in_form = True
            self.action = a.get("action", "")
        elif self._in_form and tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif self._in_form and tag == "button" and "name" in a:
            self.buttons.setdefault(a["name"], []).append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


def form_of(html: str) -> ConsentForm:
    parser = ConsentForm()
    parser.feed(html)
    assert parser.action, "the page has a consent form"
    return parser


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """``python -m demo_site --host 127.0.0.1 --port P --ledger sqlite:///<tmp>/x.db``, as `make demo`."""
    tmp = tmp_path_factory.mktemp("demo")
    ledger_url = f"sqlite:///{tmp / 'x.db'}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CONSENTKIT_SECRET"}  # `make demo` sets none
    env["PYTHONUNBUFFERED"] = "1"
    argv = [
        sys.executable,
        "-m",
        "demo_site",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ledger",
        ledger_url,
    ]
    srv = Server(argv, port, tmp / "demo.log", env, cwd=tmp)
    try:
        srv.wait_ready()
        yield srv, ledger_url
    finally:
        srv.stop()


def test_demo_serves_its_pages_as_html(demo: tuple[Server, str]) -> None:
    srv, _ = demo
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        for path in ("/", "/privacy"):
            r = visitor.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-type"].startswith("text/html"), path
            assert r.text.lstrip().lower().startswith("<!doctype html>"), path
            assert "</html>" in r.text
            form = form_of(r.text)
            assert form.action == "/consent"
            assert form.hidden.get("csrf_token"), "no-JS forms carry the anti-forgery token"
            assert form.hidden.get("next") == path
            assert set(form.buttons["action"]) == {"accept_all", "reject_all"}
        privacy = visitor.get("/privacy").text
        for text in ("Example Telecom Inc.", "Analytics", "Targeted advertising", "_ga"):
            assert text in privacy, text
        state = visitor.get("/consent").json()
        assert state["decided"] is False
        assert visitor.get("/.well-known/gpc.json").json()["gpc"] is True
        assert not visitor.cookies, "nothing is set before the visitor decides"


def test_demo_form_with_its_token_records_and_shows_the_choice(demo: tuple[Server, str]) -> None:
    """An old browser: no Origin, no Sec-Fetch-Site; the page's own token carries the form."""
    srv, ledger_url = demo
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        form = form_of(visitor.get("/privacy").text)
        r = visitor.post(form.action or "", data={**form.hidden, "action": "accept_all"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/privacy"
        assert visitor.cookies.get("consentkit")

        page = visitor.get(r.headers["location"])
        assert page.status_code == 200
        assert "Your cookie choice: necessary on, analytics on, ads on." in page.text
        form = form_of(page.text)
        assert form.buttons["action"] == ["withdraw"]
        subject = visitor.get("/consent").json()["subject_id"]

        # Withdrawing works the same way, with the token the page now shows this visitor.
        r = visitor.post(form.action or "", data={**form.hidden, "action": "withdraw"})
        assert r.status_code == 303, r.text
        page = visitor.get(r.headers["location"])
        assert "Your cookie choice: necessary on, analytics off, ads off." in page.text
        assert visitor.get("/consent").json()["subject_id"] == subject

    rows = export_jsonl(ledger_url, "--subject", subject)
    assert [(r["action"], r["method"]) for r in rows] == [
        ("accept_all", "no_js_form"),
        ("withdraw", "no_js_form"),
    ]
    assert rows[0]["purposes"] == {"necessary": True, "analytics": True, "ads": True}
    assert rows[1]["purposes"] == {"necessary": True, "analytics": False, "ads": False}
    assert_verifies(ledger_url, len(export_jsonl(ledger_url)))
    # --ledger was honoured: the demo (run with a temporary cwd) made no default ledger of its own.
    assert not (Path(ledger_url[len("sqlite:///") :]).parent / "demo-ledger.db").exists()


def test_demo_form_from_the_page_origin_needs_no_token(demo: tuple[Server, str]) -> None:
    srv, ledger_url = demo
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        form = form_of(visitor.get("/").text)
        data = {"next": form.hidden["next"], "action": "reject_all"}
        r = visitor.post(form.action or "", data=data, headers={"origin": srv.origin})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/"
        page = visitor.get("/")
        assert "Your cookie choice: necessary on, analytics off, ads off." in page.text
        subject = visitor.get("/consent").json()["subject_id"]
    rows = export_jsonl(ledger_url, "--subject", subject)
    assert [(r["action"], r["method"]) for r in rows] == [("reject_all", "no_js_form")]


@pytest.mark.parametrize(
    "headers, token",
    [
        ({}, None),  # no origin, no token
        ({}, "forged.token.value"),
        ({"origin": "https://evil.example"}, "page"),  # another site submitting a stolen token
        ({"sec-fetch-site": "cross-site"}, "page"),
    ],
)
def test_demo_refuses_forged_forms(
    demo: tuple[Server, str], headers: dict[str, str], token: str | None
) -> None:
    srv, ledger_url = demo
    before = export_jsonl(ledger_url)
    with httpx.Client(base_url=srv.url, timeout=10, trust_env=False) as visitor:
        form = form_of(visitor.get("/").text)
        data = {"next": "/", "action": "accept_all"}
        if token is not None:
            data["csrf_token"] = form.hidden["csrf_token"] if token == "page" else token
        r = visitor.post("/consent", data=data, headers=headers)
        assert r.status_code == 403, r.text
        assert "set-cookie" not in r.headers
        assert "We use cookies for analytics and advertising only if you agree." in visitor.get("/").text
    assert export_jsonl(ledger_url) == before
