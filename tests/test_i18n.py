"""Languages: negotiation, and catalogs that are complete and compiled."""

from __future__ import annotations

import subprocess
import sys

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from conftest import ROOT

from consentkit.ui.languages import LOCALES_DIR, negotiate, parse_accept_language, translations, ui_locales


def test_accept_language_is_read_by_quality():
    assert parse_accept_language("en;q=0.5, fr-CA, fr;q=0.9, *;q=0.1, de;q=0") == ["fr-CA", "fr", "en"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CA,fr;q=0.9", "fr"),
        ("de-DE,de;q=0.9", "en"),
        (None, "en"),
        ("", "en"),
        ("en-GB", "en"),
        ("FR", "fr"),
        ("garbage;;q=x", "en"),
    ],
)
def test_negotiation(header, expected):
    assert negotiate(header, ("en", "fr")) == expected


def test_quebec_sites_can_be_french_first():
    assert negotiate("de", ("fr", "en")) == "fr"  # the policy's default_locale comes first


def test_french_is_available_and_translates():
    assert "fr" in ui_locales()
    assert translations("fr-CA").gettext("Reject all") == "Tout refuser"
    assert translations("xx").gettext("Reject all") == "Reject all"


def test_every_catalog_translates_every_message_and_is_compiled():
    with open(LOCALES_DIR / "consentkit.pot", "rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    for locale in ui_locales()[1:]:
        po_path = LOCALES_DIR / locale / "LC_MESSAGES" / "consentkit.po"
        with open(po_path, "rb") as f:
            po = {m.id: m.string for m in read_po(f) if m.id}
        assert set(po) == template, f"{locale}: run make i18n"
        assert all(po.values()), f"{locale}: untranslated messages"
        with open(po_path.with_suffix(".mo"), "rb") as f:
            mo = {m.id: m.string for m in read_mo(f) if m.id}
        assert mo == po, f"{locale}: the .mo is older than the .po; run make i18n"


def test_the_template_lists_every_text_of_the_templates(tmp_path):
    out = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_", "-k", "gettext",
         "--no-location", "-o", str(out), "."],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    with open(out, "rb") as f:
        fresh = {m.id for m in read_po(f) if m.id}
    with open(LOCALES_DIR / "consentkit.pot", "rb") as f:
        committed = {m.id for m in read_po(f) if m.id}
    assert fresh == committed, "texts changed: run make i18n and translate"
