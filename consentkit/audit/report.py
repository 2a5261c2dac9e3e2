"""``consentkit report``: the overview as one self-contained HTML file, for sending to a
regulator (the README's "The auditor's desk").

The file inlines its CSS and SVG charts and loads nothing from anywhere; it says which ledger it
was made from (without the URL's password) and whether the chain verified when it was made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..ledger import open_ledger
from ..ledger.full_check import FullCheck
from .overview import Overview, build, verification
from .pages import TEMPLATES, stylesheet


async def report_overview(
    ledger_url: str, since: str | None, until: str | None, verified: FullCheck
) -> Overview:
    """The overview of ``since``..``until`` (``YYYY-MM-DD``, inclusive) of the ledger at
    ``ledger_url``, with ``verified`` as the chain's state."""
    ledger = open_ledger(ledger_url, create=False)
    try:
        await ledger.open()
        overview = await build(ledger, since, until)
    finally:
        await ledger.close()
    overview.last_verify = verification(verified)
    return overview


def render_report(overview: Overview, *, controller: str, ledger_url: str) -> str:
    """The report's HTML: ``controller`` is whom it is about (may be empty)."""
    # Its own environment, not a kit's: the report is made from the command line, with no site.
    env = Environment(
        loader=PackageLoader("consentkit", "templates"), autoescape=select_autoescape(default=True)
    )
    return env.get_template(f"{TEMPLATES}/report.html").render(
        o=overview,
        titles={},
        controller=controller,
        css=Markup(stylesheet()),
        made=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        ledger=safe_url(ledger_url),
    )


def safe_url(url: str) -> str:
    """A ledger URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
