"""Browser instructions: how a visitor blocks or deletes cookies in their own browser (the
README's "Cookie instructions").

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
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from ..errors import ConfigurationError, ConsentkitError
from .browser_detection import detect

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
