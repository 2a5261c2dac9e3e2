"""Reading and checking a posted decision (``POST /consent``), before anything is written.

Everything a visitor's browser (or a forger) can send is checked here: content type, size,
origin, fields, action, purposes and the ``next`` path. Each problem becomes a
:class:`BadDecision` with the status and a message that says what was wrong; a good request
becomes a :class:`~consentkit.decisions.Choice` for the one decision path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from ..decisions import Choice
from ..ledger.vocabulary import JSON_METHODS, VISITOR_ACTIONS, Action, Method
from ..policy import Policy
from .csrf import CsrfGuard
from .paths import is_safe_next, same_site_referer

FORM_FIELDS = frozenset({"action", "granted", "next", "csrf_token", "idempotency_key"})
JSON_FIELDS = frozenset({"action", "granted", "method", "next"})
MAX_FIELDS = 100
_KEY = re.compile(r"[A-Za-z0-9._:~-]{8,255}")


class BadDecision(Exception):
    """A decision request that must be refused with a 4xx (nothing is written)."""

    def __init__(self, status: int, code: str, message: str, json_body: bool) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.json = json_body


@dataclass(frozen=True, slots=True)
class DecisionForm:
    """A checked decision request: the choice, where to go next, and how to answer."""

    choice: Choice
    next: str
    json: bool
    key: str | None = None  # the Idempotency-Key (header, or the form's idempotency_key field)


class DecisionReader:
    """Checks decision requests against the policy, the anti-forgery rule and a size limit."""

    def __init__(self, policy: Policy, csrf: CsrfGuard, max_body: int) -> None:
        self.policy = policy
        self.csrf = csrf
        self.max_body = max_body

    async def read(
        self, request: Request, headers: Mapping[str, str], subject_id: str | None
    ) -> DecisionForm:
        """Check everything about a posted decision; raise :class:`BadDecision` on the first
        problem. ``subject_id`` is the visitor's (a header-less form's token must be theirs)."""
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        is_json = ctype == "application/json"
        if not is_json and ctype != "application/x-www-form-urlencoded":
            raise BadDecision(
                415,
                "unsupported_media_type",
                "send the decision as application/x-www-form-urlencoded or application/json"
                + (f", not {ctype}" if ctype else " (no Content-Type was given)"),
                False,
            )
        # The origin check comes before the body is read: a forged request costs us nothing.
        problem = self.csrf.problem(headers, None, subject_id, needs_token=False)
        if problem:
            raise BadDecision(403, "cross_site", problem, is_json)
        text = await _read_text(request, headers, self.max_body, is_json)
        fields = _json_fields(text) if is_json else _form_fields(text)
        if not is_json:
            token = fields.get("csrf_token")
            problem = self.csrf.problem(headers, token if isinstance(token, str) else None, subject_id)
            if problem:
                raise BadDecision(403, "bad_token", problem, False)
        return self._check(fields, headers, is_json)

    def _check(self, fields: dict[str, Any], headers: Mapping[str, str], is_json: bool) -> DecisionForm:
        action = fields.get("action")
        if not isinstance(action, str) or action not in VISITOR_ACTIONS:
            shown = "missing" if action is None else repr(action)
            raise BadDecision(
                400, "bad_action", f"action is {shown}; use one of {', '.join(VISITOR_ACTIONS)}", is_json
            )
        policy = self.policy
        requested = fields.get("granted", [])
        if not isinstance(requested, list) or not all(isinstance(p, str) for p in requested):
            raise BadDecision(400, "bad_granted", "granted must be a list of purpose ids", is_json)
        unknown = [p for p in requested if p not in policy.by_id]
        if unknown:
            raise BadDecision(
                400,
                "unknown_purpose",
                f"unknown purpose {unknown[0]!r}; this site's purposes are {', '.join(policy.ids)}",
                is_json,
            )
        method = Method.NO_JS_FORM
        if is_json:
            named = fields.get("method") or (Method.PREFERENCES if action == Action.SAVE else Method.BANNER)
            if named not in JSON_METHODS:
                raise BadDecision(
                    400, "bad_method", f"method must be one of {', '.join(JSON_METHODS)}", is_json
                )
            method = Method(named)
        nxt = fields.get("next")
        if nxt is None:
            nxt = same_site_referer(headers) or "/"
        elif not isinstance(nxt, str) or not is_safe_next(nxt):
            raise BadDecision(400, "bad_next", "next must be a path on this site, such as /privacy", is_json)
        choice = Choice.of(policy, Action(action), frozenset(requested), method)
        return DecisionForm(choice=choice, next=nxt, json=is_json, key=_key(fields, headers, is_json))


def _key(fields: dict[str, Any], headers: Mapping[str, str], is_json: bool) -> str | None:
    """The decision's idempotency key: the ``Idempotency-Key`` header (an RFC 8941 string, quoted
    or not) or the form's ``idempotency_key`` field; at most one of them, or both the same."""
    given = {v for v in (headers.get("idempotency-key"), fields.get("idempotency_key")) if v is not None}
    if not given:
        return None
    key = given.pop()
    if given or not isinstance(key, str):
        raise BadDecision(
            400, "bad_idempotency_key", "give one idempotency key, in the header or the form", is_json
        )
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        raise BadDecision(
            400,
            "bad_idempotency_key",
            "Idempotency-Key must be 8 to 255 characters of letters, digits and -._:~ "
            "(a random UUID is best)",
            is_json,
        )
    return key


async def _read_text(request: Request, headers: Mapping[str, str], limit: int, is_json: bool) -> str:
    def bad(status: int, code: str, message: str) -> BadDecision:
        return BadDecision(status, code, message, is_json)

    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
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
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise bad(400, "bad_encoding", "the body is not UTF-8") from None


def _json_fields(text: str) -> dict[str, Any]:
    def bad(code: str, message: str) -> BadDecision:
        return BadDecision(400, code, message, True)

    try:
        data = json.loads(text)
    except RecursionError:
        # Thousands of nested brackets: refuse them like any other malformed body.
        raise bad("bad_json", "the body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:
        raise bad("bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad("bad_json", 'the body must be a JSON object like {"action": "reject_all"}')
    unknown = sorted(set(data) - JSON_FIELDS)
    if unknown:
        raise bad("unknown_field", f"unknown field {unknown[0]!r}; use {', '.join(sorted(JSON_FIELDS))}")
    return data


def _form_fields(text: str) -> dict[str, Any]:
    def bad(code: str, message: str) -> BadDecision:
        return BadDecision(400, code, message, False)

    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad("bad_form", f"the form body cannot be read: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key not in FORM_FIELDS:
            raise bad("unknown_field", f"unknown form field {key!r}; use {', '.join(sorted(FORM_FIELDS))}")
        if key == "granted":
            fields.setdefault("granted", []).append(value)
        elif key in fields:
            raise bad("repeated_field", f"form field {key!r} is given more than once")
        else:
            fields[key] = value
    return fields
