"""How the consent endpoints answer what they refuse: a status and a message that says what to
fix, as JSON to a JSON client and as plain text to a browser form. Nothing they answer may be
kept by a cache."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..policy import Policy

NO_STORE = {"Cache-Control": "no-store"}
#: On every answer under the mount: none of it may be shown in another site's frame.
FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def vary_on(policy: Policy) -> str:
    """The request headers a visitor's consent depends on, for ``Vary``: the cookie, the GPC
    signal if a purpose honours it, and the region's headers where the policy has regions (a
    shared cache must not give a Californian's page to a visitor from Germany)."""
    fields = ["Cookie"]
    if policy.gpc_ids:
        fields.append("Sec-GPC")
    if policy.regions is not None:
        fields.append(policy.regions.country_header)
        if policy.regions.subdivision_header:
            fields.append(policy.regions.subdivision_header)
    return ", ".join(fields)


def wants_json(headers: Mapping[str, str]) -> bool:
    """Whether the client sent JSON, or asks for it over HTML."""
    accept = headers.get("accept", "")
    return "application/json" in headers.get("content-type", "") or (
        "application/json" in accept and "text/html" not in accept
    )


def error(
    headers: Mapping[str, str], status: int, code: str, message: str, *, json_body: bool | None = None
) -> Response:
    """A refusal: ``{"error": code, "message": message}`` or the message as text."""
    if json_body is None:
        json_body = wants_json(headers)
    if json_body:
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=NO_STORE)
    return PlainTextResponse(message + "\n", status_code=status, headers=NO_STORE)
