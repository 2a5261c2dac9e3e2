"""The policy file: loading, every validation rule, the digest, cookie ownership and locales."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_POLICY, ROOT

from consentkit import ConfigurationError, Policy, PolicyError, Purpose, UnknownPurposeError

EXAMPLE_TEXT = EXAMPLE_POLICY.read_text(encoding="utf-8")


def write_policy(tmp_path: Path, text: str, name: str = "consent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(*replacements: tuple[str, str]) -> str:
    """The example policy with each ``(old, new)`` replaced once (``old`` must be there)."""
    text = EXAMPLE_TEXT
    for old, new in replacements:
        assert text.count(old) == 1, f"the example policy no longer contains {old!r} exactly once"
        text = text.replace(old, new)
    return text


def load_error(tmp_path: Path, text: str) -> tuple[Path, PolicyError]:
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(path)
    return path, info.value


def problem_line(path: Path, err: PolicyError, key: str) -> str:
    """The line of the error message about ``key``: ``<file>: <key>: <problem>``."""
    prefix = f"{path}: {key}: "
    lines = [line.strip() for line in str(err).splitlines() if line.strip().startswith(prefix)]
    assert lines, f"no problem reported for {key!r} in:\n{err}"
    return lines[0]


# -- the example loads -------------------------------------------------------------------------


def test_example_policy_loads_with_its_purposes():
    p = Policy.from_toml(EXAMPLE_POLICY)
    assert p.controller == "Example Telecom Inc."
    assert p.ids == ("necessary", "analytics", "ads")
    assert p.essential_ids == frozenset({"necessary"})
    assert p.optional_ids == ("analytics", "ads")
    assert p.gpc_ids == frozenset({"ads"})
    assert p.purpose("ads").consent_mode == ("ad_storage", "ad_user_data", "ad_personalization")
    assert p.consent_lifetime_days == 180
    assert p.default_locale == "en"


def test_from_toml_accepts_str_and_path():
    assert Policy.from_toml(str(EXAMPLE_POLICY)) == Policy.from_toml(EXAMPLE_POLICY)


def test_defaults_apply_when_optional_keys_are_left_out(tmp_path):
    text = edited(
        ("consent_lifetime_days = 180\n", ""),
        ('default_locale = "en"\n', ""),
    )
    p = Policy.from_toml(write_policy(tmp_path, text))
    assert p.consent_lifetime_days == 180
    assert p.default_locale == "en"
    assert p.purpose("analytics").essential is False
    assert p.purpose("necessary").opt_out_signals == ()


def test_purpose_lookup_of_unknown_id_raises_with_known_ids(policy):
    with pytest.raises(UnknownPurposeError) as info:
        policy.purpose("analitycs")
    message = str(info.value)
    assert "analitycs" in message
    for pid in ("necessary", "analytics", "ads"):
        assert pid in message
    with pytest.raises(UnknownPurposeError):
        policy.check_ids(["analytics", "nope"])
    policy.check_ids(["analytics", "ads"])  # declared ids pass


# -- every validation rule: the file, the key and the problem ---------------------------------

INVALID = [
    pytest.param(
        [("consent_lifetime_days = 180", "consent_lifetime_days = 400")],
        "policy.consent_lifetime_days",
        ["395", "400"],
        id="lifetime-over-13-months",
    ),
    pytest.param(
        [("consent_lifetime_days = 180", "consent_lifetime_days = 396")],
        "policy.consent_lifetime_days",
        ["395", "396"],
        id="lifetime-one-day-over",
    ),
    pytest.param(
        [("consent_lifetime_days = 180", "consent_lifetime_days = 0")],
        "policy.consent_lifetime_days",
        ["1", "395", "0"],
        id="lifetime-zero",
    ),
    pytest.param(
        [("consent_lifetime_days = 180", "consent_lifetime_days = -30")],
        "policy.consent_lifetime_days",
        ["-30"],
        id="lifetime-negative",
    ),
    pytest.param(
        [('id = "ads"', 'id = "analytics"')],
        "purposes[2] (id='analytics').id",
        ["duplicate", "purposes[1]"],
        id="duplicate-id",
    ),
    pytest.param(
        [('id = "ads"', 'id = "Ads-Targeting"')],
        "purposes[2].id",
        ["'Ads-Targeting'", "a-z"],
        id="id-pattern-upper-and-dash",
    ),
    pytest.param(
        [('id = "ads"', 'id = "' + "a" * 33 + '"')],
        "purposes[2].id",
        ["a" * 33, "32"],
        id="id-too-long",
    ),
    pytest.param(
        [('id = "ads"', 'id = ""')],
        "purposes[2].id",
        ["''"],
        id="id-empty",
    ),
    pytest.param(
        [
            (
                'cookies = ["session", "csrftoken"]',
                'cookies = ["session", "csrftoken"]\nopt_out_signals = ["gpc"]',
            )
        ],
        "purposes[0] (id='necessary').opt_out_signals",
        ["essential"],
        id="essential-with-opt-out-signal",
    ),
    pytest.param(
        [
            (
                'title = { en = "Analytics", fr = "Mesure d\'audience" }',
                'title = { fr = "Mesure d\'audience" }',
            )
        ],
        "purposes[1] (id='analytics').title",
        ["default locale", "'en'"],
        id="missing-default-locale-title",
    ),
    pytest.param(
        [
            (
                'description = { en = "Ads chosen from what you did on this and other sites.", ',
                'description = { en = "   ", ',
            )
        ],
        "purposes[2] (id='ads').description",
        ["default locale", "'en'"],
        id="blank-default-locale-description",
    ),
    pytest.param(
        [('default_locale = "en"', 'default_locale = "de"')],
        "purposes[0] (id='necessary').title",
        ["'de'"],
        id="default-locale-without-texts",
    ),
    pytest.param(
        [('consent_mode = ["analytics_storage"]', 'consent_mode = ["analytics_storag"]')],
        "purposes[1] (id='analytics').consent_mode",
        ["'analytics_storag'", "analytics_storage"],
        id="unknown-consent-mode-type",
    ),
    pytest.param(
        [('opt_out_signals = ["gpc"]', 'opt_out_signals = ["dnt"]')],
        "purposes[2] (id='ads').opt_out_signals",
        ["'dnt'", "gpc"],
        id="unknown-signal",
    ),
    pytest.param(
        [('consent_mode = ["analytics_storage"]', 'consent_mod = ["analytics_storage"]')],
        "purposes[1] (id='analytics').consent_mod",
        ["unknown key"],
        id="typo-in-purpose-key",
    ),
    pytest.param(
        [('privacy_url = "/privacy"', 'privacy_uri = "/privacy"')],
        "policy.privacy_uri",
        ["unknown key"],
        id="typo-in-policy-key",
    ),
    pytest.param(
        [('privacy_url = "/privacy"', 'privacy_uri = "/privacy"')],
        "policy.privacy_url",
        ["missing"],
        id="typo-leaves-required-key-missing",
    ),
    pytest.param(
        [('controller = "Example Telecom Inc."\n', "")],
        "policy.controller",
        ["missing"],
        id="missing-controller",
    ),
    pytest.param(
        [("revision = 1\n", "")],
        "policy.revision",
        ["missing"],
        id="missing-revision",
    ),
    pytest.param(
        [("revision = 1\n", "revision = 0\n")],
        "policy.revision",
        ["1"],
        id="revision-zero",
    ),
    pytest.param(
        [('contact = "privacy@example.com"', 'contact = ""')],
        "policy.contact",
        ["1 character"],
        id="empty-contact",
    ),
    pytest.param(
        [('id = "analytics"\n', "")],
        "purposes[1].id",
        ["missing"],
        id="missing-purpose-id",
    ),
    pytest.param(
        [('title = { en = "Targeted advertising", fr = "Publicité ciblée" }\n', "")],
        "purposes[2] (id='ads').title",
        ["missing"],
        id="missing-purpose-title",
    ),
    pytest.param(
        [('cookies = ["_gcl_*", "IDE"]', 'cookies = ["_gcl_*", "IDE", "_ga"]')],
        "purposes[2] (id='ads').cookies",
        ["'_ga'", "'analytics'"],
        id="cookie-declared-by-two-purposes",
    ),
    pytest.param(
        [('cookies = ["_gcl_*", "IDE"]', 'cookies = ["_gcl_*", "IDE", "_ga_*"]')],
        "purposes[2] (id='ads').cookies",
        ["'_ga_*'", "'analytics'"],
        id="glob-declared-by-two-purposes",
    ),
    pytest.param(
        [('cookies = ["_gcl_*", "IDE"]', 'cookies = ["_gcl_*", "I DE"]')],
        "purposes[2] (id='ads').cookies",
        ["'I DE'"],
        id="cookie-name-with-space",
    ),
    pytest.param(
        [('cookies = ["_ga", "_ga_*"]', 'cookies = "_ga"')],
        "purposes[1] (id='analytics').cookies",
        [],
        id="cookies-not-a-list",
    ),
    pytest.param(
        [('title = { en = "Analytics", fr = "Mesure d\'audience" }', 'title = "Analytics"')],
        "purposes[1] (id='analytics').title",
        [],
        id="title-not-a-table",
    ),
    pytest.param(
        [
            (
                'title = { en = "Analytics", fr = "Mesure d\'audience" }',
                'title = { en = "Analytics", French = "x" }',
            )
        ],
        "purposes[1] (id='analytics').title",
        ["'French'"],
        id="title-locale-not-a-locale",
    ),
]


@pytest.mark.parametrize(("replacements", "key", "words"), INVALID)
def test_invalid_policy_names_file_key_and_problem(tmp_path, replacements, key, words):
    path, err = load_error(tmp_path, edited(*replacements))
    assert err.source == str(path)
    assert key in [k for k, _ in err.problems]
    line = problem_line(path, err, key)
    problem = line[len(f"{path}: {key}: ") :]
    assert problem.strip(), "the problem itself must be described"
    for word in words:
        assert word in problem, f"{word!r} not in {line!r}"


def test_policy_error_is_a_configuration_error(tmp_path):
    _, err = load_error(tmp_path, edited(("consent_lifetime_days = 180", "consent_lifetime_days = 400")))
    assert isinstance(err, ConfigurationError)


@pytest.mark.parametrize("days", [1, 395])
def test_lifetime_bounds_are_inclusive(tmp_path, days):
    text = edited(("consent_lifetime_days = 180", f"consent_lifetime_days = {days}"))
    assert Policy.from_toml(write_policy(tmp_path, text)).consent_lifetime_days == days


@pytest.mark.parametrize("pid", ["a", "a" * 32, "ads_2", "0"])
def test_valid_purpose_ids_are_accepted(tmp_path, pid):
    p = Policy.from_toml(write_policy(tmp_path, edited(('id = "ads"', f'id = "{pid}"'))))
    assert pid in p.ids


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    path, err = load_error(
        tmp_path,
        edited(
            ("consent_lifetime_days = 180", "consent_lifetime_days = 400"),
            ('opt_out_signals = ["gpc"]', 'opt_out_signals = ["dnt"]'),
        ),
    )
    keys = [k for k, _ in err.problems]
    assert "policy.consent_lifetime_days" in keys
    assert "purposes[2] (id='ads').opt_out_signals" in keys
    problem_line(path, err, "policy.consent_lifetime_days")
    problem_line(path, err, "purposes[2] (id='ads').opt_out_signals")


def test_unknown_top_level_table(tmp_path):
    path, err = load_error(tmp_path, EXAMPLE_TEXT + "\n[cookies]\nsession = 1\n")
    assert "unknown" in problem_line(path, err, "cookies")


def test_missing_policy_table(tmp_path):
    text = EXAMPLE_TEXT.split("[[purposes]]", 1)[1]
    path, err = load_error(tmp_path, "[[purposes]]" + text)
    assert "missing" in problem_line(path, err, "policy")


def test_no_purposes_at_all(tmp_path):
    path, err = load_error(tmp_path, EXAMPLE_TEXT.split("[[purposes]]", 1)[0])
    assert "purposes" in problem_line(path, err, "purposes")


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    text = edited(('version = "2026-11-01"', 'version = "2026-11-01'))  # unterminated string
    path, err = load_error(tmp_path, text)
    line = problem_line(path, err, "(file)")
    assert "TOML" in line
    assert "line 6" in line  # where the unterminated string is


def test_not_utf8(tmp_path):
    path = tmp_path / "consent.toml"
    path.write_bytes(EXAMPLE_TEXT.replace("Publicité", "Publicit\xe9").encode("latin-1"))
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(path)
    assert "UTF-8" in problem_line(path, info.value, "(file)")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "consent.toml"
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(path)
    line = problem_line(path, info.value, "(file)")
    assert "cannot read" in line
    assert "No such file" in line


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(tmp_path)
    assert "cannot read" in problem_line(tmp_path, info.value, "(file)")


def test_python_built_policy_is_validated_too():
    with pytest.raises(PolicyError) as info:
        Policy(
            controller="Example",
            contact="privacy@example.com",
            privacy_url="/privacy",
            revision=1,
            version="v1",
            consent_lifetime_days=400,
            purposes=[Purpose(id="stats", title={"en": "Stats"}, description={"en": "Counting."})],
        )
    assert info.value.source == "<python>"
    assert "policy.consent_lifetime_days" in str(info.value)


def test_cookie_name_matched_by_another_purposes_glob_is_refused(tmp_path):
    text = edited(('cookies = ["_gcl_*", "IDE"]', 'cookies = ["_gcl_*", "IDE", "_ga_ads"]'))
    path, err = load_error(tmp_path, text)  # analytics declares "_ga_*", which matches "_ga_ads"
    assert "_ga_ads" in problem_line(path, err, "purposes[2] (id='ads').cookies")


# -- the digest -------------------------------------------------------------------------------


def test_digest_is_sha256_hex_and_stable_across_loads():
    a = Policy.from_toml(EXAMPLE_POLICY)
    # Touch every derived property first: cached values must not leak into the digest.
    _ = (a.by_id, a.ids, a.locales, a.essential_ids, a.gpc_ids, a.cookie_purpose("_ga_x"))
    _ = [p.cookie_regex for p in a.purposes]
    b = Policy.from_toml(EXAMPLE_POLICY)
    assert len(a.digest) == 64
    int(a.digest, 16)
    assert a.digest == b.digest
    assert a == b


def test_digest_is_the_same_in_another_interpreter(policy):
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = "import sys; from consentkit import Policy; print(Policy.from_toml(sys.argv[1]).digest)"
    out = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE_POLICY)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == policy.digest


def test_digest_is_sha256_of_canonical_json(policy):
    import hashlib
    import json

    assert hashlib.sha256(policy.canonical_json.encode("utf-8")).hexdigest() == policy.digest
    data = json.loads(policy.canonical_json)
    # texts are included, in every locale
    assert data["purposes"][2]["title"] == {"en": "Targeted advertising", "fr": "Publicité ciblée"}


CHANGES = [
    ('controller = "Example Telecom Inc."', 'controller = "Example Telecom Ltd."'),
    ('contact = "privacy@example.com"', 'contact = "dpo@example.com"'),
    ('privacy_url = "/privacy"', 'privacy_url = "/privacy-policy"'),
    ('version = "2026-11-01"', 'version = "2026-11-02"'),
    ("revision = 1", "revision = 2"),
    ("consent_lifetime_days = 180", "consent_lifetime_days = 181"),
    ('fr = "Mesure d\'audience"', 'fr = "Mesure d\'audience "'),
    ('"Aggregated traffic measurement to improve the site."', '"Aggregated traffic measurement."'),
    ('fr = "Publicité ciblée"', 'fr = "Publicite ciblee"'),
    ('cookies = ["_gcl_*", "IDE"]', 'cookies = ["_gcl_*", "IDE", "NID"]'),
    ('consent_mode = ["analytics_storage"]', 'consent_mode = ["analytics_storage", "functionality_storage"]'),
    ('id = "analytics"', 'id = "audience"'),
    ('opt_out_signals = ["gpc"]\n', ""),
    ('title = { en = "Analytics", fr', 'title = { en = "Analytics", de = "Analyse", fr'),
]


@pytest.mark.parametrize(("old", "new"), CHANGES, ids=[new for _, new in CHANGES])
def test_digest_changes_when_anything_shown_changes(tmp_path, policy, old, new):
    changed = Policy.from_toml(write_policy(tmp_path, edited((old, new))))
    assert changed.digest != policy.digest


def test_digest_ignores_key_order_and_toml_style(tmp_path, policy):
    reordered = """
[[purposes]]
description.fr = "Connexion, sécurité et votre choix de consentement lui-même."
description.en = "Sign-in, security and your consent choice itself."
title = { fr = "Strictement nécessaires", en = "Strictly necessary" }
cookies = ["session", "csrftoken"]
essential = true
id = "necessary"

[[purposes]]
consent_mode = ["analytics_storage"]
cookies = ["_ga", "_ga_*"]
id = "analytics"

[purposes.description]
fr = "Mesure agrégée de la fréquentation pour améliorer le site."
en = "Aggregated traffic measurement to improve the site."

[purposes.title]
fr = "Mesure d'audience"
en = "Analytics"

[[purposes]]
opt_out_signals = ["gpc"]
id = "ads"
cookies = ["_gcl_*", "IDE"]
consent_mode = ["ad_storage", "ad_user_data", "ad_personalization"]
description.fr = "Des publicités choisies d'après ce que vous avez fait sur ce site et d'autres."
description.en = "Ads chosen from what you did on this and other sites."
title.fr = "Publicité ciblée"
title.en = "Targeted advertising"

[policy]
default_locale = "en"
consent_lifetime_days = 180
version = "2026-11-01"
revision = 1
privacy_url = "/privacy"
contact = "privacy@example.com"
controller = "Example Telecom Inc."
"""
    other = Policy.from_toml(write_policy(tmp_path, reordered))
    assert other.digest == policy.digest
    assert other == policy


def test_explicit_defaults_give_the_same_digest(tmp_path, policy):
    text = edited(
        ('id = "analytics"\n', 'id = "analytics"\nessential = false\nopt_out_signals = []\n'),
    )
    assert Policy.from_toml(write_policy(tmp_path, text)).digest == policy.digest


def test_python_built_policy_equals_the_toml_one(policy):
    built = Policy(
        controller="Example Telecom Inc.",
        contact="privacy@example.com",
        privacy_url="/privacy",
        revision=1,
        version="2026-11-01",
        consent_lifetime_days=180,
        default_locale="en",
        purposes=[
            Purpose(
                id="necessary",
                essential=True,
                title={"en": "Strictly necessary", "fr": "Strictement nécessaires"},
                description={
                    "en": "Sign-in, security and your consent choice itself.",
                    "fr": "Connexion, sécurité et votre choix de consentement lui-même.",
                },
                cookies=["session", "csrftoken"],
            ),
            Purpose(
                id="analytics",
                title={"fr": "Mesure d'audience", "en": "Analytics"},
                description={
                    "en": "Aggregated traffic measurement to improve the site.",
                    "fr": "Mesure agrégée de la fréquentation pour améliorer le site.",
                },
                cookies=["_ga", "_ga_*"],
                consent_mode=["analytics_storage"],
            ),
            Purpose(
                id="ads",
                title={"en": "Targeted advertising", "fr": "Publicité ciblée"},
                description={
                    "en": "Ads chosen from what you did on this and other sites.",
                    "fr": "Des publicités choisies d'après ce que vous avez fait sur ce site et d'autres.",
                },
                cookies=["_gcl_*", "IDE"],
                consent_mode=["ad_storage", "ad_user_data", "ad_personalization"],
                opt_out_signals=["gpc"],
            ),
        ],
    )
    assert built.digest == policy.digest
    assert built.canonical_json == policy.canonical_json
    assert built == policy


def test_policy_is_immutable(policy):
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        policy.revision = 2  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017
        policy.purposes[0].essential = False  # type: ignore[misc]


# -- cookies and purposes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "purpose"),
    [
        ("session", "necessary"),
        ("csrftoken", "necessary"),
        ("_ga", "analytics"),
        ("_ga_ABC123", "analytics"),
        ("_ga_", "analytics"),
        ("_gcl_au", "ads"),
        ("_gcl_dc", "ads"),
        ("IDE", "ads"),
        ("ide", None),  # cookie names are case-sensitive
        ("_gax", None),  # "_ga_*" needs the underscore
        ("x_ga", None),  # globs are anchored at the start
        ("_ga.x", None),
        ("IDE2", None),  # exact names are exact
        ("sessionid", None),
        ("consentkit", None),
        ("", None),
    ],
)
def test_cookie_purpose_matches_exact_names_and_globs(policy, name, purpose):
    assert policy.cookie_purpose(name) == purpose


def test_cookie_globs_treat_regex_characters_literally(tmp_path):
    text = edited(('cookies = ["_gcl_*", "IDE"]', 'cookies = ["ad.id*", "pre*post", "IDE"]'))
    p = Policy.from_toml(write_policy(tmp_path, text))
    assert p.cookie_purpose("ad.id") == "ads"
    assert p.cookie_purpose("ad.id_42") == "ads"
    assert p.cookie_purpose("adXid_42") is None
    assert p.cookie_purpose("pre_middle_post") == "ads"
    assert p.cookie_purpose("prepost") == "ads"
    assert p.cookie_purpose("pre_middle_pos") is None
    assert p.cookie_purpose("xpre_post") is None


def test_locales_are_those_every_purpose_has_default_first(policy, tmp_path):
    assert policy.locales == ("en", "fr")

    french_first = Policy.from_toml(
        write_policy(tmp_path, edited(('default_locale = "en"', 'default_locale = "fr"')), "fr.toml")
    )
    assert french_first.locales == ("fr", "en")

    # ads has no French description: French is not a complete locale any more
    no_fr = edited(
        (
            ", fr = \"Des publicités choisies d'après ce que vous avez fait sur ce site et d'autres.\" }",
            " }",
        )
    )
    assert Policy.from_toml(write_policy(tmp_path, no_fr, "nofr.toml")).locales == ("en",)

    # a German title alone (no description) does not make German a locale
    de_title = edited(('title = { en = "Analytics", fr', 'title = { en = "Analytics", de = "Analyse", fr'))
    assert Policy.from_toml(write_policy(tmp_path, de_title, "de.toml")).locales == ("en", "fr")


def test_purpose_text_falls_back_to_the_default_locale(policy):
    ads = policy.purpose("ads")
    assert ads.text("title", "fr", "en") == "Publicité ciblée"
    assert ads.text("title", "fr-CA", "en") == "Publicité ciblée"
    assert ads.text("title", "de", "en") == "Targeted advertising"
