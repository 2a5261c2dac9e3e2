"""Property-based tests: whatever a browser (or a forger) sends, the site stays safe.

- Any ``Cookie`` header — random text, random bytes, real signed cookies truncated, bit-flipped,
  spliced, padded, with extra ``~`` fields, re-signed with another key — never answers 5xx and
  never allows more than the cookie's genuine, valid decision (for anything not signed by the
  site's key: nothing but the essential purposes).
- Any ``POST /consent`` — random bytes, JSON values, form fields, content types, ``Origin`` and
  ``Sec-Fetch-Site`` headers — never answers 5xx; a refusal writes nothing and sets no cookie; an
  acknowledgement writes exactly one matching ledger record; a cross-site request is never
  recorded; a well-formed same-origin decision is recorded as asked.

One kit, app and ledger file per test function (not per example), for speed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from conftest import BASE, SAME_ORIGIN, SECRET
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature, TimestampSigner

from consentkit import ConsentKit, LedgerRecord, RecordFilter
from consentkit.cookie import SALT
from consentkit.ledger.records import utc_timestamp

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
COOKIE = "consentkit"
OTHER_KEY = "another-sites-secret-key-0123456789"
DAY = 86400


# -- helpers ----------------------------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from one of the strategies, with the given relative weights."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


def signer(key: str) -> TimestampSigner:
    """An itsdangerous signer shaped like the cookie's (README: timestamped HMAC-SHA256)."""
    return TimestampSigner(key, salt=SALT, sep=".", digest_method=hashlib.sha256)


def unsign(key: str, value: str) -> str | None:
    """The payload ``value`` carries if ``key`` signed it, else ``None`` (independent oracle)."""
    try:
        return signer(key).unsign(value.encode("latin-1")).decode("latin-1")
    except (BadSignature, UnicodeError, ValueError, IndexError, TypeError):
        return None


def undecided_purposes(kit: ConsentKit) -> dict[str, bool]:
    return {pid: pid in kit.policy.essential_ids for pid in kit.policy.ids}


def page_text(purposes: dict[str, bool]) -> str:
    """What the conftest page prints for a ``consent.purposes()`` mapping."""
    return " ".join(f"{p}={int(v)}" for p, v in purposes.items())


def to_header(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


async def observe(
    client: httpx.AsyncClient, headers: list[tuple[bytes, bytes]]
) -> tuple[dict[str, Any], str]:
    """GET /consent (JSON) and GET / (a page printing ``consent.purposes()``) with ``headers``."""
    client.cookies.clear()
    state = await client.get("/consent", headers=headers)
    assert state.status_code == 200, (state.status_code, state.text[:300])
    page = await client.get("/", headers=headers)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    body = state.json()
    assert page.text == page_text(body["purposes"]), "the page and GET /consent disagree"
    return body, page.text


async def ledger_records(kit: ConsentKit) -> list[LedgerRecord]:
    return [r async for r in kit.ledger.records()]


@pytest.fixture
def kit(make_kit: Any) -> ConsentKit:
    # Thousands of generated posts come from the one test client: the decision rate limit (which
    # has its own tests in test_hardening.py) would refuse them for what they are not.
    kit: ConsentKit = make_kit(decision_rate_limit=None)
    return kit


@pytest.fixture
async def real_cookies(client: httpx.AsyncClient, kit: ConsentKit) -> dict[str, tuple[str, dict[str, bool]]]:
    """Genuine consent cookies issued by the site, by decision, with the purposes they grant."""
    issued: dict[str, tuple[str, dict[str, bool]]] = {}
    for name, body in {
        "accept_all": {"action": "accept_all"},
        "analytics": {"action": "save", "granted": ["analytics"]},
        "ads": {"action": "save", "granted": ["ads"]},
        "reject_all": {"action": "reject_all"},
    }.items():
        client.cookies.clear()
        r = await client.post("/consent", json=body, headers=SAME_ORIGIN)
        assert r.status_code == 200, r.text
        value = r.cookies[COOKIE]
        # The oracle below must understand the cookie the way the README describes it.
        payload = unsign(SECRET, value)
        assert payload is not None and payload.split("~")[0] == "1", payload
        issued[name] = (value, r.json()["purposes"])
    client.cookies.clear()
    return issued


# -- 1. arbitrary Cookie headers ----------------------------------------------------------------

junk_text = st.text(max_size=300)
junk_bytes = st.binary(max_size=300)
cookie_safe = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'),
    max_size=80,
)

arbitrary_cookie_headers = st.one_of(
    junk_text.map(to_header),
    junk_bytes,
    junk_text.map(lambda s: to_header(f"{COOKIE}={s}")),
    junk_bytes.map(lambda b: f"{COOKIE}=".encode() + b),
    cookie_safe.map(lambda s: f"{COOKIE}={s}".encode()),
    # Shaped like a signed value: payload.timestamp.signature
    st.tuples(cookie_safe, cookie_safe, cookie_safe).map(lambda t: f"{COOKIE}={t[0]}.{t[1]}.{t[2]}".encode()),
    st.lists(st.tuples(st.sampled_from([COOKIE, "session", "_ga", "x", COOKIE.upper()]), cookie_safe)).map(
        lambda kv: "; ".join(f"{k}={v}" for k, v in kv).encode()
    ),
    # Huge: far over any cookie limit.
    st.tuples(cookie_safe, st.integers(1, 20000)).map(lambda t: f"{COOKIE}={(t[0] or 'A') * t[1]}".encode()),
    st.integers(1, 2000).map(lambda n: "; ".join([f"{COOKIE}=1~a~1~ads~~1~r~.x.y"] * n).encode()),
)
other_headers = st.lists(
    st.tuples(
        st.sampled_from([b"sec-gpc", b"accept-language", b"accept", b"user-agent"]),
        st.one_of(st.sampled_from([b"1", b"fr", b"en-US,en;q=0.5", b"application/json"]), junk_bytes),
    ),
    max_size=3,
)


@settings(max_examples=1200, **SETTINGS)
@given(cookie=arbitrary_cookie_headers, extra=other_headers)
async def test_arbitrary_cookie_headers_never_error_and_never_grant(client, kit, cookie, extra):
    headers = [(b"cookie", cookie), *extra]
    body, text = await observe(client, headers)
    assert body["decided"] is False
    assert body["purposes"] == undecided_purposes(kit)
    assert text == page_text(undecided_purposes(kit))


def _bitflip(value: str, positions: list[tuple[int, int]]) -> str:
    chars = list(value)
    for index, bit in positions:
        i = index % len(chars)
        chars[i] = chr(ord(chars[i]) ^ (1 << bit))
    return "".join(chars)


@st.composite
def mutated_cookie(draw: st.DrawFn, cookies: dict[str, tuple[str, dict[str, bool]]]) -> tuple[str, str]:
    """A real cookie of a granting decision, mutated one way or another: (kind, value)."""
    name = draw(st.sampled_from(["accept_all", "analytics", "ads"]))
    value = cookies[name][0]
    payload = unsign(SECRET, value)
    assert payload is not None
    body, _, sig = value.rpartition(".")
    kind = draw(
        st.sampled_from(
            [
                "truncated",
                "bitflip",
                "tilde_raw",
                "tilde_resigned",
                "other_key",
                "huge",
                "spliced",
                "timestamp",
                "payload_edit",
            ]
        )
    )
    if kind == "truncated":
        return kind, value[: draw(st.integers(0, len(value) - 1))]
    if kind == "bitflip":
        flips = draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=3))
        return kind, _bitflip(value, flips)
    if kind == "tilde_raw":
        at = draw(st.integers(0, len(value)))
        return kind, value[:at] + "~" + draw(cookie_safe) + value[at:]
    if kind == "tilde_resigned":
        extra = draw(st.lists(cookie_safe.filter(lambda s: "~" not in s), min_size=1, max_size=3))
        return kind, signer(SECRET).sign(payload + "~" + "~".join(extra)).decode()
    if kind == "other_key":
        return kind, signer(OTHER_KEY).sign(payload).decode()
    if kind == "huge":
        pad = draw(st.integers(4096, 60_000))
        where = draw(st.sampled_from(["end", "payload", "resigned"]))
        if where == "end":
            return kind, value + "A" * pad
        if where == "payload":
            return kind, payload + "A" * pad + value[len(payload) :]
        # A huge ninth field, signed with the site's key: still not a decision.
        return kind, signer(SECRET).sign(payload + "~" + "A" * pad).decode()
    if kind == "spliced":
        # Another genuine cookie's signature on this payload.
        other = cookies[draw(st.sampled_from(["reject_all", "accept_all", "analytics", "ads"]))][0]
        return kind, body + "." + other.rpartition(".")[2]
    if kind == "timestamp":
        head, _, stamp = body.rpartition(".")
        return kind, head + "." + draw(cookie_safe.filter(lambda s: s != stamp)) + "." + sig
    # payload_edit: change the granted/denied fields without re-signing.
    parts = payload.split("~")
    parts[3], parts[4] = draw(st.sampled_from(["ads-analytics", "ads", "analytics", ""])), ""
    return kind, "~".join(parts) + value[len(payload) :]


def expected_for(value: str, cookies: dict[str, tuple[str, dict[str, bool]]]) -> dict[str, bool] | None:
    """What a mutated cookie may grant: the genuine decision it still carries, or ``None``."""
    candidates = {value, value.split(";", 1)[0].strip().strip('"')}
    for candidate in candidates:
        payload = unsign(SECRET, candidate)
        if payload is None:
            continue
        for genuine, purposes in cookies.values():
            if unsign(SECRET, genuine) == payload:
                return purposes
    return None


@settings(max_examples=1200, **SETTINGS)
@given(data=st.data(), surround=st.booleans(), extra=other_headers)
async def test_mutated_real_cookies_never_grant(client, kit, real_cookies, data, surround, extra):
    kind, value = data.draw(mutated_cookie(real_cookies), label="mutation")
    cookie = f"{COOKIE}={value}"
    if surround:
        cookie = f"session=abc; {cookie}; _ga=GA1.2.3"
    headers = [(b"cookie", to_header(cookie)), *[(k, v) for k, v in extra if k != b"sec-gpc"]]
    body, _ = await observe(client, headers)
    genuine = expected_for(value, real_cookies)
    event(f"{kind}: {'still genuine' if genuine else 'not genuine'}")
    if genuine is None:
        # Not a value the site's key signed (or one it never issued): nothing but the essentials.
        assert body["decided"] is False, kind
        assert body["purposes"] == undecided_purposes(kit), kind
    else:
        # Still byte-for-byte a genuine decision (e.g. a flip in base64's unused bits).
        assert body["purposes"] == genuine, kind


# -- 1b. payloads signed with the site's own key ------------------------------------------------

PURPOSE_IDS = ["necessary", "analytics", "ads"]
junk_ids = st.sampled_from(["evil", "Ads", "analytics_", "x", "necessary"])
LIFETIME = 180 * DAY  # examples/consent.toml
# Where each optional purpose goes: mostly a clean decision, sometimes missing or contradictory.
placement = st.sampled_from(["granted"] * 9 + ["denied"] * 9 + ["neither", "both"])
ages = weighted(
    (12, st.integers(0, LIFETIME - DAY).map(lambda a: ("fresh", a))),
    (2, st.integers(LIFETIME + DAY, 20 * 365 * DAY).map(lambda a: ("expired", a))),
    (1, st.integers(DAY, 20 * 365 * DAY).map(lambda a: ("future", -a))),
    (1, st.sampled_from(["", "abc", "-5", "1e9", "1.5", " 1"]).map(lambda j: ("junk", j))),
)
rare_extra = weighted(
    (15, st.just([])), (1, st.lists(cookie_safe.filter(lambda s: "~" not in s), min_size=1, max_size=2))
)


@st.composite
def signed_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """The README's payload ``1~subject~revision~granted~denied~decided_at~receipt~flags``, varied."""
    granted: list[str] = []
    denied: list[str] = []
    for pid in ("analytics", "ads"):
        where = draw(placement)
        if where in ("granted", "both"):
            granted.append(pid)
        if where in ("denied", "both"):
            denied.append(pid)
    granted += draw(st.lists(junk_ids, max_size=2, unique=True))
    denied += draw(st.lists(junk_ids, max_size=2, unique=True))
    age_class, age = draw(ages)
    decided_at = age if age_class == "junk" else str(int(time.time()) - age)
    return {
        "version": draw(st.sampled_from(["1"] * 30 + ["2", "", "01"])),
        "subject": draw(st.sampled_from(["subj", "AAAAAAAAAAAAAAAAAAAAAA", "a_b-c"] * 10 + [""])),
        "revision": draw(st.sampled_from(["1"] * 30 + ["0", "2", "3", "", "x", "-1", "1.0", "one"])),
        "granted": draw(st.permutations(granted)),
        "denied": draw(st.permutations(denied)),
        "decided_at": decided_at,
        "age_class": age_class,
        "receipt": draw(st.sampled_from(["0123456789abcdef", "", "zz"])),
        "flags": draw(st.sampled_from(["", "", "g", "x"])),
        "extra": draw(rare_extra),
    }


@settings(max_examples=600, **SETTINGS)
@given(p=signed_payloads(), gpc=st.booleans())
async def test_cookies_signed_with_the_site_key_grant_exactly_their_valid_decision(client, kit, p, gpc):
    """README "How consent is decided": valid = verifies, same revision, younger than the
    lifetime, decides every non-essential purpose; anything else is undecided. GPC denies the
    purposes honouring it unless the decision itself was made under GPC."""
    fields = [
        p["version"],
        p["subject"],
        p["revision"],
        "-".join(p["granted"]),
        "-".join(p["denied"]),
        p["decided_at"],
        p["receipt"],
        p["flags"],
        *p["extra"],
    ]
    value = signer(SECRET).sign("~".join(fields)).decode()
    headers = [(b"cookie", f"{COOKIE}={value}".encode())]
    if gpc:
        headers.append((b"sec-gpc", b"1"))
    body, _ = await observe(client, headers)

    policy = kit.policy
    essential = set(policy.essential_ids)
    optional = set(policy.optional_ids)
    granted, denied = set(p["granted"]), set(p["denied"])
    allowed = {pid for pid, on in body["purposes"].items() if on}

    # Safety, always: essentials on; nothing the cookie does not grant; nothing it also denies.
    assert essential <= allowed
    assert allowed <= essential | (granted & optional)
    assert not (allowed & (granted & denied) & optional)

    well_formed = (
        p["version"] == "1"
        and not p["extra"]
        and p["subject"] != ""
        and p["revision"].isdigit()
        and p["age_class"] != "junk"
    )
    if not well_formed:
        event("malformed")
        assert body["decided"] is False and allowed == essential
        return
    complete = optional <= granted | denied
    if int(p["revision"]) != policy.revision or p["age_class"] == "expired" or not complete:
        event("invalid: other revision, expired or incomplete")
        assert body["decided"] is False and allowed == essential
        return
    if p["age_class"] == "future" or granted & denied:
        event("unspecified: future or contradictory")
        return  # not specified beyond the safety checks above
    event("valid")
    assert body["decided"] is True
    assert body["subject_id"] == p["subject"]
    expected = essential | (granted & optional)
    if gpc and p["flags"] != "g":
        expected -= set(policy.gpc_ids)
    assert allowed == expected


# -- 2. arbitrary POST /consent requests ----------------------------------------------------------

ACTIONS = ["accept_all", "reject_all", "save", "withdraw"]
SAME_ORIGINS = ["http://testserver"]
MAYBE_SAME_ORIGINS = ["https://testserver", "HTTP://TESTSERVER", "http://testserver:80", "http://testserver/"]
CROSS_ORIGINS = [
    "https://evil.example",
    "http://evil.example",
    "http://testserver.evil.example",
    "http://evil-testserver",
    "http://127.0.0.1",
    "http://localhost",
    "https://example.com:443",
    "null",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "text/plain",
    "text/plain;charset=UTF-8",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "",
]
NEXT_VALUES = [
    "/",
    "/privacy",
    "/a?b=c",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\t/evil.example",
    "/%2F%2Fevil.example",
    "",
    "privacy",
]

# Strategies are built once here: building them inside @composite functions on every draw
# costs more than running the examples.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
small_json = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))
actions = st.one_of(
    st.sampled_from(ACTIONS), st.sampled_from(["ACCEPT_ALL", "accept", "", "save "]), small_json
)
purpose_lists = st.lists(st.sampled_from(PURPOSE_IDS), unique=True)
granted_values = st.one_of(
    purpose_lists,
    st.lists(st.one_of(st.sampled_from(PURPOSE_IDS), junk_ids, st.text(max_size=8)), max_size=4),
    small_json,
)
next_values = st.one_of(st.sampled_from(NEXT_VALUES), st.text(max_size=30))
methods = st.one_of(st.sampled_from(["banner", "preferences", "api", "no_js_form"]), small_json)
json_decisions = st.fixed_dictionaries(
    {},
    optional={
        "action": actions,
        "granted": granted_values,
        "method": methods,
        "next": next_values,
    },
).flatmap(
    lambda d: st.one_of(
        st.just(d),
        st.tuples(st.text(max_size=10), small_json).map(lambda kv: {**d, kv[0]: kv[1]}),
    )
)
form_keys = st.one_of(st.sampled_from(["action", "granted", "next", "csrf_token"]), st.text(max_size=10))
form_values = st.one_of(
    st.sampled_from(ACTIONS), st.sampled_from(PURPOSE_IDS), next_values, st.text(max_size=30)
)
form_pairs = st.lists(st.tuples(form_keys, form_values), max_size=6)
valid_json_requests = st.builds(
    lambda action, granted, add_granted, ctype, origin, fetch_site: {
        "shape": "valid_json",
        "body_obj": {"action": action, **({"granted": granted} if action == "save" or add_granted else {})},
        "ctype": ctype,
        "origin": origin,
        "fetch_site": fetch_site,
    },
    st.sampled_from(ACTIONS),
    purpose_lists,
    st.booleans(),
    st.sampled_from(["application/json", "application/json; charset=utf-8"]),
    st.sampled_from([*SAME_ORIGINS, None]),
    st.sampled_from([None, "same-origin"]),
)
valid_form_requests = st.builds(
    lambda action, granted, nxt, origin, fetch_site: {
        "shape": "valid_form",
        "form": [("action", action), *[("granted", g) for g in granted], *([("next", nxt)] if nxt else [])],
        "ctype": "application/x-www-form-urlencoded",
        "origin": origin,
        "fetch_site": fetch_site,
        # Without Origin and Sec-Fetch-Site a form must carry the banner's token.
        "token": "valid" if origin is None and fetch_site is None else None,
    },
    st.sampled_from(ACTIONS),
    purpose_lists,
    st.sampled_from([None, "/", "/privacy", "/a?b=c"]),
    st.sampled_from([*SAME_ORIGINS, None]),
    st.sampled_from([None, "same-origin"]),
)
junk_bodies = st.one_of(
    json_decisions.map(lambda d: {"shape": "json", "body": json.dumps(d).encode()}),
    st.tuples(form_pairs, st.sampled_from([None, "valid", "junk"])).map(
        lambda t: {"shape": "form", "form": t[0], "token": t[1]}
    ),
    json_values.map(lambda v: {"shape": "json_value", "body": json.dumps(v).encode()}),
    st.binary(max_size=400).map(lambda b: {"shape": "bytes", "body": b}),
    # A valid decision padded around the body limit.
    st.integers(16_000, 17_000).map(
        lambda n: {"shape": "huge", "body": b'{"action": "accept_all"}' + b" " * n}
    ),
)
any_ctype = st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), st.text(max_size=30))
JSON_CT = st.just("application/json")
FORM_CT = st.just("application/x-www-form-urlencoded")
ctype_for = {
    # Mostly the content type the body claims to be, so that parsing is reached.
    "json": weighted((3, JSON_CT), (1, any_ctype)),
    "json_value": weighted((3, JSON_CT), (1, any_ctype)),
    "huge": weighted((3, JSON_CT), (1, any_ctype)),
    "form": weighted((3, FORM_CT), (1, any_ctype)),
    "bytes": weighted((1, JSON_CT), (1, FORM_CT), (1, any_ctype)),
}
origins = weighted(
    (4, st.none()),
    (2, st.sampled_from(SAME_ORIGINS)),
    (3, st.sampled_from(MAYBE_SAME_ORIGINS + CROSS_ORIGINS)),
    (1, st.text(max_size=40)),
)
fetch_sites = weighted(
    (5, st.none()),
    (2, st.just("same-origin")),
    (1, st.sampled_from(["same-site", "cross-site", "none"])),
    (1, st.text(max_size=12)),
)
junk_requests = junk_bodies.flatmap(
    lambda body: st.builds(
        lambda ctype, origin, fetch_site: {
            **body,
            "ctype": ctype,
            "origin": origin,
            "fetch_site": fetch_site,
        },
        ctype_for[body["shape"]],
        origins,
        fetch_sites,
    )
)
post_requests = st.builds(
    lambda req, referer, accept_language, with_cookie: {
        "token": None,
        "form": None,
        "body_obj": None,
        "body": b"",
        **req,
        "referer": referer,
        "accept_language": accept_language,
        "with_cookie": with_cookie,
    },
    # A third well-formed (they must be accepted), the rest anything at all.
    weighted((1, valid_json_requests), (1, valid_form_requests), (4, junk_requests)),
    st.one_of(
        st.none(),
        st.sampled_from(NEXT_VALUES).map(lambda p: BASE + p),
        st.sampled_from(["https://evil.example/x", BASE + "//evil.example/x"]),
    ),
    st.one_of(st.none(), st.sampled_from(["fr", "en-US,en;q=0.5"]), st.text(max_size=30)),
    st.booleans(),
)


def expected_decision(spec: dict[str, Any]) -> dict[str, Any] | None:
    """For well-formed same-origin decisions: the action and granted ids asked for."""
    if spec["shape"] == "valid_json":
        return {"action": spec["body_obj"]["action"], "granted": spec["body_obj"].get("granted", [])}
    if spec["shape"] == "valid_form":
        return {
            "action": spec["form"][0][1],
            "granted": [v for k, v in spec["form"] if k == "granted"],
        }
    return None


def assemble(
    spec: dict[str, Any], kit: ConsentKit, subject: str | None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of a request spec; a valid token is the one the site's page would
    show this visitor (``kit.csrf.token(consent.subject_id)``)."""
    body: bytes = spec["body"] if spec["body_obj"] is None else json.dumps(spec["body_obj"]).encode()
    if spec["form"] is not None:
        pairs = list(spec["form"])
        if spec["token"] == "valid":
            pairs.append(("csrf_token", kit.csrf.token(subject)))
        elif spec["token"] == "junk":
            pairs.append(("csrf_token", "junk.token.value"))
        body = urlencode(pairs).encode()
    headers: list[tuple[bytes, bytes]] = []
    for name, key in (
        (b"content-type", "ctype"),
        (b"origin", "origin"),
        (b"sec-fetch-site", "fetch_site"),
        (b"referer", "referer"),
        (b"accept-language", "accept_language"),
    ):
        if spec.get(key) is not None:
            headers.append((name, to_header(spec[key])))
    return body, headers


def is_cross_site(spec: dict[str, Any]) -> bool:
    """Requests a browser marks as coming from another site."""
    return spec["origin"] in CROSS_ORIGINS or spec["fetch_site"] == "cross-site"


class LedgerWatch:
    """Tracks the ledger across a test's examples: which records exist, which are new.

    Counting every record before and after each of thousands of examples would dominate the
    run, so each example reads only the records written since it started (``since=``), minus
    those already seen; at the end the whole ledger is compared with what was seen and verified.
    """

    def __init__(self, kit: ConsentKit) -> None:
        self.kit = kit
        self.seen: list[LedgerRecord] = []
        self._ids: set[str] = set()

    async def new_since(self, since: str) -> list[LedgerRecord]:
        fresh = [
            r async for r in self.kit.ledger.records(RecordFilter(since=since)) if r.event_id not in self._ids
        ]
        for r in fresh:
            self._ids.add(r.event_id)
        self.seen.extend(fresh)
        return fresh


@pytest.fixture
async def watch(client: httpx.AsyncClient, kit: ConsentKit) -> AsyncIterator[LedgerWatch]:
    w = LedgerWatch(kit)
    await w.new_since("")
    yield w
    everything = await ledger_records(kit)
    assert [r.event_id for r in everything] == [r.event_id for r in w.seen]
    assert [r.seq for r in everything] == list(range(1, len(everything) + 1))
    report = await kit.ledger.verify()
    assert report.ok, report


@pytest.fixture
async def decided_cookie(client: httpx.AsyncClient, watch: LedgerWatch) -> str:
    r = await client.post("/consent", json={"action": "reject_all"}, headers=SAME_ORIGIN)
    assert r.status_code == 200
    await watch.new_since("")
    client.cookies.clear()
    return str(r.cookies[COOKIE])


@settings(max_examples=2000, **SETTINGS)
@given(spec=post_requests)
async def test_arbitrary_decision_posts(client, kit, watch, decided_cookie, spec):
    prior = unsign(SECRET, decided_cookie)
    assert prior is not None
    prior_subject = prior.split("~")[1]
    body, headers = assemble(spec, kit, prior_subject if spec["with_cookie"] else None)
    client.cookies.clear()
    if spec["with_cookie"]:
        headers.append((b"cookie", f"{COOKIE}={decided_cookie}".encode()))
    started = utc_timestamp()
    r = await client.post("/consent", content=body, headers=headers)
    written = await watch.new_since(started)

    assert r.status_code < 500, (r.status_code, r.text[:300])
    set_cookies = r.headers.get_list("set-cookie")
    acknowledged = 200 <= r.status_code < 300 or r.status_code == 303
    event(f"{spec['shape']}: {r.status_code}")

    if not acknowledged:
        assert 400 <= r.status_code < 500, r.status_code
        assert written == [], "a refused decision wrote to the ledger"
        assert set_cookies == [], f"a refused decision set cookies: {set_cookies}"
        assert r.text.strip(), "a refusal must say what was wrong"
    else:
        assert len(written) == 1, "an acknowledged decision must be recorded exactly once"
        record = written[0]
        ours = [c for c in set_cookies if c.startswith(f"{COOKIE}=")]
        assert len(ours) == 1, set_cookies
        value = ours[0].split(";", 1)[0].split("=", 1)[1]
        state = (await client.get("/consent", headers=[(b"cookie", f"{COOKIE}={value}".encode())])).json()
        assert state["decided"] is True
        assert state["receipt"] and record.hash.startswith(state["receipt"])
        assert state["subject_id"] == record.subject_id
        assert state["purposes"] == record.purposes
        if spec["with_cookie"]:
            assert record.subject_id == prior_subject, "a known visitor keeps their subject id"
        if r.status_code == 303:
            location = r.headers["location"]
            parts = urlsplit(location)
            assert location.startswith("/") and not location.startswith("//"), location
            assert not parts.scheme and not parts.netloc and "\\" not in location, location
        else:
            assert r.status_code == 200 and r.json()["purposes"] == record.purposes

    if is_cross_site(spec):
        assert not acknowledged and written == [], f"cross-site request recorded: {spec}"
    if len(body) > kit.endpoints.decision_reader.max_body:
        # Refused (413 when nothing else is wrong first), and nothing written.
        assert 400 <= r.status_code < 500 and written == []
    exp = expected_decision(spec)
    if exp is not None:
        # A well-formed same-origin decision is accepted and recorded as asked.
        assert acknowledged, (r.status_code, r.text[:300])
        policy = kit.policy
        if exp["action"] == "accept_all":
            want = set(policy.ids)
        elif exp["action"] == "save":
            want = set(policy.essential_ids) | set(exp.get("granted", []))
        else:
            want = set(policy.essential_ids)
        assert written[0].purposes == {pid: pid in want for pid in policy.ids}
        assert written[0].action == exp["action"]
        assert r.status_code == (200 if spec["shape"] == "valid_json" else 303)
