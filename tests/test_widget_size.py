"""The browser widget (widget/) stays small and CSP-friendly.

Size: the three files a page loads, as shipped (consentkit.js is the minified build of
widget/src/consentkit.js, see test_widget_build.py) and gzipped at level 9 as the server serves
them, must stay at or under 6 KB together (vanilla-cookieconsent 3.1 is 15.5 KB; we aim for
5 KB). Safety: no inline event handlers, no string-evaluated code and no inline styles, so a
strict Content Security Policy (`script-src 'nonce-…'; style-src 'self'`) needs no exception for
the widget.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

WIDGET = Path(__file__).resolve().parent.parent / "widget"
FILES = ("consentkit.js", "consentkit.css", "consent-mode.js")
# The readable source of consentkit.js; `make widget` builds the shipped file from it.
SOURCE = "src/consentkit.js"
BUDGET = 6 * 1024
AIM = 5 * 1024

# DOM event handler names, as attributes (onclick="…") or properties (el.onclick = …).
HANDLER = re.compile(
    r"\bon(?:abort|blur|cancel|change|click|close|dblclick|error|focus\w*|input|key\w+|load\w*|"
    r"mouse\w+|pointer\w+|reset|submit|toggle|touch\w+|beforeunload|unload|animation\w+|"
    r"transition\w+|message|storage|popstate|hashchange|scroll|resize)\s*=",
    re.IGNORECASE,
)


def gz_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def test_widget_fits_the_gzip_budget(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = {name: (len((WIDGET / name).read_bytes()), gz_size(WIDGET / name)) for name in FILES}
    total = sum(gz for _, gz in sizes.values())
    report = ", ".join(f"{n} {raw} B raw / {gz} B gz" for n, (raw, gz) in sizes.items())
    with capsys.disabled():
        print(f"\nwidget sizes: {report}; total {total} B gzipped (budget {BUDGET}, aim {AIM})")
    assert total <= BUDGET, f"widget is {total} B gzipped, over the {BUDGET} B budget: {report}"


@pytest.mark.parametrize("name", ["consentkit.js", SOURCE])
def test_widget_files_are_the_real_widget(name: str) -> None:
    js = (WIDGET / name).read_text("utf-8")
    css = (WIDGET / "consentkit.css").read_text("utf-8")
    mode = (WIDGET / "consent-mode.js").read_text("utf-8")
    # The shipped file is minified: `window.consentkit={`.
    assert '"use strict"' in js and re.search(r"\.consentkit\s*=\s*\{", js)
    for needed in ("data-ck-form", "showModal", 'script[type="text/plain"][data-consent]', "/banner"):
        assert needed in js, f"{name} does not handle {needed}"
    for prop in ("--ck-bg", "--ck-fg", "--ck-accent", "--ck-radius", "--ck-font", "--ck-z", "--ck-focus"):
        assert f"{prop}:" in css, f"consentkit.css does not define {prop}"
    assert "prefers-reduced-motion" in css and "prefers-color-scheme:dark" in css
    assert "currentScript" in mode and '"default"' in mode


@pytest.mark.parametrize("name", [*FILES, SOURCE])
def test_no_inline_handlers_eval_or_inline_styles(name: str) -> None:
    text = (WIDGET / name).read_text("utf-8")
    assert not HANDLER.search(text), f"{name} uses an inline event handler: {HANDLER.search(text)}"
    for pattern in (
        r"\beval\s*\(",
        r"\bnew\s+Function\b",
        r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]",
        r"javascript:",
        r"\bexpression\s*\(",
        # CSSOM (element.style.setProperty) is allowed by CSP; writing the style attribute is not.
        r"\.style\s*=",
        r"\.style\.cssText",
        r"""setAttribute\(\s*["'](?:style|on)""",
        r"""\sstyle\s*=\s*["']""",
        r"document\.write",
    ):
        found = re.search(pattern, text)
        assert not found, f"{name} contains {found.group(0)!r}, which a strict CSP would refuse"


def test_css_loads_nothing_else() -> None:
    # No url() or @import: the stylesheet needs no img-src/font-src exception and fetches nothing.
    css = (WIDGET / "consentkit.css").read_text("utf-8")
    assert "url(" not in css and "@import" not in css


# What ships: esbuild (--target=es2019) lowers anything newer in the source.
@pytest.mark.parametrize("name", ["consentkit.js", "consent-mode.js"])
def test_js_keeps_to_es2019_syntax(name: str) -> None:
    text = (WIDGET / name).read_text("utf-8")
    assert "?." not in text and "??" not in text, f"{name} uses ES2020 syntax (?. or ??)"


NODE = shutil.which("node")

# Runs consent-mode.js in a bare context whose document.currentScript has the given attributes.
NODE_RUNNER = r"""
const vm = require("vm"), fs = require("fs");
const code = fs.readFileSync(process.argv[1], "utf8");
const cases = JSON.parse(process.argv[2]);
const out = cases.map(([attrs, ownGtag]) => {
  const ctx = {document: {currentScript: {
    getAttribute: (n) => (n in attrs ? attrs[n] : null), hasAttribute: (n) => n in attrs}}};
  ctx.window = ctx;
  if (ownGtag) { ctx.dataLayer = [["site"]]; ctx.gtag = function () { ctx.dataLayer.push(["own", ...arguments]); }; }
  vm.createContext(ctx);
  vm.runInContext(code, ctx);
  return ctx.dataLayer.map((a) => Array.from(a));
});
console.log(JSON.stringify(out));
"""


def run_consent_mode(cases: list[Any]) -> list[Any]:
    """What consent-mode.js pushes for each case (its script attributes, a gtag of the site's own)."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", NODE_RUNNER, str(WIDGET / "consent-mode.js"), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: list[Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_consent_mode_default_then_update() -> None:
    default = {"ad_storage": "denied", "analytics_storage": "denied"}
    update = {"ad_storage": "denied", "analytics_storage": "granted"}
    cases = [
        [{"data-default": json.dumps(default), "data-wait": "500"}, False],
        [{"data-default": json.dumps(default), "data-wait": "500", "data-update": json.dumps(update)}, False],
        [{"data-default": json.dumps(default), "data-update": json.dumps(update)}, True],
    ]
    undecided, decided, site_gtag = run_consent_mode(cases)
    assert undecided == [["consent", "default", {**default, "wait_for_update": 500}]]
    assert decided == [
        ["consent", "default", {**default, "wait_for_update": 500}],
        ["consent", "update", update],
    ]
    # A gtag the site defined first is used, and the existing dataLayer is kept.
    assert site_gtag == [
        ["site"],
        ["own", "consent", "default", default],
        ["own", "consent", "update", update],
    ]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("name", ["consentkit.js", "consent-mode.js", SOURCE])
def test_js_parses(name: str) -> None:
    done = subprocess.run([NODE, "--check", str(WIDGET / name)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_consent_mode_defaults_per_region_then_the_general_one() -> None:
    us = {"ad_storage": "granted", "region": ["US"]}
    general = {"ad_storage": "denied"}
    cases = [[{"data-default": json.dumps([us, general]), "data-wait": "500"}, False]]
    (pushed,) = run_consent_mode(cases)
    assert pushed == [
        ["consent", "default", {**us, "wait_for_update": 500}],
        ["consent", "default", {**general, "wait_for_update": 500}],
    ]
