"""What the ledger keeps of the request that carried a consent: the language the visitor saw,
their address truncated to a network (/24, /48), and their browser's User-Agent, each as the
site configured (``record_ip``, ``record_user_agent``)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ..decisions import RequestFacts
from ..netaddr import ip_prefix
from ..ui.languages import Languages

MAX_USER_AGENT = 512


class FactsRecorder:
    """Takes the facts of a request, as much as the site allows."""

    def __init__(self, languages: Languages, *, record_ip: bool, record_user_agent: bool) -> None:
        self.languages = languages
        self.record_ip = record_ip
        self.record_user_agent = record_user_agent

    def of(self, request: HTTPConnection, gpc: bool, locale: str | None = None) -> RequestFacts:
        """The facts of ``request``; ``locale`` overrides the negotiated language."""
        headers = request.headers
        address = request.client.host if self.record_ip and request.client is not None else None
        agent = (headers.get("user-agent") or "")[:MAX_USER_AGENT] if self.record_user_agent else ""
        return RequestFacts(
            locale=locale or self.languages.best(headers.get("accept-language")),
            ip_prefix=ip_prefix(address),
            user_agent=agent or None,
            gpc=gpc,
        )
