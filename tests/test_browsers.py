"""The browser instructions catalogue (the README's "Cookie instructions"): its data, its validation and UA detection."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

from consentkit import ConfigurationError, ConsentkitError
from consentkit.ui.browsers import (
    ACTIONS,
    BrowserCatalogueError,
    UnknownBrowserError,
    catalogue,
    detect,
    get,
    load_catalogue,
)

DISPLAY_ORDER = [
    "chrome",
    "firefox",
    "safari_macos",
    "edge",
    "opera",
    "brave",
    "safari_ios",
    "chrome_android",
    "firefox_android",
    "samsung_internet",
    "internet_explorer",
    "netscape",
]
LANGUAGES = ["en", "fr"]

# -- the packaged catalogue -------------------------------------------------------------------


def test_catalogue_loads_in_display_order() -> None:
    assert [b.id for b in catalogue()] == DISPLAY_ORDER


def test_ids_are_unique() -> None:
    ids = [b.id for b in catalogue()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("browser_id", DISPLAY_ORDER)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_browser_has_a_name_and_three_step_lists(browser_id: str, language: str) -> None:
    text = get(browser_id).texts[language]
    assert text.name.strip()
    for action in ACTIONS:
        steps = text.steps(action)
        assert steps, f"{browser_id}.{language}.{action} is empty"
        assert all(step.strip() for step in steps)


@pytest.mark.parametrize("browser_id", DISPLAY_ORDER)
def test_french_is_a_translation_not_a_copy(browser_id: str) -> None:
    browser = get(browser_id)
    for action in ACTIONS:
        en, fr = browser.texts["en"].steps(action), browser.texts["fr"].steps(action)
        assert len(en) == len(fr), f"{browser_id}.{action}: {len(en)} steps in en, {len(fr)} in fr"
        assert set(en).isdisjoint(fr)


def test_only_internet_explorer_and_netscape_are_legacy_and_they_come_last() -> None:
    assert [b.id for b in catalogue() if b.legacy] == ["internet_explorer", "netscape"]
    assert [b.legacy for b in catalogue()][-2:] == [True, True]


def test_help_urls_are_https_vendor_pages() -> None:
    vendors = (
        "support.google.com",
        "support.mozilla.org",
        "support.apple.com",
        "support.microsoft.com",
        "help.opera.com",
        "support.brave.com",
    )
    for browser in catalogue():
        if browser.help_url is not None:
            assert browser.help_url.startswith("https://")
            assert browser.help_url.split("/")[2] in vendors, browser.id


def test_mobile_entries_name_their_platform() -> None:
    assert get("safari_ios").platforms == ("ios", "ipados")
    assert get("safari_macos").platforms == ("macos",)
    for browser_id in ("chrome_android", "firefox_android", "samsung_internet"):
        assert get(browser_id).platforms == ("android",)


def test_safari_says_it_already_blocks_third_party_cookies() -> None:
    for browser_id in ("safari_macos", "safari_ios"):
        assert "by default" in get(browser_id).text("en").block_third_party[0]
        assert "par défaut" in get(browser_id).text("fr").block_third_party[0]


def test_text_falls_back_from_region_to_language_to_english() -> None:
    chrome = get("chrome_android")
    assert chrome.text("fr-CA") is chrome.texts["fr"]
    assert chrome.text("de") is chrome.texts["en"]


def test_catalogue_can_put_the_detected_browser_first() -> None:
    browsers = catalogue(first="firefox_android")
    assert browsers[0].id == "firefox_android"
    assert sorted(b.id for b in browsers) == sorted(DISPLAY_ORDER)
    assert catalogue(first=None) == catalogue()


def test_unknown_browser_id_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownBrowserError) as info:
        get("lynx")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ConsentkitError)
    assert "'lynx'" in str(info.value) and "netscape" in str(info.value)
    with pytest.raises(UnknownBrowserError):
        catalogue(first="lynx")


def test_pyproject_ships_the_data_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*" in pyproject["tool"]["setuptools"]["package-data"]["consentkit"]
    assert (ROOT / "consentkit" / "data" / "browsers.toml").is_file()


# -- a broken catalogue says which browser and key ---------------------------------------------

MINIMAL = """
languages = ["en", "fr"]

[browsers.lynx]
platforms = ["linux"]
help_url = "https://lynx.invisible-island.net/"

[browsers.lynx.en]
name = "Lynx"
block_all = ["Press O, then set cookies to reject."]
block_third_party = ["Lynx cannot tell third-party cookies apart."]
delete = ["Press Ctrl+K."]

[browsers.lynx.fr]
name = "Lynx"
block_all = ["Appuyez sur O et refusez les cookies."]
block_third_party = ["Lynx ne distingue pas les cookies tiers."]
delete = ["Appuyez sur Ctrl+K."]
"""


def broken(tmp_path: Path, old: str, new: str) -> BrowserCatalogueError:
    assert MINIMAL.count(old) == 1, f"MINIMAL no longer contains {old!r} exactly once"
    path = tmp_path / "browsers.toml"
    path.write_text(MINIMAL.replace(old, new), encoding="utf-8")
    with pytest.raises(BrowserCatalogueError) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)
    return info.value


def keys(err: BrowserCatalogueError) -> list[str]:
    return [key for key, _ in err.problems]


def test_minimal_catalogue_loads(tmp_path: Path) -> None:
    path = tmp_path / "browsers.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    (lynx,) = load_catalogue(path)
    assert lynx.id == "lynx" and not lynx.legacy
    assert lynx.text("fr").delete == ("Appuyez sur Ctrl+K.",)


def test_empty_step_list_names_browser_language_and_action(tmp_path: Path) -> None:
    err = broken(tmp_path, 'delete = ["Appuyez sur Ctrl+K."]', "delete = []")
    assert keys(err) == ["browsers.lynx.fr.delete"]
    assert "write a step that says so" in err.problems[0][1]
    assert isinstance(err, ConfigurationError)


def test_missing_language_is_reported(tmp_path: Path) -> None:
    err = broken(tmp_path, "[browsers.lynx.fr]", "[browsers.lynx.de]")
    assert keys(err) == ["browsers.lynx.de", "browsers.lynx.fr"]


def test_missing_step_list_and_blank_step(tmp_path: Path) -> None:
    err = broken(tmp_path, 'block_all = ["Press O, then set cookies to reject."]\n', 'block_all = ["  "]\n')
    assert keys(err) == ["browsers.lynx.en.block_all[0]"]
    err = broken(tmp_path, 'delete = ["Press Ctrl+K."]\n', "")
    assert keys(err) == ["browsers.lynx.en.delete"]
    assert err.problems[0][1] == "required key is missing"


def test_misspelt_key_is_not_mistaken_for_a_language(tmp_path: Path) -> None:
    err = broken(tmp_path, 'platforms = ["linux"]', 'platforms = ["linux"]\nlegasy = true')
    assert err.problems == [("browsers.lynx.legasy", "unknown key (check the spelling)")]


def test_bad_platform_url_and_id(tmp_path: Path) -> None:
    assert keys(broken(tmp_path, '["linux"]', '["amiga"]')) == ["browsers.lynx.platforms[0]"]
    err = broken(tmp_path, "https://lynx", "http://lynx")
    assert err.problems == [("browsers.lynx.help_url", "must be an https:// address")]
    err = broken(tmp_path, "[browsers.lynx]\n", '[browsers."Lynx 2"]\n')
    assert "browsers.Lynx 2" in keys(err)


def test_languages_must_include_english(tmp_path: Path) -> None:
    err = broken(tmp_path, 'languages = ["en", "fr"]', 'languages = ["fr"]')
    assert ("languages", "must include 'en', the fallback language") in err.problems


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    err = broken(tmp_path, 'help_url = "https://lynx.invisible-island.net/"', "help_url = ")
    assert keys(err) == ["file"]
    with pytest.raises(BrowserCatalogueError, match="cannot be read"):
        load_catalogue(tmp_path / "nowhere.toml")


# -- detection --------------------------------------------------------------------------------

# (what, User-Agent, expected catalogue id). Real strings, as browsers send them.
USER_AGENTS = [
    # Desktop, current
    ("Chrome 134, Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "chrome"),
    ("Chrome, macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "chrome"),
    ("Chrome, Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "chrome"),
    ("Chrome, ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "chrome"),
    ("Chromium, Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chromium/134.0.0.0 Chrome/134.0.0.0 Safari/537.36", "chrome"),
    ("Firefox 136, Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:136.0) Gecko/20100101 Firefox/136.0", "firefox"),
    ("Firefox, macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:136.0) Gecko/20100101 Firefox/136.0", "firefox"),
    ("Firefox, Ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:136.0) Gecko/20100101 Firefox/136.0", "firefox"),
    ("Safari 18, macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Safari/605.1.15", "safari_macos"),
    ("Safari 26, macOS (or an iPad asking for desktop sites)", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Safari/605.1.15", "safari_macos"),
    ("Edge 134, Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36 Edg/134.0.0.0", "edge"),
    ("Edge, macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36 Edg/134.0.3124.85", "edge"),
    ("Opera 118, Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36 OPR/118.0.0.0", "opera"),
    ("Opera GX", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Safari/537.36 OPR/117.0.0.0 (Edition GX-CN)", "opera"),
    ("Brave build that says so", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36 Brave/134", "brave"),
    # iPhone and iPad
    ("Safari, iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1", "safari_ios"),
    ("Safari, iPad (mobile site)", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1", "safari_ios"),
    ("Chrome, iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/134.0.6998.99 Mobile/15E148 Safari/604.1", None),
    ("Firefox, iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/136.0 Mobile/15E148 Safari/605.1.15", None),
    ("Edge, iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/134.0 Mobile/15E148 Safari/605.1.15", None),
    ("in-app browser, iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", None),
    # Android
    ("Chrome, Android phone", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Mobile Safari/537.36", "chrome_android"),
    ("Chrome, Android tablet", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "chrome_android"),
    ("Firefox, Android phone", "Mozilla/5.0 (Android 14; Mobile; rv:136.0) Gecko/136.0 Firefox/136.0", "firefox_android"),
    ("Firefox, Android tablet", "Mozilla/5.0 (Android 14; Tablet; rv:136.0) Gecko/136.0 Firefox/136.0", "firefox_android"),
    ("Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36", "samsung_internet"),
    ("Samsung Internet, desktop-site mode", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Safari/537.36", "samsung_internet"),
    ("Android WebView", "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/134.0.0.0 Mobile Safari/537.36", None),
    ("Facebook in-app, Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/134.0.0.0 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/450.0.0.0;]", None),
    ("Edge, Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Mobile Safari/537.36 EdgA/134.0.0.0", None),
    ("Opera, Android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Mobile Safari/537.36 OPR/87.0.0.0", None),
    # Legacy
    ("IE 11", "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko", "internet_explorer"),
    ("IE 11, compatibility view", "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0)", "internet_explorer"),
    ("IE 8", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)", "internet_explorer"),
    ("IE 6", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", "internet_explorer"),
    ("IE Mobile, Windows Phone", "Mozilla/5.0 (Windows Phone 8.1; ARM; Trident/7.0; Touch; rv:11.0; IEMobile/11.0; NOKIA; Lumia 930) like Gecko", None),
    ("EdgeHTML Edge 18", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19042", None),
    ("Presto Opera 12", "Opera/9.80 (Windows NT 6.1; U; en) Presto/2.10.229 Version/11.62", None),
    ("Safari 5 for Windows", "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US) AppleWebKit/533.20.25 (KHTML, like Gecko) Version/5.0.4 Safari/533.20.27", None),
    ("Netscape Navigator 9", "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.8.1.12) Gecko/20080219 Firefox/2.0.0.12 Navigator/9.0.0.6", "netscape"),
    ("Netscape 8", "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.7.5) Gecko/20050519 Netscape/8.0.1", "netscape"),
    ("Netscape 7.1", "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.4) Gecko/20030624 Netscape/7.1 (ax)", "netscape"),
    ("Netscape 6.2", "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:0.9.4) Gecko/20011128 Netscape6/6.2.1", "netscape"),
    ("Netscape Communicator 4.79", "Mozilla/4.79 [en] (Windows NT 5.0; U)", "netscape"),
    ("Netscape Navigator 4.08", "Mozilla/4.08 [en] (Win98; I ;Nav)", "netscape"),
    ("Netscape 4.76, Linux", "Mozilla/4.76 [en] (X11; U; Linux 2.4.2 i686)", "netscape"),
    # Not a browser we have steps for
    ("Vivaldi", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Vivaldi/6.4", None),
    ("HeadlessChrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/134.0.0.0 Safari/537.36", None),
    ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None),
    ("Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.6998.165 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None),
    ("curl", "curl/8.5.0", None),
    ("garbage", "garbage", None),
    ("binary junk", "\x00\xff<script>alert(1)</script>", None),
    ("empty", "", None),
    ("blank", "   ", None),
]  # fmt: skip
UA = {what: user_agent for what, user_agent, _ in USER_AGENTS}


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [(ua, expected) for _, ua, expected in USER_AGENTS],
    ids=[w for w, _, _ in USER_AGENTS],
)
def test_detect(user_agent: str, expected: str | None) -> None:
    assert detect(user_agent) == expected


def test_detect_none() -> None:
    assert detect(None) is None
    assert detect(None, '"Brave";v="134"') is None


def test_detect_only_answers_catalogue_ids() -> None:
    ids = {b.id for b in catalogue()}
    assert {expected for _, _, expected in USER_AGENTS} - {None} == ids


def test_detect_survives_a_huge_header() -> None:
    assert detect("Mozilla/5.0 " + "x" * 100_000) is None
    assert detect(UA["Chrome 134, Windows"] + " " + "x" * 100_000) == "chrome"


BRAVE_HINTS = '"Chromium";v="134", "Brave";v="134", "Not:A-Brand";v="24"'
CHROME_HINTS = '"Chromium";v="134", "Google Chrome";v="134", "Not:A-Brand";v="24"'


@pytest.mark.parametrize(
    ("what", "hints", "expected"),
    [
        ("Chrome 134, Windows", BRAVE_HINTS, "brave"),  # Brave on a desktop: only the hint tells
        ("Chrome 134, Windows", ' "Brave" ; v="134"', "brave"),
        ("Chrome 134, Windows", CHROME_HINTS, "chrome"),
        ("Chrome 134, Windows", None, "chrome"),  # Brave without the hint is indistinguishable
        ("Chrome 134, Windows", "not a structured header", "chrome"),
        ("Chrome 134, Windows", '"Braveheart";v="1"', "chrome"),
        ("Chrome, Android phone", BRAVE_HINTS, None),  # Brave on Android: no entry describes it
        ("Edge 134, Windows", '"Microsoft Edge";v="134", "Chromium";v="134"', "edge"),
        ("Firefox 136, Windows", BRAVE_HINTS, "firefox"),  # a hint cannot make Firefox Brave
    ],
)
def test_detect_brave_from_client_hints(what: str, hints: str | None, expected: str | None) -> None:
    assert detect(UA[what], hints) == expected


def test_detected_browser_can_be_shown_first() -> None:
    ua = "Mozilla/5.0 (Android 14; Mobile; rv:136.0) Gecko/136.0 Firefox/136.0"
    assert catalogue(first=detect(ua))[0].id == "firefox_android"
