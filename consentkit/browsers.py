"""Browser instructions: how a visitor blocks or deletes cookies in their own browser (DESIGN §6).

The steps are data, in ``consentkit/data/browsers.toml``; this module loads and validates that
file once (:func:`catalogue`, :func:`get`) and guesses which entry fits a visitor from the
``User-Agent`` header (:func:`detect`), so the page can show that browser first::

    browsers = catalogue(first=detect(request.headers.get("user-agent"),
                                      request.headers.get("sec-ch-ua")))
    for browser in browsers:
        text = browser.text("fr")
        ...  # text.name, text.block_all, text.block_third_party, text.delete, browser.help_url

Detection is a convenience, never a decision: a wrong guess only changes which instructions come
first, so when the User-Agent does not clearly name a browser we have steps for, the answer is
``None`` rather than the closest match.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import ua_parser
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)
from ua_parser import Domain

from .errors import ConfigurationError, ConsentkitError

__all__ = [
    "ACTIONS",
    "Browser",
    "BrowserCatalogueError",
    "BrowserText",
    "UnknownBrowserError",
    "catalogue",
    "detect",
    "get",
    "load_catalogue",
]

Action = Literal["block_all", "block_third_party", "delete"]
#: The three things the catalogue explains, in the order a page shows them.
ACTIONS: Final[tuple[Action, ...]] = ("block_all", "block_third_party", "delete")
Platform = Literal["windows", "macos", "linux", "chromeos", "android", "ios", "ipados"]

BROWSER_ID_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
LANGUAGE_PATTERN: Final = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
# A step is read on a phone next to the setting it names: one sentence, not a paragraph.
MAX_STEP_LENGTH: Final = 300
_BROWSER_KEYS: Final = frozenset({"platforms", "legacy", "help_url"})
_PACKAGED_SOURCE: Final = "consentkit/data/browsers.toml"


class BrowserCatalogueError(ConfigurationError):
    """The browser catalogue is invalid.

    ``source`` names the file; ``problems`` lists ``(key, message)`` pairs, each key naming the
    browser, e.g. ``browsers.chrome.fr.delete``.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {key}: {message}" for key, message in problems]
        super().__init__("invalid browser catalogue\n  " + "\n  ".join(lines))


class UnknownBrowserError(ConsentkitError, KeyError):
    """A browser id that the catalogue does not contain was asked for."""

    def __init__(self, browser_id: str, known: list[str]) -> None:
        self.browser_id = browser_id
        super().__init__(browser_id)
        self._message = f"unknown browser {browser_id!r}: the catalogue has {', '.join(known)}"

    def __str__(self) -> str:
        # KeyError's own __str__ would show only the repr of the id.
        return self._message


def _check_step(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    if len(value) > MAX_STEP_LENGTH:
        raise ValueError(f"is {len(value)} characters long; keep a step under {MAX_STEP_LENGTH}")
    return value


def _check_url(value: str) -> str:
    # Visitors follow these links from a privacy page: never send them over plain http.
    if not re.match(r"^https://[^\s/]+\.[^\s/]+(?:/\S*)?$", value):
        raise ValueError("must be an https:// address")
    return value


Step = Annotated[StrictStr, AfterValidator(_check_step)]
HttpsUrl = Annotated[StrictStr, AfterValidator(_check_url)]


class BrowserText(BaseModel):
    """A browser's name and its three step lists in one language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Step
    block_all: tuple[Step, ...] = Field(min_length=1)
    block_third_party: tuple[Step, ...] = Field(min_length=1)
    delete: tuple[Step, ...] = Field(min_length=1)

    def steps(self, action: Action) -> tuple[str, ...]:
        """The steps for one of :data:`ACTIONS`."""
        steps: tuple[str, ...] = getattr(self, action)
        return steps


class Browser(BaseModel):
    """One browser of the catalogue: where it runs, its vendor's help page and its texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[StrictStr, Field(pattern=BROWSER_ID_PATTERN.pattern)]
    legacy: StrictBool = False
    platforms: tuple[Platform, ...] = Field(min_length=1)
    help_url: HttpsUrl | None = None
    texts: Mapping[StrictStr, BrowserText]

    def text(self, language: str) -> BrowserText:
        """The texts in ``language`` (``fr-CA`` finds ``fr``), else in English."""
        return (
            self.texts.get(language)
            or self.texts.get(language.split("-")[0].split("_")[0].lower())
            or self.texts["en"]
        )


# -- loading ----------------------------------------------------------------------------------


def load_catalogue(path: str | Path) -> tuple[Browser, ...]:
    """Load and validate a catalogue file (the packaged one is :func:`catalogue`).

    Raise :class:`BrowserCatalogueError` listing every problem, each naming the browser and key.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BrowserCatalogueError(source, [("file", f"cannot be read: {exc.strerror or exc}")]) from None
    return _parse(raw, source)


def _parse(raw: bytes, source: str) -> tuple[Browser, ...]:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BrowserCatalogueError(source, [("file", "is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise BrowserCatalogueError(source, [("file", f"is not valid TOML: {exc}")]) from None

    problems: list[tuple[str, str]] = []
    for key in data.keys() - {"languages", "browsers"}:
        problems.append((key, "unknown key (check the spelling)"))
    languages = _languages(data.get("languages"), problems)

    tables = data.get("browsers")
    if not isinstance(tables, dict) or not tables:
        problems.append(("browsers", "must hold at least one [browsers.<id>] table"))
        raise BrowserCatalogueError(source, problems)

    browsers: list[Browser] = []
    for browser_id, table in tables.items():
        prefix = f"browsers.{browser_id}"
        if not BROWSER_ID_PATTERN.match(browser_id):
            problems.append((prefix, "the id must be lower case letters, digits and '_' (at most 32)"))
            continue
        if not isinstance(table, dict):
            problems.append((prefix, "must be a table ([browsers.<id>])"))
            continue
        # Language tables sit next to the browser's own keys, so sort them apart here: pydantic
        # then sees one regular shape, and a typo like `legasy` is not mistaken for a language.
        fields: dict[str, Any] = {"id": browser_id}
        texts: dict[str, Any] = {}
        for key, value in table.items():
            if key in _BROWSER_KEYS:
                fields[key] = value
            elif isinstance(value, dict) and LANGUAGE_PATTERN.match(key):
                if key in languages:
                    texts[key] = value
                else:
                    problems.append((f"{prefix}.{key}", "this language is not listed in `languages`"))
            else:
                problems.append((f"{prefix}.{key}", "unknown key (check the spelling)"))
        for language in languages:
            if language not in texts:
                problems.append(
                    (f"{prefix}.{language}", f"missing: every browser needs its texts in {language!r}")
                )
        fields["texts"] = texts
        try:
            browsers.append(Browser.model_validate(fields))
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, prefix))

    if problems:
        raise BrowserCatalogueError(source, problems)
    return tuple(browsers)


def _languages(value: object, problems: list[tuple[str, str]]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(("languages", 'must be a list of language tags, e.g. ["en", "fr"]'))
        return ()
    languages = tuple(value)
    for language in languages:
        if not LANGUAGE_PATTERN.match(language):
            problems.append(("languages", f"{language!r} is not a language tag like 'en' or 'pt-BR'"))
    if len(set(languages)) != len(languages):
        problems.append(("languages", "lists a language twice"))
    if "en" not in languages:
        # Browser.text() falls back to English, so every entry must have it.
        problems.append(("languages", "must include 'en', the fallback language"))
    return languages


def _pydantic_problems(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    errors = exc.errors()
    problems = []
    for err in errors:
        loc = err["loc"]
        # A list whose only item is invalid is also reported as too short; the item's own
        # error is the useful one.
        if err["type"] == "too_short" and any(
            other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
        ):
            continue
        # ("texts", "fr", "delete", 2) is written [browsers.<id>.fr] delete = [..., <2>] in the file.
        parts = [part for i, part in enumerate(loc) if not (i == 0 and part == "texts")]
        key = prefix + "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in parts)
        problems.append((key, _message(err)))
    return problems


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling)"
    if kind == "missing":
        return "required key is missing"
    if kind == "too_short" and err["loc"][-1] in ACTIONS:
        return "must not be empty: if the browser cannot do this, write a step that says so"
    if kind == "too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


@cache
def _packaged() -> tuple[Browser, ...]:
    # Read through importlib.resources so that it works from a wheel or a zip as well as a checkout.
    resource = files("consentkit").joinpath("data", "browsers.toml")
    return _parse(resource.read_bytes(), _PACKAGED_SOURCE)


@cache
def _by_id() -> dict[str, Browser]:
    return {browser.id: browser for browser in _packaged()}


def catalogue(first: str | None = None) -> tuple[Browser, ...]:
    """Every browser of the packaged catalogue, in display order (legacy ones last).

    ``first`` (typically ``detect(...)``) moves that browser to the front; ``None`` leaves the
    order alone. The catalogue is loaded and validated on first use, then kept.
    """
    browsers = _packaged()
    if first is None:
        return browsers
    chosen = get(first)
    return (chosen, *(browser for browser in browsers if browser.id != first))


def get(browser_id: str) -> Browser:
    """The packaged catalogue's entry for ``browser_id``; :class:`UnknownBrowserError` if none."""
    try:
        return _by_id()[browser_id]
    except KeyError:
        raise UnknownBrowserError(browser_id, list(_by_id())) from None


# -- detection --------------------------------------------------------------------------------

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
