"""Reading and checking a posted decision (``POST /consent``).

Everything a visitor's browser (or a forger) can send is checked here, before anything is
written: content type, size, origin, fields, action, purposes and the ``next`` path. Each
problem becomes a :class:`BadDecision` with the status and a message that says what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import ClientDisconnect, Request

from .consent import Consent

if TYPE_CHECKING:
    from .kit import ConsentKit

ACTIONS = ("accept_all", "reject_all", "save", "withdraw")
JSON_METHODS = ("banner", "preferences")
FORM_FIELDS = frozenset({"action", "granted", "next", "csrf_token"})
JSON_FIELDS = frozenset({"action", "granted", "method", "next"})
MAX_FIELDS = 100


class BadDecision(Exception):
    """A decision request that must be refused with a 4xx (nothing is written)."""

    def __init__(self, status: int, code: str, message: str, json_body: bool) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.json = json_body


@dataclass(frozen=True, slots=True)
class Decision:
    """A checked decision, ready to be recorded."""

    action: str
    granted: frozenset[str]  # the resulting granted purposes, essential ones included
    method: str
    next: str
    json: bool


def header_dict(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict (lower-case names; the last of repeated ones)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}


async def parse_decision(
    request: Request, kit: ConsentKit, before: Consent, headers: dict[str, str]
) -> Decision:
    """Check everything about a posted decision; raise :class:`BadDecision` on the first problem."""
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_json = ctype == "application/json"

    def bad(status: int, code: str, message: str) -> BadDecision:
        return BadDecision(status, code, message, is_json)

    if not is_json and ctype != "application/x-www-form-urlencoded":
        raise bad(
            415,
            "unsupported_media_type",
            "send the decision as application/x-www-form-urlencoded or application/json"
            + (f", not {ctype}" if ctype else " (no Content-Type was given)"),
        )

    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    problem = kit.csrf.origin_problem(fetch_site, origin, headers.get("host"))
    if problem:
        raise bad(403, "cross_site", problem)

    body = await _read_body(request, headers, kit.max_body, bad)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad(400, "bad_encoding", "the body is not UTF-8") from None

    if is_json:
        fields = _json_fields(text, bad)
    else:
        fields = _form_fields(text, bad)
        if fetch_site is None and origin is None:
            token = fields.get("csrf_token")
            known = kit.stored_for(before)
            subject = known.subject_id if known is not None else None
            if not kit.csrf.token_ok(token if isinstance(token, str) else None, subject):
                raise bad(
                    403,
                    "bad_token",
                    "this form has no valid anti-forgery token (it may have expired): reload the page and "
                    "choose again",
                )

    action = fields.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        shown = "missing" if action is None else repr(action)
        raise bad(400, "bad_action", f"action is {shown}; use one of {', '.join(ACTIONS)}")

    policy = kit.policy
    requested = fields.get("granted", [])
    if not isinstance(requested, list) or not all(isinstance(p, str) for p in requested):
        raise bad(400, "bad_granted", "granted must be a list of purpose ids")
    unknown = [p for p in requested if p not in policy.by_id]
    if unknown:
        raise bad(
            400,
            "unknown_purpose",
            f"unknown purpose {unknown[0]!r}; this site's purposes are {', '.join(policy.ids)}",
        )
    if action == "accept_all":
        granted = frozenset(policy.ids)
    elif action == "save":
        granted = frozenset(requested) | policy.essential_ids
    else:  # reject_all, withdraw; a shared form's checkboxes do not count for them
        granted = policy.essential_ids

    if is_json:
        method = fields.get("method") or ("preferences" if action == "save" else "banner")
        if method not in JSON_METHODS:
            raise bad(400, "bad_method", f"method must be one of {', '.join(JSON_METHODS)}")
    else:
        method = "no_js_form"

    nxt = fields.get("next")
    if nxt is None:
        nxt = same_site_referer(headers) or "/"
    elif not isinstance(nxt, str) or not is_safe_next(nxt):
        raise bad(400, "bad_next", "next must be a path on this site, such as /privacy")
    return Decision(action=action, granted=granted, method=str(method), next=nxt, json=is_json)


_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def is_safe_next(value: str) -> bool:
    """Whether ``value`` is a path on this site (no scheme, no host, no tricks).

    One leading ``/`` and no second one right after it means no scheme and no host; browsers
    read a backslash as a slash and drop control characters, so neither may appear at all.
    """
    return (
        value.startswith("/")
        and not value.startswith("//")
        and len(value) <= 2048
        and _UNSAFE_IN_PATH.search(value) is None
    )


async def _read_body(request: Request, headers: dict[str, str], limit: int, bad: Any) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad(400, "bad_length", "Content-Length is not a number")
        if int(declared) > limit:
            raise bad(413, "too_large", f"the body is over {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise bad(413, "too_large", f"the body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad(400, "disconnected", "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _json_fields(text: str, bad: Any) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise bad(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad(400, "bad_json", 'the body must be a JSON object like {"action": "reject_all"}')
    unknown = sorted(set(data) - JSON_FIELDS)
    if unknown:
        raise bad(
            400,
            "unknown_field",
            f"unknown field {unknown[0]!r}; use {', '.join(sorted(JSON_FIELDS))}",
        )
    return data


def _form_fields(text: str, bad: Any) -> dict[str, Any]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(400, "bad_form", f"the form body cannot be read: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key not in FORM_FIELDS:
            raise bad(
                400,
                "unknown_field",
                f"unknown form field {key!r}; use {', '.join(sorted(FORM_FIELDS))}",
            )
        if key == "granted":
            fields.setdefault("granted", []).append(value)
        elif key in fields:
            raise bad(400, "repeated_field", f"form field {key!r} is given more than once")
        else:
            fields[key] = value
    return fields


def same_site_referer(headers: dict[str, str]) -> str | None:
    referer = headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc.lower() != (headers.get("host") or "").lower():
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if is_safe_next(path) else None
