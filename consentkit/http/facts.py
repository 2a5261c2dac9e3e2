"""What the ledger keeps of the request that carried a consent: the language the visitor saw,
their address truncated to a network (/24, /48), and their browser's User-Agent, each as the
site configured (``record_ip``, ``record_user_agent``).

The address is the client's as :class:`~consentkit.http.client.ClientAddresses` finds it —
behind the site's trusted proxies, the one they forwarded — so that the ledger, the decision rate
limit and the desk agree on who a client is.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ..decisions import RequestFacts
from ..netaddr import ip_prefix
from ..ui.languages import Languages
from .client import ClientAddresses

MAX_USER_AGENT = 512


class FactsRecorder:
    """Takes the facts of a request, as much as the site allows."""

    def __init__(
        self,
        languages: Languages,
        *,
        record_ip: bool,
        record_user_agent: bool,
        clients: ClientAddresses | None = None,
    ) -> None:
        self.languages = languages
        self.record_ip = record_ip
        self.record_user_agent = record_user_agent
        self.clients = clients or ClientAddresses()

    def of(self, request: HTTPConnection, gpc: bool, locale: str | None = None) -> RequestFacts:
        """The facts of ``request``; ``locale`` overrides the negotiated language."""
        return self.at(request, gpc, self.clients.of(request.scope) if self.record_ip else None, locale)

    def at(
        self, request: HTTPConnection, gpc: bool, address: str | None, locale: str | None = None
    ) -> RequestFacts:
        """The facts of ``request`` from the client ``address`` the caller has worked out."""
        headers = request.headers
        agent = (headers.get("user-agent") or "")[:MAX_USER_AGENT] if self.record_user_agent else ""
        return RequestFacts(
            locale=locale or self.languages.best(headers.get("accept-language")),
            ip_prefix=ip_prefix(address) if self.record_ip else None,
            user_agent=agent or None,
            gpc=gpc,
        )
