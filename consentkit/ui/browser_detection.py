"""Which of the catalogue's browsers a visitor uses, from the ``User-Agent`` header (ua-parser)
and the ``Sec-CH-UA`` client hints.

Detection is a convenience, never a decision: a wrong guess only changes which instructions come
first, so when the User-Agent does not clearly name a browser we have steps for, the answer is
``None`` rather than the closest match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

import ua_parser
from ua_parser import Domain

# Longer headers are not real browsers; cutting them keeps the parser's regexes and the cache's
# memory bounded whatever a client sends.
_MAX_USER_AGENT: Final = 1024
_MAX_CLIENT_HINTS: Final = 512

# ua-parser families -> catalogue ids, by platform. Anything not listed (Vivaldi, Yandex,
# in-app WebViews such as "Facebook" or "Chrome Mobile WebView", HeadlessChrome, bots...) is
# None: those browsers' menus differ from every entry we have, or they have no cookie settings
# of their own.
_DESKTOP: Final[Mapping[str, str]] = {
    "Chrome": "chrome",
    # Chromium's settings pages are Chrome's, word for word.
    "Chromium": "chrome",
    "Firefox": "firefox",
}
_ANDROID: Final[Mapping[str, str]] = {
    "Chrome Mobile": "chrome_android",
    # Chrome on Android tablets leaves "Mobile" out of its User-Agent.
    "Chrome": "chrome_android",
    # Covers Firefox on Android tablets too ("Android 14; Tablet; rv:...").
    "Firefox Mobile": "firefox_android",
    "Samsung Internet": "samsung_internet",
}
_CHROMIUM_LOOKALIKES: Final = frozenset({"Chrome", "Chromium", "Chrome Mobile"})
_MOBILE_OS: Final = frozenset({"Android", "iOS"})  # ua-parser reports iPadOS as "iOS"

# Netscape 6-9 name themselves ("Netscape6/", "Netscape/7.1", "Navigator/9"); ua-parser knows
# those, this is the fallback should its rules change.
_NETSCAPE_TOKEN: Final = re.compile(r"\b(?:Netscape\d?|Navigator)/\d")
# Netscape Communicator 4 sent only "Mozilla/4.x [lang] (platform)": no product token at all.
# Every other Mozilla/4 UA of the time (MSIE, Opera, bots) says "compatible" or adds a token.
_NETSCAPE_4: Final = re.compile(r"^Mozilla/4\.\d+ (?:\[[A-Za-z-]+\] )?\([^()]*\)$")
_BRAND: Final = re.compile(r'\s*"([^"]*)"')


def detect(user_agent: str | None, client_hints: str | None = None) -> str | None:
    """The catalogue id of the visitor's browser, or ``None`` when it is not clearly one of them.

    ``user_agent`` is the ``User-Agent`` header; ``client_hints`` the ``Sec-CH-UA`` header, if
    any, which only serves to recognise Brave (see below). Decisions:

    - **Brave** sends Chrome's User-Agent, word for word, so it cannot be told from Chrome by
      the User-Agent alone. It is detected only when something says "Brave": a ``Brave/`` token
      (some builds) or a ``"Brave"`` brand in ``Sec-CH-UA``, which Chromium browsers send on
      HTTPS requests. Otherwise Brave on a desktop is reported as ``chrome``. The ``brave``
      entry describes the desktop browser, so Brave on Android is ``None``.
    - **iOS and iPadOS**: every browser there runs on Apple's WebKit, but each app keeps its own
      cookies and settings, so Safari's steps would not help a Chrome, Firefox or Edge user on an
      iPhone (their ``CriOS``/``FxiOS``/``EdgiOS`` User-Agents give ``None``, as do in-app
      browsers). Only Mobile Safari is ``safari_ios``. Browsers that copy Safari's User-Agent
      exactly (Brave and DuckDuckGo on iOS) are indistinguishable from it and get ``safari_ios``.
    - **iPads** ask for desktop sites by default and then send the Mac User-Agent: they get
      ``safari_macos``; nothing in the request tells them apart.
    - **Legacy**: ``MSIE`` and ``Trident/7.0`` (IE 11) are ``internet_explorer``; ``Netscape``,
      ``Navigator`` and Communicator 4's bare ``Mozilla/4.x [en] (...)`` are ``netscape``. The
      old EdgeHTML Edge (``Edge/``) and Presto Opera (``Opera/9.80``) are ``None``: their menus
      are not the ones the ``edge`` and ``opera`` entries describe.
    - Edge (``Edg/``) and Opera (``OPR/``) on Android are ``None``: we describe only their
      desktop versions.

    Results are cached, since the same few User-Agents make up most requests.
    """
    if not user_agent or not user_agent.strip():
        return None
    # Reduce the hints to one bool before the cache: Sec-CH-UA varies by version, Brave-ness not.
    return _detect(user_agent[:_MAX_USER_AGENT], _says_brave(client_hints))


def _says_brave(client_hints: str | None) -> bool:
    # Sec-CH-UA is a structured-field list: "Chromium";v="134", "Brave";v="134", "Not:A-Brand";v="24"
    if not client_hints:
        return False
    for item in client_hints[:_MAX_CLIENT_HINTS].split(","):
        match = _BRAND.match(item)
        if match and match.group(1).strip().lower() == "brave":
            return True
    return False


@lru_cache(maxsize=2048)
def _detect(user_agent: str, brave_hint: bool) -> str | None:
    # The device domain is the slowest to resolve and tells us nothing we need.
    result = ua_parser.parser(user_agent, Domain.USER_AGENT | Domain.OS)
    family = result.user_agent.family if result.user_agent else None
    os_family = result.os.family if result.os else None

    # Legacy browsers first: their tokens are unambiguous whatever the platform says.
    if family == "IE":
        return "internet_explorer"
    if family == "Netscape" or (
        family is None
        and (
            _NETSCAPE_TOKEN.search(user_agent)
            or (_NETSCAPE_4.match(user_agent) and "compatible" not in user_agent.lower())
        )
    ):
        return "netscape"

    # Before the Chrome mappings below, which would otherwise claim Brave.
    if family == "Brave" or (brave_hint and family in _CHROMIUM_LOOKALIKES):
        return None if os_family in _MOBILE_OS else "brave"

    if os_family == "iOS":
        # "Mobile Safari UI/WKWebView" (in-app browsers) is deliberately not Mobile Safari.
        return "safari_ios" if family == "Mobile Safari" else None
    if os_family == "Android":
        return _ANDROID.get(family) if family else None

    if family == "Samsung Internet":  # its "desktop site" mode sends a Linux User-Agent
        return "samsung_internet"
    if family == "Edge":
        # ua-parser calls both Edges "Edge"; only Chromium Edge writes "Edg/".
        return "edge" if "Edg/" in user_agent else None
    if family == "Opera":
        # "Opera" covers Presto Opera 12 too; Chromium Opera (and Opera GX) write "OPR/".
        return "opera" if "OPR/" in user_agent else None
    if family == "Safari":
        # Safari for Windows (5.1, 2012) is not the Safari our steps describe.
        return "safari_macos" if os_family == "Mac OS X" else None
    return _DESKTOP.get(family) if family else None
